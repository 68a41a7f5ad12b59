"""The account behind the portfolio endpoints: cash, positions, orders and fills.

Time is the server's clock ``now``: orders are matched against the books at ``now`` and
stamped with it. Each order is planned on copies first and applied only when it is valid as a
whole, under one lock, so a rejected order (bad market, insufficient balance, fill-or-kill that
cannot fill) changes nothing, and two concurrent orders never take the same depth.

Money (API.md section 4):

* a fill of C contracts at YES price P pays the taker fee ``ceil(0.07 * m * C * P * (1-P))``
  cents (``m`` the series' ``fee_multiplier``), charged per fill, i.e. per price level taken;
* positions are netted per market, as Kalshi nets them: buying YES while holding NO first
  closes NO contracts (each closed pair returns $1, so closing receives 1 - P), selling YES
  without YES opens NO at 1 - P; closed contracts leave the position FIFO, which makes the
  realized P&L exact;
* the cash change of a fill is floored to the cent (a debit rounds up, a credit down), and
  cash is integer cents;
* a resting order reserves what it would cost if it filled at its limit; ``balance`` is cash
  minus reserves and never goes negative: an order that would need more is refused (400).

Resting orders stay on the account until canceled; the recorded books do not move, so nothing
crosses them later, and they are not shown in the served book.

Nothing settles: orders are taken only in markets trading at ``now``, and ``now`` never moves
on to their settlement, so ``GET /portfolio/settlements`` answers an empty list.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from kalshi_lab.execution.fees import FeeSchedule
from kalshi_lab.server.books import BookStore
from kalshi_lab.server.dataset import Dataset, MarketEntry
from kalshi_lab.server.errors import ApiError, bad_request, not_found
from kalshi_lab.server.matching import Take, match
from kalshi_lab.server.orders import OrderRequest, Side, check_market_rules
from kalshi_lab.server.units import HUNDRED, ONE, ZERO, cents_text, count_text, dollars_text, iso

USER_ID = "local-user"


def fee_cents(rate: Decimal, count: Decimal, yes_price: Decimal) -> int:
    """Taker fee of one fill in cents, exact: ``ceil(rate * C * P * (1 - P) * 100)``."""
    return int(
        (rate * count * yes_price * (ONE - yes_price) * HUNDRED).to_integral_value(ROUND_CEILING)
    )


def floor_cents(dollars: Decimal) -> int:
    """A cash change in whole cents, floored: debits round up, credits round down."""
    return int((dollars * HUNDRED).to_integral_value(ROUND_FLOOR))


@dataclass
class Lot:
    count: Decimal
    price: Decimal  # paid per contract, on the position's own side


@dataclass
class Position:
    """One market's netted position: YES or NO contracts (never both), FIFO lots."""

    ticker: str
    event_ticker: str
    side: Side | None = None
    lots: list[Lot] = field(default_factory=list)
    realized: Decimal = ZERO
    traded: Decimal = ZERO
    fees_cents: int = 0
    updated_ts: int = 0

    @property
    def size(self) -> Decimal:
        return sum((lot.count for lot in self.lots), ZERO)

    @property
    def signed(self) -> Decimal:
        """Kalshi's ``position``: > 0 YES contracts, < 0 NO contracts (never a negative zero)."""
        return -self.size if self.side == "no" else self.size

    @property
    def exposure(self) -> Decimal:
        return sum((lot.count * lot.price for lot in self.lots), ZERO)

    def copy(self) -> Position:
        return Position(
            self.ticker,
            self.event_ticker,
            self.side,
            [Lot(lot.count, lot.price) for lot in self.lots],
            self.realized,
            self.traded,
            self.fees_cents,
            self.updated_ts,
        )

    def reducible(self, up: bool) -> Decimal:
        """Contracts an order moving ``up`` (towards YES) can close."""
        return self.size if self.side == ("no" if up else "yes") else ZERO

    def trade(self, up: bool, count: Decimal, yes_price: Decimal) -> Decimal:
        """Apply a fill; returns the cash it moves in dollars (> 0 received, < 0 paid)."""
        cash = ZERO
        close = min(count, self.reducible(up))
        if close > 0:
            receive = ONE - yes_price if up else yes_price
            cost = self._pop(close)
            self.realized += close * receive - cost
            cash += close * receive
            if not self.lots:
                self.side = None
        opened = count - close
        if opened > 0:
            price = yes_price if up else ONE - yes_price
            self.side = "yes" if up else "no"
            self.lots.append(Lot(opened, price))
            cash -= opened * price
        return cash

    def _pop(self, count: Decimal) -> Decimal:
        """Remove ``count`` contracts oldest first; returns what they cost."""
        cost = ZERO
        while count > 0:
            lot = self.lots[0]
            n = min(lot.count, count)
            cost += n * lot.price
            lot.count -= n
            count -= n
            if lot.count == 0:
                self.lots.pop(0)
        return cost

    def doc(self, resting_orders: int) -> dict[str, Any]:
        """``MarketPosition``."""
        return {
            "ticker": self.ticker,
            "total_traded_dollars": dollars_text(self.traded),
            "position_fp": count_text(self.signed),
            "market_exposure_dollars": dollars_text(self.exposure),
            "realized_pnl_dollars": dollars_text(self.realized),
            "resting_orders_count": resting_orders,
            "fees_paid_dollars": cents_text(self.fees_cents),
            "last_updated_ts": iso(self.updated_ts),
        }


