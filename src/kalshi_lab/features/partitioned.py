"""The built-in features, partition by partition of the parquet tables.

An event's markets, candles and trades share one partition, and nothing a market's features
use lies in another, so each partition is built alone, on ``compute``
(:func:`kalshi_lab.compute.map_partitions`), each worker writing its rows to a file of its own;
they are read in the table's order (by ticker, then as_of), as if built at once
(:mod:`kalshi_lab.features.sorted_parts`). The work
lives here, not in the stage's module, because a worker unpickles it by module name and the
stage runs as ``__main__``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from kalshi_lab.compute import map_partitions
from kalshi_lab.data.tables import partition_filters, read_table
from kalshi_lab.errors import DataError
from kalshi_lab.features.build import REQUIRED_COLUMNS, build_features
from kalshi_lab.features.sorted_parts import SortedParts, write_part
from kalshi_lab.params import ComputeParams, FeatureParams

#: per table, the string columns read as pandas Categoricals: one string per distinct value,
#: not one per row, and the tickers located among the markets once per distinct ticker
#: (``locate_tickers``); at 10,000 markets the reads and the build took 0.2 s less CPU
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "markets": (),
    "candles": ("ticker",),
    "trades": ("ticker", "taker_side"),
}


@dataclasses.dataclass(frozen=True)
class FeaturePartition:
    """What a worker builds: the features of one partition of the tables in ``root``."""

    root: Path
    partition: ds.Expression
    params: FeatureParams
    #: where the worker writes them (:func:`write_part`)
    out: Path


def partition_features(task: FeaturePartition) -> int:
    """Build one partition's built-in features into ``task.out``; returns its rows.

    Only the columns the features use are read (``REQUIRED_COLUMNS``: 26 of the tables' 45;
    at 10,000 markets the reads took 2.0 s of CPU with every column, 1.3 s with these), the
    strings repeated on every candle and trade as Categoricals (:data:`CATEGORICAL`)."""
    markets, candles, trades = (
        read_table(
            name,
            task.root,
            columns=list(REQUIRED_COLUMNS[name]),
            categorical=CATEGORICAL[name],
            filter=task.partition,
        )
        for name in ("markets", "candles", "trades")
    )
    features = build_features(markets, candles, trades, task.params)
    write_part(pa.Table.from_pandas(features, preserve_index=False), task.out)
    return len(features)


@contextlib.contextmanager
def builtin_parts(
    root: Path, params: FeatureParams, compute: ComputeParams
) -> Iterator[SortedParts]:
    """The built-in features of every partition of ``root``, as one table sorted by ticker then
    as_of as if built at once (:class:`SortedParts`), while the parts exist. The workers write
    them to a temporary directory beside ``root``, where every worker can write (the stage's
    output directory is made only on success); it is removed on leaving."""
    partitions = partition_filters(root)  # first: a missing table names the stage to run
    if not partitions:
        raise DataError(f"{root}: the markets table has no partition: run the parquet stage")
    with tempfile.TemporaryDirectory(prefix=".features-", dir=Path(root).parent) as parts:
        tasks = [
            FeaturePartition(root, partition, params, Path(parts) / f"part-{k}.arrow")
            for k, partition in enumerate(partitions)
        ]
        rows = sum(map_partitions(partition_features, tasks, compute))
        table = SortedParts([task.out for task in tasks])
        if table.span.rows != rows:
            raise DataError(f"{parts}: {table.span.rows} feature rows read, {rows} written")
        yield table
