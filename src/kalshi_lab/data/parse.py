"""Raw API documents -> typed tables (see :mod:`kalshi_lab.data.tables` for units).

Reads both of Kalshi's formats: the current one (``*_dollars`` price strings, ``*_fp`` count
strings) and the legacy one (integer cents and integer counts, removed from responses on
2026-03-12 but present in data recorded before). A document that has neither form of a
required field is malformed: the parser stops with a DataError naming the file and the field,
rather than writing a table with holes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kalshi_lab.data import tables
from kalshi_lab.data.raw_store import KINDS, iter_records
from kalshi_lab.errors import DataError

logger = logging.getLogger(__name__)

Doc = Mapping[str, Any]


def _where(kind: str, i: int) -> str:
    return f"{KINDS[kind]} record {i}"


def dollars(doc: Doc, name: str, where: str, *, required: bool = True) -> float | None:
    """A price in dollars from ``<name>_dollars`` (current) or ``<name>`` in cents (legacy)."""
    value = doc.get(f"{name}_dollars")
    if value is not None:
        return float(value)
    legacy = doc.get(name)
    if legacy is not None:
        return float(legacy) / 100.0
    if required:
        raise DataError(f"{where}: field {name}_dollars (or legacy {name}) is missing")
    return None


def count(doc: Doc, name: str, where: str, *, required: bool = True) -> float | None:
    """A contract count from ``<name>_fp`` (current) or integer ``<name>`` (legacy)."""
    value = doc.get(f"{name}_fp")
    if value is None:
        value = doc.get(name)
    if value is not None:
        return float(value)
    if required:
        raise DataError(f"{where}: field {name}_fp (or legacy {name}) is missing")
    return None


def field(doc: Doc, name: str, where: str) -> Any:
    if name not in doc or doc[name] is None:
        raise DataError(f"{where}: field {name} is missing")
    return doc[name]


def _items(kind: str, raw_dir: Path, key: str) -> Iterator[tuple[str, Doc, Doc]]:
    """(location, envelope, item) for every element of ``response[key]`` in one raw file."""
    for i, record in enumerate(iter_records(raw_dir, kind), start=1):
        body = record["response"]
        where = _where(kind, i)
        items = body.get(key)
        if items is None:
            raise DataError(f"{where}: response has no '{key}'")
        if isinstance(items, Mapping):
            items = [items]
        if not isinstance(items, list):
            raise DataError(f"{where}: '{key}' must be a list or an object")
        for item in items:
            if not isinstance(item, Mapping):
                raise DataError(f"{where}: an element of '{key}' is not an object")
            yield where, record, item


def _utc(values: Iterable[Any], where: str) -> pd.Series:
    try:
        return pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: unparseable timestamp ({exc})") from None


def _table(rows: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    frame = pd.DataFrame(rows, columns=schema.names)
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def parse_series(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.SERIES.names}
    for where, _, s in _items("series", raw_dir, "series"):
        rows["series_ticker"].append(field(s, "ticker", where))
        rows["title"].append(s.get("title"))
        rows["category"].append(s.get("category"))
        rows["frequency"].append(s.get("frequency"))
        rows["fee_type"].append(s.get("fee_type") or "quadratic")
        rows["fee_multiplier"].append(float(s.get("fee_multiplier", 1.0)))
    table = _table(rows, tables.SERIES)
    return _dedupe(table, "series_ticker")


def parse_events(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.EVENTS.names}
    for where, _, e in _items("events", raw_dir, "event"):
        rows["event_ticker"].append(field(e, "event_ticker", where))
        rows["series_ticker"].append(field(e, "series_ticker", where))
        rows["title"].append(e.get("title"))
        rows["mutually_exclusive"].append(bool(e.get("mutually_exclusive", False)))
    return _dedupe(_table(rows, tables.EVENTS), "event_ticker")


def parse_markets(raw_dir: Path, events: pa.Table) -> pa.Table:
    """Markets from the /markets pages; the latest observation of a ticker wins.

    A Market document has no series ticker: it comes from the market's event in ``events``.
    """
    series_of = dict(
        zip(
            events.column("event_ticker").to_pylist(),
            events.column("series_ticker").to_pylist(),
            strict=True,
        )
    )
    rows: dict[str, list[Any]] = {n: [] for n in tables.MARKETS.names}
    times: dict[str, list[Any]] = {
        "open_time": [],
        "close_time": [],
        "settlement_ts": [],
        "latest_expiration_time": [],
    }
    for where, _, m in _items("markets", raw_dir, "markets"):
        event = field(m, "event_ticker", where)
        rows["ticker"].append(field(m, "ticker", where))
        rows["event_ticker"].append(event)
        rows["series_ticker"].append(m.get("series_ticker") or series_of.get(event))
        rows["market_type"].append(m.get("market_type", "binary"))
        rows["yes_sub_title"].append(m.get("yes_sub_title"))
        rows["status"].append(field(m, "status", where))
        rows["result"].append(m.get("result") or None)
        times["open_time"].append(field(m, "open_time", where))
        times["close_time"].append(field(m, "close_time", where))
        times["settlement_ts"].append(m.get("settlement_ts"))
        times["latest_expiration_time"].append(m.get("latest_expiration_time"))
        rows["can_close_early"].append(bool(m.get("can_close_early", False)))
        rows["floor_strike"].append(m.get("floor_strike"))
        rows["cap_strike"].append(m.get("cap_strike"))
        rows["last_price"].append(dollars(m, "last_price", where, required=False))
        rows["volume"].append(count(m, "volume", where, required=False))
        rows["open_interest"].append(count(m, "open_interest", where, required=False))
        rows["price_level_structure"].append(m.get("price_level_structure", "linear_cent"))
    for name, values in times.items():
        rows[name] = _utc(values, KINDS["markets"])
    missing = sorted(
        {e for e, s in zip(rows["event_ticker"], rows["series_ticker"], strict=True) if s is None}
    )
    if missing:
        raise DataError(
            f"markets of events {missing[:5]} have no series: their events are not in the raw data"
        )
    return _dedupe(_table(rows, tables.MARKETS), "ticker", keep="last")


def parse_candles(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.CANDLES.names}
    for i, record in enumerate(iter_records(raw_dir, "candlesticks"), start=1):
        where = _where("candlesticks", i)
        body = record["response"]
        ticker = body.get("ticker") or record.get("params", {}).get("ticker")
        period = record.get("params", {}).get("period_interval")
        if ticker is None or period is None:
            raise DataError(
                f"{where}: needs the ticker and the period_interval it was requested with"
            )
        candles = body.get("candlesticks")
        if not isinstance(candles, list):
            raise DataError(f"{where}: response has no 'candlesticks' list")
        for c in candles:
            rows["ticker"].append(ticker)
            rows["period_minutes"].append(int(period))
            rows["end_period_ts"].append(int(field(c, "end_period_ts", where)))
            price = c.get("price") or {}
            for f in ("open", "high", "low", "close", "mean"):
                rows[f"price_{f}"].append(dollars(price, f, where, required=False))
            for side in ("yes_bid", "yes_ask"):
                quote = c.get(side) or {}
                for f in ("open", "high", "low", "close"):
                    rows[f"{side}_{f}"].append(dollars(quote, f, where, required=False))
            rows["volume"].append(count(c, "volume", where))
            rows["open_interest"].append(count(c, "open_interest", where))
    rows["end_period_ts"] = pd.to_datetime(
        np.asarray(rows["end_period_ts"], dtype="int64"), unit="s", utc=True
    )
    table = _table(rows, tables.CANDLES)
    return _dedupe(table, ["ticker", "period_minutes", "end_period_ts"], keep="last")


def parse_trades(raw_dir: Path) -> pa.Table:
    """Trades from the cursor pages, de-duplicated by trade_id (pages can overlap)."""
    rows: dict[str, list[Any]] = {n: [] for n in tables.TRADES.names}
    for where, _, t in _items("trades", raw_dir, "trades"):
        rows["trade_id"].append(str(field(t, "trade_id", where)))
        rows["ticker"].append(field(t, "ticker", where))
        rows["created_time"].append(field(t, "created_time", where))
        rows["count"].append(count(t, "count", where))
        yes = dollars(t, "yes_price", where)
        no = dollars(t, "no_price", where, required=False)
        rows["yes_price"].append(yes)
        rows["no_price"].append(1.0 - yes if no is None else no)
        side = field(t, "taker_side", where)
        if side not in ("yes", "no"):
            raise DataError(f"{where}: taker_side must be yes or no, got {side!r}")
        rows["taker_side"].append(side)
    rows["created_time"] = _utc(rows["created_time"], KINDS["trades"])
    table = _dedupe(_table(rows, tables.TRADES), "trade_id")
    return table.sort_by([("ticker", "ascending"), ("created_time", "ascending")])


def _book_side(book: Doc, side: str, where: str) -> list[tuple[float, float]]:
    """One side's bids as (dollars, contracts); current ``<side>_dollars`` or legacy cents."""
    levels = book.get(f"{side}_dollars")
    scale = 1.0
    if levels is None:
        levels, scale = book.get(side), 0.01
    if levels is None:
        return []
    try:
        return [(float(p) * scale, float(c)) for p, c in levels]
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: orderbook side {side} must be a list of [price, count] pairs"
        ) from None


