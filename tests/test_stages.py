"""Each stage on small data, run as DVC runs it (`python -m kalshi_lab.stages.<name>` in the repo root).

One small pipeline is run once per module in a temporary directory; the tests then check what
each stage wrote, and that bad input stops a stage with exit code 2, one clear message and no
output.
"""

import gzip
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from kalshi_lab import paths
from kalshi_lab.data.raw_store import KINDS, MANIFEST, raw_partitions
from kalshi_lab.data.tables import TABLES, read_table
from kalshi_lab.params import load_params
from kalshi_lab.resolution import release_clusters
from kalshi_lab.simulator import simulate
from kalshi_lab.split import periods
from stage_support import ROOT, STAGES, python_m, run_stage, write_composed_params
from table_files import write_table_files

#: the whole pipeline once, then each stage as a process on it: among the slow end-to-end
#: tests (run first, so that this file does not start last on an xdist worker)
pytestmark = pytest.mark.slow

SMALL = [
    "data.start=2025-01-01",
    "data.end=2025-04-30",
    # about 70 events: enough for validation and test to pass the guards' defaults
    "data.synthetic.n_markets=200",
    "data.synthetic.min_duration_days=8",
    "data.synthetic.max_duration_days=20",
    "split.n_folds=2",  # 120 days: folds of 24 days from day 48, test from day 96
]


#: unless a test picks its own: a model that departs from the market, so that the backtest has
#: orders to report on (the default, anchored_logit, is the market itself on this data)
MODEL = ["model=lightgbm", "model.params.n_estimators=40"]


def write_params(workdir: Path, overrides: list[str]) -> None:
    model = [] if any(o.startswith("model=") for o in overrides) else MODEL
    write_composed_params(workdir, SMALL + model + overrides)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("stages")
    write_params(workdir, [])
    for name in STAGES:
        proc = run_stage(workdir, name)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr}"
        (workdir / f"{name}.log").write_text(proc.stderr)
    return workdir


def test_validate_marks_a_valid_params_yaml(pipeline):
    assert (pipeline / paths.PARAMS_VALID).read_text() == "params.yaml passed validation\n"


def test_fetch_writes_api_documents_partitioned_by_series_and_month(pipeline):
    parts = raw_partitions(pipeline / paths.RAW_DIR)
    assert len(parts) >= 10 and len({p.parent.name for p in parts}) == 5  # 5 series
    for part in parts:
        assert sorted(p.name for p in part.iterdir()) == sorted([*KINDS.values(), MANIFEST])


def test_parquet_tables_have_their_schemas(pipeline):
    import pyarrow.parquet as pq

    for name, schema in TABLES.items():
        files = sorted(paths.parquet_table(name, pipeline / paths.PARQUET_DIR).rglob("*.parquet"))
        assert files, name
        for file in files:
            assert pq.read_schema(file).equals(schema, check_metadata=False), file
    trades = read_table("trades", pipeline / paths.PARQUET_DIR)
    assert trades["trade_id"].is_unique


def test_features_are_keyed_by_as_of(pipeline):
    features = pd.read_parquet(pipeline / paths.FEATURES)
    assert not features.duplicated(["ticker", "as_of"]).any()
    assert (features["as_of"] < features["close_time"]).all()
    assert (features["as_of"].dt.hour == 0).all()


