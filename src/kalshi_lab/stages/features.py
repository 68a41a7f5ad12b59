"""features: typed tables -> one row per market and UTC day, keyed by its as-of time.

The built-in features, partition by partition of the tables on ``compute``
(:mod:`kalshi_lab.features.partitioned`: an event's markets, candles and trades share one
partition, and nothing a market's features use lies in another); then the user's own
(``features.extra``, on the whole tables: a user's function may look across markets), each
checked for look-ahead on the tables truncated at sampled times (``features.leak_check``);
what was checked, and how, is written beside the feature table for the evaluate stage's report.
Without user features the table goes from the parts to its file a row group at a time, never
whole in memory; with them it is whole, in pandas, as a user's function may need.
"""

import time

import pandas as pd

from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.leak_check import check_user_features, sample_cutoffs
from kalshi_lab.features.partitioned import builtin_parts
from kalshi_lab.features.record import user_features_record
from kalshi_lab.features.sorted_parts import SortedParts
from kalshi_lab.features.user import (
    ParquetTables,
    UserFeature,
    compute_user_features,
    user_features,
)
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import FeatureParams, load_params
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    params = load_params()
    extra = user_features(params.features)  # a bad entry stops here, before any work
    with builtin_parts(paths.PARQUET_DIR, params.features, params.compute) as builtin:
        span = builtin.span
        if span.rows == 0:
            raise DataError(
                "the features table is empty: no market has a daily candle before its close"
            )
        with StagedOutputs() as out:
            if extra:
                features, cutoffs = _with_user_features(builtin, extra, params.features)
                out.write_parquet(paths.FEATURES, features)
            else:  # straight from the parts: one row group in memory, never the table
                cutoffs = []
                out.write_with(paths.FEATURES, builtin.write)
            out.write_json(paths.USER_FEATURES, user_features_record(params.features, cutoffs))
    logger.info(
        "%d rows, %d markets, as_of %s .. %s",
        span.rows,
        span.markets,
        span.first_as_of,
        span.last_as_of,
    )


def _with_user_features(
    builtin: SortedParts, extra: list[UserFeature], params: FeatureParams
) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The whole table with the user's columns appended, and the look-ahead check's cut-offs
    (none when it is off). A user's function may look across markets: the table is whole."""
    features = builtin.to_pandas()
    tables = ParquetTables()
    rows = features[list(KEY_COLUMNS)]
    values = compute_user_features(extra, tables, rows)
    check = params.leak_check
    cutoffs = []
    if check.enabled:
        started = time.perf_counter()
        cutoffs = sample_cutoffs(features["as_of"], check)
        check_user_features(extra, tables, rows, values, cutoffs)
        logger.info(
            "leak check passed: %d user features at %d cut-offs in %.1f s",
            len(extra),
            len(cutoffs),
            time.perf_counter() - started,
        )
    else:
        logger.warning(
            "features.leak_check.enabled is false: the user features %s are NOT checked for "
            "look-ahead; recorded in %s and reports/evaluation.json",
            values.columns.tolist(),
            paths.USER_FEATURES,
        )
    for column in values:
        features[column] = values[column].to_numpy()
    return features, cutoffs


if __name__ == "__main__":
    run_stage("features", main)
