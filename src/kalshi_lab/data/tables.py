"""Explicit pyarrow schemas of the typed tables the parquet stage writes.

Units, the same in every table and every later stage:
* prices are **dollars per contract** as float64 in [0, 1] (the API's ``*_dollars`` unit; a
  price is also the market's implied probability). Legacy cent integers are divided by 100.
* contract counts are float64 (the API's ``*_fp`` strings; fractional trading allows 0.01).
* traded value is dollars (count x price in dollars).
* timestamps are ``timestamp[us, tz=UTC]``, read from RFC 3339 strings with an explicit zone
  (:func:`utc_times`) or from Unix seconds (:func:`utc_from_unix`); both parsers of
  :mod:`kalshi_lab.data.parse` convert through these two functions, so they read a time alike.
* orderbook rows are bids only, as the API returns them; a YES ask is 1 - the best NO bid.

On disk each table is a hive-partitioned parquet dataset, ``<table>/series=<S>/month=<YYYY-MM>/
part-<n>.parquet`` (the series table by series only), written by the parquet stage and listed,
in reading order, in :data:`TABLE_FILES`; :func:`read_table` is the one reader of them.
"""

from collections.abc import Collection
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from kalshi_lab.errors import DataError
from kalshi_lab.paths import PARQUET_DIR, parquet_table

UTC_TS = pa.timestamp("us", tz="UTC")
#: Unix seconds a document may carry are below this (the year 5138): a bound that keeps the
#: conversion to microseconds from overflowing
MAX_UNIX_S = 10**11


def utc_times(text: pa.Array) -> pa.Array:
    """RFC 3339 strings (``2025-07-19T14:22:42.193311Z``, ``...+00:00``) -> UTC, nulls kept.

    Raises ``pyarrow.ArrowInvalid`` on a string without a zone, with more than microsecond
    precision, or that is no date at all.
    """
    return pc.cast(text, UTC_TS)


def utc_from_unix(seconds: pa.Array) -> pa.Array:
    """Unix seconds in ``[0, MAX_UNIX_S)`` (int64) -> UTC."""
    return pc.multiply(seconds.cast(pa.int64()), 1_000_000).cast(UTC_TS)


