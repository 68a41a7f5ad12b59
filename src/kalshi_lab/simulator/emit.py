"""Render a simulation as the recorded HTTP exchanges a fetcher would have made.

What is requested, and when (``received_at``):

* at the snapshot (the end of ``data.end``, when every market has settled): ``GET /series/{s}``
  per series, ``GET /events/{e}`` per event, ``GET /markets`` in cursor pages of 100,
  ``GET /series/{s}/markets/{t}/candlesticks`` per market and period, and
  ``GET /markets/trades?ticker=`` in cursor pages (newest first; pages may overlap by a trade);
* during the market's life: ``GET /markets/{t}/orderbook`` at each snapshot time.

A raw partition's simulation may come in pieces (the chunks it was simulated in): every
writer here but :func:`write_series` and :func:`write_markets` renders one piece, and pieces
rendered in order give the records of the whole, in order.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator

import numpy as np
import orjson

from kalshi_lab.data.raw_store import RawWriter, envelope_head, format_ts
from kalshi_lab.simulator import documents as docs
from kalshi_lab.simulator.paging import TRADES_PAGE_LIMIT, cursor, page_slices
from kalshi_lab.simulator.simulate import Pages, Simulation
from kalshi_lab.simulator.universe import SERIES

MARKETS_PAGE_LIMIT = 100
DAILY, HOURLY = 24, 1
#: orderbook snapshots rendered at a time
BOOK_CHUNK = 20_000


@functools.lru_cache(maxsize=1 << 16)
def _at(unix_s: int) -> dt.datetime:
    """Cached: every market's snapshots share the same few times a day."""
    return dt.datetime.fromtimestamp(unix_s, dt.UTC)


def _rows_of(owner: np.ndarray, n_owners: int) -> list[slice]:
    """Per owner (market or event), the slice of an owner-sorted table holding its rows."""
    bounds = np.searchsorted(owner, np.arange(n_owners + 1)).tolist()
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def write_series(writer: RawWriter, series: int, volume: int, t0: int, snapshot: int) -> None:
    """The series ``series`` (an index into SERIES) with ``volume`` contracts traded."""
    spec = SERIES[series]
    body = {"series": docs.series_doc(spec, volume, t0)}
    writer.write("series", f"/series/{spec.ticker}", {"include_volume": True}, _at(snapshot), body)


def write_events(sim: Simulation, writer: RawWriter, market_docs: list[docs.Doc]) -> None:
    """Each event with its markets."""
    u = sim.universe
    at = _at(u.snapshot)
    for e, rows in enumerate(_rows_of(u.market_event, u.n_events)):
        body = {"event": docs.event_doc(sim, e), "markets": market_docs[rows]}
        writer.write("events", f"/events/{u.event_ticker[e]}", {}, at, body)


def write_markets(writer: RawWriter, market_docs: list[docs.Doc], seed: int, snapshot: int) -> None:
    """The /markets pages of ``market_docs`` (oldest first): the exchange lists the newest
    first; each request sends the cursor the previous response returned."""
    newest_first = market_docs[::-1]
    params = {"limit": MARKETS_PAGE_LIMIT}
    pages = page_slices(len(newest_first), MARKETS_PAGE_LIMIT)
    _write_pages(writer, "markets", "/markets", params, newest_first, pages, seed, snapshot)


def _page_requests(
    params: dict[str, object], pages: Pages, n_items: int, seed: int, scope: str
) -> Iterator[tuple[dict[str, object], slice, str]]:
    """(request params, items, cursor returned) of each page: each request sends the cursor
    the previous response returned."""
    sent: str | None = None
    for start, stop in pages:
        request = dict(params) if sent is None else {**params, "cursor": sent}
        sent = cursor(seed, scope, stop) if stop < n_items else ""
        yield request, slice(start, stop), sent


