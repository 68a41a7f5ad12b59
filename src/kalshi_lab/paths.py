"""Every path the pipeline reads or writes, relative to the repository root (DVC's cwd).

dvc.yaml repeats these as deps/outs; tests/test_dvc_yaml.py checks that the two agree.
"""

from pathlib import Path

PARAMS = Path("params.yaml")
#: the stages; read for a stage's --help
DVC_YAML = Path("dvc.yaml")

#: written by the validate stage once params.yaml passed; the fetch stage depends on it, so
#: that validation runs before any other stage
PARAMS_VALID = Path("data/params.ok")
RAW_DIR = Path("data/raw")
#: order books recorded from Kalshi's WebSocket stream (kalshi-lab record): an input of the
#: parquet stage and no stage's output, so that no dvc command deletes or replaces what cannot
#: be fetched again; kept in git as a directory, its recordings git-ignored
RECORDED_DIR = Path("data/recorded")
#: responses of closed periods kept between fetches (git-ignored, not a DVC output)
CACHE_DIR = Path("data/cache")
PARQUET_DIR = Path("data/parquet")
FEATURES = Path("data/features/features.parquet")
#: the user features (features.extra) and their look-ahead check; evaluate copies it
USER_FEATURES = Path("data/features/user_features.json")
#: validation-period predictions: what the backtest replays (users tune on this period)
PREDICTIONS = Path("data/predictions/predictions.parquet")
#: test-period predictions of the model refit on train + validation (backtested separately)
PREDICTIONS_TEST = Path("data/predictions/test.parquet")
BACKTEST_FILLS = Path("data/backtest/fills.parquet")

#: fit on the training period; scores validation and feeds the backtest
MODEL = Path("models/model.joblib")
#: {"folds": the earlier walk-forward folds' models, "test": the refit on train + validation}
MODELS_WALK_FORWARD = Path("models/walk_forward.joblib")
#: fit on every labelled row, validation and test included: what kalshi-bot trades (paper, live)
MODEL_LIVE = Path("models/live.joblib")
MODEL_META = Path("models/model.json")

REPORTS = Path("reports")
METRICS = REPORTS / "metrics.json"  # a few headline validation scalars
EVALUATION = REPORTS / "evaluation.json"  # validation, test, walk-forward folds, intervals
BACKTEST_REPORT = REPORTS / "backtest.json"
PLOTS = REPORTS / "plots"
ROC_MODEL = PLOTS / "roc_model.csv"
ROC_BASELINE = PLOTS / "roc_baseline.csv"
CALIBRATION_MODEL = PLOTS / "calibration_model.csv"
CALIBRATION_BASELINE = PLOTS / "calibration_baseline.csv"
IMPORTANCE = PLOTS / "importance.csv"
EQUITY = PLOTS / "equity.csv"
FIGURES = REPORTS / "figures"
ROC_FIGURE = FIGURES / "roc.png"
CALIBRATION_FIGURE = FIGURES / "calibration.png"
IMPORTANCE_FIGURE = FIGURES / "importance.png"
EQUITY_FIGURE = FIGURES / "equity.png"
#: the backtest beyond its headline (backtest.json): intervals, latency, the test period, what ran
BACKTEST_DETAIL = REPORTS / "backtest_detail.json"
PNL_BY_EVENT = PLOTS / "pnl_by_event.csv"
PNL_BY_PRICE = PLOTS / "pnl_by_price.csv"
PNL_BY_EVENT_FIGURE = FIGURES / "pnl_by_event.png"
PNL_BY_PRICE_FIGURE = FIGURES / "pnl_by_price.png"
#: kalshi-lab summary's markdown (not a DVC output: written on demand, e.g. by CI)
SUMMARY = REPORTS / "summary.md"


def parquet_table(name: str, root: Path = PARQUET_DIR) -> Path:
    """The dataset directory of one typed table written by the parquet stage."""
    return root / name
