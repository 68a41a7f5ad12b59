"""The public market-data endpoints: series, events, markets, orderbooks, candlesticks, trades,
the exchange status and the ``/historical/*`` archive, with the API's paths, query parameters,
cursor pagination and JSON (shapes from Kalshi's OpenAPI spec v3.13).

Documents are served as recorded, except a market's status (and, for a document recorded after
``now``, its outcome and quotes), which are those at the server's clock ``now``, read once per
request: the clock may move (:mod:`~kalshi_lab.server.clock`), and a market opens, closes and
settles with it (:mod:`~kalshi_lab.server.lifecycle`). What the server decides itself: which markets, candles
and trades are archived (:class:`~kalshi_lab.server.historical.Cutoff`), and the orderbook at
its clock ``now`` (:class:`~kalshi_lab.server.books.BookStore`).

Listing orders: markets newest created first (as the exchange lists them), events and series by
ticker, trades newest first.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Any

from kalshi_lab.server.books import BookStore
from kalshi_lab.server.dataset import Dataset, MarketEntry
from kalshi_lab.server.errors import bad_request, not_found
from kalshi_lab.server.historical import Cutoff, historical_candle
from kalshi_lab.server.lifecycle import market_at, served_doc
from kalshi_lab.server.paging import CursorCodec, page
from kalshi_lab.server.query import Query
from kalshi_lab.server.routes import Reply, Request, Router, ok
from kalshi_lab.server.tapes import TradeTape
from kalshi_lab.server.units import unix_s

MARKETS_LIMIT = (100, 1000)  # (default, maximum)
EVENTS_LIMIT = (200, 200)
TRADES_LIMIT = (100, 1000)
PERIODS = (1, 60, 1440)
MAX_CANDLES = 5000
MARKET_STATUSES = ("unopened", "open", "paused", "closed", "settled")
EVENT_STATUSES = ("unopened", "open", "closed", "settled")
#: the /markets timestamp filters, which exclude each other, and the statuses each allows
TS_FILTERS = {
    "created": (("min_created_ts", "max_created_ts"), ("unopened", "open")),
    "close": (("min_close_ts", "max_close_ts"), ("closed",)),
    "settled": (("min_settled_ts", "max_settled_ts"), ("settled",)),
    "updated": (("min_updated_ts",), ()),
}
MARKET_FILTERS = (
    "event_ticker", "series_ticker", "tickers", "status", "mve_filter",
    *(name for names, _ in TS_FILTERS.values() for name in names),
)  # fmt: skip
EXCHANGE_STATUS = {
    "exchange_active": True,
    "trading_active": True,
    "exchange_estimated_resume_time": None,
}

MarketTest = Callable[[MarketEntry], bool]


def _event_status(statuses: Iterable[str]) -> str:
    """An event's status from its markets' (query vocabulary): open while any is, settled once
    all are."""
    statuses = set(statuses)
    for status in ("open", "paused", "unopened", "closed"):
        if status in statuses:
            return "open" if status == "paused" else status
    return "settled"


def _in_range(value: int | None, low: int | None, high: int | None) -> bool:
    """``low <= value <= high`` with open ends; a missing value fails any bound."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _cursor_after(codec: CursorCodec, q: Query, scope: str) -> Any:
    token = q.text("cursor")
    return None if token is None else codec.decode(token, scope)


def _cursor_text(codec: CursorCodec, scope: str, key: Any) -> str:
    return "" if key is None else codec.encode(scope, key)


