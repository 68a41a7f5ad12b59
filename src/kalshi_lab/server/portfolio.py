"""The account behind the portfolio endpoints: cash, positions, orders, fills and settlements,
traded at the server's clock with the backtest's venue rules.

**One venue model.** Orders are matched by the rules of :mod:`kalshi_lab.execution.fills` and
charged by :class:`~kalshi_lab.execution.fees.FeeSchedule`, the very functions the backtest's
``SimulatedKalshiExchange`` uses, on the served book (the latest recorded snapshot at the clock,
minus the depth orders took from it; all of its displayed size can be taken):

* an order crossing the book when sent is a taker: it walks the levels best first within its
  limit, and the whole execution pays ONE taker fee on the sum of its levels' ``C * P * (1-P)``
  (Kalshi's per-order fee accumulator, https://docs.kalshi.com/getting_started/fee_rounding),
  listed as one fill per level whose fees add up to it;
* the rest of a ``good_till_canceled`` order rests; each later snapshot that trades through
  its limit (shows its side strictly better) fills it as maker at its limit, as much as those
  better levels show, consuming them, for one maker fee (0 unless the series'
  ``fee_type`` is ``quadratic_with_maker_fees``); a rest is cancelled at its
  ``expiration_ts`` and when its market closes; ``DELETE`` cancels it;
* when a market's ``settlement_ts`` comes, the position held is paid out (1 dollar a
  winning contract, the cost back if void, ``settlement_value_dollars`` a YES contract if
  scalar; settling is free), the balance credited, the position closed, and a ``Settlement``
  record listed. The result is the one recorded in the market's document.

**Time.** All of this happens at the server's clock (:mod:`kalshi_lab.server.clock`): every
call first catches the account up with the clock, doing what fell due since, in time order
(at one second: cancels at expiry or close, then fills, then settlements), so a client sees
the same account whenever it asks. Fills can be listed late (``listing_delay``, a fault knob):
Kalshi fills its orders at once (the order's counts and the create answer say so at once) but
``GET /portfolio/fills`` is eventually consistent; the delay is wall-clock seconds, as a
client's polling lives in wall time.

**Money** (API.md section 4) is integer cents: the cash a fill moves is floored to the cent (a
debit rounds up); positions are netted (:mod:`kalshi_lab.server.positions`); a resting order
holds its cost at the limit plus the maker fee of the balance (a reduce-only one nothing), so
``balance`` (cash minus what rests) never goes negative: an order that would need more is
refused (400) and changes nothing. Each order is worked out on copies and applied whole, under
one lock: two concurrent orders never take the same depth.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kalshi_lab.execution.fees import FeeSchedule, quadratic_units
from kalshi_lab.execution.fills import room_through, spread, take
from kalshi_lab.server.books import BookSide, BookStore
from kalshi_lab.server.clock import ServerClock
from kalshi_lab.server.dataset import Dataset, MarketEntry
from kalshi_lab.server.errors import ApiError, bad_request, not_found
from kalshi_lab.server.orders import OrderRequest, check_market_rules
from kalshi_lab.server.positions import Position, event_positions, floor_cents
from kalshi_lab.server.records import (
    CANCELED,
    EXECUTED,
    RESTING,
    FillState,
    OrderState,
    SettlementState,
)
from kalshi_lab.server.units import HUNDRED, ONE, ZERO, decimal_of, iso

logger = logging.getLogger(__name__)

#: (price of the order's side in dollars, contracts) of one price level of an execution
Level = tuple[Decimal, Decimal]
#: what happens first at one second: cancels (expiry, close), fills, settlements
_CANCEL, _QUOTE, _SETTLE = range(3)
#: contracts a maker fill may come short of what traded through it, for want of a cent or two
_SHORT_STEPS = 3


def _book_side(request: OrderRequest) -> BookSide:
    """Whose bids an order trades against: a buy takes the other side's, a sell hits its own."""
    if request.action == "sell":
        return request.side
    return "no" if request.side == "yes" else "yes"


