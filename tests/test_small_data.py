"""The pipeline on few events, as on real recorded Kalshi data of a few series: thin periods are
skipped with their reason, never scored as skill, never a crash; nothing scorable is one error.

One simulated dataset of a few dozen events over 18 months is built once (validate to
features); train, evaluate and backtest then run in copies of it under other guards.
"""

import itertools
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kalshi_lab import paths
from kalshi_lab.params import load_params
from kalshi_lab.split import periods
from stage_support import STAGES, python_m, run_stage, write_composed_params

#: about 40 events over 18 months: the earlier folds train on a handful of them
FEW_EVENTS = [
    "data.start=2024-01-01",
    "data.end=2025-06-30",
    "data.synthetic.n_markets=90",
    "data.synthetic.event_shares.ladder=0.4",
    "data.synthetic.event_shares.bracket=0.1",
    "data.synthetic.event_shares.binary=0.5",
]
MODELLED = ["train", "evaluate", "backtest"]

pytestmark = pytest.mark.slow


def read(workdir: Path, path: Path) -> dict:
    return json.loads((workdir / path).read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The few events' features, and their parquet tables for the backtest."""
    workdir = tmp_path_factory.mktemp("few_events")
    write_composed_params(workdir, FEW_EVENTS)
    for name in STAGES[: STAGES.index("train")]:
        proc = run_stage(workdir, name)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr}"
    return workdir


def modelled(data: Path, workdir: Path, overrides: list[str]) -> dict[str, str]:
    """Train, evaluate and backtest on ``data`` in ``workdir`` under ``overrides``, until one
    fails; each stage's stderr by name."""
    for path in (paths.PARQUET_DIR, paths.FEATURES.parent):
        shutil.copytree(data / path, workdir / path)
    write_composed_params(workdir, FEW_EVENTS + overrides)
    logs = {}
    for name in MODELLED:
        proc = run_stage(workdir, name)
        logs[name] = proc.stderr
        if proc.returncode != 0:
            logs["returncode"] = str(proc.returncode)
            break
    return logs


