"""Risk limits: one gate between strategy and executor, the same in backtest, paper and live.

Whatever a strategy decides (the project's or a user's), every BUY passes here before an
executor sees it, and is cut down or refused when it would break a limit of ``RiskParams``:

* ``max_contracts_per_market``: contracts held in a market, plus those its working buys may
  still buy, plus the buy (a decision holds at most one order per market; a strategy may still
  order a market an earlier order is being worked in, e.g. a resting buy);
* ``max_position_frac``: cost basis held in the market, plus working buys there, plus the buy,
  as a share of equity;
* ``max_event_frac``: the worst-case loss of the event's positions, working buys and the buy,
  over the values its underlying can settle at (:mod:`kalshi_lab.execution.exposure`), as a
  share of equity. On a ladder or bracket set it is exact from the strikes: YES on a low strike
  and NO on a high one of a ladder never lose together, nor do NO on two brackets, so neither
  is capped as if both could; on a binary it is the larger of the two outcomes' losses. Markets
  of other structure or not in the markets table the manager learned count every cost as lost
  (the sum of the costs). A buy not yet filled counts its cost bound where it loses and nothing
  where it wins (it may not fill), so a buy is cut to keep every state it loses in within the
  cap, and a hedge (a buy that loses only where the event's positions win) passes whatever the
  event's worst case;
* ``max_capital_frac``: cost basis of all open positions, plus what buys still being worked
  may yet spend, plus this decision's buys, as a share of equity (marked at the bid);
* ``max_daily_loss_frac``: once equity at a decision is that share below the equity at the UTC
  day's first decision, no buy passes until the next UTC day (a halt is not lifted by a
  recovery within the day);
* ``kill_switch``: no buy passes at all.

SELLS always pass: a limit must never trap a position. A buy's cost is bounded by its
``max_cost_cents`` when it has one, else by its limit price plus two cents of fee per contract
(Kalshi's taker fee peaks at 1.75 cents a contract at 50 cents). A buy cut down keeps its
limit; its budget shrinks with it. Refused orders are finished (status ``unfilled``); counts by
reason are kept for the log.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import pandas as pd

from kalshi_lab.execution.account import ContractPosition, KalshiAccount
from kalshi_lab.execution.decision import FEE_BOUND_CENTS, ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exposure import EventLoss, EventPayoffs
from kalshi_lab.execution.quotes import ns
from kalshi_lab.params import RiskParams

logger = logging.getLogger(__name__)

KILL_SWITCH = "kill switch on"
DAILY_LOSS = "daily loss limit reached: no new positions until the next UTC day"
DAY_NS = 86_400 * 10**9
CONTRACTS = "max_contracts_per_market"
CAPITAL = "max_capital_frac (cost basis of open positions and working buys)"
POSITION = "max_position_frac (cost basis in the market)"
EVENT = "max_event_frac (worst-case loss of the event's positions and buys)"


class RiskManager:
    """Applies ``params`` to each decision in time order; remembers the day's opening equity.

    ``markets`` (the markets table, ``kalshi_lab.data.tables.MARKETS``) tells the event limit
    the payoff structure of their events; :meth:`learn` adds or refreshes events later (the bot
    learns the markets it reads each cycle). Events it never learned count every cost as lost.
    ``payoffs`` replaces ``markets``: what they teach, learned once for many runs (a copy is
    kept: :meth:`learn` changes it).
    """

    def __init__(
        self,
        params: RiskParams,
        markets: pd.DataFrame | None = None,
        *,
        payoffs: EventPayoffs | None = None,
    ) -> None:
        self.params = params
        self.payoffs = EventPayoffs(markets) if payoffs is None else payoffs.copy()
        self.refused: Counter[str] = Counter()  # buys refused, by reason
        self.reduced: Counter[str] = Counter()  # buys cut down, by the limit that cut them
        self._day: int | None = None
        self._day_open_cents = 0
        self._halted = False

    def learn(self, markets: pd.DataFrame) -> None:
        """Learn, or relearn, the payoff structure of the events listed in ``markets``."""
        self.payoffs.learn(markets)

    def check(
        self,
        decision: PredictionMarketDecision,
        account: KalshiAccount,
        working: Iterable[ContractOrder] = (),
    ) -> tuple[PredictionMarketDecision, list[ContractOrder]]:
        """(the decision the executor may run, the orders refused and finished here).

        ``account`` is marked at the decision time; ``working`` are earlier orders an executor
        is still working (their unspent buy budgets count as deployed capital).
        """
        equity = account.equity_cents
        self._roll_day(decision.decided_at, equity)
        p = self.params
        working_buys = [o for o in working if o.action == "buy" and not o.done]
        deployed = account.open_basis_cents + sum(o.cost_bound_cents for o in working_buys)
        capital_room = math.floor(p.max_capital_frac * max(equity, 0)) - deployed
        market_cap = math.floor(p.max_position_frac * max(equity, 0))
        event_cap = math.floor(p.max_event_frac * max(equity, 0))
        event_held: dict[str, list[ContractPosition]] = {}
        for pos in account.positions.values():
            event_held.setdefault(pos.event_ticker, []).append(pos)
        event_working: dict[str, list[ContractOrder]] = {}
        market_used: dict[str, int] = {}  # cents working buys may still spend, per market
        market_working: dict[str, int] = {}  # contracts working buys may still buy, per market
        for o in working_buys:
            event_working.setdefault(o.event_ticker, []).append(o)
            market_used[o.ticker] = market_used.get(o.ticker, 0) + o.cost_bound_cents
            market_working[o.ticker] = market_working.get(o.ticker, 0) + o.remaining
        event_loss: dict[str, EventLoss] = {}  # per event, made at its first buy checked
        kept: list[ContractOrder] = []
        refused: list[ContractOrder] = []
        gated = p.kill_switch or self._halted
        for order in decision.orders:
            if order.action == "sell":
                kept.append(order)
                continue
            if capital_room < 0 and not gated and order.cost_bound_cents > 0:
                # the capital cap, applied last, refuses it whatever the other limits say (the
                # common case once capital is deployed: no per-market or per-event room then)
                self.refused[CAPITAL] += 1
                order.finish()
                refused.append(order)
                continue
            reason, count = None, order.count
            held = account.positions.get(order.ticker)
            room = (
                p.max_contracts_per_market
                - (held.contracts if held is not None else 0)
                - market_working.get(order.ticker, 0)
            )
            if count > room:
                reason, count = CONTRACTS, max(room, 0)
            # money limits cut the budget (cost + fees; Kalshi's buy_max_cost), which the
            # exchange enforces on every fill, and the count in proportion
            unit = order.cost_bound_cents / order.count  # what the order expects a contract to cost
            budget = min(order.cost_bound_cents, count * (order.limit_cents + FEE_BOUND_CENTS))
            held_basis = (held.basis_cents if held is not None else 0) + market_used.get(
                order.ticker, 0
            )
            event = order.event_ticker
            loss = event_loss.get(event)
            if loss is None:
                loss = event_loss[event] = self.payoffs.loss(
                    event, event_held.get(event, ()), event_working.get(event, ())
                )
            for why, room_cents in (
                (POSITION, market_cap - held_basis),
                (EVENT, loss.room_cents(order.ticker, order.side, event_cap)),
                (CAPITAL, capital_room),
            ):
                if budget > room_cents:
                    reason, budget = why, max(room_cents, 0)
            if p.kill_switch or self._halted:
                reason, count = (KILL_SWITCH if p.kill_switch else DAILY_LOSS), 0
            count = min(count, math.floor(budget / unit + 1e-9)) if unit > 0 else count
            if count <= 0:
                self.refused[reason] += 1
                order.finish()
                refused.append(order)
                continue
            if reason is not None:
                self.reduced[reason] += 1
                order.count = count
                order.max_cost_cents = budget
            spend = order.cost_bound_cents
            capital_room -= spend
            loss.add(order.ticker, order.side, spend)
            market_used[order.ticker] = market_used.get(order.ticker, 0) + spend
            market_working[order.ticker] = market_working.get(order.ticker, 0) + order.count
            kept.append(order)
        return replace(decision, orders=kept), refused

    def _roll_day(self, ts: pd.Timestamp, equity_cents: int) -> None:
        day = ns(ts) // DAY_NS  # the UTC day, as an integer: cheaper than Timestamp.floor
        if day != self._day:
            self._day, self._day_open_cents, self._halted = day, equity_cents, False
        limit = self._day_open_cents * (1.0 - self.params.max_daily_loss_frac)
        if not self._halted and equity_cents < limit:
            self._halted = True
            logger.warning(
                "%s: equity %.2f is more than %.0f %% below the day's %.2f: no new positions "
                "until the next UTC day",
                ts,
                equity_cents / 100,
                100 * self.params.max_daily_loss_frac,
                self._day_open_cents / 100,
            )

    def explain(self) -> None:
        """One log line of what the limits did over a run."""
        if self.refused or self.reduced:
            logger.info(
                "risk limits: buys refused %s; buys cut down %s",
                dict(self.refused) or "none",
                dict(self.reduced) or "none",
            )