def _yes_price(request: OrderRequest, side_price: Decimal) -> Decimal:
    return side_price if request.side == "yes" else ONE - side_price


def _ceil_cents(dollars: Decimal) -> int:
    return -floor_cents(-dollars)


@dataclass(frozen=True)
class _Execution:
    """One execution of an order worked out on a copy of the position: applied whole or not."""

    levels: list[Level]
    fees: list[int]  # listed per level: they add up to the execution's one fee
    cash_cents: int  # what the fills move, fees excluded (> 0 received)
    position: Position  # the position after it

    @property
    def need_cents(self) -> int:
        """Cash it takes out of the balance, fees included (< 0: it brings cash in)."""
        return sum(self.fees) - self.cash_cents


class Portfolio:
    """One account (the primary subaccount) trading at the server's clock."""

    def __init__(
        self,
        dataset: Dataset,
        books: BookStore,
        clock: ServerClock,
        starting_balance_cents: int,
        listing_delay: Callable[[], float] = lambda: 0.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if starting_balance_cents < 0:
            raise ValueError(f"starting balance must be >= 0 cents, got {starting_balance_cents}")
        self.dataset = dataset
        self.books = books
        self.clock = clock
        self._listing_delay = listing_delay
        self._wall = wall
        self._lock = threading.Lock()
        self._cash_cents = starting_balance_cents
        self._orders: dict[str, OrderState] = {}
        self._resting: dict[str, OrderState] = {}  # by order id, in placement order
        self._client_ids: dict[str, str] = {}
        self._fills: list[FillState] = []
        self._settlements: list[SettlementState] = []
        self._positions: dict[str, Position] = {}
        self._settled: set[str] = set()  # markets whose settlement was done
        self._seq = itertools.count(1)
        self._schedules: dict[str, FeeSchedule] = {}

    # --- the clock ----------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Do what fell due up to the clock's time (fills, cancels, settlements); returns it."""
        with self._lock:
            return self._sync()

    def _sync(self) -> int:
        now = self.clock.now()
        events: list[tuple[int, int, int, str]] = []
        due: set[str] = set()
        for order in self._resting.values():
            market = self.dataset.markets[order.request.ticker]
            ends = [market.close_ts, order.request.expiration_ts]
            events += [(t, _CANCEL, order.seq, order.order_id) for t in ends if t and t <= now]
            times = self.books.times_between(market.ticker, order.since_ts, now)
            events += [(t, _QUOTE, order.seq, order.order_id) for t in times]
            order.since_ts = max(order.since_ts, now)
            due.add(market.ticker)
        due.update(t for t, p in self._positions.items() if p.size > 0)
        for ticker in due - self._settled:
            settled_ts = self.dataset.markets[ticker].settled_ts
            if settled_ts is not None and settled_ts <= now:
                events.append((settled_ts, _SETTLE, 0, ticker))
        for t, kind, _, key in sorted(events):
            if kind == _SETTLE:
                self._settle(key, t)
                continue
            order = self._orders[key]
            if not order.resting:
                continue
            if kind == _CANCEL:
                self._end(order, CANCELED, t)
            else:
                self._trade_through(order, t)
        return now

    # --- reading ------------------------------------------------------------------------------

    @property
    def cash_cents(self) -> int:
        with self._lock:
            self._sync()
            return self._cash_cents

    @property
    def balance_cents(self) -> int:
        """Available balance: cash minus what resting orders hold."""
        with self._lock:
            self._sync()
            return self._available()

    def _available(self) -> int:
        return self._cash_cents - sum(o.reserved_cents for o in self._resting.values())

    def balance_doc(self) -> dict[str, int]:
        """``GetBalanceResponse``: positions are valued at the bid of their side now."""
        with self._lock:
            now = self._sync()
            value = 0
            for p in self._positions.values():
                if p.size > 0:
                    market = self.dataset.markets[p.ticker]
                    bids = self.books.book(market, now).side(p.side or "yes")
                    value += floor_cents(p.size * bids[-1][0]) if bids else 0
            return {"balance": self._available(), "portfolio_value": value, "updated_ts": now}

    def order_doc(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._sync()
            return self._order(order_id).doc()

    def order_docs(
        self,
        *,
        ticker: str | None = None,
        event_tickers: Iterable[str] | None = None,
        status: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(cursor key, Order) of the matching orders, newest first."""
        events = None if event_tickers is None else set(event_tickers)
        with self._lock:
            self._sync()
            chosen = [
                o
                for o in self._orders.values()
                if (ticker is None or o.request.ticker == ticker)
                and (events is None or o.event_ticker in events)
                and (status is None or o.status == status)
                and (min_ts is None or o.created_ts >= min_ts)
                and (max_ts is None or o.created_ts <= max_ts)
            ]
            return [(-o.seq, o.doc()) for o in sorted(chosen, key=lambda o: -o.seq)]

    def fill_docs(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(cursor key, Fill) of the matching fills listed by now, newest first."""
        with self._lock:
            self._sync()
            wall = self._wall()
            chosen = [
                f
                for f in self._fills
                if f.listed_at <= wall
                and (ticker is None or f.ticker == ticker)
                and (order_id is None or f.order_id == order_id)
                and (min_ts is None or f.ts >= min_ts)
                and (max_ts is None or f.ts <= max_ts)
            ]
        return [(-f.seq, f.doc()) for f in reversed(chosen)]

    def fills_from(self, index: int) -> list[FillState]:
        """The fills booked from the ``index``-th on (0-based, booking order), the account
        caught up with the clock: what the stream's ``fill`` channel sends, at once (the
        listing's ``late_fill`` lag is the REST listing's, not the stream's)."""
        with self._lock:
            self._sync()
            return self._fills[index:]

    def settlement_docs(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(cursor key, Settlement) of the matching settlements, newest first."""
        with self._lock:
            self._sync()
            chosen = [
                s
                for s in self._settlements
                if (ticker is None or s.ticker == ticker)
                and (event_ticker is None or s.event_ticker == event_ticker)
                and (min_ts is None or s.ts >= min_ts)
                and (max_ts is None or s.ts <= max_ts)
            ]
        return [(-s.seq, s.doc()) for s in reversed(chosen)]

    def position_docs(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: Iterable[str] = (),
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
        """(ticker, MarketPosition) by ticker, and the EventPosition of their events.

        ``count_filter`` (``position``, ``total_traded``) keeps positions where any of those
        is non-zero.
        """
        filters = set(count_filter)
        with self._lock:
            self._sync()
            resting: dict[str, int] = {}
            for o in self._resting.values():
                resting[o.request.ticker] = resting.get(o.request.ticker, 0) + 1
            chosen = [
                p
                for _, p in sorted(self._positions.items())
                if (ticker is None or p.ticker == ticker)
                and (event_ticker is None or p.event_ticker == event_ticker)
                and (
                    not filters
                    or ("position" in filters and p.size != 0)
                    or ("total_traded" in filters and p.traded != 0)
                )
            ]
            markets = [(p.ticker, p.doc(resting.get(p.ticker, 0))) for p in chosen]
            events = event_positions(chosen)
        return markets, events

    def positions(self) -> dict[str, Decimal]:
        """Signed position per ticker (for assertions): > 0 YES, < 0 NO."""
        with self._lock:
            self._sync()
            return {t: p.signed for t, p in self._positions.items()}

    # --- trading ------------------------------------------------------------------------------

    def _order(self, order_id: str) -> OrderState:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found(f"order {order_id}")
        return order

    def _schedule(self, market: MarketEntry) -> FeeSchedule:
        schedule = self._schedules.get(market.series_ticker)
        if schedule is None:
            series = self.dataset.series[market.series_ticker]
            schedule = self._schedules[market.series_ticker] = FeeSchedule.for_series(
                str(series.get("fee_type") or "quadratic"),
                float(series.get("fee_multiplier", 1.0)),
            )
        return schedule

    def _position(self, market: MarketEntry) -> Position:
        return self._positions.get(market.ticker) or Position(market.ticker, market.event_ticker)

    def _work_out(
        self, request: OrderRequest, market: MarketEntry, levels: list[Level], maker: bool
    ) -> _Execution:
        """Fees and cash of one execution over ``levels``, on a copy of the position."""
        position = self._position(market).copy()
        units = [quadratic_units(n, price * HUNDRED) for price, n in levels]
        fees = self._schedule(market).level_fees_cents(units, maker=maker)
        cash = sum(
            floor_cents(position.trade(request.up, n, _yes_price(request, price)))
            for price, n in levels
        )
        return _Execution(levels, fees, cash, position)

    def _reserve(self, request: OrderRequest, market: MarketEntry, remaining: Decimal) -> int:
        """What a rest of ``remaining`` contracts holds: its cost at the limit and its maker
        fee, whatever it may close by then (a reduce-only rest only closes: nothing)."""
        if request.reduce_only or remaining <= 0:
            return 0
        units = quadratic_units(remaining, request.price * HUNDRED)
        return _ceil_cents(remaining * request.price) + self._schedule(market).maker_fee_cents(
            units
        )

    def create_order(self, request: OrderRequest) -> dict[str, Any]:
        """Match, charge and record one order; the Order as ``POST /portfolio/orders`` returns it."""
        with self._lock:
            now = self._sync()
            if request.client_order_id and request.client_order_id in self._client_ids:
                raise ApiError(
                    409,
                    "order_already_exists",
                    f"an order with client_order_id {request.client_order_id} already exists",
                )
            market = self.dataset.markets.get(request.ticker)
            if market is None:
                raise not_found(f"market {request.ticker}")
            if not market.trading_at(now):
                raise bad_request(
                    f"market {request.ticker} is not open for trading at the server's time "
                    f"{iso(now)}",
                    code="market_closed",
                )
            check_market_rules(request, market.doc)
            if request.expiration_ts is not None and request.expiration_ts <= now:
                raise bad_request(f"expiration_ts {request.expiration_ts} is not after now")
            return self._place(request, market, now).doc()

    def _place(self, request: OrderRequest, market: MarketEntry, now: int) -> OrderState:
        """The taker part of an order (checked whole before anything changes), then its rest."""
        position = self._position(market)
        if request.reduce_only and request.count > position.reducible(request.up):
            raise bad_request(
                f"reduce_only order for {request.count} contracts, but only "
                f"{position.reducible(request.up)} can be closed",
            )
        book = self.books.book(market, now)
        book_side = _book_side(request)
        buy = request.action == "buy"
        bids = list(reversed(book.side(book_side)))  # best first
        prices = [ONE - bid if buy else bid for bid, _ in bids]  # of the order's side
        offered = [(p * HUNDRED, size) for p, (_, size) in zip(prices, bids, strict=True)]
        taken = take(offered, buy, request.price * HUNDRED, request.count)
        levels = [(p, n) for p, n in zip(prices, taken, strict=False) if n > 0]
        if request.post_only and levels:
            raise bad_request("post_only order would take liquidity", code="post_only_cross")
        filled = sum((n for _, n in levels), ZERO)
        if request.time_in_force == "fill_or_kill" and filled < request.count:
            raise ApiError(
                409,
                "fill_or_kill_insufficient_resting_volume",
                f"fill-or-kill order for {request.count} contracts: only {filled} available "
                "within its limit",
            )
        cost = sum((n * p for p, n in levels), ZERO)
        if (
            request.buy_max_cost_cents is not None
            and _ceil_cents(cost) > request.buy_max_cost_cents
        ):
            raise ApiError(
                409,
                "fill_or_kill_insufficient_resting_volume",
                f"buy_max_cost {request.buy_max_cost_cents} cents: the {request.count} contracts "
                f"cost {_ceil_cents(cost)} cents before fees",
            )
        execution = self._work_out(request, market, levels, maker=False)
        rest = request.count - filled if request.rests else ZERO
        reserve = self._reserve(request, market, rest)
        if self._available() - execution.need_cents - reserve < 0:
            raise bad_request(
                f"insufficient balance: the order needs {execution.need_cents + reserve} cents, "
                f"{self._available()} available",
                code="insufficient_balance",
            )
        for (bid, _), n in zip(bids, taken, strict=False):
            if n > 0:
                assert book.snapshot_ts is not None
                self.books.take(market.ticker, book.snapshot_ts, book_side, bid, n)
        order = OrderState(
            seq=next(self._seq),
            order_id=str(uuid.uuid4()),
            request=request,
            event_ticker=market.event_ticker,
            status=RESTING,
            filled=ZERO,
            remaining=request.count,
            reserved_cents=0,
            created_ts=now,
            updated_ts=now,
            since_ts=now,
        )
        self._orders[order.order_id] = order
        if request.client_order_id:
            self._client_ids[request.client_order_id] = order.order_id
        self._book(order, market, execution, maker=False, ts=now)
        if order.remaining > 0 and not request.rests:
            self._end(order, CANCELED, now)
        elif order.remaining > 0:
            order.reserved_cents = reserve
            self._resting[order.order_id] = order
        return order

    def _book(
        self, order: OrderState, market: MarketEntry, execution: _Execution, maker: bool, ts: int
    ) -> None:
        """Apply an execution: cash, position, the order's counts, one fill per level."""
        if not execution.levels:
            return
        request = order.request
        fee = sum(execution.fees)
        cost = sum((n * p for p, n in execution.levels), ZERO)
        count = sum((n for _, n in execution.levels), ZERO)
        self._cash_cents -= execution.need_cents
        position = execution.position
        position.traded += cost
        position.fees_cents += fee
        position.updated_ts = ts
        self._positions[market.ticker] = position
        order.filled += count
        order.remaining -= count
        order.updated_ts = ts
        if maker:
            order.maker_cost += cost
            order.maker_fees_cents += fee
        else:
            order.taker_cost += cost
            order.taker_fees_cents += fee
        for (price, n), level_fee in zip(execution.levels, execution.fees, strict=True):
            self._fills.append(
                FillState(
                    seq=next(self._seq),
                    fill_id=str(uuid.uuid4()),
                    order_id=order.order_id,
                    client_order_id=request.client_order_id,
                    ticker=market.ticker,
                    side=request.side,
                    action=request.action,
                    count=n,
                    yes_price=_yes_price(request, price),
                    fee_cents=level_fee,
                    is_taker=not maker,
                    ts=ts,
                    listed_at=self._wall() + self._listing_delay(),
                )
            )
        if order.remaining == 0:
            self._end(order, EXECUTED, ts)

    def _end(self, order: OrderState, status: str, ts: int) -> Decimal:
        self._resting.pop(order.order_id, None)
        return order.close(status, ts)

    def _trade_through(self, order: OrderState, t: int) -> None:
        """A maker fill of a resting order against the snapshot taken at ``t``, if it trades
        through the order's limit (the backtest's rule: :mod:`kalshi_lab.execution.fills`)."""
        request = order.request
        market = self.dataset.markets[request.ticker]
        book = self.books.book(market, t)  # the snapshot taken at t (empty once closed)
        buy = request.action == "buy"
        book_side = _book_side(request)
        bids = list(reversed(book.side(book_side)))
        offered = [((ONE - bid if buy else bid) * HUNDRED, size) for bid, size in bids]
        room = room_through(offered, buy, request.price * HUNDRED)
        if room <= 0:
            return
        n = min(Decimal(room), order.remaining)
        if request.reduce_only:
            closable = self._position(market).reducible(request.up)
            if closable == 0:  # nothing left to reduce: Kalshi cancels such an order
                self._end(order, CANCELED, t)
                return
            n = min(n, closable)
        execution = self._affordable_make(order, market, n)
        if execution is None:
            return
        n = sum((k for _, k in execution.levels), ZERO)
        for (bid, _), k in zip(bids, spread(n, [size for _, size in bids]), strict=False):
            if k > 0:
                self.books.take(market.ticker, t, book_side, bid, k)
        self._book(order, market, execution, maker=True, ts=t)
        if order.resting:
            order.reserved_cents = self._reserve(request, market, order.remaining)

    def _affordable_make(
        self, order: OrderState, market: MarketEntry, n: Decimal
    ) -> _Execution | None:
        """The maker execution of ``n`` contracts at the order's limit, or of a little less
        when the balance cannot pay it and hold the rest: a rest holds its worst case, so only
        the rounding of split fees and costs (a cent or two) can leave it short."""
        request = order.request
        step = ONE if n == n.to_integral_value() else Decimal("0.01")
        for _ in range(_SHORT_STEPS):
            if n <= 0:
                return None
            execution = self._work_out(request, market, [(request.price, n)], maker=True)
            free = self._available() + order.reserved_cents
            if execution.need_cents + self._reserve(request, market, order.remaining - n) <= free:
                return execution
            n -= step
        return None

    def _settle(self, ticker: str, ts: int) -> None:
        """Pay out the position held in a market that settled at ``ts``."""
        self._settled.add(ticker)
        market = self.dataset.markets[ticker]
        for order in [o for o in self._resting.values() if o.request.ticker == ticker]:
            self._end(order, CANCELED, ts)
        position = self._positions.get(ticker)
        if position is None or position.size == 0:
            return
        outcome = _outcome(market)
        if outcome is None:
            logger.warning(
                "market %s settled at %s with result %r: the position is not paid out",
                ticker,
                iso(ts),
                market.doc.get("result"),
            )
            return
        result, yes_value = outcome
        if yes_value is None:  # void: the cost comes back
            revenue = floor_cents(position.exposure)
        else:
            per_contract = yes_value if position.side == "yes" else ONE - yes_value
            revenue = floor_cents(position.size * per_contract)
        assert position.side is not None
        self._settlements.append(
            SettlementState(
                seq=next(self._seq),
                ticker=ticker,
                event_ticker=market.event_ticker,
                result=result,
                side=position.side,
                count=position.size,
                cost=position.exposure,
                revenue_cents=revenue,
                fee_cents=position.fees_cents,
                value_cents=None if yes_value is None else floor_cents(yes_value),
                ts=ts,
            )
        )
        self._cash_cents += revenue
        position.settle(revenue, ts)

    def cancel_order(self, order_id: str) -> tuple[dict[str, Any], Decimal]:
        """Zero a resting order (it is kept, canceled) and release what it held; what traded
        through it before now has filled first."""
        with self._lock:
            now = self._sync()
            order = self._order(order_id)
            if not order.resting:
                raise not_found(f"resting order {order_id} (its status is {order.status})")
            reduced = self._end(order, CANCELED, now)
            return order.doc(), reduced


def _outcome(market: MarketEntry) -> tuple[str, Decimal | None] | None:
    """(result, what one YES contract pays in dollars; None if void) as recorded, or None
    when the document holds no usable result."""
    result = str(market.doc.get("result") or "")
    if result in ("yes", "no"):
        return result, ONE if result == "yes" else ZERO
    if result == "void":
        return result, None
    if result == "scalar":
        try:
            value = decimal_of(market.doc.get("settlement_value_dollars"))
        except ValueError:
            return None
        return (result, value) if ZERO <= value <= ONE else None
    return None
