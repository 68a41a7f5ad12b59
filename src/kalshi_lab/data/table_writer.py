"""Writes the typed tables of one raw partition into the hive partitions of the parquet datasets.

Every row goes to its market's partition, ``<table>/series=<S>/month=<YYYY-MM>/`` (the
market's series; the UTC month of its event's close, the latest close among the event's
markets), so that a flat raw directory (real Kalshi data, the tests' fixtures) is split row by
row, and a partitioned one lands in the same partitions as the same data flat. An event's
markets, candles, trades and books share its partition. The file is ``part-<n>.parquet``, n the
raw partition's index: workers of different raw partitions never write the same file, and the
same data gives the same files, byte for byte (zstd, no timestamps in parquet's metadata).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kalshi_lab.data.raw_store import partition_name
from kalshi_lab.data.tables import TABLES
from kalshi_lab.errors import DataError
from kalshi_lab.paths import parquet_table

logger = logging.getLogger(__name__)


def part_name(partition: str, index: int) -> str:
    """The file of raw partition ``index`` in ``partition``, relative to the table's directory."""
    return f"{partition}/part-{index}.parquet"


def series_partition(series_ticker: str) -> str:
    """The directory of one series in the series table (partitioned by series only): the
    series part of its markets' partitions."""
    return _partition(series_ticker, "0000-01").split("/")[0]


def _partition(series_ticker: str, month: str, event: str | None = None) -> str:
    """:func:`partition_name`; a series ticker that cannot name a directory is a DataError."""
    try:
        return partition_name(series_ticker, month)
    except ValueError:
        of = f" (event {event})" if event else ""
        raise DataError(f"series ticker {series_ticker!r}{of} cannot name a directory") from None


def month_of_events(markets: pa.Table) -> dict[str, str]:
    """Per event ticker, the UTC month (``YYYY-MM``) of its latest market close."""
    close = markets.group_by("event_ticker", use_threads=False).aggregate([("close_time", "max")])
    months = pc.strftime(close.column("close_time_max"), format="%Y-%m")
    return dict(zip(close.column("event_ticker").to_pylist(), months.to_pylist(), strict=True))


class PartitionWriter:
    """The tables of raw partition ``index``, each row written into its market's partition.

    :meth:`route` learns the partitions from the markets; :meth:`write` then takes
    any table's parts (a table with ``ticker``: its market's partition; the events: their
    markets'). ``files`` lists what was written per table, relative to the table's directory.
    """

    def __init__(self, root: Path, index: int) -> None:
        self.root, self.index = Path(root), index
        self.files: dict[str, list[str]] = {}
        self._partitions: list[str] = []
        #: per key column (ticker, event_ticker): its values, and the partition code of each
        #: with a last -1, the code of a value not among them
        self._codes_by: dict[str, tuple[pa.Array, np.ndarray]] = {}

    def route(self, markets: pa.Table) -> None:
        """Partition of every market and event, from the markets table of this raw partition."""
        month = month_of_events(markets)
        events = markets.column("event_ticker").to_pylist()
        names = [
            _partition(series, month[event], event)
            for series, event in zip(
                markets.column("series_ticker").to_pylist(), events, strict=True
            )
        ]
        self._partitions = sorted(set(names))
        code = {name: k for k, name in enumerate(self._partitions)}
        for key, values in (
            ("ticker", markets.column("ticker").to_pylist()),
            ("event_ticker", events),
        ):
            by_value = {v: code[n] for v, n in zip(values, names, strict=True)}
            lookup = np.array([*by_value.values(), -1], dtype=np.int64)
            self._codes_by[key] = (pa.array(list(by_value), pa.string()), lookup)

    def _codes(self, name: str, part: pa.Table) -> np.ndarray:
        """Partition code per row of ``part``; -1 where the row's market is unknown."""
        key = "event_ticker" if name == "events" else "ticker"
        values, lookup = self._codes_by[key]
        index = pc.fill_null(pc.index_in(part.column(key), value_set=values), -1)
        return lookup[index.to_numpy()]

    def write(self, name: str, parts: Iterator[pa.Table]) -> int:
        """Write ``parts`` of table ``name`` (starting it afresh); returns the rows written.

        Rows whose market is unknown can only be events without markets (the parser refuses
        anything else of a ticker not in the markets data): they have no close to place them
        by, and are counted and logged.
        """
        for old in self.files.pop(name, []):
            (parquet_table(name, self.root) / old).unlink()
        writers: dict[int, pq.ParquetWriter] = {}
        rows = dropped = 0
        try:
            for part in parts:
                if part.num_rows == 0:
                    continue
                codes = self._codes(name, part)
                if (codes < 0).any():
                    dropped += int((codes < 0).sum())
                order = np.argsort(codes, kind="stable")  # rows of a partition keep their order
                sorted_codes = codes[order]
                starts = np.flatnonzero(np.diff(sorted_codes, prepend=-2))
                for lo, hi in zip(starts, [*starts[1:], len(order)], strict=True):
                    code = int(sorted_codes[lo])
                    if code < 0:
                        continue
                    piece = part if hi - lo == part.num_rows else part.take(order[lo:hi])
                    if code not in writers:
                        writers[code] = self._open(name, code)
                    writers[code].write_table(piece)
                    rows += piece.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        if dropped:
            logger.warning(
                "%s: dropped %d rows of events without markets (no close to place them by)",
                name,
                dropped,
            )
        return rows

    def _open(self, name: str, code: int) -> pq.ParquetWriter:
        file = part_name(self._partitions[code], self.index)
        path = parquet_table(name, self.root) / file
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files.setdefault(name, []).append(file)
        return pq.ParquetWriter(path, TABLES[name], compression="zstd")
