"""Raw partitions -> the typed, hive-partitioned parquet datasets the parquet stage writes.

Each raw partition (a flat raw directory is one) is parsed by a worker of its own
(:func:`kalshi_lab.compute.map_partitions`), which writes its rows into their markets'
partitions, ``<table>/series=<S>/month=<YYYY-MM>/part-<n>.parquet``
(:mod:`kalshi_lab.data.table_writer`), and returns only counts: memory is bounded by a raw
partition (and, for a flat raw directory, by all of it). The series, which every raw partition
repeats, are de-duplicated here and written once per series. The files of every table are
listed, in reading order, in ``_files.json`` (:func:`kalshi_lab.data.tables.read_table`).
The work lives here, not in the stage's module, because a worker unpickles it by module name
and the stage runs as ``__main__``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kalshi_lab import paths
from kalshi_lab.compute import map_partitions, start_workers_early
from kalshi_lab.data.book_rebuild import DEFAULT_INTERVAL_MINUTES, recorded_orderbook
from kalshi_lab.data.parse import check_raw, parse_into, unique_series
from kalshi_lab.data.raw_store import raw_partitions
from kalshi_lab.data.table_writer import PartitionWriter, part_name, series_partition
from kalshi_lab.data.tables import TABLE_FILES, TABLES
from kalshi_lab.errors import DataError
from kalshi_lab.params import ComputeParams

logger = logging.getLogger(__name__)

#: the recorded books of every market, staged for the workers to take their markets' from;
#: removed before the tables are published
RECORDED_BOOKS = "_recorded.parquet"


@dataclasses.dataclass(frozen=True)
class RawPartition:
    """What a worker parses: raw partition ``index`` of ``raw_dir``, into ``root``."""

    index: int
    raw_dir: Path
    root: Path
    fast: bool
    #: the staged recorded books (:data:`RECORDED_BOOKS`), or None without any
    recorded: Path | None


@dataclasses.dataclass(frozen=True)
class Parsed:
    """What a worker wrote: rows and files per table, and what the stage checks across."""

    rows: dict[str, int]
    files: dict[str, list[str]]
    series: pa.Table  # written by the stage, once per series
    markets: list[str]


def parse_partition(task: RawPartition) -> Parsed:
    """Parse one raw partition and write its tables (but the series) into ``task.root``."""
    writer = PartitionWriter(task.root, task.index)
    rows: dict[str, int] = {}
    held: dict[str, pa.Table] = {}

    def sink(name: str, parts: Iterator[pa.Table]) -> None:
        if name in ("series", "events"):  # events: placed by their markets, parsed next
            held[name] = pa.concat_tables([TABLES[name].empty_table(), *parts])
            return
        if name == "markets":
            markets = pa.concat_tables([TABLES[name].empty_table(), *parts])
            writer.route(markets)
            held[name] = markets
            rows["events"] = writer.write("events", iter([held.pop("events")]))
            parts = iter([markets])
        rows[name] = writer.write(name, parts)

    def recorded(known: set[str]) -> pa.Table:
        wanted = ds.field("ticker").isin(pa.array(sorted(known), pa.string()))
        return ds.dataset(task.recorded).to_table(filter=wanted).cast(TABLES["orderbook"])

    parse_into(
        task.raw_dir,
        sink,
        fast=task.fast,
        recorded=None if task.recorded is None else recorded,
    )
    return Parsed(rows, writer.files, held["series"], held["markets"].column("ticker").to_pylist())


def write_tables(
    raw_dir: Path,
    root: Path,
    *,
    fast: bool = True,
    book_interval: int = DEFAULT_INTERVAL_MINUTES,
    recorded_dir: Path | None = None,
    compute: ComputeParams | None = None,
) -> dict[str, int]:
    """Parse ``raw_dir`` (and the recordings of ``recorded_dir``, if given) into the datasets
    of ``root``, partition by partition on ``compute``; returns rows written per table.

    ``fast=False`` reads every file record by record: the reference that
    benchmarks/bench_parquet.py times the columnar reader against. A market in two raw
    partitions (each holds whole events) is a DataError naming both.
    """
    partitions = raw_partitions(raw_dir)
    compute = compute or ComputeParams()
    if len(partitions) > 1:  # the fork server's imports, behind the checks and recorded books
        start_workers_early(parse_partition, compute)
    check_raw(partitions)
    staged_books, recorded_tickers = None, pa.chunked_array([], pa.string())
    if recorded_dir is not None:
        books = recorded_orderbook(recorded_dir, book_interval)
        if books.num_rows:
            staged_books = Path(root) / RECORDED_BOOKS
            pq.write_table(books, staged_books)
            recorded_tickers = books.column("ticker")
        del books
    tasks = [RawPartition(i, p, Path(root), fast, staged_books) for i, p in enumerate(partitions)]
    rows = dict.fromkeys(TABLES, 0)
    files: dict[str, list[tuple[str, int]]] = {name: [] for name in TABLES}
    series, where = [], {}
    for task, parsed in zip(tasks, map_partitions(parse_partition, tasks, compute), strict=True):
        for ticker in parsed.markets:
            other = where.setdefault(ticker, task.raw_dir)
            if other != task.raw_dir:
                raise DataError(
                    f"{task.raw_dir}: market {ticker} is also in {other}: a raw partition "
                    "holds whole events (run the fetch stage)"
                )
        for name, count in parsed.rows.items():
            rows[name] += count
        for name, written in parsed.files.items():
            files[name] += [(f, task.index) for f in written]
        series.append(parsed.series)
    if not where:
        raise DataError(f"{raw_dir}: no markets in the raw data")
    rows["series"] = _write_series(pa.concat_tables(series), Path(root), files["series"])
    if staged_books is not None:
        staged_books.unlink()
        _count_unplaced(recorded_tickers, set(where))
    listing = {  # by partition, then raw partition: the same order whatever finished first
        name: [f for f, _ in sorted(found, key=lambda f: (f[0].rsplit("/", 1)[0], f[1]))]
        for name, found in files.items()
    }
    (Path(root) / TABLE_FILES).write_bytes(
        orjson.dumps({"tables": listing}, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    return rows


def _write_series(series: pa.Table, root: Path, files: list[tuple[str, int]]) -> int:
    """The series table, the first of each series' repeats, one file per series."""
    series = series.filter(unique_series(series))
    for k, ticker in enumerate(series.column("series_ticker").to_pylist()):
        file = part_name(series_partition(ticker), 0)
        path = paths.parquet_table("series", root) / file
        path.parent.mkdir(parents=True)
        pq.write_table(series.slice(k, 1), path, compression="zstd")
        files.append((file, 0))
    return series.num_rows


def _count_unplaced(recorded_tickers: pa.ChunkedArray, markets: set[str]) -> None:
    """Log the recorded book rows of markets that no partition holds (and so none took)."""
    counts = recorded_tickers.value_counts()
    unplaced = [
        (ticker, n)
        for ticker, n in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        )
        if ticker not in markets
    ]
    if unplaced:
        logger.warning(
            "orderbook: left out %d recorded rows of %d markets not in the markets data, e.g. %s",
            sum(n for _, n in unplaced),
            len(unplaced),
            sorted(t for t, _ in unplaced)[0],
        )
