"""The evaluate stage writes the same bytes whichever way its periods' work runs: in its own
process (``compute.workers`` left open), in two worker processes, and on the workers a stage
process started before its imports (kalshi_lab.stages.workers); so does the train stage,
whether it fits the live model itself or on such a worker, which reads the table alone, and
the backtest stage, whether it runs its delayed runs itself or on such a worker."""

from __future__ import annotations

import json

import pytest

from evaluate_inputs import evaluate_inputs, evaluated, inside
from kalshi_lab import compute, paths
from kalshi_lab.params import ComputeParams
from kalshi_lab.stages import backtest, evaluate, train, workers
from kalshi_lab.stages.runner import run_stage

#: what the train stage writes
MODELS = [paths.MODEL, paths.MODELS_WALK_FORWARD, paths.MODEL_LIVE, paths.MODEL_META]
#: what the backtest stage writes (its figures apart: matplotlib's PNGs are not the data)
BACKTEST = [
    paths.BACKTEST_REPORT,
    paths.BACKTEST_DETAIL,
    paths.EQUITY,
    paths.PNL_BY_EVENT,
    paths.PNL_BY_PRICE,
    paths.BACKTEST_FILLS,
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return evaluate_inputs(tmp_path_factory.mktemp("evaluate_compute"))


def test_two_worker_processes_write_what_the_stage_writes_alone(inputs, monkeypatch):
    handed: list[tuple[ComputeParams, list[str]]] = []

    def spy(fn, tasks, engine):
        handed.append((engine, [task.key for task in tasks]))
        return compute.map_partitions(fn, tasks, engine)

    monkeypatch.setattr(evaluate, "map_partitions", spy)
    alone = evaluated(inputs, ["compute.workers=null"])
    two = evaluated(inputs, ["compute.workers=2"])
    monkeypatch.setattr(workers, "_started", True)
    started = evaluated(inputs, ["compute.workers=null"])
    # the workers left open: everything in the stage's process; then two worker processes
    # for the three scored periods, validation's first; then as many as there are cores,
    # which the stage process started
    assert handed == [
        (ComputeParams(workers=1), ["fold_3", "fold_2", "test"]),
        (ComputeParams(workers=2), ["fold_3", "fold_2", "test"]),
        (ComputeParams(workers=None), ["fold_3", "fold_2", "test"]),
    ]
    report = json.loads(alone[str(paths.EVALUATION)])
    assert report["walk_forward"]["fold_1"]["skipped"]  # a skipped fold is reported too
    assert report["walk_forward"]["pooled"]["folds"] == ["fold_2", "fold_3"]
    assert report["test"]["n_rows"] > 100 and report["validation"]["n_rows"] > 100
    assert two == alone
    assert started == alone


def _with_workers_started(inputs, monkeypatch, stage, outputs) -> tuple[list[str], dict]:
    """``stage`` run as in a stage process that started its workers: the work it handed
    :func:`kalshi_lab.compute.aside`, by name, and the bytes of its ``outputs``."""
    aside: list[str] = []

    def spy(fn, task):
        aside.append(fn.__name__)
        return compute.aside(fn, task)

    monkeypatch.setattr(stage, "aside", spy)
    monkeypatch.setattr(workers, "_started", True)
    with inside(inputs):
        run_stage(stage.__name__.rpartition(".")[2], stage.main, [])
    return aside, {path: (inputs / path).read_bytes() for path in outputs}


def test_the_live_model_fit_on_a_worker_is_the_one_fit_here(inputs, monkeypatch):
    here = {path: (inputs / path).read_bytes() for path in MODELS}
    for path in MODELS:
        (inputs / path).unlink()
    assert _with_workers_started(inputs, monkeypatch, train, MODELS) == (["fit_live"], here)


def test_the_delayed_runs_on_a_worker_are_the_ones_run_here(inputs, monkeypatch):
    evaluated(inputs, ["compute.workers=null"])
    with inside(inputs):
        run_stage("backtest", backtest.main, [])
    here = {path: (inputs / path).read_bytes() for path in BACKTEST}
    aside = ["delayed_rows_of_stage_inputs"]
    assert _with_workers_started(inputs, monkeypatch, backtest, BACKTEST) == (aside, here)
    detail = json.loads(here[paths.BACKTEST_DETAIL])
    assert list(detail["latency_total_return"]) == ["0h", "6h", "12h"]
