"""A raw dataset (``data/raw``, as :class:`~kalshi_lab.data.raw_store.RawWriter` writes it),
indexed for serving: the API's item documents, verbatim and de-duplicated.

* series by ticker, events by event_ticker, markets by ticker: the latest observation wins
  (``received_at``, then file order; markets seen in ``GET /events/{e}`` answers count too);
* trades by trade_id, newest first (the order ``GET /markets/trades`` pages them in);
* candles by (ticker, period, end_period_ts);
* orderbook snapshots per ticker by ``received_at`` (the snapshot time).

Documents are kept as recorded, in whichever format (current ``*_dollars``/``*_fp`` or legacy
integers) they were recorded; what the server derives from them (times, the query status, the
series of a market) is parsed once here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kalshi_lab.data.raw_store import KINDS, iter_records, raw_partitions
from kalshi_lab.errors import DataError
from kalshi_lab.server.units import unix_s, unix_us

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
T = TypeVar("T")

#: Market.status (response vocabulary, and the legacy one) -> the /markets ``status`` query value
QUERY_STATUS = {
    "initialized": "unopened",
    "unopened": "unopened",
    "active": "open",
    "open": "open",
    "inactive": "paused",
    "paused": "paused",
    "closed": "closed",
    "determined": "settled",
    "disputed": "settled",
    "amended": "settled",
    "finalized": "settled",
    "settled": "settled",
}
_TICKER_IN_PATH = {
    "orderbooks": re.compile(r"/markets/([^/]+)/orderbook$"),
    "candlesticks": re.compile(r"/markets/([^/]+)/candlesticks$"),
}


@dataclass(frozen=True)
class MarketEntry:
    """One market: its document and the fields the server filters, splits and trades on."""

    doc: Doc
    ticker: str
    event_ticker: str
    series_ticker: str
    status: str  # as recorded, in the query vocabulary: unopened, open, paused, closed, settled
    created_ts: int
    open_ts: int
    close_ts: int
    settled_ts: int | None
    updated_ts: int | None
    is_mve: bool
    #: when the document was received (``received_at``, seconds): the time it describes
    received_ts: int = 0

    def trading_at(self, now: int) -> bool:
        """Open for orders at ``now``: opened, not yet closed, not settled.

        Judged by the recorded times, not the recorded ``status``: a dataset recorded after
        settlement says ``finalized`` for a market that was open at the server's ``now``.
        """
        settled = self.settled_ts is not None and self.settled_ts <= now
        return self.open_ts <= now < self.close_ts and not settled


@dataclass(frozen=True)
class TradeEntry:
    us: int  # created_time in Unix microseconds
    ticker: str
    doc: Doc


@dataclass(frozen=True)
class CandleRun:
    """The candles of one (ticker, period), oldest first; ``ends[i]`` is ``docs[i]``'s end."""

    ends: list[int]
    docs: list[Doc]


@dataclass(frozen=True)
class BookHistory:
    """The recorded orderbook answers of one market, oldest first, by snapshot time."""

    times: list[int]
    docs: list[Doc]


@dataclass(frozen=True)
class Dataset:
    """Everything the server serves, immutable once loaded (portfolio state lives elsewhere)."""

    series: dict[str, Doc]
    events: dict[str, Doc]
    markets: dict[str, MarketEntry]
    candles: dict[tuple[str, int], CandleRun]
    trades: list[TradeEntry]
    books: dict[str, BookHistory]
    last_book_ts: int | None
    last_received_ts: int

    @classmethod
    def load(cls, raw_dir: Path) -> Dataset:
        """Index ``raw_dir``; a DataError names the file and the field that is unusable."""
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise DataError(f"raw directory {raw_dir} does not exist")
        loader = _Loader(raw_dir)
        dataset = loader.build()
        logger.info(
            "indexed %s: %d series, %d events, %d markets, %d trades, %d candle runs, %d books",
            raw_dir,
            len(dataset.series),
            len(dataset.events),
            len(dataset.markets),
            len(dataset.trades),
            len(dataset.candles),
            len(dataset.books),
        )
        return dataset