def test_train_and_evaluate_report_model_beside_baselines(pipeline):
    meta = json.loads((pipeline / paths.MODEL_META).read_text())
    assert meta["target"] == "settlement" and meta["n_train"] > 0
    assert len(meta["walk_forward"]) == 2 and meta["test"]["n_train"] > meta["n_train"]
    # the model traded live is fit on every labelled row, the test period's included
    features = pd.read_parquet(pipeline / paths.FEATURES)
    labelled = features[features["target_settlement"].notna()]
    assert meta["live"]["n_train"] == len(labelled) > meta["test"]["n_train"]
    assert meta["live"]["last_labelled_as_of"] == labelled["as_of"].max().isoformat()
    live = joblib.load(pipeline / paths.MODEL_LIVE)
    assert live.n_features_in_ == len(meta["features"])
    metrics = json.loads((pipeline / paths.METRICS).read_text())
    assert set(metrics) == {"skill_vs_best", "p_no_skill"}
    report = json.loads((pipeline / paths.EVALUATION).read_text())
    assert set(report) == {"validation", "test", "walk_forward", "features"}
    assert report["features"]["user_features"] == []  # the default: none, nothing checked
    assert report["features"]["leak_check"]["result"] == "not run: no user features"
    assert set(report["walk_forward"]) == {"fold_1", "fold_2", "pooled"}
    assert report["walk_forward"]["fold_2"]["scores"] == report["validation"]["scores"]
    for period in ("validation", "test"):
        block = report[period]
        assert block["skipped"] is None
        assert set(block["scores"]) == {"model", "market", "recal", "base_rate"}
        for name in ("market", "recal", "best"):
            diff = block["bootstrap"][f"model_minus_{name}"]["brier_diff"]
            assert diff["lower"] <= diff["estimate"] <= diff["upper"]
        # the best baseline is the better of the two on the period's rows
        best = min(("market", "recal"), key=lambda n: block["scores"][n]["brier"])
        assert block["best_baseline"] == best
        assert block["brier_skill"]["vs_best"] == block["brier_skill"][f"vs_{best}"]
        # every row of the window is scored or counted with its reason
        not_scored = sum(block["not_scored"].values())
        assert block["n_rows"] + not_scored == block["n_window_rows"]
        assert block["share_scored"] == pytest.approx(block["n_rows"] / block["n_window_rows"])
    validation = report["validation"]
    predictions = pd.read_parquet(pipeline / paths.PREDICTIONS)
    # split by event structure on the same rows: every scored row is in one structure
    parts = validation["by_structure"]
    # the default simulator lists all three structures, and each is scored apart
    assert set(features["structure"]) == {"ladder", "bracket", "binary"}
    assert set(parts) == set(predictions["structure"])
    assert sum(p["n_rows"] for p in parts.values()) == validation["n_rows"]
    assert metrics["skill_vs_best"] == validation["brier_skill"]["vs_best"]
    beats = validation["bootstrap"]["model_minus_best"]["brier_diff"]["share_below_zero"]
    assert metrics["p_no_skill"] == pytest.approx(1 - beats)
    # no event is scored (nor predicted for the backtest) in two periods
    test = pd.read_parquet(pipeline / paths.PREDICTIONS_TEST)
    assert not set(predictions["event_ticker"]) & set(test["event_ticker"])
    params = load_params(pipeline / "params.yaml")
    found = periods(features, params.split, params.model.target)
    scored = [set(features.loc[s.valid, "event_ticker"]) for _, _, s in found.named()]
    for a, b in itertools.combinations(scored, 2):
        assert not a & b
    # the intervals resample releases (a series family's events closing on one date)
    releases = pd.Series(release_clusters(features), index=features.index)
    rows = found.validation.valid & features["target_settlement"].notna().to_numpy()
    n_releases = releases[rows].nunique()
    assert validation["bootstrap"]["n_releases"] == n_releases < validation["n_events"]
    assert predictions["as_of"].min() >= pd.Timestamp(meta["valid_start"])
    assert predictions["as_of"].max() < pd.Timestamp(meta["valid_end"])
    assert predictions["prob"].between(0, 1).all() and set(predictions["period"]) == {"validation"}
    assert test["as_of"].min() >= pd.Timestamp(meta["test"]["scored_from"])
    assert set(test["period"]) == {"test"} and list(test.columns) == list(predictions.columns)
    for figure in (paths.ROC_FIGURE, paths.CALIBRATION_FIGURE, paths.IMPORTANCE_FIGURE):
        assert (pipeline / figure).read_bytes()[:4] == b"\x89PNG"
    importance = pd.read_csv(pipeline / paths.IMPORTANCE)
    assert importance["importance"].is_monotonic_decreasing


def test_backtest_report(pipeline):
    headline = json.loads((pipeline / paths.BACKTEST_REPORT).read_text())
    detail = json.loads((pipeline / paths.BACKTEST_DETAIL).read_text())
    report = detail["validation"]
    assert headline == {"return": report["total_return"], "p_loss": report["p_loss"]}
    assert report["final_equity"] > 0
    assert report["return_ci_low"] <= report["total_return"] <= report["return_ci_high"]
    assert 0 <= report["p_loss"] <= 1 and 0 <= report["gain_share_top3_events"] <= 1
    # the return's interval resamples the releases of the events traded
    markets = read_table("markets", pipeline / paths.PARQUET_DIR)
    release = dict(zip(markets["event_ticker"], release_clusters(markets), strict=True))
    traded = pd.read_csv(pipeline / paths.PNL_BY_EVENT)["event_ticker"]
    assert report["n_releases"] == len({release[e] for e in traded}) < report["n_events"]
    assert detail["run"] == {
        "model": "lightgbm",
        "target": "settlement",
        "strategy": "EdgeBasedStrategy",
        "executor": "simple",
        "data": "synthetic",
    }
    latency = detail["latency_total_return"]
    assert list(latency) == ["0h", "6h", "12h"]
    assert latency["0h"]["return"] == report["total_return"]
    # the simulator's books, 4 a day, are newer 6 and 12 hours after each midnight decision
    for k in ("6h", "12h"):
        assert latency[k]["measurable"] is True and latency[k]["reason"] is None
        assert isinstance(latency[k]["return"], float)
        assert latency[k]["fresh_quote_share"] > 0.9 and latency[k]["fresh_fill_share"] > 0.9
    assert detail["test"]["n_orders"] > 0  # the held-out period, backtested apart
    equity = pd.read_csv(pipeline / paths.EQUITY)
    assert len(equity) > 1 and (equity["cash"] >= 0).all()
    # the simulator records books: every fill here comes from one
    assert report["n_fills_book"] > 0 and report["n_fills_candle"] == 0
    assert report["n_contracts_book"] == report["n_contracts"]
    by_event = pd.read_csv(pipeline / paths.PNL_BY_EVENT)
    by_price = pd.read_csv(pipeline / paths.PNL_BY_PRICE)
    # every dollar of the run is in one event and (all positions were bought) one price bucket
    gain = report["final_equity"] - report["initial_cash"]
    assert by_event["pnl"].sum() == pytest.approx(gain, abs=0.01)
    assert by_price["pnl"].sum() == pytest.approx(gain, abs=0.01)
    assert by_event["n_positions"].sum() == report["n_closed"] + report["n_open_positions"]
    parts = report["by_structure"].values()
    assert sum(p["pnl"] for p in parts) == pytest.approx(gain, abs=0.01)
    assert sum(p["fees_paid"] for p in parts) == pytest.approx(report["fees_paid"], abs=0.01)
    assert sum(p["n_events"] for p in parts) == len(by_event)
    for figure in (paths.EQUITY_FIGURE, paths.PNL_BY_EVENT_FIGURE, paths.PNL_BY_PRICE_FIGURE):
        assert (pipeline / figure).read_bytes()[:4] == b"\x89PNG"


