"""The train stage writes the same bytes whether it fits the live model itself or on the
worker a stage process started (kalshi_lab.stages.workers), which reads the table alone."""

from __future__ import annotations

import pytest

from evaluate_inputs import evaluate_inputs, inside
from kalshi_lab import compute, paths
from kalshi_lab.stages import train, workers
from kalshi_lab.stages.runner import run_stage

MODELS = [paths.MODEL, paths.MODELS_WALK_FORWARD, paths.MODEL_LIVE, paths.MODEL_META]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return evaluate_inputs(tmp_path_factory.mktemp("train_compute"))


def test_the_live_model_fit_on_a_worker_is_the_one_fit_here(inputs, monkeypatch):
    here = {path: (inputs / path).read_bytes() for path in MODELS}
    for path in MODELS:
        (inputs / path).unlink()
    aside: list[str] = []

    def spy(fn, task):
        aside.append(fn.__name__)
        return compute.aside(fn, task)

    monkeypatch.setattr(train, "aside", spy)
    monkeypatch.setattr(workers, "_started", True)
    with inside(inputs):
        run_stage("train", train.main, [])
    assert aside == ["fit_live"]
    assert {path: (inputs / path).read_bytes() for path in MODELS} == here
