"""features: typed tables -> one row per market and UTC day, keyed by its as-of time.

The built-in features, partition by partition of the tables on ``compute``
(:mod:`kalshi_lab.features.partitioned`: an event's markets, candles and trades share one
partition, and nothing a market's features use lies in another); then the user's own
(``features.extra``, on the whole tables: a user's function may look across markets), each
checked for look-ahead on the tables truncated at sampled times (``features.leak_check``);
what was checked, and how, is written beside the feature table for the evaluate stage's report.
"""

import time

import pandas as pd

from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.leak_check import check_user_features, sample_cutoffs
from kalshi_lab.features.partitioned import builtin_features
from kalshi_lab.features.record import user_features_record
from kalshi_lab.features.user import ParquetTables, compute_user_features, user_features
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    params = load_params()
    extra = user_features(params.features)  # a bad entry stops here, before any work
    tables = ParquetTables()
    features = builtin_features(paths.PARQUET_DIR, params.features, params.compute)
    if features.empty:
        raise DataError(
            "the features table is empty: no market has a daily candle before its close"
        )
    rows = features[list(KEY_COLUMNS)]
    values = compute_user_features(extra, tables, rows)
    check = params.features.leak_check
    cutoffs = []
    if extra and check.enabled:
        started = time.perf_counter()
        cutoffs = sample_cutoffs(features["as_of"], check)
        check_user_features(extra, tables, rows, values, cutoffs)
        logger.info(
            "leak check passed: %d user features at %d cut-offs in %.1f s",
            len(extra),
            len(cutoffs),
            time.perf_counter() - started,
        )
    elif extra:
        logger.warning(
            "features.leak_check.enabled is false: the user features %s are NOT checked for "
            "look-ahead; recorded in %s and reports/evaluation.json",
            values.columns.tolist(),
            paths.USER_FEATURES,
        )
    for column in values:
        features[column] = values[column].to_numpy()
    with StagedOutputs() as out:
        out.write_parquet(paths.FEATURES, features)
        out.write_json(paths.USER_FEATURES, user_features_record(params.features, cutoffs))
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
