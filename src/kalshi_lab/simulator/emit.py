"""Render a simulation as the recorded HTTP exchanges a fetcher would have made.

What is requested, and when (``received_at``):

* at the snapshot (the end of ``data.end``, when every market has settled): ``GET /series/{s}``
  per series, ``GET /events/{e}`` per event, ``GET /markets`` in cursor pages of 100,
  ``GET /series/{s}/markets/{t}/candlesticks`` per market and period, and
  ``GET /markets/trades?ticker=`` in cursor pages (newest first; pages may overlap by a trade);
* during the market's life: ``GET /markets/{t}/orderbook`` at each snapshot time.
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import orjson

from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.simulator import documents as docs
from kalshi_lab.simulator.paging import cursor, page_slices
from kalshi_lab.simulator.simulate import Simulation
from kalshi_lab.simulator.universe import SERIES

MARKETS_PAGE_LIMIT = 100
#: the API default; small enough that active markets need several pages
TRADES_PAGE_LIMIT = 100
#: share of trade-page boundaries at which a new trade shifts the next page by one
TRADE_PAGE_REPEAT_SHARE = 0.25
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


def write_listing(sim: Simulation, writer: RawWriter, market_docs: list[docs.Doc]) -> None:
    """Series, events (each with its markets) and the /markets pages."""
    u = sim.universe
    at = _at(u.snapshot)
    volume = docs.series_volume(sim)
    for i in np.unique(u.event_series).tolist():
        spec = SERIES[i]
        body = {"series": docs.series_doc(spec, int(volume[i]), u.t0)}
        writer.write("series", f"/series/{spec.ticker}", {"include_volume": True}, at, body)
    for e, rows in enumerate(_rows_of(u.market_event, u.n_events)):
        body = {"event": docs.event_doc(sim, e), "markets": market_docs[rows]}
        writer.write("events", f"/events/{u.event_ticker[e]}", {}, at, body)
    # the exchange lists the newest markets first
    newest_first = market_docs[::-1]
    slices = page_slices(len(newest_first), MARKETS_PAGE_LIMIT)
    params = {"limit": MARKETS_PAGE_LIMIT}
    _write_pages(sim, writer, "markets", "/markets", params, newest_first, slices)


def _write_pages(
    sim: Simulation,
    writer: RawWriter,
    kind: str,
    path: str,
    params: dict[str, object],
    items: list[docs.Doc] | list[orjson.Fragment],
    slices: list[tuple[int, int]],
) -> None:
    """One record per page; each request sends the cursor the previous response returned."""
    key = path.rsplit("/", 1)[1]
    scope = str(params.get("ticker", kind))
    at = _at(sim.universe.snapshot)
    sent: str | None = None
    for start, stop in slices:
        request = dict(params) if sent is None else {**params, "cursor": sent}
        sent = cursor(sim.syn.seed, scope, stop) if stop < len(items) else ""
        writer.write(kind, path, request, at, {key: items[start:stop], "cursor": sent})


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
    """Each market's tape, newest first, in cursor pages that sometimes repeat a trade."""
    u = sim.universe
    rng = sim.rng("pages")
    tape = docs.TradeTape(sim.trades)
    for m, rows in enumerate(_rows_of(sim.trades.market, len(u.ticker))):
        ticker = u.ticker[m]
        trades = tape.newest_first(ticker, rows)
        slices = page_slices(len(trades), TRADES_PAGE_LIMIT, TRADE_PAGE_REPEAT_SHARE, rng)
        params = {"ticker": ticker, "limit": TRADES_PAGE_LIMIT}
        _write_pages(sim, writer, "trades", "/markets/trades", params, trades, slices)


def write_books(sim: Simulation, writer: RawWriter) -> None:
    """Snapshots in chunks: rendering them all at once would hold every body in memory."""
    books = sim.books()
    params = {"depth": sim.syn.book_levels}
    paths = [f"/markets/{t}/orderbook" for t in sim.universe.ticker]
    markets, times = books.market.tolist(), books.ts.tolist()
    for first in range(0, len(markets), BOOK_CHUNK):
        rows = slice(first, min(first + BOOK_CHUNK, len(markets)))
        for i, body in enumerate(docs.book_docs(books, rows), start=first):
            writer.write("orderbooks", paths[markets[i]], params, _at(times[i]), body)


def write_all(sim: Simulation, writer: RawWriter) -> None:
    """Every kind, in the order a fetcher would discover them: listing first, then per market."""
    market_docs = [docs.market_doc(sim, m) for m in range(len(sim.universe.ticker))]
    write_listing(sim, writer, market_docs)
    write_candles(sim, writer, DAILY)
    if sim.data.hourly_candles:
        write_candles(sim, writer, HOURLY)
    write_trades(sim, writer)
    write_books(sim, writer)
