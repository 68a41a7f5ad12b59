"""``KalshiClient``: Kalshi's Trade API v2, market data and portfolio, live and historical.

Two layers over one :class:`~kalshi_lab.client.transport.Transport`:

* ``*_responses`` generators yield the raw :class:`ApiResponse` pages, exactly what
  ``data/raw`` records; they choose the endpoint (live or ``/historical/*``, by
  ``GET /historical/cutoff``), split candle windows to the API's 5,000-period cap, and follow
  every cursor;
* ``get_*`` methods read those pages into typed records (:mod:`kalshi_lab.client.records`).

The seed's names are kept as the notebook face: :meth:`KalshiClient.get_series_information`
and :meth:`KalshiClient.get_markets_data`.

Since 2026, markets settled before ``market_settled_ts`` (and their candles) and trades created
before ``trades_created_ts`` are served only under ``/historical``: a client that asks only
the live endpoints silently loses the old, settled part of history (survivorship bias). This
one asks both wherever the cutoff says data may be.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, Literal

import pandas as pd
from pydantic import model_validator

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import ConflictError, NotFoundError
from kalshi_lab.client.records import (
    Balance,
    Candlestick,
    Event,
    Fill,
    HistoricalCutoff,
    Market,
    MarketPosition,
    Order,
    Orderbook,
    Record,
    Series,
    Trade,
    _normalise,
)
from kalshi_lab.client.transport import ApiResponse, Transport

PRODUCTION_URL = "https://api.elections.kalshi.com/trade-api/v2"
DEMO_URL = "https://demo-api.kalshi.co/trade-api/v2"

#: candle periods the API serves, in minutes
PERIODS = (1, 60, 1440)
#: the most candles one request may cover ("too many candlesticks requested: N > 5000")
MAX_CANDLES = 5000
#: page sizes: the API's maxima (/events allows 200)
MAX_LIMIT = 1000
EVENTS_LIMIT = 200

Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]


class Settlement(Record):
    """One settled market of the account (``GET /portfolio/settlements``, spec ``Settlement``).

    Counts are the contracts held of each side when it settled; ``revenue`` is what the
    settlement paid, in integer cents; costs and ``fee_cost`` are dollars. Legacy integer
    cents and counts read the same (see :mod:`kalshi_lab.client.records`).
    """

    ticker: str
    event_ticker: str | None = None
    market_result: str  # yes | no | scalar | void
    yes_count: Decimal = Decimal(0)
    no_count: Decimal = Decimal(0)
    yes_total_cost: Decimal | None = None
    no_total_cost: Decimal | None = None
    revenue: int = 0
    settled_time: dt.datetime
    fee_cost: Decimal | None = None
    value: int | None = None  # cents one YES contract paid

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(
            doc, ("yes_total_cost", "no_total_cost", "fee_cost"), ("yes_count", "no_count")
        )
        if isinstance(out, dict):
            out = {k: v for k, v in out.items() if v is not None}
        return out


def unix(ts: dt.datetime | pd.Timestamp | int) -> int:
    """Unix seconds of a UTC time (or of seconds already)."""
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is None:
        raise ValueError(f"times must be timezone-aware (UTC), got {ts!r}")
    return int(ts.timestamp())


def candle_windows(start_ts: int, end_ts: int, period_minutes: int) -> list[tuple[int, int]]:
    """``[start_ts, end_ts]`` cut into windows of at most MAX_CANDLES period ends each.

    The API returns the candles whose END lies in ``[start_ts, end_ts]``; consecutive windows
    share no second, so no candle comes back twice.
    """
    if period_minutes not in PERIODS:
        raise ValueError(f"period_interval must be one of {PERIODS}, got {period_minutes}")
    span = (MAX_CANDLES - 1) * period_minutes * 60
    out, a = [], start_ts
    while a <= end_ts:
        b = min(a + span, end_ts)
        out.append((a, b))
        a = b + 1
    return out


def _price_text(value: Decimal) -> str:
    if not Decimal("0") < value < Decimal("1"):
        raise ValueError(f"a limit price must be strictly between 0 and 1 dollar, got {value}")
    return f"{value:.4f}"


def _count_text(value: Decimal | int) -> str:
    value = Decimal(value)
    if value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"count must be a positive multiple of 0.01 contracts, got {value}")
    return f"{value:.2f}"


class KalshiClient:
    """Kalshi's Trade API v2. Public market data needs no key; portfolio calls sign requests.

    ``signer`` defaults to the environment's key (``KalshiSigner.from_env``), read the first
    time an authenticated endpoint is called, so a market-data user needs no key at all.
    ``clock`` (Unix seconds) stamps responses; a fixed one makes recordings reproducible.
    Safe to share between threads: requests are paced by one token bucket per direction.
    """

    def __init__(
        self,
        base_url: str = PRODUCTION_URL,
        *,
        signer: KalshiSigner | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 6,
        reads_per_s: float = 20.0,
        writes_per_s: float = 10.0,
        concurrency: int = 4,
        backoff_factor: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = Transport(
            base_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
            reads_per_s=reads_per_s,
            writes_per_s=writes_per_s,
            concurrency=concurrency,
            backoff_factor=backoff_factor,
            signer=signer,
            clock=clock,
        )
        self._cutoff: HistoricalCutoff | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> KalshiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.close()

    def _signed(self) -> dict[str, bool]:
        """Keyword arguments of an authenticated request; loads the key on first use."""
        if self.transport.signer is None:
            self.transport.signer = KalshiSigner.from_env()
        return {"signed": True}

    # --- the historical split ---------------------------------------------------------------

    def get_historical_cutoff(self) -> HistoricalCutoff:
        """``GET /historical/cutoff``, asked once per client (it moves slowly, forward only)."""
        with self._lock:
            if self._cutoff is None:
                body = self.transport.get("/historical/cutoff").body
                self._cutoff = HistoricalCutoff.model_validate(body)
            return self._cutoff

    # --- series and events ------------------------------------------------------------------

    def series_response(self, series_ticker: str) -> ApiResponse:
        return self._named("series", series_ticker, f"/series/{series_ticker}")

    def get_series_information(self, series_ticker: str) -> Series:
        """``GET /series/{series_ticker}``: title, category, fee type and multiplier."""
        return Series.model_validate(self.series_response(series_ticker).body["series"])

    def event_response(self, event_ticker: str) -> ApiResponse:
        return self._named("event", event_ticker, f"/events/{event_ticker}")

    def get_event(self, event_ticker: str) -> tuple[Event, list[Market]]:
        """``GET /events/{event_ticker}``: the event and its markets."""
        body = self.event_response(event_ticker).body
        markets = body.get("markets") or body["event"].get("markets") or []
        return Event.model_validate(body["event"]), [Market.model_validate(m) for m in markets]

    def _named(self, kind: str, name: str, path: str) -> ApiResponse:
        try:
            return self.transport.get(path)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{kind} {name} does not exist ({exc.what})", exc.status, exc.code
            ) from None

    # --- markets ----------------------------------------------------------------------------

    def market_responses(
        self,
        *,
        series_ticker: str | None = None,
        event_ticker: str | None = None,
        tickers: Iterable[str] | None = None,
        status: str | None = None,
        min_close_ts: int | None = None,
        historical: bool | None = None,
    ) -> Iterator[ApiResponse]:
        """Cursor pages of ``GET /markets`` and, where archived markets may match,
        ``GET /historical/markets`` (which filters only by series, event and tickers).

        ``historical`` None asks the archive whenever the query could reach it: no status, or
        a settled/closed one, and a ``min_close_ts`` before the cutoff.
        """
        names = ",".join(tickers) if tickers is not None else None
        if names == "":
            return
        common = {
            "series_ticker": series_ticker,
            "event_ticker": event_ticker,
            "tickers": names,
            "limit": MAX_LIMIT,
        }
        yield from self.transport.pages(
            "/markets", {**common, "status": status, "min_close_ts": min_close_ts}
        )
        if historical is None:
            reachable = status in (None, "closed", "settled")
            if reachable and min_close_ts is not None:
                settled = self.get_historical_cutoff().market_settled_ts
                reachable = min_close_ts < unix(settled)
            historical = reachable
        if historical:
            yield from self.transport.pages("/historical/markets", common)

    def get_markets(self, **filters: Any) -> Iterator[Market]:
        """Markets of :meth:`market_responses`, each once (live wins over a stale archive row).

        Archived markets are filtered here by ``status`` and ``min_close_ts``, which the
        historical endpoint does not take.
        """
        seen: set[str] = set()
        min_close = filters.get("min_close_ts")
        for page in self.market_responses(**filters):
            archived = page.path.startswith("/historical/")
            for doc in page.body.get("markets") or []:
                market = Market.model_validate(doc)
                if market.ticker in seen:
                    continue
                if archived and min_close is not None and unix(market.close_time) < min_close:
                    continue
                seen.add(market.ticker)
                yield market

    def get_markets_data(self, series_ticker: str, status: str | None = None) -> pd.DataFrame:
        """Every market of a series (all pages, live and archived) as one row each.

        The seed's notebook call. Prices are dollars (floats, for display and plotting; the
        records keep Decimals), times are UTC.
        """
        rows = [
            m.model_dump() for m in self.get_markets(series_ticker=series_ticker, status=status)
        ]
        frame = pd.DataFrame(rows, columns=list(Market.model_fields))
        decimals = [
            n for n, f in Market.model_fields.items() if f.annotation in (Decimal, Decimal | None)
        ]
        return frame.astype(dict.fromkeys(decimals, "float64"))

    def market_response(self, ticker: str) -> ApiResponse:
        """``GET /markets/{ticker}``, or the archive's copy once the market was archived."""
        try:
            return self.transport.get(f"/markets/{ticker}")
        except NotFoundError:
            pass
        try:
            return self.transport.get(f"/historical/markets/{ticker}")
        except NotFoundError as exc:
            raise NotFoundError(
                f"market {ticker} does not exist (live or historical)", exc.status, exc.code
            ) from None

    def get_market(self, ticker: str) -> Market:
        return Market.model_validate(self.market_response(ticker).body["market"])

    def orderbook_response(self, ticker: str, depth: int = 0) -> ApiResponse:
        """``GET /markets/{ticker}/orderbook``: the book NOW (empty once the market closed).

        Signed when a key is configured (the spec marks it authenticated, the docs do not).
        """
        signed = {"signed": True} if self.transport.signer is not None else {}
        params = {"depth": depth} if depth else {}
        try:
            return self.transport.get(f"/markets/{ticker}/orderbook", params, **signed)
        except NotFoundError as exc:
            raise NotFoundError(
                f"market {ticker} has no orderbook ({exc.what})", exc.status, exc.code
            ) from None

    def get_orderbook(self, ticker: str, depth: int = 0) -> Orderbook:
        return Orderbook.model_validate(self.orderbook_response(ticker, depth).body)

    # --- candlesticks -----------------------------------------------------------------------

    def candlestick_responses(
        self,
        series_ticker: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_minutes: int = 1440,
        *,
        settled_at: dt.datetime | None = None,
    ) -> Iterator[ApiResponse]:
        """Candles whose END lies in ``[start_ts, end_ts]``, one response per window.

        A market settled before the cutoff is archived: its candles come from
        ``/historical/markets/{ticker}/candlesticks`` (dollar strings under unsuffixed names).
        Without ``settled_at`` the live endpoint is tried first and a 404 moves to the archive.
        """
        if end_ts < start_ts:
            raise ValueError(f"end_ts {end_ts} is before start_ts {start_ts}")
        live = f"/series/{series_ticker}/markets/{ticker}/candlesticks"
        archive = f"/historical/markets/{ticker}/candlesticks"
        if settled_at is None:
            path = live
        else:
            cutoff = self.get_historical_cutoff().market_settled_ts
            path = archive if settled_at < cutoff else live
        for a, b in candle_windows(start_ts, end_ts, period_minutes):
            params = {"start_ts": a, "end_ts": b, "period_interval": period_minutes}
            try:
                yield self.transport.get(path, params)
            except NotFoundError as exc:
                if path == archive or settled_at is not None:
                    raise NotFoundError(
                        f"market {ticker} of series {series_ticker} has no candlesticks "
                        f"({exc.what})",
                        exc.status,
                        exc.code,
                    ) from None
                path = archive
                yield self.transport.get(path, params)

    def get_candlesticks(
        self,
        series_ticker: str,
        ticker: str,
        start: dt.datetime,
        end: dt.datetime,
        period_minutes: int = 1440,
        *,
        settled_at: dt.datetime | None = None,
    ) -> list[Candlestick]:
        pages = self.candlestick_responses(
            series_ticker, ticker, unix(start), unix(end), period_minutes, settled_at=settled_at
        )
        return [Candlestick.model_validate(c) for p in pages for c in p.body["candlesticks"]]

    # --- trades -----------------------------------------------------------------------------

    def trade_responses(
        self, ticker: str, min_ts: int | None = None, max_ts: int | None = None
    ) -> Iterator[ApiResponse]:
        """All cursor pages of a market's trades in ``[min_ts, max_ts]``, newest first.

        Trades created before the cutoff come from ``/historical/trades``, later ones from
        ``/markets/trades``; a range that straddles the cutoff asks both (the shared boundary
        second can repeat a trade: readers de-duplicate by ``trade_id``).
        """
        cutoff = unix(self.get_historical_cutoff().trades_created_ts)
        params = {"ticker": ticker, "limit": MAX_LIMIT}
        if max_ts is None or max_ts >= cutoff:
            live_min = cutoff if min_ts is None else max(min_ts, cutoff)
            live = {**params, "min_ts": live_min, "max_ts": max_ts}
            yield from self.transport.pages("/markets/trades", live)
        if min_ts is None or min_ts < cutoff:
            old_max = cutoff if max_ts is None else min(max_ts, cutoff)
            old = {**params, "min_ts": min_ts, "max_ts": old_max}
            yield from self.transport.pages("/historical/trades", old)

    def get_trades(
        self, ticker: str, min_ts: int | None = None, max_ts: int | None = None
    ) -> Iterator[Trade]:
        """Each trade once, newest first."""
        seen: set[str] = set()
        for page in self.trade_responses(ticker, min_ts, max_ts):
            for doc in page.body.get("trades") or []:
                trade = Trade.model_validate(doc)
                if trade.trade_id not in seen:
                    seen.add(trade.trade_id)
                    yield trade

    # --- portfolio (signed) -----------------------------------------------------------------

    def get_balance(self) -> Balance:
        """``GET /portfolio/balance``: available cash and portfolio value, in cents."""
        return Balance.model_validate(
            self.transport.get("/portfolio/balance", **self._signed()).body
        )

    def get_positions(
        self, ticker: str | None = None, event_ticker: str | None = None
    ) -> list[MarketPosition]:
        """Open market positions; ``position`` > 0 is YES contracts, < 0 NO contracts."""
        params = {"ticker": ticker, "event_ticker": event_ticker, "limit": MAX_LIMIT}
        pages = self.transport.pages("/portfolio/positions", params, **self._signed())
        return [MarketPosition.model_validate(p) for r in pages for p in r.body["market_positions"]]

    def get_orders(
        self, ticker: str | None = None, status: str | None = None, min_ts: int | None = None
    ) -> list[Order]:
        params = {"ticker": ticker, "status": status, "min_ts": min_ts, "limit": MAX_LIMIT}
        pages = self.transport.pages("/portfolio/orders", params, **self._signed())
        return [Order.model_validate(o) for r in pages for o in r.body["orders"]]

    def get_order(self, order_id: str) -> Order:
        body = self.transport.get(f"/portfolio/orders/{order_id}", **self._signed()).body
        return Order.model_validate(body["order"])

    def get_fills(
        self,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[Fill]:
        params = {
            "ticker": ticker,
            "order_id": order_id,
            "min_ts": min_ts,
            "max_ts": max_ts,
            "limit": MAX_LIMIT,
        }
        pages = self.transport.pages("/portfolio/fills", params, **self._signed())
        return [Fill.model_validate(f) for r in pages for f in r.body["fills"]]

    def get_settlements(
        self,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[Settlement]:
        """``GET /portfolio/settlements``: the account's settled markets, every page."""
        params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "min_ts": min_ts,
            "max_ts": max_ts,
            "limit": MAX_LIMIT,
        }
        pages = self.transport.pages("/portfolio/settlements", params, **self._signed())
        return [Settlement.model_validate(s) for r in pages for s in r.body["settlements"]]

    def create_order(
        self,
        ticker: str,
        side: Side,
        action: Action,
        count: Decimal | int,
        *,
        yes_price: Decimal | None = None,
        no_price: Decimal | None = None,
        time_in_force: str = "good_till_canceled",
        client_order_id: str | None = None,
        reduce_only: bool | None = None,
        post_only: bool | None = None,
        expiration_ts: int | None = None,
        buy_max_cost: int | None = None,
    ) -> Order:
        """``POST /portfolio/orders``: a limit order, placed at most once.

        Exactly one of ``yes_price`` / ``no_price`` (dollars). The request carries a
        ``client_order_id`` (a new UUID unless given), and every retry resends the same one;
        if the exchange answers 409 because an earlier attempt did arrive, the order placed
        then is read back and returned. So a timeout or a reset never places a second order.

        ``buy_max_cost`` (cents, buys only) caps what the order may cost; the spec says it
        makes the order fill-or-kill whatever ``time_in_force`` says.
        """
        if (yes_price is None) == (no_price is None):
            raise ValueError("give exactly one of yes_price and no_price")
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": side,
            "action": action,
            "count_fp": _count_text(count),
            "client_order_id": client_order_id or str(uuid.uuid4()),
            "time_in_force": time_in_force,
        }
        if yes_price is not None:
            body["yes_price_dollars"] = _price_text(yes_price)
        else:
            assert no_price is not None
            body["no_price_dollars"] = _price_text(no_price)
        optional = {
            "reduce_only": reduce_only,
            "post_only": post_only,
            "expiration_ts": expiration_ts,
            "buy_max_cost": buy_max_cost,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        try:
            response = self.transport.request(
                "POST", "/portfolio/orders", json_body=body, **self._signed()
            )
        except ConflictError:
            placed = self.find_order(ticker, body["client_order_id"])
            if placed is None:
                raise
            return placed
        return Order.model_validate(response.body["order"])

    def find_order(self, ticker: str, client_order_id: str) -> Order | None:
        """The order of ``ticker`` that carries ``client_order_id``, if the exchange has one."""
        for order in self.get_orders(ticker=ticker):
            if order.client_order_id == client_order_id:
                return order
        return None

    def cancel_order(self, order_id: str) -> Order:
        """``DELETE /portfolio/orders/{order_id}``: the order, zeroed (it is not deleted)."""
        response = self.transport.request(
            "DELETE", f"/portfolio/orders/{order_id}", **self._signed()
        )
        return Order.model_validate(response.body["order"])