def test_stages_log_what_they_leave_out_and_why(pipeline):
    train = (pipeline / "train.log").read_text()
    assert "split (settlement): training labels known before" in train
    assert "have no training row" in train
    assert "have no settlement label, not trained on" in train
    evaluate = (pipeline / "evaluate.log").read_text()
    assert "validation: 0 of " in evaluate  # the simulator resolves every market
    assert "have no settlement label, predicted but not scored" in evaluate
    backtest = (pipeline / "backtest.log").read_text()
    assert "signals without an order: " in backtest and "sends that filled nothing" in backtest


def test_train_logs_every_fit_with_its_rows_and_seconds(pipeline):
    """One line per period as it is done (a slow model never leaves the stage silent): each is
    fit (rows and seconds) or skipped (why), then the live model."""
    train = (pipeline / "train.log").read_text()
    params = load_params(pipeline / "params.yaml")
    features = pd.read_parquet(pipeline / paths.FEATURES)
    found = periods(features, params.split, params.model.target)
    for _, what, _ in found.named():
        fit = re.search(rf"INFO trained lightgbm for {what} on [1-9]\d* rows in \d+\.\d s\n", train)
        assert fit or f"WARNING train: {what} skipped, not scored: " in train, what
    live = (
        r"INFO trained lightgbm for the live model \(every labelled row\) on \d+ rows in [\d.]+ s"
    )
    assert re.search(live, train)


def _backtest_copy(pipeline: Path, workdir: Path, overrides: list[str]) -> Path:
    """The pipeline's inputs of the backtest stage, in a fresh directory."""
    for path in (paths.PARQUET_DIR, paths.PREDICTIONS.parent):
        shutil.copytree(pipeline / path, workdir / path)
    write_params(workdir, overrides)
    return workdir


def test_backtest_on_recorded_history_without_books_fills_from_candles(pipeline, tmp_path):
    workdir = _backtest_copy(pipeline, tmp_path, [])
    # real history: no books
    write_table_files(workdir / paths.PARQUET_DIR, "orderbook", TABLES["orderbook"].empty_table())
    proc = run_stage(workdir, "backtest")
    assert proc.returncode == 0, proc.stderr
    detail = json.loads((workdir / paths.BACKTEST_DETAIL).read_text())
    report = detail["validation"]
    assert report["n_fills_book"] == 0 and report["n_fills_candle"] > 0
    fills = pd.read_parquet(workdir / paths.BACKTEST_FILLS)
    assert set(fills["source"]) == {"candle"} and (fills["quote_ts"] <= fills["ts"]).all()
    # daily candles alone: 6 and 12 hours later the decisions see the same midnight candles
    latency = detail["latency_total_return"]
    assert latency["0h"]["return"] == report["total_return"]
    for k in ("6h", "12h"):
        assert latency[k]["measurable"] is False and latency[k]["return"] is None
        assert latency[k]["fresh_quote_share"] == 0.0
        assert "replay the quotes the undelayed run saw" in latency[k]["reason"]
    assert "6h: not measurable (0% of the delayed decisions' quotes" in proc.stderr


def test_a_backtest_that_places_no_order_says_why(pipeline, tmp_path):
    workdir = _backtest_copy(pipeline, tmp_path, ["strategy.min_edge=0.99"])
    proc = run_stage(workdir, "backtest")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING backtest placed no order: of " in proc.stderr
    assert "edge at the ask not above min_edge 0.99" in proc.stderr
    detail = json.loads((workdir / paths.BACKTEST_DETAIL).read_text())
    assert detail["validation"]["n_orders"] == 0
    assert detail["validation"]["n_trades"] == 0
    assert json.loads((workdir / paths.BACKTEST_REPORT).read_text())["return"] == 0


