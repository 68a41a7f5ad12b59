"""features: typed tables -> one row per market and UTC day, keyed by its as-of time."""

import pandas as pd

from kalshi_lab import paths
from kalshi_lab.data.tables import read_table
from kalshi_lab.errors import DataError
from kalshi_lab.features import build_features
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    params = load_params()
    features = build_features(
        read_table("markets"), read_table("candles"), read_table("trades"), params.features
    )
    if features.empty:
        raise DataError(
            "the features table is empty: no market has a daily candle before its close"
        )
    with StagedOutputs() as out:
        out.write_parquet(paths.FEATURES, features)
    span = pd.to_datetime(features["as_of"])
    logger.info(
        "%d rows, %d markets, as_of %s .. %s",
        len(features),
        features["ticker"].nunique(),
        span.min(),
        span.max(),
    )


if __name__ == "__main__":
    run_stage("features", main)