def parse_orderbook(raw_dir: Path) -> pa.Table:
    rows: dict[str, list[Any]] = {n: [] for n in tables.ORDERBOOK.names}
    for i, record in enumerate(iter_records(raw_dir, "orderbooks"), start=1):
        where = _where("orderbooks", i)
        body = record["response"]
        book = body.get("orderbook_fp") or body.get("orderbook")
        if not isinstance(book, Mapping):
            raise DataError(
                f"{where}: response has no 'orderbook_fp' (or legacy 'orderbook') object"
            )
        path = str(field(record, "path", where))
        ticker = body.get("ticker") or path.rstrip("/").split("/")[-2]
        at = field(record, "received_at", where)
        for side in ("yes", "no"):
            for price, size in _book_side(book, side, where):
                rows["ticker"].append(ticker)
                rows["snapshot_ts"].append(at)
                rows["side"].append(side)
                rows["price"].append(price)
                rows["count"].append(size)
    rows["snapshot_ts"] = _utc(rows["snapshot_ts"], KINDS["orderbooks"])
    return _table(rows, tables.ORDERBOOK)


def _dedupe(table: pa.Table, keys: str | list[str], keep: str = "first") -> pa.Table:
    frame = table.to_pandas()
    before = len(frame)
    frame = frame.drop_duplicates(subset=keys, keep=keep)
    if len(frame) < before:
        logger.info("dropped %d duplicate rows by %s", before - len(frame), keys)
    return pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)


def parse_raw(raw_dir: Path) -> dict[str, pa.Table]:
    """Every typed table from one raw directory; no markets at all is a DataError."""
    raw_dir = Path(raw_dir)
    events = parse_events(raw_dir)
    out = {
        "series": parse_series(raw_dir),
        "events": events,
        "markets": parse_markets(raw_dir, events),
        "candles": parse_candles(raw_dir),
        "trades": parse_trades(raw_dir),
        "orderbook": parse_orderbook(raw_dir),
    }
    if out["markets"].num_rows == 0:
        raise DataError(f"{raw_dir}: no markets in the raw data")
    known = set(out["markets"].column("ticker").unique().to_pylist())
    for name in ("candles", "trades", "orderbook"):
        unknown = set(out[name].column("ticker").unique().to_pylist()) - known
        if unknown:
            raise DataError(f"{name} for tickers not in the markets data: {sorted(unknown)[:5]}")
    return out
