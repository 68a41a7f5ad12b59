"""evaluate: the model and its baselines on the validation rows; predictions for the backtest."""

import joblib
import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.baselines import baselines
from kalshi_lab.evaluation.metrics import reliability, roc_points, score
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.split import chronological_split
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.train import log_unlabelled, read_features

PREDICTION_CONTEXT = [
    "ticker",
    "event_ticker",
    "series_ticker",
    "as_of",
    "mid",
    "market_prob",
]


def main() -> None:
    params = load_params()
    features = read_features()
    if not paths.MODEL.exists():
        raise DataError(f"{paths.MODEL} does not exist: run the train stage first")
    model = joblib.load(paths.MODEL)
    target_name = params.model.target
    target = TARGET_COLUMNS[target_name]
    split = chronological_split(features, params.split, target_name)
    labelled = features[target].notna().to_numpy()
    train = features[split.train & labelled]
    valid_all = features[split.valid]
    log_unlabelled(valid_all, target_name, "evaluate", "predicted for the backtest, not scored")
    valid = features[split.valid & labelled]
    if valid.empty:
        raise DataError(
            f"no labelled validation rows for target {target_name} from {split.valid_start:%Y-%m-%d}"
        )
    columns = feature_columns(params.features)
    y_train = train[target].to_numpy(dtype=int)
    y = valid[target].to_numpy(dtype=int)

    prob_all = model.predict_proba(valid_all[columns])[:, 1]
    predictions = valid_all[PREDICTION_CONTEXT].assign(
        prob=prob_all,
        label=valid_all[target].to_numpy(),
        # the close known at as_of (DAYS_TO_CLOSE is measured to it), for exits before the close
        known_close=valid_all["as_of"] + pd.to_timedelta(valid_all["DAYS_TO_CLOSE"], unit="D"),
    )
    prob = predictions["prob"].to_numpy()[labelled[split.valid]]

    references = baselines(target_name, train, y_train, valid)
    metrics = {
        "n_valid": int(len(valid)),
        "n_valid_markets": int(valid["ticker"].nunique()),
        "positive_rate": float(y.mean()),
        "model": score(y, prob),
        **{f"baseline_{name}": score(y, p, hard) for name, (p, hard) in references.items()},
    }
    reference_name, (reference_prob, _) = next(iter(references.items()))
    metrics["brier_skill_vs_" + reference_name] = (
        1.0 - metrics["model"]["brier"] / metrics[f"baseline_{reference_name}"]["brier"]
    )

    roc = {"model": roc_points(y, prob), reference_name: roc_points(y, reference_prob)}
    calibration = {"model": reliability(y, prob), reference_name: reliability(y, reference_prob)}
    with StagedOutputs() as out:
        out.write_parquet(paths.PREDICTIONS, predictions)
        out.write_json(paths.METRICS, metrics)
        out.write_csv(paths.ROC_MODEL, roc["model"])
        out.write_csv(paths.ROC_BASELINE, roc[reference_name])
        out.write_csv(paths.CALIBRATION_MODEL, calibration["model"])
        out.write_csv(paths.CALIBRATION_BASELINE, calibration[reference_name])
        out.write_with(
            paths.ROC_FIGURE,
            lambda p: figures.curves(
                p,
                roc,
                "fpr",
                "tpr",
                title=f"ROC, target {target_name}",
                xlabel="false positive rate",
                ylabel="true positive rate",
            ),
        )
        out.write_with(
            paths.CALIBRATION_FIGURE,
            lambda p: figures.curves(
                p,
                calibration,
                "mean_predicted",
                "fraction_positive",
                title=f"Reliability, target {target_name}",
                xlabel="mean predicted probability",
                ylabel="observed frequency",
            ),
        )
    logger.info(
        "model %s vs %s %s on %d rows",
        metrics["model"],
        reference_name,
        metrics[f"baseline_{reference_name}"],
        len(valid),
    )


if __name__ == "__main__":
    run_stage("evaluate", main)