class MarketData:
    """Handlers of the public endpoints over one dataset, cutoff and clock."""

    def __init__(
        self,
        dataset: Dataset,
        cutoff: Cutoff,
        books: BookStore,
        now: Callable[[], int],
        cursors: CursorCodec,
    ) -> None:
        self.dataset = dataset
        self.cutoff = cutoff
        self.books = books
        #: the server's time, the account caught up with it (what fell due is done)
        self.now = now
        self.cursors = cursors
        newest_first = sorted(dataset.markets.values(), key=lambda m: (-m.created_ts, m.ticker))
        #: a market's position in the listing order: its cursor key
        self._rank = {m.ticker: i for i, m in enumerate(newest_first)}
        self.live = [m for m in newest_first if not cutoff.archived(m)]
        self.archived = [m for m in newest_first if cutoff.archived(m)]
        self._by_event: dict[str, list[MarketEntry]] = {}
        for m in newest_first:
            self._by_event.setdefault(m.event_ticker, []).append(m)
        self.event_tickers = sorted(dataset.events)
        self.live_trades = TradeTape(t for t in dataset.trades if not cutoff.trade_archived(t))
        self.archived_trades = TradeTape(t for t in dataset.trades if cutoff.trade_archived(t))

    def register(self, router: Router) -> None:
        for method, template, kind, handler in (
            ("GET", "/exchange/status", "exchange_status", self.exchange_status),
            ("GET", "/historical/cutoff", "historical_cutoff", self.historical_cutoff),
            ("GET", "/series", "series_list", self.series_list),
            ("GET", "/series/{series_ticker}", "series", self.series),
            (
                "GET",
                "/series/{series_ticker}/markets/{ticker}/candlesticks",
                "candlesticks",
                self.candlesticks,
            ),
            ("GET", "/events", "events", self.events),
            ("GET", "/events/{event_ticker}", "event", self.event),
            ("GET", "/markets", "markets", self.markets),
            ("GET", "/markets/trades", "trades", self.trades),
            ("GET", "/markets/{ticker}", "market", self.market),
            ("GET", "/markets/{ticker}/orderbook", "orderbook", self.orderbook),
            ("GET", "/historical/markets", "historical_markets", self.historical_markets),
            ("GET", "/historical/markets/{ticker}", "historical_market", self.historical_market),
            (
                "GET",
                "/historical/markets/{ticker}/candlesticks",
                "historical_candlesticks",
                self.historical_candlesticks,
            ),
            ("GET", "/historical/trades", "historical_trades", self.historical_trades),
        ):
            router.add(method, template, kind, handler)

    # --- exchange and cutoff ----------------------------------------------------------------

    def exchange_status(self, request: Request) -> Reply:
        return ok(EXCHANGE_STATUS)

    def historical_cutoff(self, request: Request) -> Reply:
        return ok(self.cutoff.doc())

    def doc(self, market: MarketEntry, now: int) -> dict[str, Any]:
        """The market's document as served at ``now``."""
        at_now = market_at(market, now)
        book = self.books.book(market, now) if at_now.from_future else None
        return served_doc(market, at_now, book)

    # --- series -----------------------------------------------------------------------------

    def series(self, request: Request) -> Reply:
        ticker = request.params["series_ticker"]
        doc = self.dataset.series.get(ticker)
        if doc is None:
            raise not_found(f"series {ticker}")
        return ok({"series": doc})

    def series_list(self, request: Request) -> Reply:
        """``GET /series``: by ``category``, ``tags`` (any of a comma list), ``min_updated_ts``."""
        q = request.query
        category = q.text("category")
        tags = q.names("tags")
        min_updated = q.integer("min_updated_ts")
        out = []
        for ticker in sorted(self.dataset.series):
            doc = self.dataset.series[ticker]
            if category is not None and doc.get("category") != category:
                continue
            if tags is not None and not set(tags) & set(doc.get("tags") or []):
                continue
            if min_updated is not None and not _updated_after(doc, min_updated):
                continue
            out.append(doc)
        return ok({"series": out})

    # --- events -----------------------------------------------------------------------------

    def _live_markets_of(self, event_ticker: str, now: int) -> list[dict[str, Any]]:
        """An event's markets as the live API shows them: archived markets left out."""
        return [
            self.doc(m, now)
            for m in self._by_event.get(event_ticker, [])
            if not self.cutoff.archived(m)
        ]

    def event(self, request: Request) -> Reply:
        ticker = request.params["event_ticker"]
        doc = self.dataset.events.get(ticker)
        if doc is None:
            raise not_found(f"event {ticker}")
        markets = self._live_markets_of(ticker, self.now())
        if request.query.boolean("with_nested_markets"):
            doc = {**doc, "markets": markets}
        return ok({"event": doc, "markets": markets})

    def events(self, request: Request) -> Reply:
        """``GET /events``: series_ticker, status, min_close_ts, min_updated_ts,
        with_nested_markets, with_milestones, limit (<= 200), cursor."""
        q = request.query
        limit = q.limit(*EVENTS_LIMIT)
        series = q.text("series_ticker")
        status = q.choice("status", EVENT_STATUSES)
        min_close = q.integer("min_close_ts")
        min_updated = q.integer("min_updated_ts")
        nested = q.boolean("with_nested_markets")
        milestones = q.boolean("with_milestones")
        scope = q.scope("events", "series_ticker", "status", "min_close_ts", "min_updated_ts")
        after = _cursor_after(self.cursors, q, scope)
        now = self.now()
        chosen = []
        for ticker in self.event_tickers:
            doc = self.dataset.events[ticker]
            markets = self._by_event.get(ticker, [])
            if series is not None and doc.get("series_ticker") != series:
                continue
            shown = (market_at(m, now).query_status for m in markets)
            if status is not None and _event_status(shown) != status:
                continue
            if min_close is not None and not any(m.close_ts >= min_close for m in markets):
                continue
            if min_updated is not None and not _updated_after(doc, min_updated):
                continue
            chosen.append(ticker)
        tickers, last = page(chosen, lambda t: t, limit, after)
        docs = [
            {**self.dataset.events[t], "markets": self._live_markets_of(t, now)}
            if nested
            else self.dataset.events[t]
            for t in tickers
        ]
        body: dict[str, Any] = {"events": docs, "cursor": _cursor_text(self.cursors, scope, last)}
        if milestones:
            body["milestones"] = []  # recorded datasets hold no milestones
        return ok(body)

    # --- markets ----------------------------------------------------------------------------

    def _live_market(self, ticker: str) -> MarketEntry:
        market = self.dataset.markets.get(ticker)
        if market is None or self.cutoff.archived(market):
            raise not_found(f"market {ticker}")
        return market

    def _archived_market(self, ticker: str) -> MarketEntry:
        market = self.dataset.markets.get(ticker)
        if market is None or not self.cutoff.archived(market):
            raise not_found(f"historical market {ticker}")
        return market

    def market(self, request: Request) -> Reply:
        return ok({"market": self.doc(self._live_market(request.params["ticker"]), self.now())})

    def markets(self, request: Request) -> Reply:
        q = request.query
        limit = q.limit(*MARKETS_LIMIT)
        now = self.now()
        test = _market_test(q, now)
        scope = q.scope("markets", *MARKET_FILTERS)
        return self._market_page(self.live, test, limit, q, scope, now)

    def historical_markets(self, request: Request) -> Reply:
        """``GET /historical/markets``: tickers, event_ticker or series_ticker (one at a time)."""
        q = request.query
        limit = q.limit(*MARKETS_LIMIT)
        q.choice("mve_filter", ("exclude",))
        given = [n for n in ("tickers", "event_ticker", "series_ticker") if q.has(n)]
        if len(given) > 1:
            raise bad_request(f"filters are mutually exclusive: got {' and '.join(given)}")
        now = self.now()
        test = _market_test(q, now)
        scope = q.scope(
            "historical_markets", "tickers", "event_ticker", "series_ticker", "mve_filter"
        )
        return self._market_page(self.archived, test, limit, q, scope, now)

    def _market_page(
        self,
        markets: list[MarketEntry],
        test: MarketTest,
        limit: int,
        q: Query,
        scope: str,
        now: int,
    ) -> Reply:
        after = _cursor_after(self.cursors, q, scope)
        chosen = [m for m in markets if test(m)]
        items, last = page(chosen, lambda m: self._rank[m.ticker], limit, after)
        return ok(
            {
                "markets": [self.doc(m, now) for m in items],
                "cursor": _cursor_text(self.cursors, scope, last),
            }
        )

    def historical_market(self, request: Request) -> Reply:
        market = self._archived_market(request.params["ticker"])
        return ok({"market": self.doc(market, self.now())})

    # --- orderbook --------------------------------------------------------------------------

    def orderbook(self, request: Request) -> Reply:
        """The book at ``now``; ``depth`` 0 or negative is every level, 1..100 the best N."""
        market = self._live_market(request.params["ticker"])
        depth = request.query.integer("depth", maximum=100) or 0
        return ok(self.books.book(market, self.now()).doc(depth))

    # --- candlesticks -----------------------------------------------------------------------

    def candlesticks(self, request: Request) -> Reply:
        series, ticker = request.params["series_ticker"], request.params["ticker"]
        if series not in self.dataset.series:
            raise not_found(f"series {series}")
        market = self._live_market(ticker)
        if market.series_ticker != series:
            raise not_found(f"market {ticker} in series {series}")
        return ok({"ticker": ticker, "candlesticks": self._candles(market, request.query)})

    def historical_candlesticks(self, request: Request) -> Reply:
        market = self._archived_market(request.params["ticker"])
        candles = [historical_candle(c) for c in self._candles(market, request.query)]
        return ok({"ticker": market.ticker, "candlesticks": candles})

    def _candles(self, market: MarketEntry, q: Query) -> list[dict[str, Any]]:
        """Recorded candles whose END lies in ``[start_ts, end_ts]``, oldest first."""
        start, end = q.required_integer("start_ts"), q.required_integer("end_ts")
        period = q.required_integer("period_interval")
        if period not in PERIODS:
            raise bad_request(f"period_interval must be one of {PERIODS}, got {period}")
        if q.boolean("include_latest_before_start"):
            raise bad_request(
                "include_latest_before_start is not supported by the local server",
                code="unsupported_parameter",
            )
        if end < start:
            raise bad_request(f"end_ts {end} is before start_ts {start}")
        step = period * 60
        requested = max(0, end // step - (start + step - 1) // step + 1)  # period ends inside
        if requested > MAX_CANDLES:
            raise bad_request(f"too many candlesticks requested: {requested} > {MAX_CANDLES}")
        run = self.dataset.candles.get((market.ticker, period))
        if run is None:
            return []
        return run.docs[bisect_left(run.ends, start) : bisect_right(run.ends, end)]

    # --- trades -----------------------------------------------------------------------------

    def trades(self, request: Request) -> Reply:
        return self._trades(request.query, self.live_trades, "trades")

    def historical_trades(self, request: Request) -> Reply:
        return self._trades(request.query, self.archived_trades, "historical_trades")

    def _trades(self, q: Query, tape: TradeTape, endpoint: str) -> Reply:
        limit = q.limit(*TRADES_LIMIT)
        ticker = q.text("ticker")
        min_ts, max_ts = q.integer("min_ts"), q.integer("max_ts")
        scope = q.scope(endpoint, "ticker", "min_ts", "max_ts")
        after = _cursor_after(self.cursors, q, scope)
        if after is not None and not isinstance(after, int):
            raise bad_request("cursor does not belong to a trades query", code="invalid_cursor")
        docs, last = tape.page(ticker, min_ts, max_ts, limit, after)
        return ok({"trades": docs, "cursor": _cursor_text(self.cursors, scope, last)})


def _updated_after(doc: dict[str, Any], ts: int) -> bool:
    text = doc.get("last_updated_ts")
    try:
        return text is not None and unix_s(str(text)) >= ts
    except ValueError:
        return False


def _market_test(q: Query, now: int) -> MarketTest:
    """The filter of ``GET /markets`` (and the subset ``/historical/markets`` takes), with the
    spec's exclusions: one status at a time, one timestamp-filter family at a time, each only
    with the statuses it allows, ``min_updated_ts`` with nothing but ``mve_filter=exclude``.

    ``status`` matches the status served at the clock (``now``), in the query's vocabulary
    (``active`` is ``open``, ``finalized`` is ``settled``, ...), and a market not settled by
    then has no settlement time to filter on; time bounds are inclusive.
    """
    raw_status = q.text("status")
    if raw_status is not None and "," in raw_status:
        raise bad_request("only one status filter may be supplied at a time")
    status = q.choice("status", MARKET_STATUSES)
    event = q.single("event_ticker")
    series = q.text("series_ticker")
    tickers = q.names("tickers")
    mve = q.choice("mve_filter", ("only", "exclude"))
    families = [f for f, (names, _) in TS_FILTERS.items() if any(q.has(n) for n in names)]
    if len(families) > 1:
        given = [n for f in families for n in TS_FILTERS[f][0] if q.has(n)]
        raise bad_request(f"timestamp filters are mutually exclusive: got {', '.join(given)}")
    bounds: dict[str, tuple[int | None, int | None]] = {}
    if families:
        family = families[0]
        names, statuses = TS_FILTERS[family]
        if status is not None and status not in statuses:
            raise bad_request(f"status={status} cannot be combined with {' or '.join(names)}")
        others = [n for n in ("event_ticker", "series_ticker", "tickers", "status") if q.has(n)]
        if family == "updated" and (others or mve == "only"):
            extra = others + (["mve_filter=only"] if mve == "only" else [])
            raise bad_request(
                f"min_updated_ts cannot be combined with other filters: got {', '.join(extra)}"
            )
        low = q.integer(names[0])
        high = q.integer(names[1]) if len(names) > 1 else None
        bounds[family] = (low, high)
    wanted = None if tickers is None else set(tickers)

    def test(m: MarketEntry) -> bool:
        if event is not None and m.event_ticker != event:
            return False
        if series is not None and m.series_ticker != series:
            return False
        if wanted is not None and m.ticker not in wanted:
            return False
        shown = market_at(m, now)
        if status is not None and shown.query_status != status:
            return False
        if mve is not None and m.is_mve != (mve == "only"):
            return False
        times = {
            "created": m.created_ts,
            "close": m.close_ts,
            "settled": None if shown.from_future else m.settled_ts,
            "updated": m.updated_ts,
        }
        return all(_in_range(times[f], lo, hi) for f, (lo, hi) in bounds.items())

    return test
