"""Raw API documents -> typed tables (see :mod:`kalshi_lab.data.tables` for units).

Kalshi has sent the same values in three forms (shared API.md, section 0):

* current: prices as ``<name>_dollars`` strings (``"0.0700"``), counts as ``<name>_fp`` strings;
* legacy, in data recorded before 2026-03-12: ``<name>`` as integer cents and integer counts;
* historical candlesticks (``GET /historical/markets/{t}/candlesticks``): ``<name>`` again,
  but holding dollar and count strings (``"close": "0.0700"``, ``"volume": "12.00"``).

So an unsuffixed field is told apart by its JSON type: an integer is legacy cents, a string
is dollars. A ``*_dollars`` or ``*_fp`` field must hold a string, and a JSON float in an
unsuffixed price (cents or dollars?) is an error, not a guess. Prices must lie in [0, 1]
dollars, counts be finite and non-negative: a unit slip by 100 cannot pass unnoticed.

Two readers give the same tables. The columnar reader (:mod:`kalshi_lab.data.fast_parse`)
reads candlesticks, trades and orderbooks in the current format; the record-by-record reader
here reads the small files and every file the columnar one declines (legacy or historical
records, anything irregular). It is also the judge of malformed input: the first problem stops
the stage with the file, line and field, e.g. ``data/raw/trades.jsonl.gz:12:
response.trades[3].yes_price_dollars: not a decimal number: 'abc'``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_lab.data import fast_parse, structure, tables
from kalshi_lab.data.raw_store import (
    KINDS,
    ORDERBOOK_PATH,
    check_nonempty,
    check_records,
    iter_envelopes,
    raw_partitions,
    raw_path,
    read_manifest,
)
from kalshi_lab.errors import DataError

logger = logging.getLogger(__name__)

Doc = Mapping[str, Any]
T = TypeVar("T")
_BOOK_PATH = re.compile(ORDERBOOK_PATH)


class Loc:
    """Where an object sits: its raw file, its line (one record per line), its path inside."""

    __slots__ = ("file", "line", "path")

    def __init__(self, file: Path, line: int, path: tuple[str | int, ...] = ()) -> None:
        self.file, self.line, self.path = file, line, path

    def child(self, key: str | int) -> Loc:
        return Loc(self.file, self.line, (*self.path, key))

    def error(self, name: str | int, what: str) -> DataError:
        """``<file>:<line>: <field>: <what is wrong>``, the field as a path from the record."""
        steps = [f"[{k}]" if isinstance(k, int) else f".{k}" for k in (*self.path, name)]
        return DataError(f"{self.file}:{self.line}: {''.join(steps).lstrip('.')}: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decimal(value: str, loc: Loc, name: str | int) -> float:
    try:
        return float(value)
    except ValueError:
        raise loc.error(name, f"not a decimal number: {value!r}") from None


def _price(value: Any, loc: Loc, name: str | int, *, legacy: bool) -> float:
    """Dollars from a decimal string, or (``legacy``: an unsuffixed field) integer cents."""
    if isinstance(value, str):
        price = _decimal(value, loc, name)
    elif legacy and _is_int(value):
        price = value / 100
    else:
        expected = "integer cents or a dollar string" if legacy else "a dollar string"
        raise loc.error(name, f"expected {expected}, got {value!r}")
    if not 0.0 <= price <= 1.0:
        raise loc.error(name, f"not a price between 0 and 1 dollars: {value!r}")
    return price


def _contracts(value: Any, loc: Loc, name: str | int, *, legacy: bool) -> float:
    """Contracts from a decimal string, or (``legacy``: an unsuffixed field) an integer."""
    if isinstance(value, str):
        contracts = _decimal(value, loc, name)
    elif legacy and _is_int(value):
        contracts = float(value)
    else:
        expected = "an integer or a count string" if legacy else "a count string"
        raise loc.error(name, f"expected {expected}, got {value!r}")
    if not 0.0 <= contracts < math.inf:
        raise loc.error(name, f"not a count of contracts: {value!r}")
    return contracts


def dollars(doc: Doc, name: str, loc: Loc, *, required: bool = True) -> float | None:
    """A price in dollars from ``<name>_dollars``, else from the unsuffixed ``<name>``."""
    value = doc.get(f"{name}_dollars")
    if value is not None:
        return _price(value, loc, f"{name}_dollars", legacy=False)
    value = doc.get(name)
    if value is not None:
        return _price(value, loc, name, legacy=True)
    if required:
        raise loc.error(f"{name}_dollars", f"missing (and no legacy {name})")
    return None


def count(doc: Doc, name: str, loc: Loc, *, required: bool = True) -> float | None:
    """A contract count from ``<name>_fp``, else from the unsuffixed ``<name>``."""
    value = doc.get(f"{name}_fp")
    if value is not None:
        return _contracts(value, loc, f"{name}_fp", legacy=False)
    value = doc.get(name)
    if value is not None:
        return _contracts(value, loc, name, legacy=True)
    if required:
        raise loc.error(f"{name}_fp", f"missing (and no legacy {name})")
    return None


def text(doc: Doc, name: str, loc: Loc, *, required: bool = True) -> str | None:
    """A string; a required one must be present and not empty."""
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise loc.error(
            name, f"expected {'a non-empty' if required else 'a'} string, got {value!r}"
        )
    return value


def number(doc: Doc, name: str, loc: Loc) -> float | None:
    """An optional finite JSON number (a strike, a fee multiplier)."""
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise loc.error(name, f"expected a number, got {value!r}")
    return float(value)


def flag(doc: Doc, name: str, loc: Loc) -> bool:
    """An optional boolean, false when absent."""
    value = doc.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise loc.error(name, f"expected true or false, got {value!r}")
    return value


def _object(doc: Doc, name: str, loc: Loc, *, required: bool = True) -> Doc:
    """A nested object; an optional one that is absent or null reads as empty."""
    value = doc.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise loc.error(name, f"expected an object, got {value!r}")
    return value


def _list(doc: Doc, name: str, loc: Loc) -> list[Any]:
    value = doc.get(name)
    if not isinstance(value, list):
        raise loc.error(name, f"expected a list, got {value!r}")
    return value


def _records(raw_dir: Path, kind: str) -> Iterator[tuple[Loc, Doc]]:
    """(location of the record, record) for every line of one raw file; at its end, a count
    of records other than the manifest's is a DataError naming the file."""
    path = raw_path(raw_dir, kind)
    line = 0
    for line, record in iter_envelopes(path):
        yield Loc(path, line), record
    check_records(raw_dir, kind, line, read_manifest(raw_dir))


