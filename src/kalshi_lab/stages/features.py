"""features: typed tables -> one row per market and UTC day, keyed by its as-of time.

The built-in features, partition by partition of the tables (an event's markets, candles and
trades share one: nothing a market's features use lies in another) on ``compute``
(:func:`kalshi_lab.compute.map_partitions`), each worker writing its rows to a file of its
own, gathered here in the table's order (by ticker, then as_of); then the user's own
(``features.extra``, on the whole tables: a user's function may look across markets), each
checked for look-ahead on the tables truncated at sampled times (``features.leak_check``);
what was checked, and how, is written beside the feature table for the evaluate stage's report.
"""

import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kalshi_lab import paths
from kalshi_lab.compute import map_partitions
from kalshi_lab.data.tables import partition_filters, read_table
from kalshi_lab.errors import DataError
from kalshi_lab.features import build_features
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.leak_check import check_user_features, sample_cutoffs
from kalshi_lab.features.record import user_features_record
from kalshi_lab.features.user import ParquetTables, compute_user_features, user_features
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import ComputeParams, FeatureParams, load_params
from kalshi_lab.stages.runner import logger, run_stage


@dataclasses.dataclass(frozen=True)
class FeaturePartition:
    """What a worker builds: the features of one partition of the tables in ``root``."""

    root: Path
    partition: ds.Expression
    params: FeatureParams
    #: where the worker writes them (a parquet file)
    out: Path


def partition_features(task: FeaturePartition) -> int:
    """Build one partition's built-in features into ``task.out``; returns its rows."""
    markets, candles, trades = (
        read_table(name, task.root, filter=task.partition)
        for name in ("markets", "candles", "trades")
    )
    features = build_features(markets, candles, trades, task.params)
    pq.write_table(pa.Table.from_pandas(features, preserve_index=False), task.out)
    return len(features)


def builtin_features(root: Path, params: FeatureParams, compute: ComputeParams) -> pd.DataFrame:
    """The built-in features of every partition of ``root``, sorted by ticker then as_of as
    if built at once. The workers write their parts to a temporary directory beside ``root``,
    where every worker can write (the stage's output directory is made only on success)."""
    partitions = partition_filters(root)  # first: a missing table names the stage to run
    with tempfile.TemporaryDirectory(prefix=".features-", dir=Path(root).parent) as parts:
        tasks = [
            FeaturePartition(root, partition, params, Path(parts) / f"part-{k}.parquet")
            for k, partition in enumerate(partitions)
        ]
        rows = sum(map_partitions(partition_features, tasks, compute))
        # a column of a partition without a value (no strike type) was written as nulls
        table = pa.concat_tables(
            [pq.read_table(task.out) for task in tasks], promote_options="permissive"
        )
    if table.num_rows != rows:
        raise DataError(f"{parts}: {table.num_rows} feature rows read, {rows} written")
    # by ticker (stable: a market's rows, all in one partition, stay in as_of order), sorted
    # before pandas sees them: one copy of the table fewer
    table = table.take(pc.sort_indices(table, [("ticker", "ascending")]))
    return table.to_pandas(self_destruct=True)


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
