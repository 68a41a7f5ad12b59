"""evaluate: the model beside its baselines on validation, the test period and walk-forward folds.

Writes the headline validation metrics (``reports/metrics.json``, what ``dvc exp show`` lists),
the detail (``reports/evaluation.json``: every period's scores, skill and event-bootstrap
intervals; each walk-forward fold and the folds pooled; the user features and their look-ahead
check, from the features stage), ROC, reliability and importance plots
of the validation period, and the predictions: validation for the backtest, test apart.
"""

import joblib
import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.baselines import REFERENCES
from kalshi_lab.evaluation.blocks import PREDICTION_CONTEXT, score_split
from kalshi_lab.evaluation.importance import feature_importance
from kalshi_lab.evaluation.metrics import reliability, roc_points
from kalshi_lab.evaluation.report import Scored, headline, period_report, scores
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.features.record import read_user_features_record
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import Params, load_params
from kalshi_lab.split import periods
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.train import read_features

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
    ``table``), as CSV for ``dvc plots`` and as PNG; ``kind`` says what the importance is."""
    target = params.model.target
    shown = {"model": block.prob, **{n: block.baselines[n][0] for n in REFERENCES[target]}}
    bar = REFERENCES[target][-1]  # the strongest reference: the CSV plot's baseline
    roc = {LABELS[n]: roc_points(block.y, p) for n, p in shown.items()}
    aucs = {LABELS[n]: table[n]["roc_auc"] for n in shown}
    calibration = {
        LABELS[n]: reliability(block.y, p, params.evaluation.reliability_bins)
        for n, p in shown.items()
    }
    out.write_csv(paths.ROC_MODEL, roc["model"])
    out.write_csv(paths.ROC_BASELINE, roc[LABELS[bar]])
    out.write_csv(paths.CALIBRATION_MODEL, calibration["model"])
    out.write_csv(paths.CALIBRATION_BASELINE, calibration[LABELS[bar]])
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


def main() -> None:
    params = load_params()
    features = read_features()
    model = _load(paths.MODEL)
    others = _load(paths.MODELS_WALK_FORWARD)
    target = params.model.target
    columns = feature_columns(params.features)
    found = periods(features, params.split, target)
    fold_models = [*others["folds"], model]
    if len(fold_models) != len(found.folds):
        raise DataError(
            f"{paths.MODELS_WALK_FORWARD} holds {len(fold_models)} folds, the split has "
            f"{len(found.folds)}: run the train stage again"
        )
    n = params.split.n_folds
    names = [f"walk-forward fold {k} of {n}" for k in found.numbers[:-1]] + ["validation"]
    folds = [
        score_split(features, split, m, target, columns, what)
        for split, m, what in zip(found.folds, fold_models, names, strict=True)
    ]
    valid, predictions = folds[-1]
    if len(valid.y) == 0:
        raise DataError(f"no scorable validation rows for target {target}")
    ev = params.evaluation
    report = {
        "validation": period_report(valid, target, ev),
        "test": None,
        "walk_forward": {
            **{
                f"fold_{k}": scores(block, target)
                for k, (block, _) in zip(found.numbers, folds, strict=True)
            },
            "pooled": period_report(Scored.pooled([block for block, _ in folds]), target, ev),
        },
        # the user features and their look-ahead check (or that it was turned off)
        "features": read_user_features_record(),
    }
    test_predictions = predictions.iloc[:0]
    if found.test is not None:
        test, test_predictions = score_split(
            features, found.test, others["test"], target, columns, "test"
        )
        report["test"] = period_report(test, target, ev) if len(test.y) else None
    target_column = TARGET_COLUMNS[target]
    labelled = features[found.validation.valid & features[target_column].notna().to_numpy()]
    importance, kind = feature_importance(
        model, labelled, labelled[target_column].to_numpy(dtype=int), columns, params.model.seed
    )
    metrics = headline(report["validation"], target)
    with StagedOutputs() as out:
        out.write_parquet(paths.PREDICTIONS, predictions.assign(period="validation"))
        out.write_parquet(paths.PREDICTIONS_TEST, test_predictions.assign(period="test"))
        out.write_json(paths.METRICS, metrics)
        out.write_json(paths.EVALUATION, report)
        _plots(params, valid, report["validation"]["scores"], importance, kind, out)
    logger.info("validation: %s", metrics)
    if report["test"] is not None:
        logger.info("test: %s", headline(report["test"], target))


if __name__ == "__main__":
    run_stage("evaluate", main)
