"""Executors: own the lifecycle of a decision's orders, between the exchange and the account.

As in Qlib, the strategy decides and the executor executes: it sends orders to the exchange,
books every fill in the account, keeps the orders still being worked (which the strategy and the
risk limits see through :attr:`BaseExecutor.working`), and does at their time whatever it
scheduled (cancelling a resting order after its time-to-live, sending a child order).

* :class:`KalshiExecutor` sends each order whole at the decision. Without a time-to-live the
  order is immediate-or-cancel; with one, what does not fill at once rests on the book at the
  order's limit and is cancelled when the time-to-live runs out.
* :class:`NestedKalshiExecutor` (Qlib's NestedExecutor) works each order of the outer decision
  through an inner strategy and an inner executor on a finer calendar: by default TWAP, one
  child every ``step`` (an hour) for ``slices`` steps from the decision.

No executor reads anything about a time later than the one it acts at: a child's size at t
depends on the clock and on what its parent filled by t, never on when quotes will change.
Before each buy the budget sent is cut to the cash the account has, so a fill never overdraws.

An order the executor is done with is kept, by client_order_id, for as long as the venue may
still report fills of it (kalshi_lab.execution.lifecycle): a fill listed after the send
returned, or after a time-to-live cancel, is booked whenever it comes, in the account and in
its order. A fill of an order the executor never worked raises UnknownFillError at once, after
the known fills of the same listing are booked: the caller stops before it decides anything
more. Orders the venue has not told the whole outcome of (``exchange.unresolved()``) count as
working: their markets get no new order, and their cost stays committed. A simulated venue
answers every send in full, so none of this changes a backtest.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import pandas as pd

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import (
    ContractOrder,
    Fill,
    PredictionMarketDecision,
    child_order_id,
)
from kalshi_lab.execution.exchange import BaseKalshiExchange
from kalshi_lab.execution.lifecycle import ListingLagError, UnknownFillError

logger = logging.getLogger(__name__)

HOUR = pd.Timedelta(hours=1)  # the default inner calendar: hourly bars


class BaseExecutor(ABC):
    """Drives the exchange and the account for the decisions it is given."""

    def __init__(self, exchange: BaseKalshiExchange, account: KalshiAccount) -> None:
        self.exchange = exchange
        self.account = account
        self._working: dict[str, ContractOrder] = {}  # by client_order_id, not done yet
        #: done here, by client_order_id: the venue may still report fills of them
        self._done: dict[str, ContractOrder] = {}
        #: called with (order, fill) when a fill of a done order is booked (a parent learns
        #: of its child's late fill)
        self.on_late_fill: Callable[[ContractOrder, Fill], None] | None = None
        self.booked = 0  # fills booked so far (a caller reconciles when it grew)

    @abstractmethod
    def execute(self, decision: PredictionMarketDecision) -> list[ContractOrder]:
        """Start working the decision's orders at ``decision.decided_at``; returns them."""

    @abstractmethod
    def advance(self, until: pd.Timestamp) -> list[ContractOrder]:
        """Book resting fills and do what is scheduled up to ``until``; the orders touched."""

    @property
    def next_time(self) -> pd.Timestamp | None:
        """When the executor next has something to do on its own, None when nothing is due."""
        return None

    @property
    def working(self) -> list[ContractOrder]:
        """Orders still being worked, and those done here whose outcome the venue has not
        told in full (they may still fill)."""
        return [*self._working.values(), *self._unresolved()]

    def _unresolved(self) -> list[ContractOrder]:
        unresolved = self.exchange.unresolved()
        return [self._done[c] for c in unresolved if c in self._done] if unresolved else []

    def working_tickers(self) -> set[str]:
        """Markets with an order being worked or unresolved at the venue: no new order."""
        return {o.ticker for o in self._working.values()} | set(self.exchange.unresolved().values())

    def cancel_working(self, ts: pd.Timestamp) -> list[ContractOrder]:
        """Stop working every order at ``ts``: each done here and its rest cancelled at the
        venue, so a session that ends leaves nothing resting that nobody manages. Their fills
        the venue lists later still book (as a ttl cancel's do)."""
        stopped = list(self._working.values())
        self._working.clear()
        for order in stopped:
            self._finish(order)
            self.exchange.cancel(order, ts)
        return stopped

    def committed_cents(self) -> int:
        """What the working buys may still spend (cost + fees): cash the strategy cannot use."""
        return sum(o.cost_bound_cents for o in self.working if o.action == "buy")

    def decision_of(self, client_order_id: str) -> str:
        """The client_order_id of the decided order that a venue order works: itself."""
        return client_order_id

    # --- shared mechanics -----------------------------------------------------------------

    def send(self, order: ContractOrder, count: int, ts: pd.Timestamp) -> list[Fill]:
        """Submit ``count`` of ``order`` at ``ts``; book the immediate fills.

        The exchange sees a copy for just this send, with the order's client_order_id and a
        budget no larger than the order's remaining budget and the account's cash.
        """
        budget = order.remaining_budget_cents
        if order.action == "buy":
            cash = self.account.cash_cents
            budget = cash if budget is None else min(budget, cash)
        child = order.unworked(count, budget)
        fills = self.exchange.submit(child, ts)
        for fill in fills:
            self._book(order, fill)
        return fills

    def _finish(self, order: ContractOrder) -> None:
        """Done here: whatever is not filled is cancelled; later venue fills still book."""
        order.finish()
        self._done[order.client_order_id] = order

    def _book(self, order: ContractOrder, fill: Fill) -> None:
        self.account.apply(fill, order.event_ticker)
        order.record(fill)
        self.booked += 1
        logger.debug(
            "%s %d %s %s @ %.1fc fee %dc at %s (%s)",
            fill.action,
            fill.count,
            fill.side,
            fill.ticker,
            fill.avg_price_cents,
            fill.fee_cents,
            fill.ts,
            fill.liquidity,
        )

    def _collect(self, until: pd.Timestamp) -> list[ContractOrder]:
        """Book the exchange's fills of resting orders up to ``until`` (late ones too)."""
        return self.book_reported(self.exchange.fills(until))

    def book_reported(self, fills: Iterable[Fill]) -> list[ContractOrder]:
        """Book fills the venue reported after their send; UnknownFillError, once the known
        ones are booked, if one is of an order this executor never worked."""
        touched, strangers = [], []
        for fill in fills:
            order = self._working.get(fill.order_id)
            if order is not None:
                self._book(order, fill)
                if order.remaining == 0:
                    self._finish(order)
                    del self._working[fill.order_id]
            elif (order := self._done.get(fill.order_id)) is not None:
                self._book(order, fill)
                order.finish()  # still done: record() reopened it
                logger.info(
                    "late fill of %s: %d %s %s booked (the venue listed it after the send)",
                    fill.order_id,
                    fill.count,
                    fill.side,
                    fill.ticker,
                )
                if self.on_late_fill is not None:
                    self.on_late_fill(order, fill)
            else:
                strangers.append(fill)
                continue
            touched.append(order)
        if strangers:
            raise UnknownFillError(strangers)
        return touched

    def resolve(self, until: pd.Timestamp) -> list[ContractOrder]:
        """Once per decision step: book what the venue now tells of the orders it had not
        told in full; ListingLagError when one has kept it waiting too long."""
        touched = self.book_reported(self.exchange.resolve(until))
        overdue = self.exchange.overdue()
        if overdue:
            raise ListingLagError(
                "the venue counts fills it does not list, after the steps tolerated: "
                + "; ".join(overdue)
            )
        return touched