def _items(raw_dir: Path, kind: str, key: str, *, many: bool) -> Iterator[tuple[Loc, Doc]]:
    """(location, object) of ``response[key]``: each element of a list, or the one object."""
    for loc, record in _records(raw_dir, kind):
        response = loc.child("response")
        if not many:
            yield response.child(key), _object(record["response"], key, response)
            continue
        items = response.child(key)
        for j, item in enumerate(_list(record["response"], key, response)):
            if not isinstance(item, Mapping):
                raise items.error(j, f"expected an object, got {item!r}")
            yield items.child(j), item


def _utc(values: list[str | None], locs: list[Loc], name: str) -> pa.Array:
    """Times through the conversion both readers share; a rejected one is named where it is."""
    try:
        return tables.utc_times(pa.array(values, pa.string()))
    except pa.ArrowInvalid:
        for value, loc in zip(values, locs, strict=True):
            try:
                tables.utc_times(pa.array([value], pa.string()))
            except pa.ArrowInvalid:
                raise loc.error(name, f"not an RFC 3339 time with a zone: {value!r}") from None
        raise


def _unique(name: str, table: pa.Table, keys: list[str], *, keep: str) -> np.ndarray:
    """Mask of the rows to keep: of rows with equal ``keys``, the first or the last (``keep``).

    What is dropped is logged: nothing leaves a table silently.
    """
    rows = pa.array(np.arange(table.num_rows))
    aggregate = "min" if keep == "first" else "max"
    kept = (
        table.select(keys)
        .append_column("_row", rows)
        .group_by(keys, use_threads=False)
        .aggregate([("_row", aggregate)])
        .column(f"_row_{aggregate}")
    )
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[kept.to_numpy()] = True
    dropped = table.num_rows - len(kept)
    if dropped:
        logger.info(
            "%s: dropped %d of %d rows repeating the %s of another row (kept the %s)",
            name,
            dropped,
            table.num_rows,
            ", ".join(keys),
            keep,
        )
    return mask


