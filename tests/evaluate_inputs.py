"""What the evaluate stage reads, built small and in this process: a params.yaml, the features
table of a small simulation and the train stage's models, in a working directory of its own.
For the tests that run evaluate on each ``compute`` engine and compare what it writes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import yaml

from kalshi_lab import paths
from kalshi_lab.compose_params import compose
from kalshi_lab.stages import evaluate, features, train
from kalshi_lab.stages.runner import run_stage
from table_files import simulated_tables

ROOT = Path(__file__).resolve().parents[1]
#: the simulation of table_files.simulated_tables (60 markets over 2025-Q1, about 25 events),
#: with guards low enough that every period is scored: two earlier folds, validation and test
#: (the pooled folds, the importance and both prediction files included)
OVERRIDES = [
    "data.synthetic.n_markets=60",
    "data.start=2025-01-01",
    "data.end=2025-03-31",
    "split.min_train_events=2",
    "split.min_scored_events=2",
    "evaluation.bootstrap_samples=200",
]
#: everything the evaluate stage writes
OUTPUTS = [
    paths.PREDICTIONS,
    paths.PREDICTIONS_TEST,
    paths.METRICS,
    paths.EVALUATION,
    paths.ROC_MODEL,
    paths.ROC_BASELINE,
    paths.CALIBRATION_MODEL,
    paths.CALIBRATION_BASELINE,
    paths.IMPORTANCE,
]


@contextlib.contextmanager
def inside(workdir: Path):
    """Run in ``workdir`` (the stages' paths are relative to it), then back."""
    before = Path.cwd()
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(before)


def write_params(workdir: Path, overrides: list[str]) -> None:
    """``workdir/params.yaml``: conf/ composed with OVERRIDES and ``overrides``."""
    params = compose([*OVERRIDES, *overrides], ROOT / "conf")
    (workdir / paths.PARAMS).write_text(yaml.safe_dump(params, sort_keys=False))


def evaluate_inputs(workdir: Path) -> Path:
    """``workdir`` with the small simulation's tables, features and models."""
    simulated_tables(workdir / "data")
    write_params(workdir, [])
    with inside(workdir):
        run_stage("features", features.main, [])
        run_stage("train", train.main, [])
    return workdir


def evaluated(workdir: Path, compute: list[str]) -> dict[str, bytes]:
    """Evaluate in ``workdir`` under the ``compute`` overrides: every output file's bytes (the
    figures apart: matplotlib's PNGs are not the data)."""
    write_params(workdir, compute)
    with inside(workdir):
        run_stage("evaluate", evaluate.main, [])
    return {str(path): (workdir / path).read_bytes() for path in OUTPUTS}
