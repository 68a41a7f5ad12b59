"""evaluate: the model beside its baselines on validation, the test period and walk-forward folds.

Writes the headline validation metrics (``reports/metrics.json``, what ``dvc exp show`` lists:
the skill against the period's best baseline), the detail (``reports/evaluation.json``: every
period's coverage (rows in its window, share scored, why the rest is not), scores, skill and
release-bootstrap intervals; each walk-forward fold and the scored folds pooled; the user
features and their look-ahead check, from the features stage), ROC, reliability and importance
plots of the validation period, and the predictions: validation for the backtest, test apart. A
period train skipped (kalshi_lab.guards) is reported with its reason and no scores, left out of
the pooled figures, and predicts nothing.

The stage splits the table, counts each period's coverage and labels the releases, reading only
the columns these need; each scored period's work (:mod:`kalshi_lab.evaluation.period`: its
model and baselines on its rows, its scores and intervals) runs on ``compute``: when
``compute.workers`` is left open, on worker processes for a large features table
(:mod:`kalshi_lab.stages.workers` starts them before this module's imports), in this process
otherwise. The outputs are the same bytes wherever it runs.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.compute import in_process_if_small, map_partitions
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.baselines import REFERENCES
from kalshi_lab.evaluation.blocks import PREDICTION_CONTEXT, coverage, no_predictions
from kalshi_lab.evaluation.metrics import reliability, roc_points
from kalshi_lab.evaluation.period import (
    PeriodResult,
    PeriodTask,
    Role,
    Rows,
    evaluate_period,
    load_models,
)
from kalshi_lab.evaluation.report import Scored, headline, period_report
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.features.read import read_features
from kalshi_lab.features.record import read_user_features_record
from kalshi_lab.guards import GUARD_COLUMNS
from kalshi_lab.io import StagedOutputs, write_parquet
from kalshi_lab.params import Params, load_params
from kalshi_lab.resolution import RELEASE_COLUMNS, release_clusters
from kalshi_lab.split import SPLIT_COLUMNS, periods
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.workers import workers_started

#: re-exported: the bot's predictions carry the same columns (tests/test_bot_session.py)
__all__ = ["PREDICTION_CONTEXT", "main"]

LABELS = {
    "model": "model",
    "market": "market price",
    "recal": "recalibrated market",
    "persistence": "persistence",
}


def _plots(
    params: Params,
    block: Scored,
    table: dict[str, dict[str, float]],
    importance: pd.DataFrame,
    kind: str,
    out: StagedOutputs,
) -> None:
    """ROC, reliability and importance of the validation period (``block``, whose scores are
    ``table``), as CSV for ``dvc plots`` (beside the period's best baseline) and as PNG;
    ``kind`` says what the importance is."""
    target = params.model.target
    shown = {"model": block.prob, **{n: block.baselines[n][0] for n in REFERENCES[target]}}
    roc = {LABELS[n]: roc_points(block.y, p) for n, p in shown.items()}
    aucs = {LABELS[n]: table[n]["roc_auc"] for n in shown}
    calibration = {
        LABELS[n]: reliability(block.y, p, params.evaluation.reliability_bins)
        for n, p in shown.items()
    }
    out.write_csv(paths.ROC_MODEL, roc["model"])
    out.write_csv(paths.ROC_BASELINE, roc[LABELS[block.best]])
    out.write_csv(paths.CALIBRATION_MODEL, calibration["model"])
    out.write_csv(paths.CALIBRATION_BASELINE, calibration[LABELS[block.best]])
    out.write_csv(paths.IMPORTANCE, importance)
    name = f"{params.model.name}, target {target}, validation"
    out.write_with(paths.ROC_FIGURE, lambda p: figures.roc(p, roc, aucs, f"ROC: {name}"))
    out.write_with(
        paths.CALIBRATION_FIGURE,
        lambda p: figures.reliability(
            p, calibration, {LABELS[n]: v for n, v in shown.items()}, f"Reliability: {name}"
        ),
    )
    out.write_with(
        paths.IMPORTANCE_FIGURE,
        lambda p: figures.importance(
            p, importance, f"Feature importance: {params.model.name}", kind
        ),
    )


def _no_plots(reason: str, out: StagedOutputs) -> None:
    """The plot files of a skipped validation period: empty data, figures that say why."""
    curves = {
        paths.ROC_MODEL: ["fpr", "tpr"],
        paths.ROC_BASELINE: ["fpr", "tpr"],
        paths.CALIBRATION_MODEL: ["mean_predicted", "fraction_positive", "count"],
        paths.CALIBRATION_BASELINE: ["mean_predicted", "fraction_positive", "count"],
        paths.IMPORTANCE: ["feature", "importance"],
    }
    for path, columns in curves.items():
        out.write_csv(path, pd.DataFrame(columns=columns))
    for path in (paths.ROC_FIGURE, paths.CALIBRATION_FIGURE, paths.IMPORTANCE_FIGURE):
        out.write_with(path, lambda p: figures.notice(p, "validation period skipped", reason))


#: the order the periods' work starts in (:func:`main`)
ORDER: tuple[Role, ...] = ("validation", "fold", "test")


def _role(key: str, validation_key: str) -> Role:
    if key == "test":
        return "test"
    return "validation" if key == validation_key else "fold"


def main() -> None:
    params = load_params()
    target = params.model.target
    target_column = TARGET_COLUMNS[target]
    # what the split, the coverage and the releases read: a period's work reads its own rows
    features = read_features([*SPLIT_COLUMNS, *GUARD_COLUMNS, *RELEASE_COLUMNS, target_column])
    found = periods(features, params.split, target)
    root = Path.cwd().resolve()
    models, skipped = load_models(root)
    named = found.named()
    if sorted(models) != sorted(key for key, _, _ in named):
        raise DataError(
            f"{paths.MODELS_WALK_FORWARD} holds periods {sorted(models)}, the split has "
            f"{sorted(key for key, _, _ in named)}: run the train stage again"
        )
    del models  # each period's work loads its own
    validation_key = f"fold_{len(found.folds)}"
    folds = [key for key, _, _ in named if key != "test"]
    reports = {key: coverage(features, split, target, skipped[key]) for key, _, split in named}
    # one id per release, the same in every period: the pooled folds resample releases across
    # them; ids, not the labels, travel to the workers (the bootstrap needs only which rows
    # share a release)
    releases = pd.factorize(release_clusters(features))[0].astype(np.int32)
    labelled = features[target_column].notna().to_numpy()
    n_rows = len(features)
    del features
    with StagedOutputs() as out:
        staged = {
            "validation": out.path(paths.PREDICTIONS),
            "test": out.path(paths.PREDICTIONS_TEST),
        }
        columns = tuple(feature_columns(params.features))
        tasks = []
        for key, what, split in named:
            if skipped[key]:
                continue
            role = _role(key, validation_key)
            tasks.append(
                PeriodTask(
                    root=root,
                    key=key,
                    what=what,
                    role=role,
                    train=Rows.of(split.train & labelled),
                    scored=Rows.of(split.valid),
                    clusters=releases[split.valid],
                    target=target,
                    columns=columns,
                    evaluation=params.evaluation,
                    seed=params.model.seed,
                    predictions=root / staged[role] if role in staged else None,
                )
            )
        del releases, labelled
        # validation first (its importance makes it the longest), then the other folds, then
        # test: the stage pools the folds while the test period's work may still run
        tasks.sort(key=lambda task: ORDER.index(task.role))
        # on workers when this stage process started them, before its own imports
        # (kalshi_lab.stages.workers: a large input, compute leaving the number open); in
        # this process otherwise. Started at the first period, their imports (seconds of CPU,
        # 0.3 GB) came after the stage's: two workers never finished sooner then (10,000
        # markets: 14.2 s of CPU against 9.1 s; benchmarks/README.md). compute.workers >= 2
        # or compute=dask asks for them.
        compute = in_process_if_small(params.compute, small=not workers_started())
        outcomes = zip(tasks, map_partitions(evaluate_period, tasks, compute), strict=True)
        results: dict[str, PeriodResult] = {}
        scored_folds = [key for key in folds if not skipped[key]]
        for task, result in outcomes:
            results[task.key] = result
            if all(key in results for key in scored_folds):
                break
        pooled = (
            period_report(
                Scored.pooled([results[key].block for key in scored_folds]),
                target,
                params.evaluation,
            )
            if scored_folds
            else {}
        )
        results.update((task.key, result) for task, result in outcomes)
        for role, key in (("validation", validation_key), ("test", "test")):
            if key not in results:  # skipped, or no test period: no rows, the same columns
                write_parquet(staged[role], _no_predictions(target, n_rows).assign(period=role))

        def full(key: str) -> dict:
            return reports[key] | (results[key].report if key in results else {})

        report = {
            "validation": full(validation_key),
            "test": full("test") if "test" in reports else None,
            "walk_forward": {
                **{
                    key: reports[key] | (results[key].scores if key in results else {})
                    for key in folds
                },
                "pooled": {
                    "skipped": None if scored_folds else "every walk-forward fold was skipped",
                    "folds": scored_folds,
                    **pooled,
                },
            },
            # the user features and their look-ahead check (or that it was turned off)
            "features": read_user_features_record(),
        }
        metrics = headline(report["validation"])
        out.write_json(paths.METRICS, metrics)
        out.write_json(paths.EVALUATION, report)
        if validation_key in results:
            validation = results[validation_key]
            table = report["validation"]["scores"]
            _plots(params, validation.block, table, *validation.importance, out)
        else:
            _no_plots(skipped[validation_key], out)
    logger.info("validation: %s", metrics)
    if report["test"] is not None:
        logger.info("test: %s", headline(report["test"]))


def _no_predictions(target: str, n_rows: int) -> pd.DataFrame:
    """The predictions of a skipped period: none, in the columns of a scored one (read from the
    table's schema, as a period's work reads its rows)."""
    rows = read_features(
        [*PREDICTION_CONTEXT, TARGET_COLUMNS[target], "DAYS_TO_CLOSE"], np.zeros(n_rows, bool)
    )
    return no_predictions(rows, target)


if __name__ == "__main__":
    run_stage("evaluate", main)