def parse_series(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.SERIES.names}
    for loc, s in _items(raw_dir, "series", "series", many=False):
        rows["series_ticker"].append(text(s, "ticker", loc))
        for name in ("title", "category", "frequency"):
            rows[name].append(text(s, name, loc, required=False))
        rows["fee_type"].append(text(s, "fee_type", loc, required=False) or "quadratic")
        multiplier = number(s, "fee_multiplier", loc)
        rows["fee_multiplier"].append(1.0 if multiplier is None else multiplier)
    table = pa.table(rows, schema=tables.SERIES)
    return table.filter(_unique("series", table, ["series_ticker"], keep="first"))


def parse_events(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.EVENTS.names}
    for loc, e in _items(raw_dir, "events", "event", many=False):
        rows["event_ticker"].append(text(e, "event_ticker", loc))
        rows["series_ticker"].append(text(e, "series_ticker", loc))
        rows["title"].append(text(e, "title", loc, required=False))
        rows["mutually_exclusive"].append(flag(e, "mutually_exclusive", loc))
    table = pa.table(rows, schema=tables.EVENTS)
    return table.filter(_unique("events", table, ["event_ticker"], keep="first"))


#: time fields of a Market -> whether one is required
_MARKET_TIMES = {
    "open_time": True,
    "close_time": True,
    "settlement_ts": False,
    "latest_expiration_time": False,
}


def parse_markets(raw_dir: Path, events: pa.Table) -> pa.Table:
    """Markets from the /markets pages; the latest observation of a ticker wins.

    A Market document has no series ticker: it comes from the market's event in ``events``,
    as does the event's ``mutually_exclusive`` flag, which with the markets' strikes gives the
    event's ``structure`` (:func:`kalshi_lab.data.structure.classify`).
    """
    event_tickers = events.column("event_ticker").to_pylist()
    series_of = dict(zip(event_tickers, events.column("series_ticker").to_pylist(), strict=True))
    exclusive_of = dict(
        zip(event_tickers, events.column("mutually_exclusive").to_pylist(), strict=True)
    )
    rows: dict[str, list[Any]] = {
        n: [] for n in tables.MARKETS.names if n not in _MARKET_TIMES and n != "structure"
    }
    multivariate: list[bool] = []
    times: dict[str, list[str | None]] = {n: [] for n in _MARKET_TIMES}
    locs: list[Loc] = []
    for loc, m in _items(raw_dir, "markets", "markets", many=True):
        locs.append(loc)
        event = text(m, "event_ticker", loc)
        if event not in series_of:
            raise loc.error("event_ticker", f"{event!r} is not in the events data")
        rows["ticker"].append(text(m, "ticker", loc))
        rows["event_ticker"].append(event)
        rows["series_ticker"].append(series_of[event])
        rows["market_type"].append(text(m, "market_type", loc, required=False) or "binary")
        rows["yes_sub_title"].append(text(m, "yes_sub_title", loc, required=False))
        rows["status"].append(text(m, "status", loc))
        rows["result"].append(text(m, "result", loc, required=False) or None)
        for name, required in _MARKET_TIMES.items():
            times[name].append(text(m, name, loc, required=required))
        rows["can_close_early"].append(flag(m, "can_close_early", loc))
        rows["strike_type"].append(text(m, "strike_type", loc, required=False) or None)
        rows["floor_strike"].append(number(m, "floor_strike", loc))
        rows["cap_strike"].append(number(m, "cap_strike", loc))
        rows["last_price"].append(dollars(m, "last_price", loc, required=False))
        rows["volume"].append(count(m, "volume", loc, required=False))
        rows["open_interest"].append(count(m, "open_interest", loc, required=False))
        levels = text(m, "price_level_structure", loc, required=False)
        rows["price_level_structure"].append(levels or "linear_cent")
        multivariate.append(_multivariate(m, loc))
    columns = {**rows, **{name: _utc(values, locs, name) for name, values in times.items()}}
    columns["structure"] = [None] * len(locs)
    table = pa.table({n: columns[n] for n in tables.MARKETS.names}, schema=tables.MARKETS)
    keep = _unique("markets", table, ["ticker"], keep="last")
    table = table.filter(keep)
    kept = table.select(
        [
            "event_ticker",
            "market_type",
            "yes_sub_title",
            "strike_type",
            "floor_strike",
            "cap_strike",
        ]
    ).to_pandas()
    kept["multivariate"] = np.asarray(multivariate, dtype=bool)[keep]
    kept["mutually_exclusive"] = [exclusive_of[e] for e in kept["event_ticker"]]
    column = tables.MARKETS.get_field_index("structure")
    return table.set_column(
        column, "structure", pa.array(structure.classify(kept), type=pa.string())
    )