@pytest.mark.parametrize(
    ("stage", "override", "message"),
    [
        (
            "fetch",
            "data.synthetic.n_markets=0",
            "data.synthetic.n_markets: Input should be greater than or equal to 1",
        ),
        ("fetch", "data.end=2024-12-01", "data.end: must be on or after data.start"),
        ("train", "split.train_size=1.0", "split.train_size: Input should be less than 1"),
        ("train", "model.name=xgboost", "model.name: Input should be 'lightgbm'"),
        # the train stage run on its own checks the hyper-parameters before any fit, as validate
        (
            "train",
            "model.params.num_leaves=-3",
            "model.params.num_leaves: -3 is refused by lightgbm (LightGBM: num_leaves must be > 1)",
        ),
        ("backtest", "strategy.kelly_fraction=0", "strategy.kelly_fraction must be in (0, 1]"),
        # what DVC runs first: the backtest's argument fails before any output is deleted
        ("validate", "strategy.kelly_fraction=0", "strategy.kelly_fraction must be in (0, 1]"),
        ("validate", "split.train_size=1.0", "split.train_size: Input should be less than 1"),
        ("validate", "model.target=direction", "model.target must be settlement for Edge"),
        (
            "validate",
            "features.extra=[{_target_:nosuch.f,columns:[X]}]",
            "features.extra[0] (nosuch.f): _target_ cannot be used: Error loading 'nosuch.f'",
        ),
        (
            "features",
            "features.extra=[{_target_:nosuch.f,columns:[RET_1]}]",
            "features.extra[0] (nosuch.f): columns ['RET_1'] are built-in features",
        ),
        (
            "features",
            "features.extra=[{_target_:nosuch.f,columns:[low]}]",
            "features.extra[0].columns[0]: String should match pattern",
        ),
    ],
)
def test_bad_parameter_stops_with_a_clear_message_and_no_output(tmp_path, stage, override, message):
    write_params(tmp_path, [override])
    proc = run_stage(tmp_path, stage)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def _features_copy(pipeline: Path, workdir: Path, overrides: list[str]) -> Path:
    """The pipeline's parquet tables in a fresh directory, with the user's feature functions
    in a file at its root (tests/feature_examples.py), as a user keeps them."""
    shutil.copytree(pipeline / paths.PARQUET_DIR, workdir / paths.PARQUET_DIR)
    shutil.copy(ROOT / "tests" / "feature_examples.py", workdir)
    write_params(workdir, overrides)
    return workdir


@pytest.mark.parametrize(
    ("overrides", "column", "result"),
    [
        (
            ["features.extra=[{_target_:feature_examples.mean_mid,columns:[MEAN_MID],days:3}]"],
            "MEAN_MID",
            "passed",
        ),
        (
            [
                "features.extra=[{_target_:feature_examples.outcome_noise,columns:[OUTCOME_NOISE]}]",
                "features.leak_check.enabled=false",
                "model=anchored_logit",
            ],
            "OUTCOME_NOISE",
            "not run: features.leak_check.enabled is false",
        ),
    ],
    ids=["honest", "leaky-unchecked"],
)
def test_a_user_feature_is_a_model_input_end_to_end(pipeline, tmp_path, overrides, column, result):
    workdir = _features_copy(pipeline, tmp_path, overrides)
    logs = {}
    for name in ("features", "train", "evaluate"):
        proc = run_stage(workdir, name)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr}"
        logs[name] = proc.stderr
    features = pd.read_parquet(workdir / paths.FEATURES)
    assert features[column].notna().mean() > 0.5
    assert json.loads((workdir / paths.MODEL_META).read_text())["features"][-1] == column
    assert column in set(pd.read_csv(workdir / paths.IMPORTANCE)["feature"])
    record = json.loads((workdir / paths.EVALUATION).read_text())["features"]
    assert record == json.loads((workdir / paths.USER_FEATURES).read_text())
    assert record["user_features"][0]["columns"] == [column]
    check = record["leak_check"]
    assert check["result"] == result and check["ran"] == (result == "passed")
    warning = (
        f"WARNING features.leak_check.enabled is false: the user features ['{column}'] are NOT "
        "checked for look-ahead"
    )
    if check["ran"]:
        assert len(check["cutoffs"]) == 3 and warning not in logs["features"]
        assert "leak check passed: 1 user features at 3 cut-offs" in logs["features"]
    else:
        assert check["cutoffs"] == [] and warning in logs["features"]
        # the default model finds the leak it was handed, outcome + N(0, 2^2), once it has the
        # events to see it: validation's model, fit on 29 events, keeps to the market price; the
        # test period's, fit on train and validation, takes it
        report = json.loads((workdir / paths.EVALUATION).read_text())
        assert report["validation"]["brier_skill"]["vs_market"] == pytest.approx(0.0, abs=1e-9)
        assert report["test"]["brier_skill"]["vs_best"] > 0.02
        assert joblib.load(workdir / paths.MODELS_WALK_FORWARD)["test"].selected_features_ == [
            column
        ]


