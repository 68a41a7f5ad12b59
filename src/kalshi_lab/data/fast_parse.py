"""The columnar reader: the big raw files through pyarrow's JSON reader, chunk by chunk.

Candlesticks, trades and orderbooks make up nearly all raw bytes. This reader parses them with
explicit schemas into Arrow arrays, so no Python object is made per value, in chunks of whole
lines on two threads while the calling thread decompresses the next chunk. It reads only the
current format (``*_dollars`` and ``*_fp`` strings) and **declines** (:class:`Declined`) any file
it could not read exactly as the record-by-record reader of :mod:`kalshi_lab.data.parse` would:

* a legacy or historical unsuffixed field (``yes_price``, ``close``, ``volume``...) is typed
  ``null`` in the read schema, so any value there is a type error;
* a missing required value, a value outside its range, an unknown ``taker_side``;
* a number of records that differs from the number of lines (a blank line, two objects on one
  line), or from the number the raw manifest says was written, and any JSON or gzip error.

The parser then reads that file record by record, which either handles it (legacy,
historical) or names the line and field at fault. Where this reader does return a table, it
holds the same rows, in the same order, with the same values: both readers parse decimal
strings with correct rounding and convert times through the same functions of
:mod:`kalshi_lab.data.tables`, and both apply the same range checks.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from isal import isal_zlib

from kalshi_lab.data import tables
from kalshi_lab.data.raw_store import ORDERBOOK_PATH

#: uncompressed bytes parsed at a time (whole lines): a few in flight keep memory small
CHUNK_BYTES = 8 << 20
#: compressed bytes read at a time
READ_BYTES = 1 << 20
#: threads parsing chunks: the pipeline runs on 2 cores
WORKERS = 2
PERIODS = (1, 60, 1440)
SIDES = ("yes", "no")
_BOOK_PATH = f"^{ORDERBOOK_PATH}$"

_DATA_ERRORS = (pa.ArrowInvalid, OSError, EOFError, isal_zlib.error)


class Declined(Exception):
    """This reader cannot promise the record-by-record reader's result for a file."""


@contextlib.contextmanager
def _declining() -> Iterator[None]:
    """Turn any JSON, gzip or conversion error inside the block into :class:`Declined`."""
    try:
        yield
    except _DATA_ERRORS as exc:
        raise Declined(f"{type(exc).__name__}: {exc}") from None


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise Declined(why)


def _all(mask: pa.Array) -> bool:
    """True when no element of ``mask`` is false (nulls and an empty mask included)."""
    return pc.all(mask).as_py() is not False


def _quote_fields(names: tuple[str, ...]) -> list[tuple[str, pa.DataType]]:
    """``<name>_dollars`` strings, and the legacy/historical ``<name>`` typed null."""
    return [(f"{n}_dollars", pa.string()) for n in names] + [(n, pa.null()) for n in names]


_QUOTE = pa.struct(_quote_fields(("open", "high", "low", "close")))
_PRICE = pa.struct(_quote_fields(("open", "high", "low", "close", "mean")))
_CANDLES = pa.schema(
    [
        ("params", pa.struct([("period_interval", pa.int64())])),
        (
            "response",
            pa.struct(
                [
                    ("ticker", pa.string()),
                    (
                        "candlesticks",
                        pa.list_(
                            pa.struct(
                                [
                                    ("end_period_ts", pa.int64()),
                                    ("yes_bid", _QUOTE),
                                    ("yes_ask", _QUOTE),
                                    ("price", _PRICE),
                                    ("volume_fp", pa.string()),
                                    ("open_interest_fp", pa.string()),
                                    ("volume", pa.null()),
                                    ("open_interest", pa.null()),
                                ]
                            )
                        ),
                    ),
                ]
            ),
        ),
    ]
)
_TRADE_TEXT = ("trade_id", "ticker", "count_fp", "yes_price_dollars", "no_price_dollars")
_TRADES = pa.schema(
    [
        (
            "response",
            pa.struct(
                [
                    (
                        "trades",
                        pa.list_(
                            pa.struct(
                                [(n, pa.string()) for n in _TRADE_TEXT]
                                + [("taker_side", pa.string()), ("created_time", pa.string())]
                                + [(n, pa.null()) for n in ("count", "yes_price", "no_price")]
                            )
                        ),
                    )
                ]
            ),
        )
    ]
)
_LEVELS = pa.list_(pa.list_(pa.string()))
_BOOKS = pa.schema(
    [
        ("path", pa.string()),
        ("received_at", pa.string()),
        (
            "response",
            pa.struct(
                [
                    (
                        "orderbook_fp",
                        pa.struct(
                            [("yes_dollars", _LEVELS), ("no_dollars", _LEVELS)]
                            + [("yes", pa.null()), ("no", pa.null())]
                        ),
                    ),
                    ("orderbook", pa.null()),
                ]
            ),
        ),
    ]
)