def _multivariate(m: Doc, loc: Loc) -> bool:
    """A combo market of a multivariate event collection (its payoff is a parlay's)."""
    collection = text(m, "mve_collection_ticker", loc, required=False)
    legs = m.get("mve_selected_legs")
    if legs is not None and not isinstance(legs, list):
        raise loc.error("mve_selected_legs", f"expected a list, got {legs!r}")
    return bool(collection) or bool(legs)


def _period(record: Doc, loc: Loc) -> int:
    """The ``period_interval`` the candles were requested with (recorded as sent: int or text)."""
    params = loc.child("params")
    value = _object(record, "params", loc).get("period_interval")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not _is_int(value) or value not in fast_parse.PERIODS:
        raise params.error(
            "period_interval", f"expected one of {fast_parse.PERIODS}, got {value!r}"
        )
    return value


def _candles_by_record(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.CANDLES.names}
    for loc, record in _records(raw_dir, "candlesticks"):
        response = loc.child("response")
        body = record["response"]
        ticker = text(body, "ticker", response)
        period = _period(record, loc)
        candles = response.child("candlesticks")
        for j, c in enumerate(_list(body, "candlesticks", response)):
            if not isinstance(c, Mapping):
                raise candles.error(j, f"expected an object, got {c!r}")
            at = candles.child(j)
            end = c.get("end_period_ts")
            if not _is_int(end) or not 0 <= end < tables.MAX_UNIX_S:
                raise at.error("end_period_ts", f"expected Unix seconds, got {end!r}")
            rows["ticker"].append(ticker)
            rows["period_minutes"].append(period)
            rows["end_period_ts"].append(end)
            price = _object(c, "price", at, required=False)
            for f in ("open", "high", "low", "close", "mean"):
                rows[f"price_{f}"].append(dollars(price, f, at.child("price"), required=False))
            for side in ("yes_bid", "yes_ask"):
                quote = _object(c, side, at, required=False)
                for f in ("open", "high", "low", "close"):
                    rows[f"{side}_{f}"].append(dollars(quote, f, at.child(side), required=False))
            rows["volume"].append(count(c, "volume", at))
            rows["open_interest"].append(count(c, "open_interest", at))
    rows["end_period_ts"] = tables.utc_from_unix(pa.array(rows["end_period_ts"], pa.int64()))
    return pa.table(rows, schema=tables.CANDLES)