@pytest.mark.parametrize(
    ("function", "column"), [("outcome_noise", "OUTCOME_NOISE"), ("next_mid", "NEXT_MID")]
)
def test_a_leaky_user_feature_stops_the_features_stage(pipeline, tmp_path, function, column):
    target = f"feature_examples.{function}"
    workdir = _features_copy(
        pipeline, tmp_path, [f"features.extra=[{{_target_:{target},columns:[{column}]}}]"]
    )
    proc = run_stage(workdir, "features")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert re.match(
        rf"error: features: features\.extra\[0\] \({re.escape(target)}\) looks ahead: "
        rf"{column} on \S+ at as_of \S+ is ",
        errors[0],
    ), errors[0]
    assert not (workdir / paths.FEATURES.parent).exists()  # nothing written


def test_missing_input_names_the_stage_to_run(tmp_path):
    write_params(tmp_path, [])
    proc = run_stage(tmp_path, "features")
    assert proc.returncode == 2
    assert "run the parquet stage first" in proc.stderr


@pytest.mark.parametrize("name", STAGES)
def test_help_says_what_the_stage_reads_and_writes(tmp_path, name):
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
    proc = run_stage(tmp_path, name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m kalshi_lab.stages.{name} [-h]")
    assert f"{name}: " in proc.stdout  # the stage's docstring
    outs = [next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]]
    data = [dep for dep in stage["deps"] if not dep.startswith("src/")]
    for item in outs + data + stage.get("params", []):
        assert f"\n    {item}\n" in proc.stdout, item
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml"]


@pytest.mark.parametrize("args", [["--help"], ["--force"], ["fetch"]])
def test_help_or_an_unknown_argument_leaves_the_outputs_alone(pipeline, args):
    before = {p: p.stat().st_mtime_ns for p in pipeline.rglob("*")}
    proc = run_stage(pipeline, "fetch", *args)
    after = {p: p.stat().st_mtime_ns for p in pipeline.rglob("*")}
    assert after == before
    if args == ["--help"]:
        assert proc.returncode == 0 and "Run from the repository root" in proc.stdout
    else:
        assert proc.returncode == 2
        assert f"error: unrecognized arguments: {args[0]}" in proc.stderr


#: evaluate as DVC runs it, held at its first figure (after its predictions, reports and curves
#: are staged) until the test interrupts it: Ctrl-C while the stage is writing, at a known point
HELD_EVALUATE = """
import runpy, sys, time
from kalshi_lab import figures
def held(*args, **kwargs):
    print("holding", file=sys.stderr, flush=True)
    time.sleep(120)
figures.roc = held
runpy.run_module("kalshi_lab.stages.evaluate", run_name="__main__")
"""


