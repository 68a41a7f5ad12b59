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
"""

from collections.abc import Collection
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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


def read_table(
    name: str,
    root: Path = PARQUET_DIR,
    columns: list[str] | None = None,
    categorical: tuple[str, ...] = (),
    tickers: Collection[str] | None = None,
) -> pd.DataFrame:
    """One typed table as a DataFrame; a missing table is a DataError naming the stage to run.

    ``columns``: read only those (what is used); ``categorical``: string columns read as
    pandas Categoricals (one copy of each distinct ticker instead of one per row: the order
    book of 10,000 markets over a year takes 0.3 GB instead of 1.3 GB); ``tickers``: only the
    rows of those markets (the table's ``ticker`` column), in the file's order.
    """
    path = parquet_table(name, root)
    if not path.exists():
        raise DataError(f"{path} does not exist: run the parquet stage first")
    schema = TABLES[name]
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    if categorical or tickers is not None:  # the file's own types
        needed = {*schema.names, *(["ticker"] if tickers is not None else [])}
        missing = needed - set(pq.read_schema(path).names)
        if missing:
            raise DataError(f"{path} lacks columns {sorted(missing)}")
        return _read_by_column(path, schema.names, categorical, tickers)
    return pq.read_table(path, schema=schema, columns=columns).to_pandas()


def _rows_of_markets(column: pa.ChunkedArray, tickers: Collection[str]) -> pa.ChunkedArray | None:
    """Per row of a dictionary-encoded ticker ``column``, whether it is one of ``tickers``; None
    if all are. Decided per distinct ticker of each chunk (its dictionary), not per row."""
    wanted = pa.array(sorted(tickers), type=pa.string())
    keep = pa.chunked_array(
        [
            pc.take(pc.is_in(chunk.dictionary, value_set=wanted), chunk.indices)
            for chunk in column.chunks
        ],
        type=pa.bool_(),
    )
    return None if keep.null_count == 0 and pc.all(keep).as_py() else keep


def _read_by_column(
    path: Path,
    columns: list[str],
    categorical: tuple[str, ...],
    tickers: Collection[str] | None,
) -> pd.DataFrame:
    """The columns of a parquet file read one at a time, each handed to pandas and freed.

    Reading the whole table at once holds every column twice (Arrow's chunks and pandas'
    merged copy) plus Arrow's decompression buffers: for the order book of 10,000 markets over
    a year (0.23 GB as pandas) the peak was 0.8 GB and Arrow's allocator kept 0.5 GB of it
    after. One column at a time, and the allocator's free memory given back: 0.59 GB.
    With ``tickers``, only those markets' rows, filtered before pandas sees them; the ticker
    column read to decide that is also the frame's when it is categorical (read once).
    """
    keep, read_tickers = None, None
    if tickers is not None:
        read_tickers = pq.read_table(path, columns=["ticker"], read_dictionary=["ticker"])
        keep = _rows_of_markets(read_tickers.column(0), tickers)
        if "ticker" not in categorical:
            read_tickers = None
    frame = {}
    for name in columns:
        if name == "ticker" and read_tickers is not None:
            table, read_tickers = read_tickers, None
        else:
            dictionary = [name] if name in categorical else None
            table = pq.read_table(path, columns=[name], read_dictionary=dictionary)
        if keep is not None:
            table = table.filter(keep, null_selection_behavior="drop")
        frame[name] = table.to_pandas(self_destruct=True, split_blocks=True)[name]
        del table
    pa.default_memory_pool().release_unused()
    return pd.DataFrame(frame, copy=False)
