"""Trader: one decision step, the same in backtest, paper and live trading.

At a decision time ``ts`` it (1) catches up on what happened since the last step, in time
order: the executor's scheduled work (children, time-to-live cancels, resting fills), one round
of asking the venue about orders whose outcome it had not told in full (late fills), and the
exchange's settlements; (2) marks the account at the bids quoted at ts; (3) builds the signals
from the predictions made at ts and the quotes at ts; (4) asks the strategy for a decision with
the positions and the capital not committed to working orders; (5) passes it through the risk
limits; (6) tells ``on_decision`` (the bot journals the decision before anything is sent);
(7) hands it to the executor; (8) marks the account again.

A caller that must act between the catch-up and the decision (the bot reconciles when the
catch-up booked fills) calls :meth:`Trader.catch_up` itself and then ``step(...,
caught_up=True)``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exchange import BaseKalshiExchange
from kalshi_lab.execution.executor import BaseExecutor
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.signals import build_signals, signal_tickers
from kalshi_lab.execution.strategy import BaseMarketStrategy

logger = logging.getLogger(__name__)


class Trader:
    """Strategy -> risk -> executor -> exchange -> account, one decision time at a time."""

    def __init__(
        self,
        strategy: BaseMarketStrategy,
        risk: RiskManager,
        executor: BaseExecutor,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
        on_decision: Callable[[PredictionMarketDecision, list[ContractOrder]], None] | None = None,
    ) -> None:
        self.strategy = strategy
        #: called with (the decision that passed the risk limits, the orders they refused)
        #: before the executor sends anything
        self.on_decision = on_decision
        self.risk = risk
        self.executor = executor
        self.exchange = exchange
        self.account = account
        self.orders: list[ContractOrder] = []  # every order that reached the executor
        self.refused: list[ContractOrder] = []  # buys the risk limits refused
        self.n_signals = 0  # (market, time) predictions seen
        self.skipped: Counter[str] = Counter()  # signals the strategy never saw, by reason
        self.last_settled: pd.Timestamp | None = None
        #: the last step's quotes (its signals were built from them): the backtest reads which
        #: quote each decision saw
        self.last_quotes: pd.DataFrame | None = None

    def catch_up(self, until: pd.Timestamp) -> None:
        """Everything due up to ``until``, in time order: executor work, then settlements;
        before the last settlements, one round of resolving orders at the venue."""
        while (t := self.executor.next_time) is not None and t <= until:
            self.executor.advance(t)
            self._settle(t)
        self.executor.advance(until)
        self.executor.resolve(until)
        self._settle(until)

    def _settle(self, until: pd.Timestamp) -> None:
        for settled in self.exchange.settlements(until):
            if self.account.settle(settled.ticker, settled.result, settled.ts):
                self.last_settled = settled.ts

    def mark(self, ts: pd.Timestamp) -> None:
        """Mark the positions at the bids quoted at ``ts``."""
        if self.account.positions:
            self.account.mark(self.exchange.quotes(list(self.account.positions), ts))

    def step(
        self, ts: pd.Timestamp, predictions: pd.DataFrame, *, caught_up: bool = False
    ) -> PredictionMarketDecision:
        """Decide and execute at ``ts`` on the predictions made at ``ts``; the decision run.

        One quote request covers the step: the markets predicted and held, before and after
        the orders (a quote shows the displayed book, which our own fills do not change).
        ``caught_up``: the caller ran :meth:`catch_up` to ``ts`` already.
        """
        if not caught_up:
            self.catch_up(ts)
        quotes = self.exchange.quotes(signal_tickers(predictions, self.account.positions), ts)
        self.last_quotes = quotes
        self.account.mark(quotes)
        self.n_signals += len(predictions)
        signals = build_signals(
            predictions,
            quotes,
            self.account.positions,
            self.executor.working_tickers(),
            self.skipped,
        )
        available = (self.account.cash_cents - self.executor.committed_cents()) / 100.0
        decision = self.strategy.generate_trade_decision(
            signals, dict(self.account.positions), available, ts
        )
        if decision.decided_at is None:
            decision.decided_at = ts
        if decision.decided_at != ts:
            raise DataError(
                f"{type(self.strategy).__name__} returned a decision for "
                f"{decision.decided_at} at {ts}: a decision is made at the time it is asked for"
            )
        decision, refused = self.risk.check(decision, self.account, self.executor.working)
        self.refused += refused
        if self.on_decision is not None:
            self.on_decision(decision, refused)
        self.executor.execute(decision)
        self.orders += decision.orders
        if any(o.filled for o in decision.orders):  # positions opened now get their marks
            self.account.mark(quotes)
        return decision
