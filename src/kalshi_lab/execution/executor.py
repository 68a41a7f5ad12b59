"""Executors: send a decision's orders to the exchange and book the fills in the account.

The narrow protocol, as in Qlib: the strategy's PredictionMarketDecision goes in, the orders that changed
come back (and go to ``Strategy.receive``). Every send is immediate-or-cancel against the
quote at the send time (the snapshot at or before it, else the latest candle ended by then); what a send leaves unfilled is cancelled (simple) or
carried to the next child (TWAP). Before each buy the order's budget is cut to the cash the
account has, so a fill never overdraws it (the account would raise).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pandas as pd

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exchange import BaseKalshiExchange
from kalshi_lab.params import BacktestParams

logger = logging.getLogger(__name__)


def send(
    order: ContractOrder,
    count: int,
    ts: pd.Timestamp,
    exchange: BaseKalshiExchange,
    account: KalshiAccount,
) -> None:
    """Send ``count`` of ``order`` at ``ts``; book any fill in the account and the order.

    The exchange sees a child order for just this send, its budget the smaller of the parent's
    remaining budget and the account's cash.
    """
    budget = order.remaining_budget_cents
    if order.action == "buy":
        budget = account.cash_cents if budget is None else min(budget, account.cash_cents)
    child = dataclasses.replace(
        order,
        count=count,
        max_cost_cents=budget,
        filled=0,
        cost_cents=0,
        fee_cents=0,
        status="new",
        fills=[],
    )
    fills = exchange.submit(child, ts)
    if not fills:
        return
    (fill,) = fills
    account.apply(fill, order.event_ticker)
    order.record(fill)
    logger.debug(
        "%s %d %s %s @ %.1fc fee %dc at %s",
        fill.action,
        fill.count,
        fill.side,
        fill.ticker,
        fill.avg_price_cents,
        fill.fee_cents,
        ts,
    )


class BaseExecutor(ABC):
    """Drives exchange and account for a strategy's decisions."""

    @abstractmethod
    def execute(
        self,
        decision: PredictionMarketDecision,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> list[ContractOrder]:
        """Work the decision's orders from ``decision.decided_at``; return the orders."""

    @abstractmethod
    def advance(
        self, until: pd.Timestamp, exchange: BaseKalshiExchange, account: KalshiAccount
    ) -> list[ContractOrder]:
        """Send whatever earlier decisions scheduled at or before ``until``; return those orders."""


class KalshiExecutor(BaseExecutor):
    """Each order whole, once, at the decision time; the unfilled rest is cancelled."""

    def execute(
        self,
        decision: PredictionMarketDecision,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> list[ContractOrder]:
        for order in decision.orders:
            send(order, order.remaining, decision.decided_at, exchange, account)
            order.finish()
        return list(decision.orders)

    def advance(
        self, until: pd.Timestamp, exchange: BaseKalshiExchange, account: KalshiAccount
    ) -> list[ContractOrder]:
        return []  # nothing is ever scheduled for later


@dataclass
class _Parent:
    order: ContractOrder
    times: list[pd.Timestamp]  # send times of the children not sent yet


class TWAPExecutor(BaseExecutor):
    """Each order in ``slices`` children, one per new market quote from the decision on.

    Child i is sent at the i-th time at or after the decision at which the market's quote
    changes (a snapshot, or a candle's end where it has no snapshot), so each child meets that
    quote, not the decision's; a child due after the market closed fills nothing.
    A child asks for remaining / children left (rounded up): what one child leaves unfilled is
    carried by the next. Children due after the loop's current time wait for :meth:`advance`.
    """

    def __init__(self, slices: int) -> None:
        if slices < 1:
            raise ValueError(f"slices must be >= 1, got {slices}")
        self.slices = slices
        self._parents: list[_Parent] = []

    def execute(
        self,
        decision: PredictionMarketDecision,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> list[ContractOrder]:
        for order in decision.orders:
            times = exchange.quote_times(order.ticker, decision.decided_at, self.slices)  # type: ignore[attr-defined]
            order.status = "open"
            self._parents.append(_Parent(order, times))
        return self._run(decision.decided_at, exchange, account, list(decision.orders))

    def advance(
        self, until: pd.Timestamp, exchange: BaseKalshiExchange, account: KalshiAccount
    ) -> list[ContractOrder]:
        return self._run(until, exchange, account, [])

    @property
    def next_time(self) -> pd.Timestamp | None:
        """When the next child is due, or None when nothing is scheduled."""
        return min((p.times[0] for p in self._parents if p.times), default=None)

    def _run(
        self,
        until: pd.Timestamp,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
        touched: list[ContractOrder],
    ) -> list[ContractOrder]:
        """Send due children in time order (parents in decision order at equal times)."""
        while (t := self.next_time) is not None and t <= until:
            for parent in self._parents:
                if not parent.times or parent.times[0] != t:
                    continue
                parent.times.pop(0)
                want = -(-parent.order.remaining // (len(parent.times) + 1))
                if want > 0:
                    send(parent.order, want, t, exchange, account)
                if parent.order not in touched:
                    touched.append(parent.order)
        for parent in self._parents:
            if not parent.times or parent.order.remaining == 0:
                parent.order.finish()
                if parent.order not in touched:
                    touched.append(parent.order)
        self._parents = [p for p in self._parents if not p.order.done]
        return touched


def make_executor(params: BacktestParams) -> BaseExecutor:
    """The executor named by ``params.executor``."""
    if params.executor == "twap":
        return TWAPExecutor(params.twap_slices)
    return KalshiExecutor()