def _trades_by_record(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.TRADES.names}
    locs: list[Loc] = []
    for loc, t in _items(raw_dir, "trades", "trades", many=True):
        locs.append(loc)
        rows["trade_id"].append(text(t, "trade_id", loc))
        rows["ticker"].append(text(t, "ticker", loc))
        rows["created_time"].append(text(t, "created_time", loc))
        rows["count"].append(count(t, "count", loc))
        yes = dollars(t, "yes_price", loc)
        no = dollars(t, "no_price", loc, required=False)
        rows["yes_price"].append(yes)
        rows["no_price"].append(1.0 - yes if no is None else no)
        side = t.get("taker_side")
        if side not in fast_parse.SIDES:
            raise loc.error("taker_side", f"expected yes or no, got {side!r}")
        rows["taker_side"].append(side)
    rows["created_time"] = _utc(rows["created_time"], locs, "created_time")
    return pa.table(rows, schema=tables.TRADES)


def _book_levels(book: Doc, side: str, loc: Loc) -> Iterator[tuple[float, float]]:
    """One side's bids as (dollars, contracts): ``<side>_dollars`` pairs, else legacy ``<side>``.

    A missing or null side is empty. In the unsuffixed (legacy) list an integer price is cents.
    """
    name, legacy = f"{side}_dollars", False
    if book.get(name) is None:
        name, legacy = side, True
    if book.get(name) is None:
        return
    levels = loc.child(name)
    for k, level in enumerate(_list(book, name, loc)):
        if not isinstance(level, list) or len(level) != 2:
            raise levels.error(k, f"expected a [price, count] pair, got {level!r}")
        at = levels.child(k)
        yield _price(level[0], at, 0, legacy=legacy), _contracts(level[1], at, 1, legacy=True)


def _orderbooks_by_record(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.ORDERBOOK.names}
    locs: list[Loc] = []
    for loc, record in _records(raw_dir, "orderbooks"):
        path = text(record, "path", loc)
        match = _BOOK_PATH.fullmatch(path)
        if match is None:
            raise loc.error("path", f"expected {ORDERBOOK_PATH}, got {path!r}")
        at = text(record, "received_at", loc)
        response = loc.child("response")
        body = record["response"]
        key = "orderbook_fp" if body.get("orderbook_fp") is not None else "orderbook"
        if body.get(key) is None:
            raise response.error("orderbook_fp", "missing (and no legacy orderbook)")
        book = _object(body, key, response)
        for side in fast_parse.SIDES:
            for price, size in _book_levels(book, side, response.child(key)):
                rows["ticker"].append(match["ticker"])
                rows["snapshot_ts"].append(at)
                rows["side"].append(side)
                rows["price"].append(price)
                rows["count"].append(size)
                rows["source"].append("snapshot")
                locs.append(loc)
    rows["snapshot_ts"] = _utc(rows["snapshot_ts"], locs, "received_at")
    return pa.table(rows, schema=tables.ORDERBOOK)


#: (receives the table's name, then its parts in order); see :func:`parse_into`
Sink = Callable[[str, Iterator[pa.Table]], None]


def _consume(
    raw_dir: Path,
    kind: str,
    columnar: Callable[[Path, int], Iterator[pa.Table]],
    by_record: Callable[[Path], pa.Table],
    fast: bool,
    consume: Callable[[Iterator[pa.Table]], T],
) -> T:
    """``consume`` the parts of one big file from the columnar reader (``fast``); if it
    declines the file, even part-way, ``consume`` the record-by-record table instead (so
    ``consume`` must start afresh on every call)."""
    if fast:
        try:
            records = read_manifest(raw_dir).records[kind]
            return consume(columnar(raw_path(raw_dir, kind), records))
        except fast_parse.Declined as why:
            logger.info(
                "%s: read record by record (the columnar reader declined: %s)",
                raw_path(raw_dir, kind),
                why,
            )
    return consume(iter([by_record(raw_dir)]))


