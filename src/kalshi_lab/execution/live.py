"""``LiveKalshiExchange``: the bot's venue is Kalshi itself, through ``KalshiClient``.

What each call asks the API (reads are paced by the client's token buckets, ~20/s on the
Basic tier):

* :meth:`~LiveKalshiExchange.quotes`: ``GET /markets?tickers=`` (100 tickers a request) for
  status and hours, then ``GET /markets/{t}/orderbook?depth=1`` for each OPEN market only.
  The book is the source of truth for prices AND sizes, and it is what an order crosses (it
  shows depth other orders took); the market document's ``*_dollars`` quotes can lag it (the
  local server serves them as recorded). The batch ``GET /markets/orderbooks`` would save the
  per-market reads but is not served by the local server, so it could not be tested here.
  With a ``book_source`` (the bot's WebSocket feed) an open market's book comes from the
  stream while the stream vouches for it, and from that REST read otherwise.
  The first quote of an event also reads ``GET /events/{e}`` and its series (fee multiplier),
  cached for the exchange's life.
* :meth:`~LiveKalshiExchange.submit`: ``POST /portfolio/orders``, then, if anything filled,
  ``GET /portfolio/fills?order_id=`` for the exact fills.
* :meth:`~LiveKalshiExchange.fills` / :meth:`~LiveKalshiExchange.settlements`: one listing
  each from a watermark (venue time) that trails the newest item listed by ``overlap``; items
  are de-duplicated by id for the exchange's whole life, so none is reported twice.
* With a ``fill_source`` (the bot's WebSocket feed, :class:`FillSource`), :meth:`fills`,
  :meth:`resolve` and :meth:`conclude` also book the fills the stream told, up to their
  ``until`` (a fill stamped later waits for the call that reaches its time): a fill is booked
  from whichever source tells it first, and never twice. A fill is known by both of its ids:
  the listing shows ``fill_id`` and ``trade_id``, a stream message only ``trade_id``
  (AsyncAPI ``fillPayload``); Kalshi's spec gives both the same value, and the match is on
  either, so it holds if they ever differ. The listing stays on every call, because the
  stream cannot be trusted alone: ``fill`` messages carry no ``seq`` (a lost one leaves no
  gap to see) and Kalshi does not replay what a dropped connection missed. Its watermark
  moves with what the LISTING showed only, so a fill the stream told never moves it past one
  the stream lost. ``fills_first_seen`` counts the fills booked by the source that told
  them first.
* :meth:`~LiveKalshiExchange.resolve` (once per decision step), for the orders whose outcome
  the venue has not told in full (:mod:`kalshi_lab.execution.lifecycle`): the lookup by
  ``client_order_id`` (``GET /portfolio/orders?ticker=``) of an order whose POST's answer was
  lost, ``GET /portfolio/fills?order_id=`` of an order whose fills are counted but not all
  listed, and a cancel that failed, again.

Rules:

* A market is open when its status says it trades (``active``) AND ``open_time <= ts <
  close_time``: never quote a closed market as open (a stale status or a past close suffices).
* Limits go out as ``yes_price``/``no_price`` dollars of the order's side; ``ioc`` as
  ``immediate_or_cancel``, ``gtc`` as ``good_till_canceled``; sells as ``reduce_only`` (Kalshi
  would turn a sell of contracts not held into the other side, which the bot never means).
* A buy's budget (``max_cost_cents``) caps the COUNT sent: as many contracts as cost plus the
  worst-case fee at the limit allow. Kalshi's ``buy_max_cost`` is not sent: the spec makes it
  fill-or-kill, which would kill the partial fills an ``ioc`` order with a budget takes and
  stop a ``gtc`` order from resting.
* Every order is written to the ``journal`` (if any) before its POST and after each answer;
  every fill of one of its orders, by its ids and the source that told it, before it is
  reported.
* A 400 or 404 refusal (market closed, insufficient balance, reduce-only, unknown market)
  fills nothing: logged, counted in ``unfilled``, not raised; 401/403 raise. Any other failure
  (a timeout, a 5xx after the client's retries, a 409 whose lookup failed) leaves the outcome
  unknown: the order is looked up by its ``client_order_id``, ``lookup_attempts`` times, and
  is ``placed``, ``absent`` (never landed) or ``unknown`` (asked again at every step; its
  market blocked meanwhile). An order found under its ``client_order_id`` is ours only if its
  ticker, side, action, count and price are those sent: otherwise OrderMismatchError.
* ``submit`` returns the order's fills listed by then, one ``Fill`` per venue fill; every
  later one comes from ``fills`` or ``resolve``, once. A venue that counts more contracts
  filled than it lists is asked again at each step; after ``max_listing_lag`` steps it is
  ``overdue`` (the executor stops trading). Fills are mapped to their order by the venue's
  ``order_id`` (a Fill's own ``client_order_id`` is not relied on). Only fills and
  settlements at or after ``since`` (the exchange's start) are listed: earlier ones are
  already in the account, which the bot reconciles at start.
* ``dry_run``: each order is logged (INFO) and nothing is sent; reads still happen.
* A ``client_order_id`` already sent, by this exchange or by an earlier session (``restore``),
  is never sent again.

Contracts and cents are integers at this boundary: a fractional count or a sub-cent cost or
fee (fractional or sub-penny markets) is a DataError, never rounded.

``balance_cents`` is Kalshi's AVAILABLE balance: cash minus what resting buy orders hold, so
it equals the account's cash only while no buy order rests.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pandas as pd

from kalshi_lab.client import (
    AuthError,
    ConflictError,
    KalshiAPIError,
    KalshiClient,
    KalshiError,
    NotFoundError,
)
from kalshi_lab.client.client import Settlement
from kalshi_lab.client.records import Fill as ApiFill
from kalshi_lab.client.records import Market, MarketPosition, Order, Orderbook
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import RESULTS
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import BaseKalshiExchange, SettledMarket
from kalshi_lab.execution.fees import TAKER_FEE_RATE, FeeSchedule, quadratic_units
from kalshi_lab.execution.lifecycle import (
    ABSENT,
    CONFLICT,
    INTENT,
    PLACED,
    REFUSED,
    UNKNOWN,
    OrderJournal,
    OrderMismatchError,
    VenueOrder,
)
from kalshi_lab.execution.quotes import QUOTE_COLUMNS as INDEX_QUOTE_COLUMNS

logger = logging.getLogger(__name__)

#: Market.status values of a market that takes orders (``open``: the legacy vocabulary)
OPEN_STATUSES = frozenset({"active", "open"})
#: our time_in_force -> the API's
TIME_IN_FORCE = {"ioc": "immediate_or_cancel", "gtc": "good_till_canceled"}
#: tickers per GET /markets request (keeps the query string short)
MARKETS_PER_REQUEST = 100
#: the quote frame's columns, in SimulatedKalshiExchange.quotes' order
QUOTE_COLUMNS = [*INDEX_QUOTE_COLUMNS, "is_open", "taker_rate"]
#: how far the fills and settlements listings reach back before the newest item reported
OVERLAP = pd.Timedelta(minutes=5)
#: lookups by client_order_id of an order whose POST's answer was lost, before it is unknown
LOOKUP_ATTEMPTS = 5
#: decision steps a venue may count fills it does not list before that stops trading
MAX_LISTING_LAG = 3
#: the longest wait between two lookups
MAX_LOOKUP_WAIT_S = 8.0
#: HTTP statuses of a refusal: nothing was placed
REFUSALS = (400, 404)
#: the sources that tell a fill: the stream (``fill_source``) and the REST listings
STREAM, REST = "stream", "rest"
_HUNDRED = Decimal(100)


def _seconds(ts: pd.Timestamp) -> int:
    if not isinstance(ts, pd.Timestamp) or ts.tzinfo is None:
        raise ValueError(f"times must be tz-aware pandas Timestamps (UTC), got {ts!r}")
    return math.floor(ts.timestamp())


def _whole(value: Decimal, what: str) -> int:
    """An exact integer (contracts or cents) from a Decimal; DataError if it has a fraction."""
    if value != value.to_integral_value():
        raise DataError(f"{what} is {value}: not a whole number (fractional or sub-penny market)")
    return int(value)


def is_open(market: Market, ts: pd.Timestamp) -> bool:
    """The market takes orders at ``ts``: its status says it trades and ``ts`` is within
    ``[open_time, close_time)``."""
    return market.status in OPEN_STATUSES and pd.Timestamp(market.open_time) <= ts < pd.Timestamp(
        market.close_time
    )


def book_quote(book: Orderbook) -> dict[str, float]:
    """Best bids (float cents, NaN: none) and their sizes of an orderbook, and the asks they
    imply: a YES ask is 100 - the best NO bid, a NO ask 100 - the best YES bid."""
    out: dict[str, float] = {}
    for side, levels in (("yes", book.yes), ("no", book.no)):
        price, size = levels[-1] if levels else (None, None)  # best bid: the LAST level
        out[f"{side}_bid"] = np.nan if price is None else float(price * _HUNDRED)
        out[f"{side}_bid_size"] = np.nan if size is None else float(size)
    out["yes_ask"] = 100.0 - out["no_bid"]
    out["no_ask"] = 100.0 - out["yes_bid"]
    return out


def fill_from_api(fill: ApiFill, order_id: str, fallback_ts: pd.Timestamp) -> Fill:
    """One exchange fill as our Fill: cost = contracts x the price of the fill's side, fee =
    ``fee_cost``, both in exact cents; ``ts`` (and ``quote_ts``) its ``created_time``."""
    count = _whole(fill.count, f"fill {fill.fill_id or fill.trade_id} count")
    if count <= 0:
        raise DataError(f"fill {fill.fill_id or fill.trade_id} has count {fill.count}")
    price = fill.yes_price if fill.side == "yes" else fill.no_price
    if price is None:
        price = 1 - fill.yes_price
    what = f"fill {fill.fill_id or fill.trade_id}"
    cost = _whole(fill.count * price * _HUNDRED, f"{what} cost in cents")
    fee = _whole((fill.fee_cost or Decimal(0)) * _HUNDRED, f"{what} fee in cents")
    ts = fallback_ts if fill.created_time is None else pd.Timestamp(fill.created_time)
    return Fill(
        ts=ts,
        quote_ts=ts,
        ticker=fill.ticker,
        side=fill.side,
        action=fill.action,
        count=count,
        cost_cents=cost,
        fee_cents=fee,
        source="book",
        order_id=order_id,
        liquidity="maker" if fill.is_taker is False else "taker",
    )


def positions_from_api(records: Iterable[MarketPosition]) -> dict[str, tuple[str, int]]:
    """ticker -> (side, contracts) of the nonzero positions: > 0 YES, < 0 NO."""
    out = {}
    for p in records:
        if p.position == 0:
            continue
        contracts = _whole(abs(p.position), f"position in {p.ticker}")
        out[p.ticker] = ("yes" if p.position > 0 else "no", contracts)
    return out


def settled_market(settlement: Settlement) -> SettledMarket | None:
    """The settlement as the account books it, None when nothing was held; a result the
    account cannot pay out (scalar) is a DataError."""
    if settlement.yes_count == 0 and settlement.no_count == 0:
        return None
    if settlement.market_result not in RESULTS:
        raise DataError(
            f"market {settlement.ticker} settled {settlement.market_result!r}: the account "
            f"books only {RESULTS}"
        )
    return SettledMarket(
        settlement.ticker, settlement.market_result, pd.Timestamp(settlement.settled_time)
    )


class BookSource(Protocol):
    """Live books kept elsewhere (the bot's WebSocket feed): ``book`` is None when it has no
    sound book of the market now, and the exchange reads REST instead."""

    def watch(self, tickers: Sequence[str]) -> None: ...

    def book(self, ticker: str) -> Orderbook | None: ...


class FillSource(Protocol):
    """The account's fills as a stream tells them (the bot's WebSocket feed), in any number
    and order, duplicates included: ``take_fills`` hands over those received since its last
    call, in the form the REST listing gives them."""

    def take_fills(self) -> list[ApiFill]: ...


class LiveKalshiExchange(BaseKalshiExchange):
    """Kalshi through ``client`` (see the module docstring for what each call asks).

    ``since`` (default: now) is where the reported fills and settlements begin; ``overlap``
    how far the listings' watermark trails the newest item seen (late-listed items);
    ``journal`` where each order's life is written; ``lookup_attempts`` and
    ``lookup_backoff_s`` the budget of the lookups of an order whose answer was lost;
    ``max_listing_lag`` the steps a venue may count fills it does not list;
    ``book_source`` live books to quote from before asking REST (:class:`BookSource`);
    ``fill_source`` fills told by a stream, booked as they come (:class:`FillSource`).
    """

    def __init__(
        self,
        client: KalshiClient,
        *,
        dry_run: bool = False,
        since: pd.Timestamp | None = None,
        taker_fee_rate: float = TAKER_FEE_RATE,
        overlap: pd.Timedelta = OVERLAP,
        journal: OrderJournal | None = None,
        lookup_attempts: int = LOOKUP_ATTEMPTS,
        lookup_backoff_s: float = 0.5,
        max_listing_lag: int = MAX_LISTING_LAG,
        book_source: BookSource | None = None,
        fill_source: FillSource | None = None,
    ) -> None:
        if lookup_attempts < 1:
            raise ValueError(f"lookup_attempts must be >= 1, got {lookup_attempts}")
        self.client = client
        self.dry_run = dry_run
        self.taker_fee_rate = taker_fee_rate
        self.journal = journal
        self.lookup_attempts = lookup_attempts
        self.lookup_backoff_s = lookup_backoff_s
        self.max_listing_lag = max_listing_lag
        self._since_s = _seconds(pd.Timestamp.now(tz="UTC") if since is None else since)
        self._overlap_s = math.ceil(overlap.total_seconds())
        #: every order this exchange was asked to place (or was given by ``restore``)
        self.orders: dict[str, VenueOrder] = {}
        self._client_ids: dict[str, str] = {}  # the venue's order_id -> client_order_id
        self._used_ids: set[str] = set()  # client_order_ids of earlier sessions
        #: every id (fill_id, trade_id) of every fill reported or taken as history
        self._fill_ids: set[str] = set()
        #: the venue time (s) of each fill the REST listings showed, by id: their watermark
        self._listed_s: dict[str, int] = {}
        self._fills_from_s = self._since_s
        self.fill_source = fill_source
        #: fills the stream told, not booked yet (stamped after the last ``until``)
        self._stream_waiting: list[ApiFill] = []
        #: fills booked, by the source that told them first: STREAM or REST
        self.fills_first_seen: Counter[str] = Counter()
        self._reported_settlements: dict[tuple[str, str], int] = {}
        self._settlements_from_s = self._since_s
        self._series_of_event: dict[str, str] = {}
        self._schedules: dict[str, FeeSchedule] = {}  # by series
        #: why sends filled nothing, by reason (as SimulatedKalshiExchange.unfilled)
        self.unfilled: Counter[str] = Counter()
        self.book_source = book_source
        #: books read per source: "stream" (book_source) or "rest"
        self.book_reads: Counter[str] = Counter()

    def restore(
        self,
        orders: Iterable[VenueOrder],
        fill_ids: Iterable[str] = (),
        settlements: Iterable[tuple[str, str]] = (),
        used_ids: Iterable[str] = (),
    ) -> None:
        """Continue from a journal: its orders (``listed`` counted from its fills), the fills
        and settlements it holds (never reported again) and the client_order_ids earlier
        sessions used (never sent again)."""
        for venue in orders:
            self.orders[venue.client_order_id] = venue
            if venue.order_id is not None:
                self._client_ids[venue.order_id] = venue.client_order_id
        self._fill_ids.update(fill_ids)
        self._reported_settlements.update(dict.fromkeys(settlements, 0))
        self._used_ids.update(used_ids)

    # --- reference data ---------------------------------------------------------------------

    def fee_schedule(self, event_ticker: str) -> FeeSchedule:
        """The fee rates of the event's series (event and series read once, then cached)."""
        series = self._series_of_event.get(event_ticker)
        if series is None:
            event, _ = self.client.get_event(event_ticker)
            series = self._series_of_event[event_ticker] = event.series_ticker
        schedule = self._schedules.get(series)
        if schedule is None:
            info = self.client.get_series_information(series)
            schedule = FeeSchedule.for_series(
                info.fee_type, float(info.fee_multiplier), self.taker_fee_rate
            )
            self._schedules[series] = schedule
        return schedule

    def exchange_order_id(self, client_order_id: str) -> str | None:
        """The exchange's order_id of an order this exchange placed, None if it placed none."""
        venue = self.orders.get(client_order_id)
        return None if venue is None else venue.order_id

    # --- prices -----------------------------------------------------------------------------

    def _markets(self, tickers: list[str]) -> dict[str, Market]:
        unique = list(dict.fromkeys(tickers))
        out: dict[str, Market] = {}
        for i in range(0, len(unique), MARKETS_PER_REQUEST):
            chunk = unique[i : i + MARKETS_PER_REQUEST]
            for market in self.client.get_markets(tickers=chunk, historical=False):
                out[market.ticker] = market
        return out

    def quotes(self, tickers: Sequence[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes now, indexed by ticker in the given order, as the simulator's.

        An open market is quoted from its book (``source`` book, ``quote_ts`` = ``ts``); a
        closed, unopened or unknown one has no prices (NaN, NaT) and ``is_open`` False. The
        taker rate is NaN only for a market the API does not know.
        """
        _seconds(ts)
        tickers = list(tickers)
        markets = self._markets(tickers)
        if self.book_source is not None:
            self.book_source.watch([t for t, m in markets.items() if is_open(m, ts)])
        books: dict[str, dict[str, float]] = {}
        rows = []
        for ticker in tickers:
            market = markets.get(ticker)
            row: dict[str, object] = {
                "quote_ts": pd.NaT,
                "source": np.nan,
                "yes_bid": np.nan,
                "no_bid": np.nan,
                "yes_bid_size": np.nan,
                "no_bid_size": np.nan,
                "yes_ask": np.nan,
                "no_ask": np.nan,
                "is_open": False,
                "taker_rate": np.nan,
            }
            if market is not None:
                row["taker_rate"] = self.fee_schedule(market.event_ticker).taker_rate_float
                if is_open(market, ts):
                    if ticker not in books:
                        books[ticker] = book_quote(self._book(ticker))
                    row.update(books[ticker], quote_ts=ts, source="book", is_open=True)
            rows.append(row)
        frame = pd.DataFrame(rows, columns=QUOTE_COLUMNS, index=pd.Index(tickers, name="ticker"))
        frame["quote_ts"] = pd.to_datetime(frame["quote_ts"], utc=True)
        return frame.astype({"source": object, "is_open": bool, "taker_rate": float})

    # --- orders -----------------------------------------------------------------------------

    def _book(self, ticker: str) -> Orderbook:
        """The market's book from ``book_source`` when it has a sound one, else from REST."""
        book = None if self.book_source is None else self.book_source.book(ticker)
        self.book_reads["stream" if book is not None else "rest"] += 1
        return book if book is not None else self.client.get_orderbook(ticker, depth=1)

    def affordable_count(self, order: ContractOrder) -> int:
        """Contracts of ``order.remaining`` that its budget allows at the limit with the
        worst-case (taker) fee; all of them for a sell or a buy without a budget."""
        budget = order.remaining_budget_cents
        if order.action != "buy" or budget is None:
            return order.remaining
        fees = self.fee_schedule(order.event_ticker)
        price = order.limit_cents

        def total(m: int) -> int:
            return m * price + fees.taker_fee_cents(quadratic_units(m, price))

        lo, hi = 0, order.remaining
        while lo < hi:  # total() grows with m: the last m within the budget
            mid = (lo + hi + 1) // 2
            if total(mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        count = self.affordable_count(order)
        if count <= 0:
            return self._not_sent(order, "budget below one contract")
        if self.dry_run:
            logger.info(
                "dry run, not sent: %s %s %s %d @ %dc %s",
                order.ticker,
                order.side,
                order.action,
                count,
                order.limit_cents,
                order.client_order_id,
            )
            return self._not_sent(order, "dry run")
        if order.client_order_id in self.orders or order.client_order_id in self._used_ids:
            # the same id again would be answered with the order already placed (409)
            logger.warning("order %s was already sent: not sent again", order.client_order_id)
            return self._not_sent(order, "client_order_id already sent")
        venue = self.orders[order.client_order_id] = VenueOrder.of(order, count)
        self._record(venue)  # durable before the POST: a crash now leaves the intent
        price = Decimal(order.limit_cents) / _HUNDRED
        try:
            placed: Order | None = self.client.create_order(
                order.ticker,
                "yes" if order.side == "yes" else "no",
                "buy" if order.action == "buy" else "sell",
                count,
                yes_price=price if order.side == "yes" else None,
                no_price=price if order.side == "no" else None,
                time_in_force=TIME_IN_FORCE[order.time_in_force],
                client_order_id=order.client_order_id,
                reduce_only=True if order.action == "sell" else None,
            )
        except KalshiAPIError as exc:
            if exc.status not in REFUSALS and not isinstance(exc, AuthError):
                placed = self._answer_lost(venue, exc)
            else:
                venue.state, venue.reason = REFUSED, f"refused ({exc.code or 'bad request'})"
                self._record(venue)
                if isinstance(exc, AuthError):
                    raise
                logger.warning("order %s refused: %s", order.client_order_id, exc)
                self.unfilled[venue.reason] += 1
                return []
        except KalshiError as exc:  # the request may have reached the venue
            placed = self._answer_lost(venue, exc)
        if placed is None:
            return []
        self._acknowledge(venue, placed)
        logger.info(
            "sent %s %s %s %d @ %dc %s: %s, %s filled",
            order.ticker,
            order.side,
            order.action,
            count,
            order.limit_cents,
            order.client_order_id,
            placed.status,
            placed.fill_count,
        )
        if venue.venue_filled == 0 and order.time_in_force == "ioc":
            self.unfilled["nothing within the limit"] += 1
        return self._list_fills(venue, ts)

    def _not_sent(self, order: ContractOrder, reason: str) -> list[Fill]:
        self.unfilled[reason] += 1
        if self.journal is not None:
            self.journal.record_not_sent(order.client_order_id, reason)
        return []

    def _record(self, venue: VenueOrder) -> None:
        if self.journal is not None:
            self.journal.record_order(venue)

    def _answer_lost(self, venue: VenueOrder, exc: Exception) -> Order | None:
        """The POST's outcome is unknown: look the order up (None: absent or still unknown)."""
        logger.warning(
            "order %s: the answer to its POST was lost (%s): looking it up by its client_order_id",
            venue.client_order_id,
            exc,
        )
        placed = self._look_up(venue, self.lookup_attempts)
        if isinstance(exc, ConflictError) and venue.state == ABSENT:
            venue.state = CONFLICT
            venue.reason = "409: the venue holds an order under its client_order_id elsewhere"
            self._record(venue)
            raise OrderMismatchError(
                f"order {venue.client_order_id}: the venue answered 409 (an order under this "
                f"client_order_id exists) but holds none on {venue.ticker}: not ours to book"
            )
        return placed

    def _look_up(self, venue: VenueOrder, attempts: int) -> Order | None:
        """The venue's order carrying ``venue``'s client_order_id, ``attempts`` tries; None
        when the venue has none (``absent``) or never answered (``unknown``)."""
        failure: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.lookup_backoff_s * 2 ** (attempt - 1), MAX_LOOKUP_WAIT_S))
            try:
                found = self.client.find_order(venue.ticker, venue.client_order_id)
            except AuthError:
                raise
            except KalshiError as exc:
                failure = exc
                continue
            if found is None:
                if venue.state != ABSENT:
                    logger.warning("order %s is not at the venue: its POST never landed",
                                   venue.client_order_id)  # fmt: skip
                venue.state, venue.reason = ABSENT, "not at the venue: its POST never landed"
                self.unfilled[venue.reason] += 1
                self._record(venue)
                return None
            return found
        if venue.state != UNKNOWN:
            logger.warning(
                "order %s: outcome unknown (%s); its market takes no new order until the venue "
                "tells it",
                venue.client_order_id,
                failure,
            )
        venue.state = UNKNOWN
        venue.reason = f"outcome unknown: the lookup by client_order_id failed ({failure})"
        self._record(venue)
        return None

    def _acknowledge(self, venue: VenueOrder, placed: Order) -> None:
        """``placed`` is the venue's order under ``venue``'s client_order_id: ours only if it is
        the order sent (a 409 can name an older, different order)."""
        problem = venue.mismatch(placed)
        if problem is not None:
            venue.state = CONFLICT
            venue.reason = f"the venue holds another order under its client_order_id: {problem}"
            self._record(venue)
            raise OrderMismatchError(
                f"order {venue.client_order_id}: the venue's order under this client_order_id "
                f"is not the one sent ({problem}): not booked as ours"
            )
        venue.state, venue.reason, venue.rounds = PLACED, "", 0
        venue.order_id = placed.order_id
        venue.venue_status = placed.status
        filled = _whole(placed.fill_count, f"order {venue.client_order_id} fill count")
        venue.venue_filled = max(venue.venue_filled, filled)
        if venue.venue_filled == 0 and venue.time_in_force == "ioc":
            venue.reason = "nothing within the limit"
        self._client_ids[placed.order_id] = venue.client_order_id
        self._record(venue)

    def _list_fills(self, venue: VenueOrder, ts: pd.Timestamp) -> list[Fill]:
        """The order's fills not reported yet, when the venue counts more than were listed."""
        if venue.order_id is None or venue.listed >= venue.venue_filled:
            return []
        try:
            docs = self.client.get_fills(order_id=venue.order_id)
        except KalshiError as exc:
            logger.warning(
                "order %s: its fills could not be listed (%s): asked again at the next step",
                venue.client_order_id,
                exc,
            )
            return []
        fills = self._report(docs, ts, REST)
        if venue.lagging:
            logger.warning(
                "order %s: %d contracts filled, %d listed yet: asked again at the next steps",
                venue.client_order_id,
                venue.venue_filled,
                venue.listed,
            )
        return fills

    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        """Cancel the order's resting rest; nothing if it was never placed, or is done. A
        cancel that fails leaves the order unresolved: asked again at the next steps."""
        if self.dry_run:
            return
        venue = self.orders.get(order.client_order_id)
        if venue is None:  # placed by an earlier exchange: found by its id
            found = self.client.find_order(order.ticker, order.client_order_id)
            if found is None:
                return
            venue = VenueOrder.of(order, _whole(found.initial_count or found.fill_count, "count"))
            self.orders[order.client_order_id] = venue
            self._acknowledge(venue, found)
        if venue.state in (INTENT, UNKNOWN):
            venue.cancel_pending = True  # the lookup at the next step finds what to cancel
            self._record(venue)
            return
        if venue.resting or venue.cancel_pending:
            self._cancel(venue)

    def _cancel(self, venue: VenueOrder) -> None:
        assert venue.order_id is not None
        try:
            answer = self.client.cancel_order(venue.order_id)
        except NotFoundError:  # executed or canceled already: nothing rests
            logger.debug("order %s: nothing rests to cancel", venue.client_order_id)
            try:
                answer = self.client.get_order(venue.order_id)
            except KalshiError as exc:
                return self._cancel_failed(venue, exc)
        except AuthError:
            raise
        except KalshiError as exc:
            return self._cancel_failed(venue, exc)
        venue.cancel_pending = False
        venue.venue_status = answer.status
        filled = _whole(answer.fill_count, f"order {venue.client_order_id} fill count")
        venue.venue_filled = max(venue.venue_filled, filled)
        self._record(venue)

    def _cancel_failed(self, venue: VenueOrder, exc: Exception) -> None:
        logger.warning(
            "order %s: the cancel failed (%s): asked again at the next step",
            venue.client_order_id,
            exc,
        )
        venue.cancel_pending = True
        self._record(venue)

    # --- orders whose outcome the venue has not told in full ------------------------------

    def unresolved(self) -> dict[str, str]:
        return {c: v.ticker for c, v in self.orders.items() if not v.resolved}

    def resolve(self, until: pd.Timestamp) -> list[Fill]:
        """One round (see the module docstring): each unresolved order looked up once,
        listed, or cancelled again; the fills the venue now lists, in time order."""
        self._receive()
        fills = self._report_stream(until)
        for venue in [v for v in self.orders.values() if not v.resolved]:
            fills += self._resolve_one(venue, until, attempts=1)
            if not venue.resolved:
                venue.rounds += 1
        return sorted(fills, key=lambda f: f.ts)

    def _resolve_one(self, venue: VenueOrder, until: pd.Timestamp, attempts: int) -> list[Fill]:
        if venue.state in (INTENT, UNKNOWN):
            placed = self._look_up(venue, attempts)
            if placed is None:
                return []
            self._acknowledge(venue, placed)
        if venue.cancel_pending:
            self._cancel(venue)
        return self._list_fills(venue, until)

    def overdue(self) -> list[str]:
        return [
            f"{v.describe()}: {v.venue_filled} contracts filled, {v.listed} listed after "
            f"{v.rounds} steps"
            for v in self.orders.values()
            if v.lagging and v.rounds > self.max_listing_lag
        ]

    def conclude(self, until: pd.Timestamp, *, cancel_resting: bool = False) -> list[Fill]:
        """Every unresolved order brought to a known outcome as far as the venue tells, with
        the whole lookup budget and up to ``max_listing_lag`` more listings (at the end of a
        session, or of an earlier one); with ``cancel_resting`` the resting ones are
        cancelled first. The fills reported, in time order; what stays unresolved is in
        :meth:`unresolved`."""
        self._receive()
        fills = self._report_stream(until)
        if cancel_resting:
            for venue in [v for v in self.orders.values() if v.resting]:
                self._cancel(venue)
        for venue in [v for v in self.orders.values() if not v.resolved]:
            fills += self._resolve_one(venue, until, self.lookup_attempts)
        for _ in range(self.max_listing_lag):
            waiting = [v for v in self.orders.values() if not v.resolved]
            if not waiting:
                break
            time.sleep(self.lookup_backoff_s)
            for venue in waiting:
                fills += self._resolve_one(venue, until, attempts=1)
        return sorted(fills, key=lambda f: f.ts)

    def resting_orders(self) -> list[Order]:
        """``GET /portfolio/orders?status=resting``, with the lookup budget."""
        return self._retrying(lambda: self.client.get_orders(status="resting"))

    def _retrying(self, call: Callable[[], list[Order]]) -> list[Order]:
        for attempt in range(self.lookup_attempts):
            if attempt:
                time.sleep(min(self.lookup_backoff_s * 2 ** (attempt - 1), MAX_LOOKUP_WAIT_S))
            try:
                return call()
            except AuthError:
                raise
            except KalshiError:
                if attempt == self.lookup_attempts - 1:
                    raise
        raise AssertionError("unreachable")

    # --- what happened since ----------------------------------------------------------------

    @staticmethod
    def _ids(doc: ApiFill) -> tuple[str, ...]:
        """The fill's ids: its fill_id and trade_id (one, when they are the same value)."""
        ids = tuple(dict.fromkeys(i for i in (doc.fill_id, doc.trade_id) if i))
        if not ids:
            raise DataError(f"a fill of order {doc.order_id} has no fill_id or trade_id")
        return ids

    @staticmethod
    def _fill_s(doc: ApiFill, fallback: pd.Timestamp) -> int:
        when = fallback if doc.created_time is None else pd.Timestamp(doc.created_time)
        return _seconds(when)

    def _client_order_id(self, order_id: str) -> str | None:
        """The client_order_id of a venue order (asked once for an order this exchange has
        not placed; the order_id itself when it has none); None when the venue could not be
        asked now (the fill is reported at a later listing)."""
        known = self._client_ids.get(order_id)
        if known is not None:
            return known
        try:
            doc: Order | None = self.client.get_order(order_id)
        except NotFoundError:
            doc = None
        except AuthError:
            raise
        except KalshiError as exc:
            logger.warning("order %s could not be read (%s): its fill waits", order_id, exc)
            return None
        known = order_id if doc is None or not doc.client_order_id else doc.client_order_id
        self._client_ids[order_id] = known
        venue = self.orders.get(known)
        if doc is not None and venue is not None and venue.state in (INTENT, UNKNOWN, ABSENT):
            self._acknowledge(venue, doc)  # the listing tells what the lost answer did not
        return known

    def _known(self, doc: ApiFill, ids: tuple[str, ...]) -> bool:
        """The fill was reported (or taken as history) under one of its ids; a listed fill
        whose fill_id the stream did not tell has it written down now."""
        if not any(i in self._fill_ids for i in ids):
            return False
        named = doc.fill_id and doc.trade_id and doc.fill_id not in self._fill_ids
        if named and self.journal is not None:
            self.journal.name_fill(doc.trade_id, doc.fill_id)
        self._fill_ids.update(ids)
        return True

    def _report(self, docs: Iterable[ApiFill], fallback: pd.Timestamp, source: str) -> list[Fill]:
        """The fills of ``docs`` not reported before, in time order; those of this
        exchange's orders journaled first (with ``source``, what told them)."""
        out = []
        # listings come newest first, the stream oldest first: equal times keep the venue's
        # order
        arrived = list(docs)[::-1] if source == REST else list(docs)
        for doc in sorted(arrived, key=lambda d: self._fill_s(d, fallback)):
            ids = self._ids(doc)
            if not self._known(doc, ids):
                client_order_id = self._client_order_id(doc.order_id)
                if client_order_id is None:
                    continue
                fill = fill_from_api(doc, client_order_id, fallback)
                venue = self.orders.get(client_order_id)
                if venue is not None and venue.state != CONFLICT:  # else another's order
                    if self.journal is not None:
                        self.journal.record_fill(doc.fill_id, doc.trade_id, fill, source)
                    venue.listed += fill.count
                    venue.venue_filled = max(venue.venue_filled, venue.listed)
                self._fill_ids.update(ids)
                self.fills_first_seen[source] += 1
                out.append(fill)
            if source == REST:
                self._listed_s.update(dict.fromkeys(ids, self._fill_s(doc, fallback)))
        return out

    def _receive(self) -> None:
        """What the stream told since the last call, kept until booked (a listing that
        fails next loses none of it)."""
        if self.fill_source is not None:
            self._stream_waiting += self.fill_source.take_fills()

    def _stream_due(self, until: pd.Timestamp) -> list[ApiFill]:
        """The stream's waiting fills stamped up to ``until``, taken out of the wait: a fill
        stamped later is not seen before its time."""
        due, waiting = [], []
        for doc in self._stream_waiting:
            stamped = doc.created_time is not None and pd.Timestamp(doc.created_time) <= until
            (due if stamped else waiting).append(doc)
        self._stream_waiting = waiting
        return due

    def _report_stream(self, until: pd.Timestamp) -> list[Fill]:
        """Book the stream's fills due by ``until`` (see :meth:`_report`); a fill of an order
        the venue could not be asked about waits for the next call."""
        due = []
        for doc in self._stream_due(until):
            if self._fill_s(doc, until) >= self._since_s:
                due.append(doc)
            elif not any(i in self._fill_ids for i in self._ids(doc)):
                logger.info(
                    "stream fill %s of order %s at %s: before the session's start, in the "
                    "account it took over: not booked",
                    doc.trade_id,
                    doc.order_id,
                    doc.created_time,
                )
        out = self._report(due, until, STREAM)
        self._stream_waiting += [
            d for d in due if not any(i in self._fill_ids for i in self._ids(d))
        ]
        return out

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        """Every fill of the account up to ``until`` not reported yet (by ``submit``,
        ``resolve`` or an earlier call), in time order, ``order_id`` the order's
        client_order_id: the stream's (those received before the listing was asked: they
        came first), then the listing's."""
        self._receive()
        docs = self.client.get_fills(min_ts=self._fills_from_s, max_ts=_seconds(until))
        out = self._report_stream(until)
        listed = [d for d in docs if self._fill_s(d, until) >= self._since_s]
        out += self._report(listed, until, REST)
        self._fills_from_s = self._advance(self._listed_s, self._fills_from_s)
        return sorted(out, key=lambda f: f.ts)

    def skip_listed(self, until: pd.Timestamp) -> int:
        """Take every fill the venue lists, or the stream told, up to ``until`` as history,
        never to be reported: a session that adopts the venue's balance and positions at
        ``until`` holds what they did (a venue whose clock stands still stamps them at the
        session's start). The number of fills skipped."""
        self._receive()
        listed = self.client.get_fills(min_ts=self._fills_from_s, max_ts=_seconds(until))
        for doc in listed:
            self._listed_s.update(dict.fromkeys(self._ids(doc), self._fill_s(doc, until)))
        fresh = 0
        for doc in [*listed, *self._stream_due(until)]:
            ids = self._ids(doc)
            if not any(i in self._fill_ids for i in ids):
                fresh += 1
            self._fill_ids.update(ids)
        self._fills_from_s = self._advance(self._listed_s, self._fills_from_s)
        return fresh

    def _advance(self, reported: dict[Any, int], start: int) -> int:
        """The next listing's min_ts: ``overlap`` before the newest item of ``reported`` (the
        fills listed, the settlements reported). Items are never forgotten: an order asked
        about by its id lists its old fills again."""
        if not reported:
            return start
        return max(start, max(reported.values()) - self._overlap_s)

    def settlements(self, until: pd.Timestamp) -> list[SettledMarket]:
        """Markets held on the account that settled up to ``until``, each once, in time order."""
        docs = self.client.get_settlements(min_ts=self._settlements_from_s, max_ts=_seconds(until))
        out = []
        for doc in sorted(docs, key=lambda s: s.settled_time):
            key = (doc.ticker, doc.settled_time.isoformat())
            when = _seconds(pd.Timestamp(doc.settled_time))
            if key in self._reported_settlements or when < self._since_s:
                continue
            self._reported_settlements[key] = when
            try:
                settled = settled_market(doc)
            except DataError as exc:  # reconciliation will name the market
                logger.error("settlement not booked: %s", exc)
                continue
            if settled is not None:
                if self.journal is not None:
                    self.journal.record_settlement(settled)
                out.append(settled)
        self._settlements_from_s = self._advance(
            self._reported_settlements, self._settlements_from_s
        )
        return out

    def positions(self) -> dict[str, tuple[str, int]]:
        return positions_from_api(self.client.get_positions())

    def balance_cents(self) -> int:
        """Kalshi's available balance: cash minus what resting buy orders hold."""
        return self.client.get_balance().balance