@dataclass
class OrderState:
    seq: int
    order_id: str
    request: OrderRequest
    event_ticker: str
    status: str  # resting, canceled, executed
    filled: Decimal
    remaining: Decimal
    fill_cost: Decimal  # dollars, at the order's side prices
    fees_cents: int
    reserved_cents: int
    created_ts: int
    updated_ts: int

    def doc(self) -> dict[str, Any]:
        """``Order`` in the current fixed-point format."""
        r = self.request
        yes = r.price if r.side == "yes" else ONE - r.price
        return {
            "order_id": self.order_id,
            "user_id": USER_ID,
            "client_order_id": r.client_order_id,
            "ticker": r.ticker,
            "side": r.side,
            "action": r.action,
            "type": "limit",
            "status": self.status,
            "yes_price_dollars": dollars_text(yes),
            "no_price_dollars": dollars_text(ONE - yes),
            "fill_count_fp": count_text(self.filled),
            "remaining_count_fp": count_text(self.remaining),
            "initial_count_fp": count_text(r.count),
            "taker_fill_cost_dollars": dollars_text(self.fill_cost),
            "maker_fill_cost_dollars": dollars_text(ZERO),
            "taker_fees_dollars": cents_text(self.fees_cents),
            "maker_fees_dollars": dollars_text(ZERO),
            "expiration_time": None if r.expiration_ts is None else iso(r.expiration_ts),
            "created_time": iso(self.created_ts),
            "last_update_time": iso(self.updated_ts),
            "self_trade_prevention_type": r.self_trade_prevention_type,
            "order_group_id": None,
            "cancel_order_on_pause": r.cancel_order_on_pause,
            "subaccount_number": 0,
        }


@dataclass(frozen=True)
class FillState:
    seq: int
    fill_id: str
    order_id: str
    client_order_id: str
    ticker: str
    side: Side
    action: str
    count: Decimal
    yes_price: Decimal
    fee_cents: int
    ts: int

    def doc(self) -> dict[str, Any]:
        """``Fill``: every fill here is a taker fill."""
        return {
            "fill_id": self.fill_id,
            "trade_id": self.fill_id,
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "ticker": self.ticker,
            "market_ticker": self.ticker,
            "side": self.side,
            "action": self.action,
            "count_fp": count_text(self.count),
            "yes_price_dollars": dollars_text(self.yes_price),
            "no_price_dollars": dollars_text(ONE - self.yes_price),
            "is_taker": True,
            "fee_cost": cents_text(self.fee_cents),
            "created_time": iso(self.ts),
            "ts": self.ts,
            "subaccount_number": 0,
        }


@dataclass(frozen=True)
class _Plan:
    """An order worked out on copies: applied as a whole or not at all."""

    takes: list[Take]
    snapshot_ts: int | None  # the book snapshot the takes come from
    position: Position
    fees: list[int]
    cash_cents: int  # fills' cash, fees not included
    reserve_cents: int
    filled: Decimal
    fill_cost: Decimal