class _Loader:
    """Reads each kind once, keeping per key the latest observation."""

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = raw_dir
        self.last_received = 0

    def _records(self, kind: str) -> Iterator[tuple[str, int, Doc]]:
        """(where, received_at seconds, record) of every record of ``kind``."""
        for part in raw_partitions(self.raw_dir):  # a flat directory is its own partition
            for i, record in enumerate(iter_records(part, kind), start=1):
                where = f"{part / KINDS[kind]} record {i}"
                try:
                    received = unix_s(str(record["received_at"]))
                except (KeyError, ValueError):
                    raise DataError(f"{where}: received_at is missing or not a time") from None
                self.last_received = max(self.last_received, received)
                yield where, received, record

    def build(self) -> Dataset:
        series = self._latest("series", "series", "ticker")
        events: dict[str, tuple[int, Doc]] = {}
        market_docs: dict[str, tuple[int, tuple[str, Doc]]] = {}
        for where, received, record in self._records("events"):
            body = record["response"]
            event = _object(body.get("event"), where, "event")
            ticker = _text(event, "event_ticker", where)
            nested = event.get("markets") or []
            event = {k: v for k, v in event.items() if k != "markets"}
            _keep(events, ticker, received, event)
            for m in [*(body.get("markets") or []), *nested]:
                m = _object(m, where, "markets[]")
                _keep(market_docs, _text(m, "ticker", where), received, (where, m))
        for where, received, record in self._records("markets"):
            for m in record["response"].get("markets") or []:
                m = _object(m, where, "markets[]")
                _keep(market_docs, _text(m, "ticker", where), received, (where, m))
        event_docs = {k: doc for k, (_, doc) in events.items()}
        markets = {
            ticker: _market_entry(doc, where, event_docs, received)
            for ticker, (received, (where, doc)) in market_docs.items()
        }
        missing = sorted({m.series_ticker for m in markets.values()} - series.keys())
        if missing:
            raise DataError(
                f"{self.raw_dir}: markets of series {missing[:5]} have no series document "
                "(needed for fee settings)"
            )
        books, last_book = self._books()
        return Dataset(
            series=series,
            events=event_docs,
            markets=markets,
            candles=self._candles(),
            trades=self._trades(),
            books=books,
            last_book_ts=last_book,
            last_received_ts=self.last_received,
        )

    def _latest(self, kind: str, key: str, id_field: str) -> dict[str, Doc]:
        latest: dict[str, tuple[int, Doc]] = {}
        for where, received, record in self._records(kind):
            doc = _object(record["response"].get(key), where, key)
            _keep(latest, _text(doc, id_field, where), received, doc)
        return {k: doc for k, (_, doc) in latest.items()}

    def _trades(self) -> list[TradeEntry]:
        by_id: dict[str, TradeEntry] = {}
        for where, _, record in self._records("trades"):
            for t in record["response"].get("trades") or []:
                t = _object(t, where, "trades[]")
                trade_id = _text(t, "trade_id", where)
                created = _text(t, "created_time", where)
                try:
                    us = unix_us(created)
                except ValueError:
                    raise DataError(
                        f"{where}: trade {trade_id} created_time is not a time"
                    ) from None
                by_id[trade_id] = TradeEntry(us, _text(t, "ticker", where), t)
        return sorted(by_id.values(), key=lambda t: (-t.us, t.doc["trade_id"]))

    def _candles(self) -> dict[tuple[str, int], CandleRun]:
        runs: dict[tuple[str, int], dict[int, Doc]] = {}
        for where, _, record in self._records("candlesticks"):
            body = record["response"]
            ticker = body.get("ticker") or _path_ticker("candlesticks", record, where)
            try:
                period = int(record.get("params", {})["period_interval"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: params.period_interval is missing") from None
            run = runs.setdefault((ticker, period), {})
            for c in body.get("candlesticks") or []:
                c = _object(c, where, "candlesticks[]")
                end = c.get("end_period_ts")
                if not isinstance(end, int):
                    raise DataError(f"{where}: a candle's end_period_ts is not an integer")
                run[end] = c
        return {
            key: CandleRun(sorted(run), [run[end] for end in sorted(run)])
            for key, run in runs.items()
        }

    def _books(self) -> tuple[dict[str, BookHistory], int | None]:
        snapshots: dict[str, dict[int, Doc]] = {}
        for where, received, record in self._records("orderbooks"):
            ticker = _path_ticker("orderbooks", record, where)
            snapshots.setdefault(ticker, {})[received] = record["response"]
        books = {
            t: BookHistory(sorted(by_ts), [by_ts[ts] for ts in sorted(by_ts)])
            for t, by_ts in snapshots.items()
        }
        last = max((b.times[-1] for b in books.values()), default=None)
        return books, last


def _keep(store: dict[str, tuple[int, T]], key: str, received: int, value: T) -> None:
    """Keep ``value`` unless ``key`` was observed later; ties go to the record read last."""
    if key not in store or received >= store[key][0]:
        store[key] = (received, value)


def _object(value: Any, where: str, name: str) -> Doc:
    if not isinstance(value, dict):
        raise DataError(f"{where}: {name} is not a JSON object")
    return value


def _text(doc: Doc, name: str, where: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: field {name} is missing")
    return value


def _time(doc: Doc, name: str, where: str, *, required: bool = True) -> int | None:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise DataError(f"{where}: market {doc.get('ticker')} field {name} is missing")
        return None
    try:
        return unix_s(str(value))
    except ValueError:
        raise DataError(f"{where}: market {doc.get('ticker')} field {name} is not a time") from None


def _path_ticker(kind: str, record: Doc, where: str) -> str:
    match = _TICKER_IN_PATH[kind].search(str(record.get("path", "")))
    if match is None:
        raise DataError(f"{where}: the request path names no market ticker")
    return match.group(1)


def _market_entry(doc: Doc, where: str, events: dict[str, Doc], received: int) -> MarketEntry:
    ticker = _text(doc, "ticker", where)
    event_ticker = _text(doc, "event_ticker", where)
    series = doc.get("series_ticker") or events.get(event_ticker, {}).get("series_ticker")
    if not series:
        raise DataError(
            f"{where}: market {ticker} has no series: its event {event_ticker} is not in the "
            "raw data"
        )
    status = QUERY_STATUS.get(str(doc.get("status")))
    if status is None:
        raise DataError(f"{where}: market {ticker} has unknown status {doc.get('status')!r}")
    open_ts = _time(doc, "open_time", where)
    assert open_ts is not None
    close_ts = _time(doc, "close_time", where)
    assert close_ts is not None
    created = _time(doc, "created_time", where, required=False)
    return MarketEntry(
        doc=doc,
        ticker=ticker,
        event_ticker=event_ticker,
        series_ticker=str(series),
        status=status,
        created_ts=open_ts if created is None else created,
        open_ts=open_ts,
        close_ts=close_ts,
        settled_ts=_time(doc, "settlement_ts", where, required=False),
        updated_ts=_time(doc, "updated_time", where, required=False),
        is_mve=bool(doc.get("mve_collection_ticker")),
        received_ts=received,
    )
