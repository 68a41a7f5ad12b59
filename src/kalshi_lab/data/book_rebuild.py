"""The order-book table rebuilt from recorded WebSocket snapshots and deltas.

A recording (:mod:`kalshi_lab.data.stream_store`) holds, per market, an ``orderbook_snapshot``
(every level of both sides) followed by ``orderbook_delta`` messages (one level changes by a
signed count), as Kalshi's AsyncAPI spec defines them (docs.kalshi.com/asyncapi.yaml,
channel ``orderbook_delta``). The books are sampled every ``interval`` (``data.book_interval``
minutes, on the UTC clock) into rows of the ORDERBOOK table, bids only, as the REST orderbook
gives them; a book is the state after every message received at or before the sample time.

The rules, the same as a message-by-message replay (tests/book_replay.py):

* a segment starts with no book: a market's deltas count from its first snapshot in the
  segment, and its books are sampled up to the segment's last message (while it recorded);
* a snapshot replaces the market's book; a delta adds to one level, a level with no contracts
  left is not listed; a level a delta takes below zero is inconsistent: not listed, counted;
* per subscription (``sid``) ``seq`` counts up by one; a repeated or older ``seq`` is a
  duplicate, dropped; a jump is a gap: every book of the segment is unknown (no rows) until the
  market's next snapshot (the stream re-snapshots after a gap);
* where two segments sampled one market at one time (two recorders at once), the later one's
  book is kept.

Segments in the spec's current fields are parsed by pyarrow's JSON reader with an explicit
schema (as :mod:`kalshi_lab.data.fast_parse` reads the fetch's big files); one holding any
older field (integer cents) is read record by record, which also names the file, line and
field of anything malformed. Vectorised over all markets: level rows are sorted by (book epoch, side, price, arrival), a
cumulative sum gives each level's size after every message, and each sample time is found in
them by binary search; no Python loop runs per message or per row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_lab.data import fast_parse, tables
from kalshi_lab.data.stream_store import (
    Segment,
    closed_segments,
    iter_segment,
    open_segments,
    stream_dir,
)
from kalshi_lab.errors import DataError

logger = logging.getLogger(__name__)

#: prices are kept as integer ten-thousandths of a dollar (the API's subpenny grid), counts
#: as integer hundredths of a contract (fractional trading): sums of them are exact
PRICE_UNITS = 10_000
COUNT_UNITS = 100
SIDES = ("yes", "no")
#: data.book_interval's default: the sampling of books rebuilt from recordings, in minutes
DEFAULT_INTERVAL_MINUTES = 60
#: a snapshot side's levels: the spec's current field first, then older ones
_SNAPSHOT_SUFFIXES = ("_dollars_fp", "_dollars", "")


@dataclass(frozen=True)
class Stream:
    """Recorded book messages as columns, in arrival order (segment, then line).

    Messages: ``seg``, ``t`` (ns since the epoch), ``market`` (code into ``tickers``),
    ``snapshot``, ``sid`` and ``seq`` (-1 when absent). Levels, one row per snapshot level or
    delta: ``msg`` (the message's row), ``side`` (0 yes, 1 no), ``price`` (PRICE_UNITS) and
    ``qty`` (COUNT_UNITS; a delta's is signed).
    """

    tickers: list[str]
    seg: np.ndarray
    t: np.ndarray
    market: np.ndarray
    snapshot: np.ndarray
    sid: np.ndarray
    seq: np.ndarray
    msg: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray


class _Where:
    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line

    def error(self, name: str, what: str) -> DataError:
        return DataError(f"{self.path}:{self.line}: response.msg.{name}: {what}")


def _price(value: Any, where: _Where, name: str, *, cents: bool) -> int:
    """A price as PRICE_UNITS: a dollar string, or (``cents``: a legacy field) integer cents."""
    if isinstance(value, str):
        try:
            units = round(float(value) * PRICE_UNITS)
        except ValueError:
            raise where.error(name, f"not a decimal number: {value!r}") from None
    elif cents and isinstance(value, int) and not isinstance(value, bool):
        units = value * (PRICE_UNITS // 100)
    else:
        raise where.error(
            name, f"expected {'cents or ' if cents else ''}a dollar string, got {value!r}"
        )
    if not 0 <= units <= PRICE_UNITS:
        raise where.error(name, f"not a price between 0 and 1 dollars: {value!r}")
    return units


def _count(value: Any, where: _Where, name: str, *, signed: bool) -> int:
    """Contracts as COUNT_UNITS from a count string or an integer."""
    if isinstance(value, str):
        try:
            units = round(float(value) * COUNT_UNITS)
        except ValueError:
            raise where.error(name, f"not a decimal number: {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        units = value * COUNT_UNITS
    else:
        raise where.error(name, f"expected a count string or an integer, got {value!r}")
    if not signed and units < 0:
        raise where.error(name, f"not a count of contracts: {value!r}")
    return units


def _seq(message: dict[str, Any], key: str, where: _Where) -> int:
    value = message.get(key)
    if value is None:
        return -1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DataError(
            f"{where.path}:{where.line}: response.{key}: expected a count, got {value!r}"
        )
    return value


#: one segment's book messages, whichever reader parsed them: a row per message, its levels
#: (a snapshot's, yes then no in the message's order; a delta's one) as a list
_LEVEL = pa.struct([("side", pa.int8()), ("price", pa.int64()), ("qty", pa.int64())])
_MESSAGES = pa.schema(
    [
        ("received_at", pa.string()),
        ("ts_ms", pa.int64()),  # the exchange's time of a delta (null: a snapshot, a legacy delta)
        ("ticker", pa.string()),
        ("snapshot", pa.bool_()),
        ("sid", pa.int64()),
        ("seq", pa.int64()),
        ("levels", pa.list_(_LEVEL)),
    ]
)
_KINDS = ("orderbook_snapshot", "orderbook_delta")


def _by_record(segment: Segment) -> pa.Table:
    """The book messages of a segment, record by record: any shape the spec has had, and
    the judge of malformed input (file, line and field)."""
    columns: dict[str, list[Any]] = {name: [] for name in _MESSAGES.names}
    for line, record in iter_segment(segment):
        message = record["response"]
        kind = message.get("type")
        if kind not in _KINDS:
            continue
        path = segment.path
        where = _Where(path, line)
        body = message.get("msg")
        if not isinstance(body, dict):
            raise DataError(f"{path}:{line}: response.msg: expected an object, got {body!r}")
        ticker = body.get("market_ticker")
        if not isinstance(ticker, str) or not ticker:
            raise where.error("market_ticker", f"expected a non-empty string, got {ticker!r}")
        at = record.get("received_at")
        if not isinstance(at, str):
            raise DataError(f"{path}:{line}: received_at: expected an RFC 3339 time, got {at!r}")
        levels: list[dict[str, int]] = []
        if kind == "orderbook_snapshot":
            for s, name in enumerate(SIDES):
                fields = (name + suffix for suffix in _SNAPSHOT_SUFFIXES)
                field = next((f for f in fields if body.get(f) is not None), None)
                if field is None:
                    continue  # an empty side
                pairs, cents = body[field], field == name  # unsuffixed: integer cents
                if not isinstance(pairs, list):
                    raise where.error(field, f"expected a list, got {pairs!r}")
                for k, level in enumerate(pairs):
                    if not isinstance(level, list) or len(level) != 2:
                        raise where.error(
                            f"{field}[{k}]", f"expected [price, count], got {level!r}"
                        )
                    price = _price(level[0], where, f"{field}[{k}][0]", cents=cents)
                    qty = _count(level[1], where, f"{field}[{k}][1]", signed=False)
                    levels.append({"side": s, "price": price, "qty": qty})
        else:
            name = body.get("side")
            if name not in SIDES:
                raise where.error("side", f"expected yes or no, got {name!r}")
            if body.get("price_dollars") is not None:
                price = _price(body["price_dollars"], where, "price_dollars", cents=False)
            else:
                price = _price(body.get("price"), where, "price", cents=True)
            key = "delta_fp" if body.get("delta_fp") is not None else "delta"
            qty = _count(body.get(key), where, key, signed=True)
            levels.append({"side": SIDES.index(name), "price": price, "qty": qty})
        ts_ms = body.get("ts_ms")
        if ts_ms is not None and (not isinstance(ts_ms, int) or isinstance(ts_ms, bool)):
            raise where.error("ts_ms", f"expected milliseconds since the epoch, got {ts_ms!r}")
        columns["received_at"].append(at)
        columns["ts_ms"].append(ts_ms)
        columns["ticker"].append(ticker)
        columns["snapshot"].append(kind == "orderbook_snapshot")
        columns["sid"].append(_seq(message, "sid", where))
        columns["seq"].append(_seq(message, "seq", where))
        columns["levels"].append(levels)
    return pa.table(columns, schema=_MESSAGES)


_TEXT_LEVELS = pa.list_(pa.list_(pa.string()))
#: what the columnar reader reads: the spec's current fields; the older ones typed null, so a
#: value in any of them declines the segment to the record-by-record reader
_STREAM = pa.schema(
    [
        ("received_at", pa.string()),
        (
            "response",
            pa.struct(
                [
                    ("type", pa.string()),
                    ("sid", pa.int64()),
                    ("seq", pa.int64()),
                    (
                        "msg",
                        pa.struct(
                            [
                                ("market_ticker", pa.string()),
                                ("side", pa.string()),
                                ("price_dollars", pa.string()),
                                ("delta_fp", pa.string()),
                                ("ts_ms", pa.int64()),
                                ("yes_dollars_fp", _TEXT_LEVELS),
                                ("no_dollars_fp", _TEXT_LEVELS),
                                *[(n, pa.null()) for n in ("price", "delta", "yes", "no")],
                                *[(n, pa.null()) for n in ("yes_dollars", "no_dollars")],
                            ]
                        ),
                    ),
                ]
            ),
        ),
    ]
)


def _units(text: pa.Array, scale: int) -> np.ndarray:
    """Decimal strings as integers of 1/``scale`` (correctly rounded, as the by-record
    reader's ``round(float(text) * scale)``)."""
    return np.round(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False) * scale).astype(
        np.int64
    )


def _columnar_part(batch: pa.RecordBatch) -> pa.Table:
    """The book messages of one chunk of a segment (see :data:`_STREAM`); declines
    (fast_parse.Declined) whatever it cannot read exactly as :func:`_by_record` does."""
    response = batch.column("response")
    fast_parse._require(response.null_count == 0, "a record without a response")
    kind = pc.struct_field(response, "type")
    book = pc.fill_null(pc.is_in(kind, pa.array(_KINDS)), False)
    rows = pc.indices_nonzero(book)
    response = response.take(rows)
    msg = pc.struct_field(response, "msg")
    fast_parse._require(msg.null_count == 0, "a message without msg")
    ticker = pc.struct_field(msg, "market_ticker")
    fast_parse._require(ticker.null_count == 0, "market_ticker")
    fast_parse._require(fast_parse._all(pc.greater(pc.utf8_length(ticker), 0)), "empty ticker")
    received = batch.column("received_at").take(rows)
    fast_parse._require(received.null_count == 0, "received_at")
    snapshot = pc.equal(pc.struct_field(response, "type"), "orderbook_snapshot")
    is_snapshot = snapshot.to_numpy(zero_copy_only=False)
    n = len(rows)
    parent, side, price, qty = [], [], [], []
    for s, name in enumerate(SIDES):
        lists = pc.struct_field(msg, f"{name}_dollars_fp")
        pairs = pc.list_flatten(lists)
        fast_parse._require(pairs.null_count == 0, "a null level")
        fast_parse._require(
            fast_parse._all(pc.equal(pc.list_value_length(pairs), 2)), "a level not a pair"
        )
        text = pc.list_flatten(pairs)
        fast_parse._require(text.null_count == 0, "a null in a level")
        value = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False).reshape(-1, 2)
        p = np.round(value[:, 0] * PRICE_UNITS).astype(np.int64)
        q = np.round(value[:, 1] * COUNT_UNITS).astype(np.int64)
        fast_parse._require(bool(((p >= 0) & (p <= PRICE_UNITS) & (q >= 0)).all()), "a level")
        parent.append(pc.list_parent_indices(lists).to_numpy())
        side.append(np.full(len(p), s, np.int8))
        price.append(p)
        qty.append(q)
    deltas = np.flatnonzero(~is_snapshot)
    delta_msg = msg.take(pa.array(deltas))
    fields = {f: pc.struct_field(delta_msg, f) for f in ("side", "price_dollars", "delta_fp")}
    fast_parse._require(all(v.null_count == 0 for v in fields.values()), "a delta field")
    delta_side = fields["side"].to_numpy(zero_copy_only=False)
    fast_parse._require(bool(np.isin(delta_side, SIDES).all()), "side")
    p = _units(fields["price_dollars"], PRICE_UNITS)
    fast_parse._require(bool(((p >= 0) & (p <= PRICE_UNITS)).all()), "price_dollars")
    parent.append(deltas)
    side.append((delta_side == "no").astype(np.int8))
    price.append(p)
    qty.append(_units(fields["delta_fp"], COUNT_UNITS))
    # each message's levels together, a snapshot's yes before its no (stable: list order)
    owner = np.concatenate(parent)
    order = np.argsort(owner, kind="stable")
    offsets = np.append(0, np.cumsum(np.bincount(owner, minlength=n))).astype(np.int32)
    levels = pa.StructArray.from_arrays(
        [
            pa.array(np.concatenate(side)[order], pa.int8()),
            pa.array(np.concatenate(price)[order], pa.int64()),
            pa.array(np.concatenate(qty)[order], pa.int64()),
        ],
        fields=list(_LEVEL),
    )
    sid, seq = (pc.struct_field(response, k) for k in ("sid", "seq"))
    for values in (sid, seq):
        fast_parse._require(fast_parse._all(pc.greater_equal(values, 0)), "sid or seq")
    sid, seq = pc.fill_null(sid, -1), pc.fill_null(seq, -1)
    return pa.table(
        [
            received,
            pc.struct_field(msg, "ts_ms"),
            ticker,
            snapshot,
            sid,
            seq,
            pa.ListArray.from_arrays(offsets, levels),
        ],
        schema=_MESSAGES,
    )


def _segment_messages(segment: Segment) -> pa.Table:
    """A segment's book messages: the columnar reader, else (it declined) record by record."""
    try:
        parts = fast_parse._parts(segment.path, segment.records, _STREAM, _columnar_part)
        return pa.concat_tables([_MESSAGES.empty_table(), *parts])
    except fast_parse.Declined as why:
        logger.info(
            "%s: read record by record (the columnar reader declined: %s)", segment.path, why
        )
    return _by_record(segment)


def read_stream(recorded_dir: Path) -> Stream:
    """The book messages of every closed segment of ``recorded_dir``, parsed into columns (all
    of them in memory: :func:`rebuild_segments` reads one segment at a time).

    Trade messages are recorded too, but make no books: skipped here.
    """
    return parse_segments(closed_segments(recorded_dir), stream_dir(recorded_dir))


def parse_segments(segments: list[Segment], where: Path) -> Stream:
    """The book messages of ``segments`` (in ``where``), parsed into columns."""
    parts = [_segment_messages(s) for s in segments]
    table = pa.concat_tables([_MESSAGES.empty_table(), *parts])
    seg = np.repeat([s.number for s in segments], [p.num_rows for p in parts]).astype(np.int64)
    try:
        t = tables.utc_times(table.column("received_at").combine_chunks()).cast(pa.int64())
    except pa.ArrowInvalid as exc:
        raise DataError(f"{where}: received_at: not an RFC 3339 time ({exc})") from None
    tickers = table.column("ticker").combine_chunks().dictionary_encode()
    levels = table.column("levels").combine_chunks()
    flat = pc.list_flatten(levels)
    received_ns = t.to_numpy(zero_copy_only=False).astype(np.int64) * 1000  # us -> ns
    return Stream(
        tickers=tickers.dictionary.to_pylist(),
        seg=seg,
        t=exchange_times(seg, received_ns, table.column("ts_ms").to_pandas()),
        market=tickers.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        snapshot=table.column("snapshot").to_numpy().astype(bool),
        sid=table.column("sid").to_numpy().astype(np.int64),
        seq=table.column("seq").to_numpy().astype(np.int64),
        msg=pc.list_parent_indices(levels).to_numpy().astype(np.int64),
        side=pc.struct_field(flat, "side").to_numpy(zero_copy_only=False).astype(np.int8),
        price=pc.struct_field(flat, "price").to_numpy(zero_copy_only=False).astype(np.int64),
        qty=pc.struct_field(flat, "qty").to_numpy(zero_copy_only=False).astype(np.int64),
    )


def exchange_times(seg: np.ndarray, received_ns: np.ndarray, ts_ms: pd.Series) -> np.ndarray:
    """Each message's time on the exchange's clock, in ns.

    A delta carries the exchange's time (``ts_ms``); a snapshot carries none, so it is timed
    by its receipt, shifted by the receipt-to-exchange offset of the next timed message of its
    segment (else the last one; none in the segment: no shift). Against Kalshi the offset is
    the latency; against a server replaying history (the local server's moving clock) it is
    years, and the receipt time alone would put the books outside the data. The next, not the
    last: a server clock that jumped since would date the snapshot before the jump, making a
    book known earlier than it was; this way it is known from the first change after it.
    """
    # in integer ns: as floats, times of 1.7e18 ns lose the order of messages 100 ns apart
    offset = pd.Series(received_ns, dtype="Int64") - ts_ms.astype("Int64") * 1_000_000
    by_segment = offset.groupby(seg, sort=False)
    offset = by_segment.bfill().fillna(by_segment.ffill()).fillna(0)
    return received_ns - offset.to_numpy(dtype=np.int64)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Mask of the rows that start a run of equal ``keys`` (sorted)."""
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    return starts


def _cummax_by(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(group, sort=False).cummax().to_numpy()


#: the rebuilt rows: ORDERBOOK's columns but the source, and the segment each came from
REBUILT = pa.schema(
    [
        ("ticker", pa.string()),
        ("snapshot_ts", pa.timestamp("ns", tz="UTC")),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("count", pa.float64()),
        ("segment", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Rebuilt:
    """The rebuilt rows (REBUILT, by ticker, time, side and price) and what was dropped."""

    rows: pa.Table
    messages: int  # book messages read
    duplicates: int  # messages whose seq repeated an earlier one
    gaps: int  # seq jumps (books unknown until the next snapshot)
    before_snapshot: int  # deltas with no snapshot of their market before them in the segment
    negative: int  # sampled levels a delta had taken below zero (not listed)
    overlapping: int  # rows of a segment that a later one sampled at the same time too


def rebuild(stream: Stream, interval_ns: int) -> Rebuilt:
    """Sample every market's book at each multiple of ``interval_ns`` while it was recorded."""
    n = len(stream.seg)
    if n == 0:
        return Rebuilt(REBUILT.empty_table(), 0, 0, 0, 0, 0, 0)
    pos = np.arange(n)
    seg_start = _group_starts(stream.seg)
    # arrival times never run backwards within a segment (a clock step back is held level)
    t = _cummax_by(stream.seg, stream.t)
    # seq per (segment, sid): duplicates dropped, jumps are gaps
    has_seq = stream.seq >= 0
    channel = stream.seg * (stream.sid.max() + 2) + stream.sid + 1
    seen = np.where(has_seq, stream.seq, -1)
    prev = _cummax_by(channel, seen)
    prev = pd.Series(prev).groupby(channel, sort=False).shift(1, fill_value=-1).to_numpy()
    dup = has_seq & (prev >= 0) & (stream.seq <= prev)
    gap = has_seq & (prev >= 0) & (stream.seq > prev + 1)
    keep = ~dup
    # a reset (segment start, or a gap) makes every book of the segment unknown
    reset = (seg_start | gap) & keep
    last_reset = np.maximum.accumulate(np.where(reset, pos, -1))
    snap = stream.snapshot & keep
    last_snap = _cummax_by(stream.market, np.where(snap, pos, -1))
    valid = keep & (last_snap >= 0) & (last_snap >= last_reset)
    before_snapshot = int((keep & ~stream.snapshot & ~valid).sum())
    # where each book epoch (from a snapshot) ends: the market's next snapshot, the next reset
    # of the segment (exclusive: that message's time), else the segment's last message
    next_reset = np.minimum.accumulate(np.where(reset, pos, n)[::-1])[::-1]
    next_reset_after = np.append(next_reset[1:], n)
    snaps = np.flatnonzero(snap)
    snap_market = stream.market[snaps]
    following = pd.Series(snaps).groupby(snap_market, sort=False).shift(-1, fill_value=n)
    end_pos = np.minimum(following.to_numpy(), next_reset_after[snaps])
    seg_last_t = pd.Series(t).groupby(stream.seg, sort=False).transform("max").to_numpy()
    same_seg = end_pos < n
    same_seg[same_seg] = stream.seg[end_pos[same_seg]] == stream.seg[snaps[same_seg]]
    end_t = np.where(same_seg, t[np.minimum(end_pos, n - 1)], seg_last_t[snaps] + 1)
    epoch_end = np.zeros(n, dtype=np.int64)
    epoch_end[snaps] = end_t  # indexed by the snapshot's position
    # level rows of valid messages, each in its epoch (the position of its snapshot)
    rows = valid[stream.msg]
    msg = stream.msg[rows]
    epoch = last_snap[msg]
    side, price, qty = stream.side[rows], stream.price[rows], stream.qty[rows]
    # rows come in arrival order: a stable sort by level keeps it within each level
    level_key = (epoch * 2 + side) * (PRICE_UNITS + 1) + price
    order = np.argsort(level_key, kind="stable")
    msg, epoch, side, price, qty = msg[order], epoch[order], side[order], price[order], qty[order]
    level_key = level_key[order]
    first = _group_starts(level_key)
    group = np.cumsum(first) - 1
    total = np.cumsum(qty)
    g_first = np.flatnonzero(first)
    size = total - np.concatenate(([0], total[:-1]))[g_first][group]  # within each level
    row_t = t[msg]
    # the sample times of each level: from its first message to the end of its epoch
    lo = -(-row_t[g_first] // interval_ns)  # ceil
    hi = (epoch_end[epoch[g_first]] - 1) // interval_ns
    count = np.maximum(hi - lo + 1, 0)
    pairs = int(count.sum())
    pair_group = np.repeat(np.arange(len(g_first)), count)
    offsets = np.arange(pairs) - np.repeat(np.cumsum(count) - count, count)
    sample_t = (lo[pair_group] + offsets) * interval_ns
    # the last row of the level at or before each sample time: one binary search over
    # (group, time rank) keys
    # a time's rank, the number of row times at or before it, orders row and sample times
    # alike (no unique: hashing millions of times costs more than sorting them)
    times = np.sort(row_t)
    width = len(times) + 1
    row_key = group * width + np.searchsorted(times, row_t, side="right")
    pair_key = pair_group * width + np.searchsorted(times, sample_t, side="right")
    at = np.searchsorted(row_key, pair_key, side="right") - 1
    value = size[at]  # at >= the group's first row: the first row is at or before the sample
    negative = int((value < 0).sum())
    listed = np.flatnonzero(value > 0)
    g = g_first[pair_group[listed]]
    # tickers ranked by name: sorting by rank sorts by name
    names = np.asarray(stream.tickers, dtype=object)
    by_name = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[by_name] = np.arange(len(names))
    ticker = rank[stream.market[msg[g]]]
    when = sample_t[listed]
    order = _row_order(ticker, when, side[g], price[g], interval_ns)
    g, ticker, when, size_at = g[order], ticker[order], when[order], value[listed][order]
    segment = stream.seg[msg[g]]
    later = _later_wins(ticker, when, segment)
    out = pa.table(
        {
            "ticker": pa.DictionaryArray.from_arrays(
                ticker[later].astype(np.int32), pa.array(names[by_name], pa.string())
            ).cast(pa.string()),
            "snapshot_ts": pa.array(when[later], pa.timestamp("ns", tz="UTC")),
            "side": pa.DictionaryArray.from_arrays(
                side[g][later].astype(np.int32), pa.array(SIDES)
            ).cast(pa.string()),
            "price": price[g][later] / PRICE_UNITS,
            "count": size_at[later] / COUNT_UNITS,
            "segment": segment[later],
        },
        schema=REBUILT,
    )
    return Rebuilt(
        out, n, int(dup.sum()), int(gap.sum()), before_snapshot, negative, int((~later).sum())
    )


def _row_order(
    ticker: np.ndarray, when: np.ndarray, side: np.ndarray, price: np.ndarray, interval_ns: int
) -> np.ndarray:
    """The order of rows by (ticker rank, sample time, side, price in PRICE_UNITS): one int64
    key, one sort, not a four-key lexsort."""
    step = (when - when.min()) // interval_ns if len(when) else when
    key = ((ticker * (int(step.max(initial=0)) + 1) + step) * 2 + side) * (PRICE_UNITS + 1)
    return np.argsort(key + price, kind="stable")


def _later_wins(ticker: np.ndarray, when: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Mask of the rows to keep, sorted by (ticker, time): where two segments sampled one
    market at one time (two recorders at once), the later segment's rows."""
    if not len(ticker):
        return np.ones(0, dtype=bool)
    starts = np.flatnonzero(_group_starts(ticker) | _group_starts(when))
    latest = np.repeat(
        np.maximum.reduceat(segment, starts), np.diff(np.append(starts, len(ticker)))
    )
    return segment == latest


def rebuild_segments(recorded_dir: Path, interval_ns: int) -> Rebuilt:
    """:func:`rebuild` of :func:`read_stream`, the same rows and counts, holding one segment's
    messages at a time: a segment's books depend on no other segment (each starts afresh),
    so each is rebuilt alone, and only the rows are merged (the later of two segments that
    sampled one market at one time wins)."""
    # a segment's messages are dropped once its rows are built
    built = [
        rebuild(parse_segments([s], s.path), interval_ns) for s in closed_segments(recorded_dir)
    ]
    rows = pa.concat_tables([REBUILT.empty_table(), *(b.rows for b in built)])  # no copy
    counts = (sum(b.messages for b in built), sum(b.duplicates for b in built),
              sum(b.gaps for b in built), sum(b.before_snapshot for b in built),
              sum(b.negative for b in built))  # fmt: skip
    if not rows.num_rows:
        return Rebuilt(REBUILT.empty_table(), *counts, 0)
    # one dictionary for all chunks (the encoder's memo runs on), the last chunk's is whole
    names = rows.column("ticker").dictionary_encode()
    dictionary = names.chunks[-1].dictionary.to_pylist()
    rank = np.argsort(np.argsort(np.asarray(dictionary, dtype=object), kind="stable"))
    ticker = rank[np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in names.chunks])]
    when = rows.column("snapshot_ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    side = pc.equal(rows.column("side"), SIDES[1]).to_numpy(zero_copy_only=False)
    price = np.round(rows.column("price").to_numpy(zero_copy_only=False) * PRICE_UNITS)
    segment = rows.column("segment").to_numpy(zero_copy_only=False)
    order = _row_order(ticker, when, side.astype(np.int64), price.astype(np.int64), interval_ns)
    later = _later_wins(ticker[order], when[order], segment[order])
    return Rebuilt(rows.take(pa.array(order[later])), *counts, int((~later).sum()))


def recorded_orderbook(recorded_dir: Path, interval_minutes: int) -> pa.Table:
    """The ORDERBOOK rows (``source`` recorded) rebuilt from ``recorded_dir``'s closed segments.

    Where two segments sampled the same market at the same time (two recorders at once), the
    later segment's book is kept. Everything dropped or left out is logged with its count;
    the parquet stage places the rows in their markets' partitions, and counts those of
    markets it does not know.
    """
    left_open = open_segments(recorded_dir)
    if left_open:
        logger.warning(
            "%s: %d segments not closed, left out: %s (a recorder is writing them, or was "
            "killed: the next kalshi-lab record closes them)",
            stream_dir(recorded_dir),
            len(left_open),
            ", ".join(left_open),
        )
    closed = len(closed_segments(recorded_dir))
    built = rebuild_segments(recorded_dir, interval_minutes * 60 * 1_000_000_000)
    if built.messages == 0:
        logger.info(
            "%s: no recorded order books (%d closed segments, %d open ones left out): "
            "kalshi-lab record records them",
            stream_dir(recorded_dir),
            closed,
            len(left_open),
        )
        return tables.ORDERBOOK.empty_table()
    rows = built.rows
    logger.info(
        "%s: %d order-book rows of %d markets rebuilt every %d minutes from %d recorded "
        "messages in %d closed segments; left out: %d open segments, %d duplicate messages, "
        "%d deltas before their "
        "market's first snapshot, %d seq gaps (books unknown until the next snapshot), %d "
        "levels below zero, %d rows of an earlier overlapping segment",
        stream_dir(recorded_dir),
        rows.num_rows,
        len(pc.unique(rows.column("ticker"))),
        interval_minutes,
        built.messages,
        closed,
        len(left_open),
        built.duplicates,
        built.before_snapshot,
        built.gaps,
        built.negative,
        built.overlapping,
    )
    source = pa.DictionaryArray.from_arrays(
        np.ones(rows.num_rows, np.int8), pa.array(tables.BOOK_SOURCES)
    ).cast(pa.string())
    rows = rows.drop_columns(["segment"]).append_column("source", source)
    return rows.cast(tables.ORDERBOOK)