def _whole(parts: Iterator[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables([schema.empty_table(), *parts])


def parse_candles(raw_dir: Path, *, fast: bool = True) -> pa.Table:
    """Candles, the last observation of a (ticker, period, end) winning."""
    table = _consume(
        raw_dir,
        "candlesticks",
        fast_parse.candle_parts,
        _candles_by_record,
        fast,
        lambda parts: _whole(parts, tables.CANDLES),
    )
    keys = ["ticker", "period_minutes", "end_period_ts"]
    return table.filter(_unique("candles", table, keys, keep="last"))


def parse_trades(raw_dir: Path, *, fast: bool = True) -> pa.Table:
    """Trades by ticker and time, de-duplicated by trade_id (cursor pages can overlap)."""
    table = _consume(
        raw_dir,
        "trades",
        fast_parse.trade_parts,
        _trades_by_record,
        fast,
        lambda parts: _whole(parts, tables.TRADES),
    )
    unique = _unique("trades", table, ["trade_id"], keep="first")
    # a stable sort of all rows, then the unique ones: one copy of the table instead of two
    order = pc.sort_indices(table, [("ticker", "ascending"), ("created_time", "ascending")])
    order = order.to_numpy()
    return table.take(order[unique[order]])


def check_raw(partitions: list[Path]) -> None:
    """Check the raw partitions' files before any is parsed: all six of each and its manifest
    exist, and no file lacks records its manifest counts (:func:`check_nonempty`).

    A kind may be empty in some partitions (a month without books) as long as another holds
    it: only a kind without a record in every partition, which the fetch did not declare it
    may leave empty, is an error naming the kind (for a flat directory, its file).
    """
    manifests = []
    for raw_dir in partitions:
        for kind in KINDS:
            raw_path(raw_dir, kind)
        manifests.append(read_manifest(raw_dir))
    somewhere = {kind for kind in KINDS if any(m.records[kind] for m in manifests)}
    if len(partitions) > 1:
        for kind in KINDS:
            if kind not in somewhere and not all(kind in m.may_be_empty for m in manifests):
                raise DataError(
                    f"{partitions[0].parent.parent}: no {kind} in any of its {len(partitions)} "
                    f"partitions (their manifests count none), and without {kind} there is "
                    "nothing to build on: widen the data selection in params.yaml and fetch again"
                )
    for raw_dir, manifest in zip(partitions, manifests, strict=True):
        allowed = dataclasses.replace(manifest, may_be_empty=manifest.may_be_empty | somewhere)
        for kind in KINDS:
            check_nonempty(raw_dir, kind, allowed)
        logger.info(
            "%s: the fetch wrote these records per file, each checked as it is read: %s",
            raw_dir,
            manifest.records,
        )


def parse_into(
    raw_dir: Path,
    sink: Sink,
    *,
    fast: bool = True,
    recorded: Callable[[set[str]], pa.Table] | None = None,
) -> None:
    """Parse every table of one raw directory (a partition: :func:`check_raw` checked its
    files) and hand it to ``sink(name, parts)``, one at a time.

    A table comes as parts (tables in its schema, rows in order), so that the biggest, the
    orderbook (a row per level of every snapshot, not de-duplicated), is never whole in
    memory. If the columnar reader declines the orderbook file part-way, ``sink`` is called
    for it again with the record-by-record parts: a sink must start a table afresh on every
    call. A file holding another number of records than the manifest's, and candles, trades
    or books of tickers that are not among the markets, are DataErrors. After the fetched
    snapshots come ``recorded(tickers)``, the recorded books of these markets, if given
    (:func:`kalshi_lab.data.book_rebuild.recorded_orderbook`).
    """
    raw_dir = Path(raw_dir)
    sink("series", iter([parse_series(raw_dir)]))
    events = parse_events(raw_dir)
    sink("events", iter([events]))
    markets = parse_markets(raw_dir, events)
    sink("markets", iter([markets]))
    known = set(markets.column("ticker").to_pylist())

    def checked(name: str, parts: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for part in parts:
            unknown = sorted(set(part.column("ticker").unique().to_pylist()) - known)
            if unknown:
                raise DataError(f"{name} for tickers not in the markets data: {unknown[:5]}")
            yield part

    sink("candles", checked("candles", iter([parse_candles(raw_dir, fast=fast)])))
    sink("trades", checked("trades", iter([parse_trades(raw_dir, fast=fast)])))
    books = tables.ORDERBOOK.empty_table() if recorded is None else recorded(known)
    _consume(
        raw_dir,
        "orderbooks",
        fast_parse.orderbook_parts,
        _orderbooks_by_record,
        fast,
        lambda parts: sink("orderbook", _then_recorded(checked("orderbook", parts), books)),
    )


BOOK_KEY = ["ticker", "snapshot_ts"]


def _then_recorded(fetched: Iterator[pa.Table], recorded: pa.Table) -> Iterator[pa.Table]:
    """The fetched snapshots' parts, then the recorded books of other (market, time) pairs.

    A recorded book sampled at the very time of a fetched snapshot of its market (the
    simulator's and many a scheduled fetch's snapshots fall on the hour, as samples do) would
    otherwise stand beside it under one key, and the quotes sum a key's repeated levels: the
    depth would double. The fetched snapshot, observed whole at that moment, is kept; the
    recorded rows dropped are counted in the log. Without recorded rows there is nothing to
    drop, and the fetched keys are not gathered (a group-by of every part's rows)."""
    if recorded.num_rows == 0:
        yield from fetched
        yield recorded
        return
    keys = []
    for part in fetched:
        keys.append(part.select(BOOK_KEY).group_by(BOOK_KEY).aggregate([]))
        yield part
    if not keys:
        yield recorded
        return
    seen = pa.concat_tables(keys).group_by(BOOK_KEY).aggregate([])
    row = pa.array(np.arange(recorded.num_rows, dtype=np.int64))
    numbered = recorded.select(BOOK_KEY).append_column("row", row)
    twice = numbered.join(seen, keys=BOOK_KEY, join_type="left semi").column("row")
    if len(twice) == 0:
        yield recorded
        return
    books = recorded.take(twice).select(BOOK_KEY).group_by(BOOK_KEY).aggregate([]).num_rows
    logger.warning(
        "orderbook: dropped %d rows of %d recorded books sampled at the time of a fetched "
        "snapshot of the same market (the fetched snapshot is kept)",
        len(twice),
        books,
    )
    yield recorded.filter(pc.invert(pc.is_in(row, value_set=twice)))


def parse_raw(raw_dir: Path, *, fast: bool = True) -> dict[str, pa.Table]:
    """Every typed table of ``raw_dir`` (flat or partitioned), whole, in the schemas of
    ``tables.TABLES`` (no recorded books: the parquet stage adds those); a partitioned
    directory's tables are its partitions' in order, the series de-duplicated across them."""
    partitions = raw_partitions(raw_dir)
    check_raw(partitions)
    out: dict[str, list[pa.Table]] = {name: [] for name in tables.TABLES}
    got: dict[str, pa.Table] = {}

    def keep(name: str, parts: Iterator[pa.Table]) -> None:
        got[name] = _whole(parts, tables.TABLES[name])  # a second call starts afresh

    for partition in partitions:
        parse_into(partition, keep, fast=fast)
        for name, table in got.items():
            out[name].append(table)
        got.clear()
    whole = {name: pa.concat_tables(parts) for name, parts in out.items()}
    series = whole["series"]
    whole["series"] = series.filter(unique_series(series))
    if whole["markets"].num_rows == 0:
        raise DataError(f"{raw_dir}: no markets in the raw data")
    return whole


def unique_series(series: pa.Table) -> np.ndarray:
    """Mask of the series rows to keep: every partition repeats its series, the first wins."""
    return _unique("series", series, ["series_ticker"], keep="first")