class KalshiExecutor(BaseExecutor):
    """Each order whole at its decision; immediate-or-cancel, or resting for ``ttl``.

    With a ``ttl`` the order goes in good-till-cancelled: what the book does not fill at once
    rests at the order's limit, fills as maker when the market trades through it, and is
    cancelled ``ttl`` after the decision (or when the market closes).
    """

    def __init__(
        self,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
        ttl: pd.Timedelta | None = None,
    ) -> None:
        super().__init__(exchange, account)
        if ttl is not None and ttl <= pd.Timedelta(0):
            raise ValueError(f"ttl must be > 0 or None, got {ttl}")
        self.ttl = ttl
        self._expiry: dict[str, pd.Timestamp] = {}

    def execute(self, decision: PredictionMarketDecision) -> list[ContractOrder]:
        assert decision.decided_at is not None or not decision.orders
        for order in decision.orders:
            if self.ttl is not None:
                order.time_in_force = "gtc"
            self.send(order, order.remaining, order.decided_at)
            if self.ttl is None or order.remaining == 0:
                self._finish(order)
            else:
                order.status = "open"
                self._working[order.client_order_id] = order
                self._expiry[order.client_order_id] = order.decided_at + self.ttl
        return list(decision.orders)

    @property
    def next_time(self) -> pd.Timestamp | None:
        live = [t for key, t in self._expiry.items() if key in self._working]
        return min(live, default=None)

    def advance(self, until: pd.Timestamp) -> list[ContractOrder]:
        touched: list[ContractOrder] = []
        while (t := self.next_time) is not None and t <= until:
            touched += self._collect(t)
            for key in [k for k, e in self._expiry.items() if e == t]:
                order = self._working.pop(key, None)
                del self._expiry[key]
                if order is not None:
                    self._finish(order)  # done here first: its later fills still book
                    self.exchange.cancel(order, t)
                    touched.append(order)
        touched += self._collect(until)
        self._expiry = {k: t for k, t in self._expiry.items() if k in self._working}
        return list(dict.fromkeys(touched))


class TWAPStrategy:
    """Qlib's TWAP as an inner strategy: equal children over a fixed calendar.

    At step k of ``slices`` (k = 0 at the decision) a parent's child asks for its remaining
    contracts / steps left, rounded up, so what a child leaves unfilled is carried by the next.
    The schedule is fixed when the parent arrives: it knows the clock, not the data to come.
    """

    def __init__(self, slices: int) -> None:
        if slices < 1:
            raise ValueError(f"slices must be >= 1, got {slices}")
        self.slices = slices

    def child_count(self, parent: ContractOrder, step: int) -> int:
        """Contracts of the child at ``step`` (0-based)."""
        return math.ceil(parent.remaining / (self.slices - step))