@pytest.fixture(scope="module")
def defaults(data, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("defaults")
    logs = modelled(data, workdir, [])
    assert "returncode" not in logs, logs
    (workdir / "train.log").write_text(logs["train"])
    return workdir


def run_summary(workdir: Path) -> str:
    """``kalshi-lab summary`` in ``workdir``: the text of its reports/summary.md."""
    proc = python_m("kalshi_lab.cli", ["summary"], workdir)
    assert proc.returncode == 0, proc.stderr
    return (workdir / paths.SUMMARY).read_text()


def test_thin_folds_are_skipped_with_their_reason_and_the_run_completes(defaults):
    report = read(defaults, paths.EVALUATION)
    folds = report["walk_forward"]
    for key in ("fold_1", "fold_2"):
        fold = folds[key]
        assert fold["skipped"].startswith(f"{fold['n_train_events']} events with a labelled")
        assert fold["skipped"].endswith("fewer than split.min_train_events=20")
        # no score, no skill: only what the window held and why nothing of it was scored
        assert "scores" not in fold and "brier_skill" not in fold
        assert fold["n_rows"] == 0 and fold["share_scored"] == 0.0
        assert fold["not_scored"]["period skipped (see skipped)"] > 0
    assert folds["pooled"]["folds"] == ["fold_3"]  # the skipped folds are not pooled
    assert folds["pooled"]["n_rows"] == folds["fold_3"]["n_rows"]
    for period in ("validation", "test"):
        assert report[period]["skipped"] is None and report[period]["n_events"] >= 10
    metrics = read(defaults, paths.METRICS)
    assert metrics["skill_vs_best"] == report["validation"]["brier_skill"]["vs_best"]
    meta = read(defaults, paths.MODEL_META)
    assert meta["walk_forward"]["fold_1"]["skipped"] == folds["fold_1"]["skipped"]
    train_log = (defaults / "train.log").read_text()
    assert (
        f"WARNING train: walk-forward fold 1 of 3 skipped, not scored: {folds['fold_1']['skipped']}"
        in (train_log)
    )


def test_no_event_is_scored_in_two_periods_on_few_events(defaults):
    features = pd.read_parquet(defaults / paths.FEATURES)
    params = load_params(defaults / "params.yaml")
    found = periods(features, params.split, params.model.target)
    scored = {key: set(features.loc[s.valid, "event_ticker"]) for key, _, s in found.named()}
    for a, b in itertools.combinations(scored, 2):
        assert not scored[a] & scored[b], (a, b)
    validation = pd.read_parquet(defaults / paths.PREDICTIONS)
    test = pd.read_parquet(defaults / paths.PREDICTIONS_TEST)
    assert len(validation) and len(test)
    assert not set(validation["event_ticker"]) & set(test["event_ticker"])


def test_the_summary_prints_no_skill_for_a_skipped_fold(defaults):
    summary = run_summary(defaults)
    fold_1 = next(line for line in summary.splitlines() if line.startswith("| fold 1 |"))
    assert "skipped: " in fold_1 and "%" not in fold_1
    assert "| fold 3 |" in summary and "Each event is scored in one period only" in summary


def test_a_skipped_validation_gives_no_headline_but_the_test_period_still_reports(
    data, defaults, tmp_path
):
    before = read(defaults, paths.EVALUATION)
    needed = before["validation"]["n_train_events"] + 1
    assert before["test"]["n_train_events"] >= needed  # the test period trains on more
    logs = modelled(data, tmp_path, [f"split.min_train_events={needed}"])
    assert "returncode" not in logs, logs
    report = read(tmp_path, paths.EVALUATION)
    assert report["validation"]["skipped"].endswith(f"split.min_train_events={needed}")
    assert report["test"]["skipped"] is None
    assert report["walk_forward"]["pooled"]["skipped"] == "every walk-forward fold was skipped"
    assert read(tmp_path, paths.METRICS) == {"skill_vs_best": None, "p_no_skill": None}
    assert read(tmp_path, paths.BACKTEST_REPORT) == {"return": None, "p_loss": None}
    detail = read(tmp_path, paths.BACKTEST_DETAIL)
    # the test period is still backtested (the default model, the market itself here, may place
    # no order: its report says so, with its numbers)
    assert "skipped" in detail["validation"] and "skipped" not in detail["test"]
    assert {"total_return", "n_orders", "p_loss"} <= set(detail["test"])
    assert "WARNING backtest: the validation period was skipped" in logs["backtest"]
    for figure in (paths.ROC_FIGURE, paths.EQUITY_FIGURE):
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"
    assert "**Skipped, not scored**" in run_summary(tmp_path)


@pytest.mark.parametrize("case", ["too_few_events", "constant_model"])
def test_nothing_scorable_is_one_error_line_with_the_counts(data, defaults, tmp_path, case):
    features = pd.read_parquet(data / paths.FEATURES)
    n_events = features["event_ticker"].nunique()
    if case == "too_few_events":
        needed = read(defaults, paths.EVALUATION)["test"]["n_train_events"] + 1
        overrides, why = [f"split.min_train_events={needed}"], f"split.min_train_events={needed}"
    else:  # leaves of at least 100,000 rows: LightGBM splits nowhere
        overrides = ["model=lightgbm", "model.params.min_child_samples=100000"]
        why = "the fitted model is constant"
    logs = modelled(data, tmp_path, overrides)
    assert logs["returncode"] == "2" and list(logs) == ["train", "returncode"]
    errors = [line for line in logs["train"].splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: train: no period can be scored: the data holds {n_events} events"
    )
    assert why in errors[0] and "fold_1: " in errors[0] and "test: " in errors[0]
    assert not (tmp_path / paths.MODEL).exists()