SERIES = pa.schema(
    [
        ("series_ticker", pa.string()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("frequency", pa.string()),
        ("fee_type", pa.string()),  # quadratic | quadratic_with_maker_fees | flat
        ("fee_multiplier", pa.float64()),  # scales the taker/maker fee
    ]
)

EVENTS = pa.schema(
    [
        ("event_ticker", pa.string()),
        ("series_ticker", pa.string()),
        ("title", pa.string()),
        ("mutually_exclusive", pa.bool_()),
    ]
)

MARKETS = pa.schema(
    [
        ("ticker", pa.string()),
        ("event_ticker", pa.string()),
        ("series_ticker", pa.string()),
        ("market_type", pa.string()),
        ("yes_sub_title", pa.string()),
        ("status", pa.string()),  # response vocabulary: active, closed, determined, finalized, ...
        ("result", pa.string()),  # yes | no | scalar | void; null while unresolved
        ("open_time", UTC_TS),
        ("close_time", UTC_TS),
        ("settlement_ts", UTC_TS),  # null while unsettled
        # close_time is the ACTUAL close once a market closed; one that may close early moved
        # its close when it did, so only the contract's latest expiration was known beforehand
        ("can_close_early", pa.bool_()),
        ("latest_expiration_time", UTC_TS),  # null in documents that lack it (older records)
        # what YES pays on (Market.strike_type: greater, greater_or_equal, less, less_or_equal,
        # between, custom, functional, structured; null when absent) and its strikes
        ("strike_type", pa.string()),
        ("floor_strike", pa.float64()),
        ("cap_strike", pa.float64()),
        # the event's structure, classified from its markets (kalshi_lab.data.structure):
        # ladder | bracket | binary | other
        ("structure", pa.string()),
        ("last_price", pa.float64()),
        ("volume", pa.float64()),
        ("open_interest", pa.float64()),
        ("price_level_structure", pa.string()),
    ]
)

_OHLC = ("open", "high", "low", "close")

CANDLES = pa.schema(
    [
        ("ticker", pa.string()),
        ("period_minutes", pa.int32()),  # 1, 60 or 1440
        ("end_period_ts", UTC_TS),  # inclusive END of the period: the candle is known from here on
        *[
            (f"price_{f}", pa.float64()) for f in (*_OHLC, "mean")
        ],  # trade prices; null without trades
        *[(f"yes_bid_{f}", pa.float64()) for f in _OHLC],
        *[(f"yes_ask_{f}", pa.float64()) for f in _OHLC],
        ("volume", pa.float64()),  # contracts traded in the period
        ("open_interest", pa.float64()),  # contracts outstanding at the end of the period
    ]
)

TRADES = pa.schema(
    [
        ("trade_id", pa.string()),
        ("ticker", pa.string()),
        ("created_time", UTC_TS),
        ("count", pa.float64()),
        ("yes_price", pa.float64()),
        ("no_price", pa.float64()),  # 1 - yes_price
        (
            "taker_side",
            pa.string(),
        ),  # yes: the taker bought YES at yes_price; no: bought NO at no_price
    ]
)

ORDERBOOK = pa.schema(
    [
        ("ticker", pa.string()),
        ("snapshot_ts", UTC_TS),  # when the book was observed
        ("side", pa.string()),  # yes | no: bids to buy that side
        ("price", pa.float64()),
        ("count", pa.float64()),
        # snapshot: a REST orderbook response (the fetch); recorded: rebuilt from a recorded
        # WebSocket stream (kalshi_lab.data.book_rebuild), sampled every data.book_interval
        ("source", pa.string()),
    ]
)
#: ORDERBOOK.source values
BOOK_SOURCES = ("snapshot", "recorded")

TABLES: dict[str, pa.Schema] = {
    "series": SERIES,
    "events": EVENTS,
    "markets": MARKETS,
    "candles": CANDLES,
    "trades": TRADES,
    "orderbook": ORDERBOOK,
}


#: the parquet files of every table, relative to the table's directory, in reading order:
#: {"tables": {name: ["series=S/month=YYYY-MM/part-0.parquet", ...]}}. Written last by the
#: parquet stage; a table without rows lists no file (DVC keeps no empty directory). Its
#: leading "_" keeps it out of the datasets for pyarrow and other readers of the directories.
TABLE_FILES = "_files.json"
#: the partition keys of the directories (hive-style ``key=value``), never a table's column
PARTITIONING = ds.partitioning(
    pa.schema([("series", pa.string()), ("month", pa.string())]), flavor="hive"
)
#: tables the parser sorted (trades by ticker, then time within each partition's file): the
#: reader restores the order across partitions, a stable sort by ticker of the rows read
SORTED_BY_TICKER = ("trades",)
#: a table of at most this many rows (the series, events and markets: one row a market) is
#: read in one scan, as a partition is: column by column, each column's scan opens every file
#: again (the markets of 30,000 markets: 0.33 s of CPU instead of 0.09 s), and holding so few
#: rows twice costs little (tens of MB); the order book, candles and trades, millions of
#: rows, are read column by column
ONE_SCAN_ROWS = 200_000


def table_files(root: Path = PARQUET_DIR) -> dict[str, list[str]]:
    """:data:`TABLE_FILES` of ``root``; missing or malformed, a DataError naming it."""
    path = Path(root) / TABLE_FILES
    if not path.is_file():
        raise DataError(f"{path} does not exist: run the parquet stage first")
    try:
        files = orjson.loads(path.read_bytes())["tables"]
        ok = set(files) == set(TABLES) and all(
            isinstance(names, list) and all(isinstance(n, str) for n in names)
            for names in files.values()
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(
            f'{path}: expected {{"tables": {{table: [file, ...]}}}} for each of {sorted(TABLES)} '
            "(run the parquet stage)"
        )
    return files


def table_dataset(
    name: str, root: Path = PARQUET_DIR, categorical: Collection[str] = ()
) -> ds.Dataset:
    """The parquet files of one table as a lazy pyarrow dataset, in the listed order.

    Its columns are the table's (:data:`TABLES`) and the partition keys ``series`` and
    ``month``, which a filter may use to skip whole files; ``categorical`` columns are read
    dictionary-encoded. A listed file that is missing is a DataError naming it.
    """
    directory = parquet_table(name, root)
    paths = [directory / f for f in table_files(root)[name]]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"{path}: listed in {Path(root) / TABLE_FILES} but missing (run the parquet stage)"
            )
    fields = [
        f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in categorical else f
        for f in TABLES[name]
    ]
    schema = pa.schema([*fields, *PARTITIONING.schema])
    file_format = ds.ParquetFileFormat(read_options={"dictionary_columns": list(categorical)})
    return ds.dataset(
        [str(p) for p in paths],
        schema=schema,
        format=file_format,
        partitioning=PARTITIONING,
        partition_base_dir=str(directory),
    )


def partition_filters(root: Path = PARQUET_DIR, table: str = "markets") -> list[ds.Expression]:
    """A filter per partition of ``table`` (by default the markets), in their order: every
    row of every table (but the series) lies in its market's partition, so these split any
    table market-whole; a table's own partitions are all of its rows."""
    names = dict.fromkeys(Path(f).parent.as_posix() for f in table_files(root)[table])
    filters = []
    for name in names:
        keys = dict(part.split("=", 1) for part in name.split("/"))
        filters.append(
            (ds.field("series") == keys["series"]) & (ds.field("month") == keys["month"])
        )
    return filters


def read_table(
    name: str,
    root: Path = PARQUET_DIR,
    columns: list[str] | None = None,
    categorical: tuple[str, ...] = (),
    tickers: Collection[str] | pa.Array | None = None,
    filter: ds.Expression | None = None,  # noqa: A002 - pyarrow's name for it
) -> pd.DataFrame:
    """One typed table as a DataFrame, read lazily from its dataset; a missing table is a
    DataError naming the stage to run.

    Rows come partition by partition in the listed order, each partition's rows as the parser
    wrote them; the trades, which the parser sorted, sorted by ticker (then time) across
    partitions. ``columns``: read only those (what is used); ``categorical``: string columns
    read as pandas Categoricals (one copy of each distinct ticker instead of one per row: the
    order book of 10,000 markets over a year takes 0.3 GB instead of 1.3 GB); ``tickers``: only
    the rows of those markets (the table's ``ticker`` column; a :func:`ticker_set` for many
    reads of the same markets); ``filter``: only the rows it selects, an expression over the
    table's columns and the partition keys ``series`` and ``month``
    (``ds.field("series") == "KXHIGHNY"`` reads that series' files only).

    The columns are read one at a time, each handed to pandas and freed: reading the whole
    table at once holds every column twice (Arrow's chunks and pandas' merged copy) plus
    Arrow's decompression buffers: for the order book of 10,000 markets over a year (0.23 GB
    as pandas) the peak was 0.8 GB and Arrow's allocator kept 0.5 GB of it after; one column at
    a time, and the allocator's free memory given back: 0.59 GB. A ``filter``ed read (a
    partition) or a small table (:data:`ONE_SCAN_ROWS`) scans its files once for all its
    columns, and only their ticker column
    when they hold none of ``tickers``. The rows to keep (``tickers``) and their order (sorted
    tables) are decided once, on the ticker column.
    """
    schema = TABLES[name]
    columns = schema.names if columns is None else list(columns)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise DataError(f"{name} has no columns {unknown}; its columns: {schema.names}")
    by_ticker = tickers is not None or name in SORTED_BY_TICKER
    wanted = None if tickers is None else ticker_set(tickers)
    needed = [*columns, *(["ticker"] if by_ticker and "ticker" not in columns else [])]
    dataset = table_dataset(name, root, {*categorical, *(["ticker"] if by_ticker else [])})
    _check_columns(dataset, needed, filter)
    plain = pa.schema([schema.field(c) for c in columns if c not in categorical])
    if filter is not None or dataset.count_rows() <= ONE_SCAN_ROWS:  # small: one scan
        if wanted is not None and not _holds_any(dataset, filter, wanted):
            part = dataset.schema.empty_table().select(needed)  # nothing more to read
        else:
            part = dataset.to_table(columns=needed, filter=filter)
        keep, order = _selection(name, part.column("ticker") if by_ticker else None, wanted)
        if keep is not None:
            part = part.filter(keep, null_selection_behavior="drop")
        if order is not None:
            part = part.take(order)
        part = part.select(columns)
        for field in plain:
            part = part.set_column(
                columns.index(field.name), field, part.column(field.name).cast(field.type)
            )
        return part.to_pandas(split_blocks=True)
    ticker = dataset.to_table(columns=["ticker"]).column(0) if by_ticker else None
    keep, order = _selection(name, ticker, wanted)
    del ticker
    frame = {}
    for column in columns:
        table = dataset.to_table(columns=[column])
        if keep is not None:
            table = table.filter(keep, null_selection_behavior="drop")
        if order is not None:
            table = table.take(order)
        if column in plain.names:
            table = table.cast(pa.schema([schema.field(column)]))
        frame[column] = table.to_pandas(self_destruct=True, split_blocks=True)[column]
        del table
    pa.default_memory_pool().release_unused()
    return pd.DataFrame(frame, columns=columns, copy=False)


def _selection(
    name: str, ticker: pa.ChunkedArray | None, tickers: pa.Array | None
) -> tuple[pa.ChunkedArray | None, np.ndarray | None]:
    """From the dictionary-encoded ``ticker`` column: the rows to keep (of ``tickers``; None:
    all), and the order of those (a table sorted by ticker; None: as read)."""
    if ticker is None:
        return None, None
    keep = None if tickers is None else _rows_of_markets(ticker, tickers)
    if keep is not None:
        ticker = ticker.filter(keep, null_selection_behavior="drop")
    return keep, _stable_order(ticker) if name in SORTED_BY_TICKER else None


def _holds_any(dataset: ds.Dataset, part: ds.Expression, tickers: pa.Array) -> bool:
    """Whether the rows ``part`` selects hold any of ``tickers``, from the ticker column alone
    (dictionary-encoded: cheap): the backtest reads a table's partitions one at a time for a
    few markets, and most partitions hold none of them."""
    ticker = dataset.to_table(columns=["ticker"], filter=part).column(0)
    keep = _rows_of_markets(ticker, tickers)
    return len(ticker) > 0 if keep is None else pc.any(keep).as_py() is True


def _check_columns(
    dataset: ds.Dataset, columns: list[str], partition: ds.Expression | None
) -> None:
    """Every file read holds ``columns``: the dataset's schema would read a missing one as
    nulls. Only the files of the partitions ``partition`` selects are opened."""
    for fragment in dataset.get_fragments(filter=partition):
        missing = sorted(set(columns) - set(fragment.physical_schema.names))
        if missing:
            raise DataError(f"{fragment.path} lacks columns {missing}")


def ticker_set(tickers: Collection[str] | pa.Array) -> pa.Array:
    """``tickers`` as the value set :func:`read_table` matches rows against (a string array:
    unchanged). Made once for many reads of the same markets (one per partition), it is not
    sorted and converted again for each: at 30,000 markets that cost the backtest 0.6 s."""
    if isinstance(tickers, pa.Array):
        return tickers
    return pa.array(sorted(tickers), type=pa.string())


def _rows_of_markets(column: pa.ChunkedArray, wanted: pa.Array) -> pa.ChunkedArray | None:
    """Per row of a dictionary-encoded ticker ``column``, whether it is one of ``wanted`` (a
    :func:`ticker_set`); None if all are. Decided per distinct ticker of each chunk (its
    dictionary), not per row."""
    keep = pa.chunked_array(
        [
            pc.take(pc.is_in(chunk.dictionary, value_set=wanted), chunk.indices)
            for chunk in column.chunks
        ],
        type=pa.bool_(),
    )
    return None if keep.null_count == 0 and pc.all(keep).as_py() else keep


def _stable_order(column: pa.ChunkedArray) -> np.ndarray | None:
    """Row order of a stable sort by the dictionary-encoded ``column``, None if it is sorted.

    Each distinct value is ranked once (a table's few thousand tickers, not its millions of
    rows), and the rows sorted by rank: a tenth of the time of sorting the strings.
    """
    if column.null_count:
        raise DataError("a ticker is null in the rows of a table sorted by ticker")
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return None
    dictionary = column.chunk(0).dictionary
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[pc.sort_indices(dictionary).to_numpy()] = np.arange(len(dictionary))
    codes = np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    )
    ranks = rank[codes]
    if np.all(ranks[1:] >= ranks[:-1]):
        return None
    return np.argsort(ranks, kind="stable")