def _write_pages(
    writer: RawWriter,
    kind: str,
    path: str,
    params: dict[str, object],
    items: list[docs.Doc],
    pages: Pages,
    seed: int,
    snapshot: int,
) -> None:
    """One record per page."""
    key = path.rsplit("/", 1)[1]
    scope = str(params.get("ticker", kind))
    at = _at(snapshot)
    for request, page, sent in _page_requests(params, pages, len(items), seed, scope):
        writer.write(kind, path, request, at, {key: items[page], "cursor": sent})


def write_candles(sim: Simulation, writer: RawWriter, period_hours: int) -> None:
    """One request per market covering its whole life, as a backfill after settlement would."""
    u = sim.universe
    candles = sim.candles(period_hours)
    at = _at(u.snapshot)
    for m, rows in enumerate(_rows_of(candles.market, len(u.ticker))):
        e = int(u.market_event[m])
        series, ticker = SERIES[u.event_series[e]].ticker, u.ticker[m]
        params = {
            "start_ts": int(u.open_ts[e]),
            "end_ts": int(candles.end_ts[rows.stop - 1]),
            "period_interval": candles.period_minutes,
        }
        body = {"ticker": ticker, "candlesticks": docs.candle_docs(candles, rows)}
        writer.write(
            "candlesticks", f"/series/{series}/markets/{ticker}/candlesticks", params, at, body
        )


def write_trades(sim: Simulation, writer: RawWriter) -> None:
    """Each market's tape, newest first, in the cursor pages drawn for it: one record per
    page, rendered as a whole line (``RawWriter.write_lines``) around its trades' text, a third
    of the bytes the simulator writes."""
    u = sim.universe
    tape = docs.TradeTape(sim.trades)
    path = "/markets/trades"
    stamp = format_ts(_at(u.snapshot))
    for m, rows in enumerate(_rows_of(sim.trades.market, len(u.ticker))):
        ticker = u.ticker[m]
        trades = tape.newest_first(ticker, rows)
        params = {"ticker": ticker, "limit": TRADES_PAGE_LIMIT}
        pages = _page_requests(params, sim.trade_pages[m], len(trades), sim.syn.seed, ticker)
        lines = [
            f'{envelope_head(path, request)}"{stamp}","response":{{"trades":['
            f'{",".join(trades[page])}],"cursor":{orjson.dumps(sent).decode()}}}}}\n'
            for request, page, sent in pages
        ]
        writer.write_lines("trades", "".join(lines).encode(), len(lines))


def write_books(sim: Simulation, writer: RawWriter) -> None:
    """Snapshots in chunks, rendered as whole lines (:func:`docs.book_lines`): rendering them
    all at once would hold every line in memory."""
    books = sim.books
    params = {"depth": sim.syn.book_levels}
    heads = np.array(
        [envelope_head(f"/markets/{t}/orderbook", params) for t in sim.universe.ticker],
        dtype=object,
    )
    for first in range(0, len(books.ts), BOOK_CHUNK):
        rows = slice(first, min(first + BOOK_CHUNK, len(books.ts)))
        times, at = np.unique(books.ts[rows], return_inverse=True)
        stamps = np.array([format_ts(_at(t)) for t in times.tolist()], dtype=object)
        text = docs.book_lines(books, rows, heads[books.market[rows]], stamps[at])
        writer.write_lines("orderbooks", text.encode(), rows.stop - rows.start)


def write_piece(sim: Simulation, writer: RawWriter) -> list[docs.Doc]:
    """Every per-event kind of one piece but its hourly candles (which follow every market's
    daily ones: :func:`write_candles` with ``HOURLY``, piece by piece, once all are written), in
    the order a fetcher would discover them (events, then per market); returns its markets'
    documents, for the /markets pages."""
    market_docs = [docs.market_doc(sim, m) for m in range(len(sim.universe.ticker))]
    write_events(sim, writer, market_docs)
    write_candles(sim, writer, DAILY)
    write_trades(sim, writer)
    write_books(sim, writer)
    return market_docs
