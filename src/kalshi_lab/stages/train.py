"""train: fit the configured model on the training side of the chronological split."""

import joblib
import numpy as np
import pandas as pd

from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.features import TARGET_COLUMNS, UNLABELLED_BECAUSE, feature_columns
from kalshi_lab.io import StagedOutputs
from kalshi_lab.models import build_model
from kalshi_lab.params import load_params
from kalshi_lab.split import chronological_split
from kalshi_lab.stages.runner import logger, run_stage


def read_features() -> pd.DataFrame:
    if not paths.FEATURES.exists():
        raise DataError(f"{paths.FEATURES} does not exist: run the features stage first")
    return pd.read_parquet(paths.FEATURES)


def log_unlabelled(rows: pd.DataFrame, target_name: str, side: str, consequence: str) -> None:
    """One INFO line: how many of ``rows`` (one side of the split) have no label, and why."""
    unlabelled = rows[TARGET_COLUMNS[target_name]].isna()
    logger.info(
        "%s: %d of %d rows (%d of %d markets) have no %s label, %s: %s",
        side,
        int(unlabelled.sum()),
        len(rows),
        rows.loc[unlabelled, "ticker"].nunique(),
        rows["ticker"].nunique(),
        target_name,
        consequence,
        UNLABELLED_BECAUSE[target_name],
    )


def main() -> None:
    params = load_params()
    model = build_model(params.model)
    features = read_features()
    target = TARGET_COLUMNS[params.model.target]
    split = chronological_split(features, params.split, params.model.target)
    log_unlabelled(features[split.train], params.model.target, "train", "not trained on")
    rows = features[split.train & features[target].notna().to_numpy()]
    y = rows[target].to_numpy(dtype=int)
    if len(np.unique(y)) < 2:
        raise DataError(
            f"the training rows for target {params.model.target} hold a single class ({len(y)} rows)"
        )
    columns = feature_columns(params.features)
    model.fit(rows[columns], y)
    meta = {
        "model": params.model.name,
        "target": params.model.target,
        "features": columns,
        "n_train": int(len(rows)),
        "train_positive_rate": float(y.mean()),
        "train_labels_before": split.train_end.isoformat(),
        "valid_start": split.valid_start.isoformat(),
    }
    with StagedOutputs() as out:
        out.write_with(paths.MODEL, lambda p: joblib.dump(model, p))
        out.write_json(paths.MODEL_META, meta)
    logger.info(
        "trained %s on %d rows (target %s)", params.model.name, len(rows), params.model.target
    )


if __name__ == "__main__":
    run_stage("train", main)
