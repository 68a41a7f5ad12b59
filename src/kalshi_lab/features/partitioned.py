"""The built-in features, partition by partition of the parquet tables.

An event's markets, candles and trades share one partition, and nothing a market's features
use lies in another, so each partition is built alone, on ``compute``
(:func:`kalshi_lab.compute.map_partitions`), each worker writing its rows to a file of its own;
they are gathered in the table's order (by ticker, then as_of), as if built at once. The work
lives here, not in the stage's module, because a worker unpickles it by module name and the
stage runs as ``__main__``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kalshi_lab.compute import map_partitions
from kalshi_lab.data.tables import partition_filters, read_table
from kalshi_lab.errors import DataError
from kalshi_lab.features.build import build_features
from kalshi_lab.params import ComputeParams, FeatureParams


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