def _interruptible() -> None:
    """In the child before it starts Python: SIGINT as a terminal's Ctrl-C delivers it. An
    xdist worker ignores SIGINT, and a child inherits that (Python then never raises
    KeyboardInterrupt); DVC leaves it as it is for a stage."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def test_ctrl_c_ends_a_stage_with_one_line_exit_130_and_no_output(pipeline, tmp_path):
    for path in (paths.FEATURES.parent, paths.MODEL.parent):
        shutil.copytree(pipeline / path, tmp_path / path)
    shutil.copy(pipeline / "params.yaml", tmp_path)
    inputs = _files(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD_EVALUATE],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    try:
        for line in proc.stderr:
            if line == "holding\n":
                break
        staged = [p for p in tmp_path.rglob(".*.tmp")]
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    assert len(staged) >= 4  # it was interrupted with outputs written but not yet published
    assert rest == "error: evaluate: interrupted\n"  # no traceback
    assert _files(tmp_path) == inputs  # neither outputs nor their temporaries left behind


#: interrupted runs tried before the test gives up on seeing the interrupt propagate
INTERRUPT_ATTEMPTS = 3


def test_ctrl_c_while_a_stage_imports_is_one_line(tmp_path):
    """SIGINT as soon as the stage process has loaded pandas, before it runs its body: no
    traceback (the stage's package hooks the report of an uncaught KeyboardInterrupt).

    CPython itself can drop the KeyboardInterrupt (seen raised inside the weakref callback of
    importlib's module locks: "Exception ignored in ..."), and the stage then runs to the end
    with exit code 0: 2 of 40 interrupted imports on a busy machine, none of 80 on a quiet one. Such a run says
    nothing about the hook, so it is tried again, in a fresh directory."""
    for attempt in range(INTERRUPT_ATTEMPTS):
        workdir = tmp_path / f"attempt-{attempt}"
        workdir.mkdir()
        write_params(workdir, [])
        proc = subprocess.Popen(
            [sys.executable, "-m", "kalshi_lab.stages.validate"],
            cwd=workdir,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_interruptible,
        )
        maps = Path(f"/proc/{proc.pid}/maps")
        try:
            deadline = time.monotonic() + 60
            while "pandas/_libs" not in maps.read_text() and time.monotonic() < deadline:
                time.sleep(0.002)
            proc.send_signal(signal.SIGINT)
            err = proc.stderr.read()
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
        if code != 0:  # the interrupt reached the stage
            break
    assert "Traceback" not in err
    assert err.splitlines() == ["error: interrupted"]
    assert code == -signal.SIGINT  # Python ends a process interrupted outside run_stage by SIGINT
    assert sorted(p.name for p in workdir.iterdir()) == ["params.yaml"]


def posterior_at(sim, tickers: pd.Series, as_of: pd.Series) -> np.ndarray:
    """The simulator's true posterior probability of each market at each as_of (an oracle)."""
    universe, grid = sim.universe, sim.grid
    market = pd.Index(universe.ticker).get_indexer(tickers)
    assert (market >= 0).all()
    hour = (as_of.astype("int64").to_numpy() // 10**9 - universe.t0) // 3600
    offset = hour - grid.hour[grid.starts[market]]
    assert ((offset >= 0) & (offset < grid.lengths[market])).all()
    return sim.latent.prob[grid.starts[market] + offset]


def test_the_model_does_not_beat_the_true_posterior(pipeline):
    """A leakage canary: no honest model beats the Bayesian posterior the simulator draws from.

    The simulator's latent probability is the exact posterior of the outcome given everything
    that happened up to as_of; prices, trades and books are noisy functions of it. On a finite
    sample a model may come within a few percent of its Brier score, or even under it by luck,
    but a model that reads the future (a label or a later candle in its features) lands far
    below it.
    """
    params = load_params(pipeline / "params.yaml")
    predictions = pd.read_parquet(pipeline / paths.PREDICTIONS)
    labelled = predictions[predictions["label"].notna()]
    y = labelled["label"].to_numpy()
    oracle = posterior_at(simulate(params.data), labelled["ticker"], labelled["as_of"])
    oracle_brier = float(np.mean((oracle - y) ** 2))
    model_brier = float(np.mean((labelled["prob"].to_numpy() - y) ** 2))
    assert model_brier > 0.9 * oracle_brier, (model_brier, oracle_brier)


def summary_in(workdir: Path) -> subprocess.CompletedProcess:
    """``kalshi-lab summary`` run in ``workdir``."""
    return python_m("kalshi_lab.cli", ["summary"], workdir)


def test_summary_reports_model_baselines_periods_and_backtest_from_the_reports(pipeline):
    proc = summary_in(pipeline)
    assert proc.returncode == 0, proc.stderr
    text = (pipeline / paths.SUMMARY).read_text()
    evaluation = json.loads((pipeline / paths.EVALUATION).read_text())
    detail = json.loads((pipeline / paths.BACKTEST_DETAIL).read_text())
    validation, test = text.split("## Held-out test period")
    for period, block in ((validation, evaluation["validation"]), (test, evaluation["test"])):
        recal = block["bootstrap"]["model_minus_recal"]["brier_diff"]
        assert f"| model | {block['scores']['model']['brier']:.4f} |" in period
        assert f"| recalibrated market | {block['scores']['recal']['brier']:.4f} |" in period
        assert f"[{recal['lower']:+.4f}, {recal['upper']:+.4f}]" in period
        assert f"**{100 * block['brier_skill']['vs_best']:+.1f} % against the best baseline**" in (
            period
        )
    assert f"Return {100 * detail['validation']['total_return']:+.1f} %" in validation
    assert f"Return {100 * detail['test']['total_return']:+.1f} %" in test
    assert "| fold 1 |" in validation and "| pooled |" in validation
    bracket = evaluation["validation"]["by_structure"]["bracket"]
    assert f"| bracket | {bracket['n_rows']:,} | {bracket['n_events']:,} |" in validation
    traded = detail["validation"]["by_structure"]
    name, part = next(iter(traded.items()))
    assert f"| {name} | {part['n_events']} | {part['n_positions']} |" in validation
    assert "12h: " in validation and "(figures/equity.png)" in text
    assert "## What changed" not in text  # no --ref: nothing to diff against
    # one screen: the headline of each period and backtest above the collapsed detail
    top = text[: text.index("<details>")]
    assert len(top.splitlines()) <= 25
    for name in ("validation", "test"):
        skill = evaluation[name]["brier_skill"]["vs_best"]
        assert f"skill {100 * skill:+.1f} % against the best baseline" in top
        assert f"return {100 * detail[name]['total_return']:+.1f} %" in top
    assert text.rstrip().endswith("</details>")


def test_summary_against_a_ref_that_is_not_there_is_one_error_line(pipeline):
    (pipeline / paths.SUMMARY).unlink(missing_ok=True)
    proc = python_m("kalshi_lab.cli", ["summary", "--ref", "no-such-branch"], pipeline)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: summary: --ref 'no-such-branch' is not a git commit, branch or tag of this "
        "repository"
    )
    assert not (pipeline / paths.SUMMARY).exists()  # no file with an error pasted in


def test_summary_without_reports_is_one_error_line(tmp_path):
    proc = summary_in(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: summary: reports/evaluation.json does not exist: run `dvc repro` first"
    )


def _dvc_copy_of(pipeline: Path, copy: Path) -> None:
    """The project in a git repository of its own with ``pipeline``'s params and outputs as
    its workspace, less the fetched books (as a fetch of closed history has none), committed
    to dvc.lock by ``dvc commit`` (what `dvc repro` would have recorded, without running
    every stage again) and to git: a clone after its `dvc repro`, recordings directory empty."""
    from dvc_copy import dvc, git, project_files

    for rel in project_files():
        if not rel.startswith(("reports/", "dvc.lock", "data/", "models/")):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    for rel in ("data", "models", "reports"):
        shutil.copytree(pipeline / rel, copy / rel, dirs_exist_ok=True)
    for rel in project_files():  # the tracked files under data/, e.g. data/recorded/README.md
        if rel.startswith("data/"):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    shutil.copy2(pipeline / paths.PARAMS, copy / paths.PARAMS)
    for raw in raw_partitions(copy / paths.RAW_DIR):
        (raw / "orderbooks.jsonl.gz").write_bytes(gzip.compress(b"", mtime=0))
        manifest = json.loads((raw / "manifest.json").read_text())
        manifest["records"]["orderbooks"] = 0
        manifest["may_be_empty"] = ["orderbooks"]
        (raw / "manifest.json").write_text(json.dumps(manifest))
    (copy / paths.SUMMARY).unlink(missing_ok=True)
    git(copy, "init", "-q", "-b", "main")
    dvc(copy, "commit", "-f", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "pipeline reproduced")


class _Recorder:
    """``kalshi-lab record`` of the series' open markets from a server's stream, run in
    ``copy`` with its default output (data/recorded), its output (stdout and stderr) in a log
    file kept for the failure message."""

    def __init__(self, copy: Path, server, series: list[str], log: Path) -> None:
        from dvc_copy import env_for

        cmd = [sys.executable, "-m", "kalshi_lab.cli", "record", "--series", *series]
        cmd += ["--base-url", server.base_url, "--ws-url", server.ws_url]
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=copy, env=env_for(copy), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while "recording " not in log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.05)

    def output(self) -> str:
        return f"--- {self.log.name} (exit {self.proc.poll()}):\n{self.log.read_text()}"


def _caught_up(directory: Path, segment: str, since: pd.Timestamp) -> bool:
    """Whether a recorder has flushed (what a SIGKILL leaves of ``segment``) every delta the
    server sent since ``since``: the client asks for one market's snapshot after a second
    without messages (kalshi_lab.client.ws), so a snapshot answer (it has the request's
    ``id``) received after ``since`` with no delta after it means the stream had fallen quiet
    with everything on disk."""
    from kalshi_lab.data.stream_store import _complete_lines

    path = directory / segment
    if not path.exists():
        return False
    records = [json.loads(line) for line in _complete_lines(path).splitlines()]
    kinds = [r["response"]["type"] for r in records]
    last_delta = max((i for i, k in enumerate(kinds) if k == "orderbook_delta"), default=-1)
    return any(
        kinds[i] == "orderbook_snapshot"
        and "id" in records[i]["response"]
        and pd.Timestamp(records[i]["received_at"]) > since
        for i in range(last_delta + 1, len(records))
    )


def _advance(server, until: pd.Timestamp, directory: Path, segment: str, recorder) -> None:
    """Move the server's clock to ``until`` a day at a time, the stream carrying each day's
    four snapshots as deltas at their times; then wait until the recorder has flushed them all
    (a kill then loses nothing: what it tests is the restart, not the last second's loss)."""
    while server.now < until.timestamp():
        server.advance(min(24 * 3600, int(until.timestamp()) - server.now))
        time.sleep(0.05)
    advanced = pd.Timestamp.now(tz="UTC")
    deadline = time.monotonic() + 60
    while not _caught_up(directory, segment, advanced):
        assert recorder.proc.poll() is None and time.monotonic() < deadline, (
            f"{segment}: not quiet with the deltas up to {server.now} s flushed\n"
            + recorder.output()
        )
        time.sleep(0.2)


def test_a_recording_of_the_server_s_stream_killed_and_restarted_gives_dvc_repro_books(
    pipeline, tmp_path
):
    """Issue 17's end to end, as a user runs it: in a clone whose pipeline was reproduced and
    whose fetch has no books (as closed history has none), `kalshi-lab record` (to its default
    output, data/recorded) of some series on the local server's WebSocket stream while the
    clock crosses the validation period, SIGKILLed half-way and restarted; then `dvc status`
    and `dvc repro` re-run the parquet stage on (not the fetch), every rebuilt book is the
    server's book at that hour, and the backtest quotes the recorded markets from their books
    and the others from candles; nothing recorded shows in `git status`."""
    from dvc_copy import dvc, git
    from kalshi_lab.data.stream_store import read_segments, stream_dir
    from kalshi_lab.server import LocalKalshiServer, ServerConfig

    copy = tmp_path / "repo"
    _dvc_copy_of(pipeline, copy)
    recordings = stream_dir(copy / paths.RECORDED_DIR)
    logs: list[str] = []  # what a failure shows

    def shown() -> str:
        return "\n".join(logs)

    predictions = pd.read_parquet(pipeline / paths.PREDICTIONS)
    validation = predictions.loc[predictions["period"] == "validation", "as_of"]
    start = (validation.min() - pd.Timedelta(hours=1)).floor("D")
    end = (validation.max() + pd.Timedelta(days=1)).ceil("D")
    series = sorted(set(predictions["series_ticker"]))[::2]  # the others quote from candles
    markets = read_table("markets", pipeline / paths.PARQUET_DIR)
    of_series = set(markets.loc[markets["series_ticker"].isin(series), "ticker"])
    config = ServerConfig(rate_limit=False, now=start.to_pydatetime())
    recorders: list[_Recorder] = []
    try:
        with LocalKalshiServer(pipeline / paths.RAW_DIR, config) as server:
            recorders.append(first := _Recorder(copy, server, series, tmp_path / "record1.log"))
            middle = (start + (end - start) / 2).floor("D")
            _advance(server, middle, recordings, "segment-000001.jsonl.gz", first)
            first.proc.kill()
            first.proc.wait(timeout=30)
            # the restart closes the killed segment and starts another
            recorders.append(second := _Recorder(copy, server, series, tmp_path / "record2.log"))
            _advance(server, end, recordings, "segment-000002.jsonl.gz", second)
            second.proc.send_signal(signal.SIGTERM)
            second.proc.wait(timeout=60)
            assert second.proc.returncode == 0, second.output()
    finally:  # a failure above must not leave a recorder running (it retries a gone server)
        for recorder in recorders:
            if recorder.proc.poll() is None:
                recorder.proc.kill()
                recorder.proc.wait(timeout=30)
            logs.append(recorder.output())
    segments = read_segments(recordings)
    assert len(segments) == 2 and all(count > 0 for count in segments.values()), shown()
    status = dvc(copy, "status").stdout
    logs.append(f"--- dvc status:\n{status}")
    assert "parquet:" in status and "modified:           data/recorded" in status, shown()
    assert "fetch:" not in status and "validate:" not in status, shown()
    repro = dvc(copy, "repro")
    output = f"{repro.stdout}\n{repro.stderr}"  # the stages' logs among DVC's lines
    logs.append(f"--- dvc repro:\n{output}")
    ran = re.findall(r"Running stage '(\w+)'", output)
    assert ran[0] == "parquet" and "fetch" not in ran and "backtest" in ran, shown()
    rebuilt = read_table("orderbook", copy / paths.PARQUET_DIR)
    recorded = set(rebuilt["ticker"])
    assert set(rebuilt["source"]) == {"recorded"} and recorded <= of_series, shown()
    assert (rebuilt["snapshot_ts"].dt.minute == 0).all()  # data.book_interval: 60 minutes
    assert f"order-book rows of {len(recorded)} markets rebuilt every 60 minutes" in output
    # each rebuilt book is the served book of its time: the latest snapshot at or before it
    served = read_table("orderbook", pipeline / paths.PARQUET_DIR)
    columns = ["ticker", "snapshot_ts", "side", "price", "count"]
    times = served[["ticker", "snapshot_ts"]].drop_duplicates()
    times = times.rename(columns={"snapshot_ts": "served_ts"}).sort_values("served_ts")
    sampled = rebuilt[["ticker", "snapshot_ts"]].drop_duplicates().sort_values("snapshot_ts")
    asof = pd.merge_asof(sampled, times, left_on="snapshot_ts", right_on="served_ts", by="ticker")
    truth = served.rename(columns={"snapshot_ts": "served_ts"})
    want = asof.merge(truth, on=["ticker", "served_ts"])[columns]
    both = rebuilt[columns].merge(want, on=columns, how="outer", indicator=True)
    # all but a few: a snapshot the client asks for after a second of quiet (under load)
    # between a clock step and the server sending its deltas shows the market's book at the
    # step's end, dated at the step's first change. Timed by receipt instead of the exchange's
    # clock, none would match; streamed market by market instead of in time order, 13 % did
    differ = both[both["_merge"] != "both"]
    assert (both["_merge"] == "both").mean() >= 0.98, f"{differ}\n{shown()}"
    report = json.loads((copy / paths.BACKTEST_DETAIL).read_text())["validation"]
    assert report["n_fills_book"] > 0 and report["n_fills_candle"] > 0, shown()
    assert report["n_fills_recorded_book"] == report["n_fills_book"], shown()
    fills = pd.read_parquet(copy / paths.BACKTEST_FILLS)
    assert set(fills.loc[fills["source"] == "book", "ticker"]) <= recorded
    assert f"'n_fills_recorded_book': {report['n_fills_book']}" in output
    # the recordings are no change to commit: git ignores them, DVC hashed them as a dependency
    changed = [line[3:] for line in git(copy, "status", "--porcelain", "-uall").splitlines()]
    assert all(p == "dvc.lock" or p.startswith("reports/") for p in changed), changed
