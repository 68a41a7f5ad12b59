"""The evaluate stage writes the same bytes whichever way its periods' work runs: in its own
process (``compute.workers`` left open), in two worker processes, and on the workers a stage
process started before its imports (kalshi_lab.stages.workers)."""

from __future__ import annotations

import json

import pytest

from evaluate_inputs import evaluate_inputs, evaluated
from kalshi_lab import compute, paths
from kalshi_lab.params import ComputeParams
from kalshi_lab.stages import evaluate, workers


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