def _inflate(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a one-member gzip file, in pieces.

    ISA-L's inflate in gzip mode (python-isal, zlib's interface; three quarters of zlib's CPU
    on the raw files, benchmarks/bench_raw_gzip.py), fed large reads: it checks the member's
    CRC and length itself, at a fraction of the cost of a GzipFile's small reads. A file that
    ends early is an EOFError, anything after the member a reason to decline; an empty file is
    empty, as for GzipFile.
    """
    inflate = isal_zlib.decompressobj(wbits=31)
    with open(path, "rb") as f:
        while data := f.read(READ_BYTES):
            _require(not inflate.eof, "more than one gzip member")
            yield inflate.decompress(data)
        _require(not inflate.unused_data, "more than one gzip member")
        if not inflate.eof and f.tell() > 0:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _chunks(path: Path) -> Iterator[bytes]:
    """The decompressed file in pieces of whole lines, about ``CHUNK_BYTES`` each."""
    pieces: list[bytes] = []
    size = 0
    for data in _inflate(path):
        pieces.append(data)
        size += len(data)
        if size >= CHUNK_BYTES:
            block = b"".join(pieces)
            cut = block.rfind(b"\n") + 1
            pieces, size = [block[cut:]], len(block) - cut
            if cut:
                yield block[:cut]
    if size:
        yield b"".join(pieces)


def _parse(
    chunk: bytes, schema: pa.Schema, part: Callable[[pa.RecordBatch], pa.Table]
) -> tuple[pa.Table, int]:
    """(``part`` of the records of one chunk, their number), declining unless each line was
    one record."""
    table = pj.read_json(
        pa.BufferReader(chunk),
        read_options=pj.ReadOptions(use_threads=False, block_size=len(chunk)),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
    _require(table.num_rows == lines, f"{table.num_rows} records on {lines} lines")
    return part(table.combine_chunks().to_batches()[0]), lines


def _parts(
    path: Path, records: int, schema: pa.Schema, part: Callable[[pa.RecordBatch], pa.Table]
) -> Iterator[pa.Table]:
    """``part`` of every chunk of ``path``, in order, declining on any data error on the way
    and at the end unless the file held ``records`` records (the raw manifest's count).

    Chunks are parsed by ``WORKERS`` threads while this one decompresses the next (pyarrow,
    numpy and the inflater release the GIL), a few chunks ahead of the consumer.
    """
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="json-chunks")
    pending: deque[Future[tuple[pa.Table, int]]] = deque()
    found = 0

    def take() -> pa.Table:
        nonlocal found
        table, lines = pending.popleft().result()
        found += lines
        return table

    try:
        with _declining():
            for chunk in _chunks(path):
                pending.append(pool.submit(_parse, chunk, schema, part))
                if len(pending) > WORKERS:
                    yield take()
            while pending:
                yield take()
        _require(found == records, f"{found} records, the manifest says {records}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _field(struct: pa.Array, name: str, *, required: bool = True) -> pa.Array:
    """A child of a struct array, null where the struct is; required: no nulls at all."""
    values = pc.struct_field(struct, name)
    _require(not required or values.null_count == 0, f"missing {name}")
    return values


def _text(struct: pa.Array, name: str) -> pa.Array:
    """A required string: present and not empty."""
    values = _field(struct, name)
    _require(_all(pc.greater(pc.utf8_length(values), 0)), f"empty {name}")
    return values


def _items(struct: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """(parent row of each item, the items) of the required list ``name``; items are objects."""
    lists = _field(struct, name)
    items = pc.list_flatten(lists)
    _require(items.null_count == 0, f"a null in {name}")
    return pc.list_parent_indices(lists).to_numpy(), items


def _response(batch: pa.RecordBatch) -> pa.Array:
    response = batch.column("response")
    _require(response.null_count == 0, "a record without a response")
    return response


def _dollars(values: pa.Array, name: str) -> pa.Array:
    prices = pc.cast(values, pa.float64())
    _require(_all(pc.and_(pc.greater_equal(prices, 0.0), pc.less_equal(prices, 1.0))), name)
    return prices


def _contracts(values: pa.Array, name: str) -> pa.Array:
    counts = pc.cast(values, pa.float64())
    _require(_all(pc.and_(pc.greater_equal(counts, 0.0), pc.less(counts, np.inf))), name)
    return counts


def _candles(batch: pa.RecordBatch) -> pa.Table:
    response = _response(batch)
    tickers = _text(response, "ticker")
    periods = _field(batch.column("params"), "period_interval")
    _require(_all(pc.is_in(periods, pa.array(PERIODS, pa.int64()))), "period_interval")
    parent, candles = _items(response, "candlesticks")
    ends = _field(candles, "end_period_ts")
    _require(_all(pc.and_(pc.greater_equal(ends, 0), pc.less(ends, tables.MAX_UNIX_S))), "end")
    columns = {
        "ticker": tickers.take(parent),
        "period_minutes": periods.take(parent).cast(pa.int32()),
        "end_period_ts": tables.utc_from_unix(ends),
    }
    price = _field(candles, "price", required=False)
    for f in ("open", "high", "low", "close", "mean"):
        name = f"{f}_dollars"
        columns[f"price_{f}"] = _dollars(_field(price, name, required=False), name)
    for side in ("yes_bid", "yes_ask"):
        quote = _field(candles, side, required=False)
        for f in ("open", "high", "low", "close"):
            name = f"{f}_dollars"
            columns[f"{side}_{f}"] = _dollars(_field(quote, name, required=False), name)
    for name in ("volume", "open_interest"):
        columns[name] = _contracts(_field(candles, f"{name}_fp"), name)
    return pa.table(columns, schema=tables.CANDLES)


def candle_parts(path: Path, records: int) -> Iterator[pa.Table]:
    """Candlesticks in file order, in parts in the schema of ``tables.CANDLES``."""
    return _parts(path, records, _CANDLES, _candles)


def _trades(batch: pa.RecordBatch) -> pa.Table:
    _, trades = _items(_response(batch), "trades")
    side = _field(trades, "taker_side")
    _require(_all(pc.is_in(side, pa.array(SIDES))), "taker_side")
    yes = _dollars(_field(trades, "yes_price_dollars"), "yes_price_dollars")
    no = _dollars(_field(trades, "no_price_dollars", required=False), "no_price_dollars")
    columns = {
        "trade_id": _text(trades, "trade_id"),
        "ticker": _text(trades, "ticker"),
        "created_time": tables.utc_times(_field(trades, "created_time")),
        "count": _contracts(_field(trades, "count_fp"), "count_fp"),
        "yes_price": yes,
        "no_price": pc.coalesce(no, pc.subtract(1.0, yes)),
        "taker_side": side,
    }
    return pa.table(columns, schema=tables.TRADES)


def trade_parts(path: Path, records: int) -> Iterator[pa.Table]:
    """Trades in file order (duplicates kept), in parts in the schema of ``tables.TRADES``."""
    return _parts(path, records, _TRADES, _trades)


def _levels(levels: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(snapshot row, price, count) of every [price, count] pair; a null side has none."""
    pairs = pc.list_flatten(levels)
    _require(pairs.null_count == 0, "a null level")
    _require(_all(pc.equal(pc.list_value_length(pairs), 2)), "a level that is not a pair")
    text = pc.list_flatten(pairs)
    _require(text.null_count == 0, "a null in a level")
    # every pair has two strings: one cast, then price and count are the two columns
    price, size = pc.cast(text, pa.float64()).to_numpy().reshape(-1, 2).T
    _require(bool(((price >= 0.0) & (price <= 1.0)).all()), "price")
    _require(bool(((size >= 0.0) & (size < np.inf)).all()), "count")
    return pc.list_parent_indices(levels).to_numpy(), price, size


def _books(batch: pa.RecordBatch) -> pa.Table:
    ticker = pc.extract_regex(batch.column("path"), _BOOK_PATH)  # null where it does not match
    _require(ticker.null_count == 0, "path")
    received = batch.column("received_at")
    _require(received.null_count == 0, "received_at")
    book = _field(_response(batch), "orderbook_fp")
    (yes_row, yes_price, yes_count), (no_row, no_price, no_count) = (
        _levels(_field(book, f"{side}_dollars", required=False)) for side in SIDES
    )
    # per snapshot its YES levels, then its NO levels, as the record-by-record reader has them
    order = np.argsort(np.concatenate([yes_row, no_row]), kind="stable")
    row = np.concatenate([yes_row, no_row])[order]
    is_no = np.concatenate([np.zeros(len(yes_row), np.int8), np.ones(len(no_row), np.int8)])
    sides = pa.DictionaryArray.from_arrays(is_no[order], pa.array(SIDES))
    columns = {
        "ticker": pc.struct_field(ticker, "ticker").take(row),
        "snapshot_ts": tables.utc_times(received).take(row),
        "side": sides.cast(pa.string()),
        "price": np.concatenate([yes_price, no_price])[order],
        "count": np.concatenate([yes_count, no_count])[order],
        "source": pa.DictionaryArray.from_arrays(
            np.zeros(len(row), np.int8), pa.array(tables.BOOK_SOURCES)
        ).cast(pa.string()),
    }
    return pa.table(columns, schema=tables.ORDERBOOK)


def orderbook_parts(path: Path, records: int) -> Iterator[pa.Table]:
    """Orderbook levels in file order, in parts in the schema of ``tables.ORDERBOOK``."""
    return _parts(path, records, _BOOKS, _books)