class Portfolio:
    """One account (the primary subaccount) trading at the server's clock ``now``."""

    def __init__(
        self, dataset: Dataset, books: BookStore, now: int, starting_balance_cents: int
    ) -> None:
        if starting_balance_cents < 0:
            raise ValueError(f"starting balance must be >= 0 cents, got {starting_balance_cents}")
        self.dataset = dataset
        self.books = books
        self.now = now
        self._lock = threading.Lock()
        self._cash_cents = starting_balance_cents
        self._orders: dict[str, OrderState] = {}
        self._client_ids: dict[str, str] = {}
        self._fills: list[FillState] = []
        self._positions: dict[str, Position] = {}
        self._seq = itertools.count(1)
        self._rates: dict[str, Decimal] = {}

    # --- reading ----------------------------------------------------------------------------

    @property
    def cash_cents(self) -> int:
        with self._lock:
            return self._cash_cents

    @property
    def balance_cents(self) -> int:
        """Available balance: cash minus what resting orders reserve."""
        with self._lock:
            return self._available()

    def _available(self) -> int:
        reserved = sum(o.reserved_cents for o in self._orders.values() if o.status == "resting")
        return self._cash_cents - reserved

    def balance_doc(self) -> dict[str, int]:
        """``GetBalanceResponse``: positions are valued at the bid of their side at ``now``."""
        with self._lock:
            value = 0
            for p in self._positions.values():
                if p.size > 0:
                    market = self.dataset.markets[p.ticker]
                    bids = self.books.book(market, self.now).side(p.side or "yes")
                    value += floor_cents(p.size * bids[-1][0]) if bids else 0
            return {"balance": self._available(), "portfolio_value": value, "updated_ts": self.now}

    def order_doc(self, order_id: str) -> dict[str, Any]:
        with self._lock:
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
        """(cursor key, Fill) of the matching fills, newest first."""
        with self._lock:
            chosen = [
                f
                for f in self._fills
                if (ticker is None or f.ticker == ticker)
                and (order_id is None or f.order_id == order_id)
                and (min_ts is None or f.ts >= min_ts)
                and (max_ts is None or f.ts <= max_ts)
            ]
        return [(-f.seq, f.doc()) for f in reversed(chosen)]

    def settlement_docs(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(cursor key, Settlement) of the matching settlements, newest first: none, as no
        market the account trades settles at the fixed ``now`` (see the module docstring)."""
        return []

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
            resting: dict[str, int] = {}
            for o in self._orders.values():
                if o.status == "resting":
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
            events = _event_positions(chosen)
        return markets, events

    def positions(self) -> dict[str, Decimal]:
        """Signed position per ticker (for assertions): > 0 YES, < 0 NO."""
        with self._lock:
            return {t: p.signed for t, p in self._positions.items()}

    # --- trading ----------------------------------------------------------------------------

    def _order(self, order_id: str) -> OrderState:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found(f"order {order_id}")
        return order

    def _fee_rate(self, market: MarketEntry) -> Decimal:
        rate = self._rates.get(market.series_ticker)
        if rate is None:
            series = self.dataset.series[market.series_ticker]
            schedule = FeeSchedule.for_series(
                str(series.get("fee_type") or "quadratic"),
                float(series.get("fee_multiplier", 1.0)),
            )
            rate = self._rates[market.series_ticker] = schedule.taker_rate
        return rate

    def create_order(self, request: OrderRequest) -> dict[str, Any]:
        """Match, charge and record one order; the Order as ``POST /portfolio/orders`` returns it."""
        with self._lock:
            if request.client_order_id and request.client_order_id in self._client_ids:
                raise ApiError(
                    409,
                    "order_already_exists",
                    f"an order with client_order_id {request.client_order_id} already exists",
                )
            market = self.dataset.markets.get(request.ticker)
            if market is None:
                raise not_found(f"market {request.ticker}")
            if not market.trading_at(self.now):
                raise bad_request(
                    f"market {request.ticker} is not open for trading at the server's time "
                    f"{iso(self.now)}",
                    code="market_closed",
                )
            check_market_rules(request, market.doc)
            if request.expiration_ts is not None and request.expiration_ts <= self.now:
                raise bad_request(f"expiration_ts {request.expiration_ts} is not after now")
            plan = self._plan(request, market)
            return self._apply(request, market, plan).doc()

    def _plan(self, request: OrderRequest, market: MarketEntry) -> _Plan:
        position = self._positions.get(market.ticker)
        position = (position or Position(market.ticker, market.event_ticker)).copy()
        if request.reduce_only and request.count > position.reducible(request.up):
            raise bad_request(
                f"reduce_only order for {request.count} contracts, but only "
                f"{position.reducible(request.up)} can be closed",
            )
        book = self.books.book(market, self.now)
        takes = match(book, request.up, request.yes_limit, request.count)
        if request.post_only and takes:
            raise bad_request("post_only order would take liquidity", code="post_only_cross")
        filled = sum((t.count for t in takes), ZERO)
        on_side = [t.yes_price if request.side == "yes" else ONE - t.yes_price for t in takes]
        fill_cost = sum((t.count * p for t, p in zip(takes, on_side, strict=True)), ZERO)
        if request.time_in_force == "fill_or_kill" and filled < request.count:
            raise ApiError(
                409,
                "fill_or_kill_insufficient_resting_volume",
                f"fill-or-kill order for {request.count} contracts: only {filled} available "
                "within its limit",
            )
        cost_cents = int((fill_cost * HUNDRED).to_integral_value(ROUND_CEILING))
        if request.buy_max_cost_cents is not None and cost_cents > request.buy_max_cost_cents:
            raise ApiError(
                409,
                "fill_or_kill_insufficient_resting_volume",
                f"buy_max_cost {request.buy_max_cost_cents} cents: the {request.count} contracts "
                f"cost {cost_cents} cents before fees",
            )
        rate = self._fee_rate(market)
        fees = [fee_cents(rate, t.count, t.yes_price) for t in takes]
        cash = sum(floor_cents(position.trade(request.up, t.count, t.yes_price)) for t in takes)
        reserve = 0
        remainder = request.count - filled
        if request.rests and remainder > 0:
            would = position.copy().trade(request.up, remainder, request.yes_limit)
            reserve = max(0, -floor_cents(would))
        if self._available() + cash - sum(fees) - reserve < 0:
            raise bad_request(
                f"insufficient balance: the order needs {-(cash - sum(fees) - reserve)} cents, "
                f"{self._available()} available",
                code="insufficient_balance",
            )
        return _Plan(takes, book.snapshot_ts, position, fees, cash, reserve, filled, fill_cost)

    def _apply(self, request: OrderRequest, market: MarketEntry, plan: _Plan) -> OrderState:
        order_id = str(uuid.uuid4())
        for take in plan.takes:
            assert plan.snapshot_ts is not None
            self.books.take(
                market.ticker, plan.snapshot_ts, take.book_side, take.book_price, take.count
            )
        remainder = request.count - plan.filled
        status = "executed" if remainder == 0 else "resting" if request.rests else "canceled"
        order = OrderState(
            seq=next(self._seq),
            order_id=order_id,
            request=request,
            event_ticker=market.event_ticker,
            status=status,
            filled=plan.filled,
            remaining=remainder if status == "resting" else ZERO,
            fill_cost=plan.fill_cost,
            fees_cents=sum(plan.fees),
            reserved_cents=plan.reserve_cents,
            created_ts=self.now,
            updated_ts=self.now,
        )
        self._orders[order_id] = order
        if request.client_order_id:
            self._client_ids[request.client_order_id] = order_id
        self._cash_cents += plan.cash_cents - sum(plan.fees)
        position = plan.position
        if plan.takes:
            position.traded += plan.fill_cost
            position.fees_cents += sum(plan.fees)
            position.updated_ts = self.now
            self._positions[market.ticker] = position
        for take, fee in zip(plan.takes, plan.fees, strict=True):
            self._fills.append(
                FillState(
                    seq=next(self._seq),
                    fill_id=str(uuid.uuid4()),
                    order_id=order_id,
                    client_order_id=request.client_order_id,
                    ticker=market.ticker,
                    side=request.side,
                    action=request.action,
                    count=take.count,
                    yes_price=take.yes_price,
                    fee_cents=fee,
                    ts=self.now,
                )
            )
        return order

    def cancel_order(self, order_id: str) -> tuple[dict[str, Any], Decimal]:
        """Zero a resting order (it is kept, canceled) and release its reserve."""
        with self._lock:
            order = self._order(order_id)
            if order.status != "resting":
                raise not_found(f"resting order {order_id} (its status is {order.status})")
            reduced = order.remaining
            order.remaining = ZERO
            order.status = "canceled"
            order.reserved_cents = 0
            order.updated_ts = self.now
            return order.doc(), reduced


def _event_positions(positions: list[Position]) -> list[dict[str, Any]]:
    """``EventPosition`` per event of ``positions``, by event ticker."""
    by_event: dict[str, list[Position]] = {}
    for p in positions:
        by_event.setdefault(p.event_ticker, []).append(p)
    out = []
    for event, group in sorted(by_event.items()):
        exposure = sum((p.exposure for p in group), ZERO)
        out.append(
            {
                "event_ticker": event,
                "total_cost_dollars": dollars_text(sum((p.traded for p in group), ZERO)),
                "total_cost_shares_fp": count_text(sum((p.size for p in group), ZERO)),
                "event_exposure_dollars": dollars_text(exposure),
                "realized_pnl_dollars": dollars_text(sum((p.realized for p in group), ZERO)),
                "fees_paid_dollars": cents_text(sum(p.fees_cents for p in group)),
            }
        )
    return out
