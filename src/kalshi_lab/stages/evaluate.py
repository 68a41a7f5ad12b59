"""evaluate: the model beside its baselines on validation, the test period and walk-forward folds.

Writes the headline validation metrics (``reports/metrics.json``, what ``dvc exp show`` lists:
the skill against the period's best baseline), the detail (``reports/evaluation.json``: every
period's coverage (rows in its window, share scored, why the rest is not), scores, skill and
release-bootstrap intervals; each walk-forward fold and the scored folds pooled; the user
features and their look-ahead check, from the features stage), ROC, reliability and importance
plots of the validation period, and the predictions: validation for the backtest, test apart. A period train skipped (kalshi_lab.guards) is reported with its
reason and no scores, left out of the pooled figures, and predicts nothing.
"""

import joblib
import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.baselines import BASELINE_COLUMNS, REFERENCES
from kalshi_lab.evaluation.blocks import (
    PREDICTION_CONTEXT,
    coverage,
    no_predictions,
    score_split,
)
from kalshi_lab.evaluation.importance import feature_importance
from kalshi_lab.evaluation.metrics import reliability, roc_points
from kalshi_lab.evaluation.report import Scored, headline, period_report, scores
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.features.record import read_user_features_record
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import Params, load_params
from kalshi_lab.resolution import RELEASE_COLUMNS, release_clusters
from kalshi_lab.split import periods
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.train import read_features, train_columns

#: re-exported: the bot's predictions carry the same columns (tests/test_bot_session.py)
__all__ = ["PREDICTION_CONTEXT", "main"]

LABELS = {
    "model": "model",
    "market": "market price",
    "recal": "recalibrated market",
    "persistence": "persistence",
}


def _load(path) -> object:
    if not path.exists():
        raise DataError(f"{path} does not exist: run the train stage first")
    return joblib.load(path)


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


def _models() -> tuple[dict[str, object], dict[str, str | None]]:
    """Each period's model (None when skipped) by its key, and each one's reason to skip."""
    others = _load(paths.MODELS_WALK_FORWARD)
    folds = [*others["folds"], _load(paths.MODEL)]
    models = {f"fold_{k}": m for k, m in enumerate(folds, start=1)}
    if "test" in others["skipped"]:
        models["test"] = others["test"]
    return models, others["skipped"]


def main() -> None:
    params = load_params()
    # what train read (the same split and guards), the predictions' context, the releases
    # and the baselines' inputs
    features = read_features(
        [*train_columns(params), *PREDICTION_CONTEXT, *RELEASE_COLUMNS, *BASELINE_COLUMNS]
    )
    target = params.model.target
    columns = feature_columns(params.features)
    found = periods(features, params.split, target)
    models, skipped = _models()
    named = found.named()
    if sorted(models) != sorted(key for key, _, _ in named):
        raise DataError(
            f"{paths.MODELS_WALK_FORWARD} holds periods {sorted(models)}, the split has "
            f"{sorted(key for key, _, _ in named)}: run the train stage again"
        )
    ev = params.evaluation
    reports: dict[str, dict] = {}
    blocks: dict[str, Scored] = {}
    predictions: dict[str, pd.DataFrame] = {}
    clusters = release_clusters(features)
    for key, what, split in named:
        reports[key] = coverage(features, split, target, skipped[key])
        if skipped[key]:
            predictions[key] = no_predictions(features, target)
            continue
        blocks[key], predictions[key] = score_split(
            features, split, models[key], target, columns, what, clusters
        )
    validation_key = f"fold_{len(found.folds)}"
    folds = [key for key, _, _ in named if key != "test"]

    def full(key: str) -> dict:
        return reports[key] | (period_report(blocks[key], target, ev) if key in blocks else {})

    pooled = [blocks[key] for key in folds if key in blocks]
    report = {
        "validation": full(validation_key),
        "test": full("test") if "test" in reports else None,
        "walk_forward": {
            **{
                key: reports[key] | (scores(blocks[key], target) if key in blocks else {})
                for key in folds
            },
            "pooled": {
                "skipped": None if pooled else "every walk-forward fold was skipped",
                "folds": [key for key in folds if key in blocks],
                **(period_report(Scored.pooled(pooled), target, ev) if pooled else {}),
            },
        },
        # the user features and their look-ahead check (or that it was turned off)
        "features": read_user_features_record(),
    }
    metrics = headline(report["validation"])
    with StagedOutputs() as out:
        out.write_parquet(
            paths.PREDICTIONS, predictions[validation_key].assign(period="validation")
        )
        test_predictions = predictions.get("test", no_predictions(features, target))
        out.write_parquet(paths.PREDICTIONS_TEST, test_predictions.assign(period="test"))
        out.write_json(paths.METRICS, metrics)
        out.write_json(paths.EVALUATION, report)
        if validation_key in blocks:
            target_column = TARGET_COLUMNS[target]
            valid = found.validation.valid & features[target_column].notna().to_numpy()
            labelled = features[valid]
            importance, kind = feature_importance(
                models[validation_key],
                labelled,
                labelled[target_column].to_numpy(dtype=int),
                columns,
                params.model.seed,
            )
            table = report["validation"]["scores"]
            _plots(params, blocks[validation_key], table, importance, kind, out)
        else:
            _no_plots(skipped[validation_key], out)
    logger.info("validation: %s", metrics)
    if report["test"] is not None:
        logger.info("test: %s", headline(report["test"]))


if __name__ == "__main__":
    run_stage("evaluate", main)
