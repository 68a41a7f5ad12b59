"""One scored period's evaluation: the unit of the evaluate stage's work on ``compute``.

Which rows a period trains on and scores depends on when each event resolves, which only the
whole table tells (:mod:`kalshi_lab.split`), and a release is labelled once over every row
(:mod:`kalshi_lab.resolution`): the stage does both, reading only the columns they need. A
period's work then needs only its own rows, and reads them itself
(:func:`kalshi_lab.features.read.read_features`: the columns it uses, the rows its split names),
with its model from ``models/``. So a task is small (paths, the period's two row masks packed
eight rows a byte, its scored rows' release ids, params: about 3 MB at 100k markets). What
comes back is the period's report and, for the walk-forward folds, the scored block the pooled
figures and the validation plots need (labels, probabilities, baselines, events, releases and
structures of the scored rows: about 100 bytes a row); the predictions of validation and test
are written by the work itself, to the file the stage staged for them (:mod:`kalshi_lab.io`),
and never travel back.

The work lives here, not in the stage's module, because a worker unpickles it by module name
and the stage runs as ``__main__``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import joblib
import numpy as np
import pandas as pd

# the classes of the models joblib unpickles here, and their predict: a change to them must
# re-run the stage (dvc.yaml lists what the stage imports; tests/test_dvc_yaml.py)
import kalshi_lab.models  # noqa: F401
from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.baselines import BASELINE_COLUMNS
from kalshi_lab.evaluation.blocks import PREDICTION_CONTEXT, score_split
from kalshi_lab.evaluation.importance import feature_importance
from kalshi_lab.evaluation.report import Scored, period_report, period_scores, scores
from kalshi_lab.features import TARGET_COLUMNS
from kalshi_lab.features.read import read_features
from kalshi_lab.guards import GUARD_COLUMNS
from kalshi_lab.io import write_parquet
from kalshi_lab.params import EvaluationParams

#: what a period is to the report: an earlier walk-forward fold (its scores, its block pooled),
#: validation (the last fold: intervals, block pooled and plotted, importance, predictions) or
#: the test period (intervals, predictions)
Role = Literal["fold", "validation", "test"]


@dataclass(frozen=True)
class Rows:
    """Rows of the features table: a boolean mask over it, packed eight rows a byte so that
    a task pickles small (0.34 MB per mask of 2.7 M rows)."""

    bits: np.ndarray
    n: int

    @staticmethod
    def of(mask: np.ndarray) -> Rows:
        return Rows(np.packbits(mask), len(mask))

    def mask(self) -> np.ndarray:
        return np.unpackbits(self.bits, count=self.n).astype(bool)


@dataclass(frozen=True)
class PeriodTask:
    """What one period's work needs: where the table and models are, which of the table's rows
    are its (labelled) training rows and its scored rows, and what to compute."""

    root: Path  # the repository (absolute): the features table and models/ under it
    key: str  # fold_1 .. fold_n, test (kalshi_lab.split.Periods.named)
    what: str  # its name in the logs
    role: Role
    train: Rows  # labelled training rows: what the baselines are fit on
    scored: Rows  # the rows it scores (split.valid)
    clusters: np.ndarray  # the release id of each scored row, one id per release in every period
    target: str
    columns: tuple[str, ...]  # the model's inputs
    evaluation: EvaluationParams
    seed: int  # model.seed: the permutation importance's
    predictions: Path | None  # where its predictions go (validation, test), with column period


@dataclass(frozen=True)
class PeriodResult:
    """One period's share of the report; what the stage has no use for is not sent back."""

    scores: dict[str, object] | None  # a fold's (validation's too): the walk-forward table's
    report: dict[str, object] | None  # validation's and test's: scores with intervals
    block: Scored | None  # a fold's (validation's too): pooled, and validation's plotted
    importance: tuple[pd.DataFrame, str] | None  # validation's, and what it measures


def load_models(root: Path) -> tuple[dict[str, object], dict[str, str | None]]:
    """Each period's model (None when skipped) by its key, and each one's reason to skip."""
    others = _load(root / paths.MODELS_WALK_FORWARD)
    folds = [*others["folds"], _load(root / paths.MODEL)]
    models = {f"fold_{k}": m for k, m in enumerate(folds, start=1)}
    if "test" in others["skipped"]:
        models["test"] = others["test"]
    return models, others["skipped"]


def _load(path: Path) -> object:
    if not path.exists():
        raise DataError(f"{path} does not exist: run the train stage first")
    return joblib.load(path)


def scored_columns(target: str, columns: tuple[str, ...]) -> list[str]:
    """The columns of a period's scored rows: the model's inputs, the predictions' context,
    what decides whether a row is scored, the baselines' inputs and the label."""
    return [
        *columns,
        *PREDICTION_CONTEXT,
        *GUARD_COLUMNS,
        *BASELINE_COLUMNS,
        TARGET_COLUMNS[target],
    ]


def evaluate_period(task: PeriodTask) -> PeriodResult:
    """Score ``task``'s period: its model and baselines on its rows, the report of its role."""
    target = TARGET_COLUMNS[task.target]
    features = task.root / paths.FEATURES
    train = read_features([*BASELINE_COLUMNS, target], task.train.mask(), features)
    rows = read_features(scored_columns(task.target, task.columns), task.scored.mask(), features)
    model = load_models(task.root)[0][task.key]
    columns = list(task.columns)
    block, predictions = score_split(
        train, rows, model, task.target, columns, task.what, task.clusters
    )
    del train
    if task.predictions is not None:
        write_parquet(task.predictions, predictions.assign(period=task.role))
    del predictions
    folded = task.role in ("fold", "validation")
    report = None if task.role == "fold" else period_report(block, task.target, task.evaluation)
    result = PeriodResult(
        scores=(scores(block, task.target) if report is None else period_scores(report))
        if folded
        else None,
        report=report,
        block=block if folded else None,
        importance=None,
    )
    if task.role != "validation":
        return result
    labelled = rows[target].notna().to_numpy()
    y = rows.loc[labelled, target].to_numpy(dtype=int)
    rows = rows.loc[labelled, columns]  # the model's inputs only, the rest of the rows freed
    importance = feature_importance(model, rows, y, columns, task.seed)
    return dataclasses.replace(result, importance=importance)