class NestedKalshiExecutor(BaseExecutor):
    """Works the outer (daily) decision's orders as children on an inner calendar.

    Each parent gets ``inner_strategy.slices`` steps, ``step`` apart from its decision; at each
    step the inner strategy sizes a child, which the inner executor (an immediate-or-cancel
    KalshiExecutor) executes. The parent sees the children's fills; it is done
    when filled or after its last step. Children due at a later time wait for :meth:`advance`.
    """

    def __init__(
        self,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
        inner_strategy: TWAPStrategy,
        step: pd.Timedelta = HOUR,
    ) -> None:
        super().__init__(exchange, account)
        if step <= pd.Timedelta(0):
            raise ValueError(f"step must be > 0, got {step}")
        self.inner_strategy = inner_strategy
        self.step = step
        # immediate-or-cancel children: each child's fills are known when it returns, but
        # for those the venue lists late, which reach the parent through on_late_fill
        self.inner = KalshiExecutor(exchange, account)
        self.inner.on_late_fill = self._late_child_fill
        self._step_of: dict[str, int] = {}  # parent id -> next step
        self._parent_of: dict[str, ContractOrder] = {}  # child id -> parent
        self._children: dict[str, list[str]] = {}  # parent id -> its children's ids

    def decision_of(self, client_order_id: str) -> str:
        """The parent's client_order_id of a child; the id itself for a parent."""
        parent = self._parent_of.get(client_order_id)
        return client_order_id if parent is None else parent.client_order_id

    def _unresolved(self) -> list[ContractOrder]:
        return self.inner._unresolved()  # the venue knows the children

    def resolve(self, until: pd.Timestamp) -> list[ContractOrder]:
        return self.inner.resolve(until)

    def book_reported(self, fills: Iterable[Fill]) -> list[ContractOrder]:
        return self.inner.book_reported(fills)  # fills name the children

    def _late_child_fill(self, child: ContractOrder, fill: Fill) -> None:
        parent = self._parent_of[child.client_order_id]
        parent.record(fill)
        if parent.client_order_id not in self._working:
            parent.finish()  # still done: record() reopened it

    def _waits_for_venue(self, parent: ContractOrder) -> bool:
        """A child of ``parent`` has an outcome the venue has not told in full: the next
        child's size would be wrong, so it waits."""
        unresolved = self.exchange.unresolved()
        return bool(unresolved) and any(
            c in unresolved for c in self._children.get(parent.client_order_id, ())
        )

    def _due(self, order: ContractOrder) -> pd.Timestamp:
        return order.decided_at + self._step_of[order.client_order_id] * self.step

    @property
    def next_time(self) -> pd.Timestamp | None:
        times = [self._due(o) for o in self._working.values()]
        inner = self.inner.next_time
        return min([*times, *([inner] if inner is not None else [])], default=None)

    def execute(self, decision: PredictionMarketDecision) -> list[ContractOrder]:
        for order in decision.orders:
            order.status = "open"
            self._working[order.client_order_id] = order
            self._step_of[order.client_order_id] = 0
        if decision.decided_at is not None:
            self.advance(decision.decided_at)
        return list(decision.orders)

    def advance(self, until: pd.Timestamp) -> list[ContractOrder]:
        touched: list[ContractOrder] = []
        while (t := self.next_time) is not None and t <= until:
            self.inner.advance(t)
            due = [o for o in self._working.values() if self._due(o) == t]
            children = []
            for parent in due:
                k = self._step_of[parent.client_order_id]
                count = self.inner_strategy.child_count(parent, k)
                self._step_of[parent.client_order_id] = k + 1
                if count > 0 and not self._waits_for_venue(parent):
                    children.append((parent, self._child(parent, count, k, t)))
            for parent, child in children:
                self._parent_of[child.client_order_id] = parent
                self._children.setdefault(parent.client_order_id, []).append(child.client_order_id)
                self.inner.execute(PredictionMarketDecision([child], decided_at=t))
                for fill in child.fills:
                    parent.record(fill)
            for parent in due:
                last = self._step_of[parent.client_order_id] >= self.inner_strategy.slices
                if parent.remaining == 0 or last:
                    self._finish(parent)
                    del self._working[parent.client_order_id]
                    del self._step_of[parent.client_order_id]
                touched.append(parent)
        self.inner.advance(until)
        return list(dict.fromkeys(touched))

    @staticmethod
    def _child(parent: ContractOrder, count: int, k: int, t: pd.Timestamp) -> ContractOrder:
        return ContractOrder(
            ticker=parent.ticker,
            event_ticker=parent.event_ticker,
            side=parent.side,
            action=parent.action,
            count=count,
            limit_cents=parent.limit_cents,
            decided_at=t,
            max_cost_cents=parent.remaining_budget_cents,
            client_order_id=child_order_id(parent.client_order_id, k),
        )
