"""One bot session: the backtest stage's replay, or paper/live trading cycles on Kalshi.

Backtest (:func:`run_backtest_session`) is the backtest stage's code path: ``run_backtest`` on
``data/predictions/predictions.parquet`` and the parquet tables, with params.yaml's strategy,
risk and backtest settings and ``--capital`` as the initial cash.

Paper and live (:class:`TradingSession`) trade through :class:`BotExchange`, a
:class:`~kalshi_lab.execution.live.LiveKalshiExchange`, with the SAME strategy, risk limits and
executor the backtest builds (:mod:`kalshi_lab.execution.factory`) driven by the same
:class:`~kalshi_lab.execution.trader.Trader`:

* start: the account adopts the exchange's available balance (``--capital`` sets the rest
  aside); positions the bot does not know stop it unless ``--adopt-positions`` takes them over
  at their cost (``market_exposure``); resting orders it did not place stop it; then the
  account is reconciled with the exchange;
* each cycle, at the venue's time ``now``: predictions for the open markets of the series
  (:mod:`kalshi_lab.bot.signals`), the risk limits taught the structure of the events read
  (events never read, e.g. of adopted positions, count every cost as lost),
  ``Trader.step(now, predictions)``, and a reconciliation.
  Every decision (signals, orders with their reasons, refusals by the risk limits), order and
  fill is logged at INFO. A reconciliation that fails stops trading (ReconciliationError).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_lab.backtest import backtest_pipeline
from kalshi_lab.backtest.report import fills_frame
from kalshi_lab.bot import report as rep
from kalshi_lab.bot.signals import TrainedModel, predictions_now
from kalshi_lab.bot.venue import VenueClock
from kalshi_lab.client import KalshiClient
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.execution import build_strategy, make_executor
from kalshi_lab.execution.account import ContractPosition, KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.fees import fee_per_contract
from kalshi_lab.execution.live import LiveKalshiExchange
from kalshi_lab.execution.reconcile import ReconciliationError, reconcile
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.strategy import BaseMarketStrategy
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import Params

logger = logging.getLogger(__name__)

#: client_order_id of the fills that book positions adopted at the start
ADOPTED = "adopted"


class SessionError(KalshiLabError):
    """The session cannot start or go on as asked; the message says what to do."""


@dataclass(frozen=True)
class BotConfig:
    """What the command line asked for (never a credential: those stay in the environment)."""

    mode: str
    base_url: str | None = None
    capital: float | None = None
    series: tuple[str, ...] = ()
    once: bool = False
    interval_s: float = 300.0
    dry_run: bool = False
    adopt_positions: bool = False
    report_root: Path = Path("reports/bot")


def _reasons(counts: Counter[str]) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in counts.most_common()) or "none"


# --- backtest -------------------------------------------------------------------------------


def run_backtest_session(
    config: BotConfig, params: Params, started: dt.datetime
) -> tuple[dict[str, Any], Path]:
    """The backtest stage's run with ``config.capital`` as initial cash; (report, its path)."""
    backtest = params.backtest
    if config.capital is not None:
        backtest = dataclasses.replace(backtest, initial_cash=config.capital)
    predictions, result = backtest_pipeline(params, backtest)
    equity = result.equity
    report = {
        "mode": "backtest",
        "base_url": None,
        "started_at": rep.iso(started),
        "strategy": params.strategy.name,
        "executor": backtest.executor,
        "capital": backtest.initial_cash,
        "decisions": int(predictions["as_of"].nunique()),
        "first_decision": rep.iso(pd.to_datetime(equity["ts"], utc=True).min()),
        "last_decision": rep.iso(pd.to_datetime(equity["ts"], utc=True).max()),
        "start": {"cash": backtest.initial_cash, "equity": backtest.initial_cash},
        "end": {
            "cash": float(equity["cash"].iloc[-1]),
            "positions_value": float(equity["positions_value"].iloc[-1]),
            "equity": float(equity["equity"].iloc[-1]),
        },
        "summary": result.summary,
    }
    out_dir = rep.new_report_dir(config.report_root, "backtest", started)
    orders = pd.DataFrame(columns=rep.ORDER_COLUMNS)  # the backtest keeps its orders in fills
    return report, rep.write_report(out_dir, report, result.fills, orders)


# --- paper and live -------------------------------------------------------------------------


class ObservedStrategy(BaseMarketStrategy):
    """The configured strategy, unchanged, remembering the signals it last decided on (the
    bot logs each order with the signal behind it)."""

    def __init__(self, inner: BaseMarketStrategy) -> None:
        # no super().__init__(): the counters are the inner strategy's own
        self.inner = inner
        self.signal_target = inner.signal_target
        self.skipped = inner.skipped
        self.exits = inner.exits
        self.signals: pd.DataFrame | None = None

    def generate_trade_decision(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> PredictionMarketDecision:
        self.signals = signals
        return self.inner.generate_trade_decision(
            signals, current_positions, available_capital, current_time
        )


class BotExchange(LiveKalshiExchange):
    """LiveKalshiExchange that keeps ``set_aside_cents`` of the balance out of the bot's reach
    (``--capital``) and records what became of every send."""

    def __init__(self, client: KalshiClient, **kw: Any) -> None:
        super().__init__(client, **kw)
        self.set_aside_cents = 0
        self.sends: Counter[str] = Counter()  # placed, refused by the exchange, not sent, ...

    def venue_balance_cents(self) -> int:
        return super().balance_cents()

    def balance_cents(self) -> int:
        return self.venue_balance_cents() - self.set_aside_cents

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        known = self.exchange_order_id(order.client_order_id) is not None
        unfilled = Counter(self.unfilled)
        fills = super().submit(order, ts)
        if self.dry_run:
            self.sends["dry run: logged, not sent"] += 1
        elif not known and self.exchange_order_id(order.client_order_id) is not None:
            self.sends["placed"] += 1
        else:
            for reason in self.unfilled - unfilled:
                key = "refused by the exchange" if reason.startswith("refused") else "not sent"
                self.sends[key] += 1
        return fills


def _positions(account: KalshiAccount) -> str:
    held = [f"{t} {p.contracts} {p.side.upper()}" for t, p in sorted(account.positions.items())]
    return ", ".join(held) or "none"


class TradingSession:
    """Paper or live trading on ``client``'s venue; see the module docstring."""

    def __init__(
        self,
        config: BotConfig,
        params: Params,
        model: TrainedModel,
        client: KalshiClient,
        started: dt.datetime,
    ) -> None:
        self.config = config
        self.params = params
        self.model = model
        self.client = client
        self.started = started
        self.clock = VenueClock(client)
        self.exchange: BotExchange | None = None
        self.account: KalshiAccount | None = None
        self.trader: Trader | None = None
        self.strategy: ObservedStrategy | None = None
        self.venue_start: pd.Timestamp | None = None
        self.venue_last: pd.Timestamp | None = None
        self.cycles = 0
        self.cycles_skipped = 0
        self.reconciles: list[dict[str, Any]] = []
        self.start_state: dict[str, Any] | None = None
        self.adopted: list[str] = []
        self.stopped = "not started"
        self.notes: dict[int, str] = {}  # id(order) -> why it was decided or refused
        self._logged_fills: set[int] = set()

    # --- start --------------------------------------------------------------------------

    def start(self) -> None:
        """Read the account, adopt it (or refuse), build the trader and reconcile."""
        now, _ = self.clock.now()
        self.venue_start = self.venue_last = now
        client, config = self.client, self.config
        exchange = BotExchange(client, dry_run=config.dry_run, since=now)
        held = exchange.positions()
        if held and not config.adopt_positions:
            listed = ", ".join(f"{t} {n} {s.upper()}" for t, (s, n) in sorted(held.items()))
            raise SessionError(
                f"the exchange holds positions the bot does not know: {listed}; close them, or "
                "pass --adopt-positions to take them over at their cost"
            )
        resting = client.get_orders(status="resting")
        if resting:
            o = resting[0]
            raise SessionError(
                f"the exchange has {len(resting)} resting order(s) the bot did not place (e.g. "
                f"{o.ticker} {o.side} {o.action}, client_order_id {o.client_order_id!r}): "
                "cancel them first"
            )
        balance = exchange.venue_balance_cents()
        if config.capital is not None:
            capital = round(config.capital * 100)
            if capital > balance:
                logger.warning(
                    "--capital $%.2f is more than the available balance $%.2f: trading with "
                    "the balance",
                    capital / 100,
                    balance / 100,
                )
            exchange.set_aside_cents = max(0, balance - capital)
        cash = balance - exchange.set_aside_cents
        adopted = self._adoptions(held, now) if held else []
        account = KalshiAccount(cash + sum(f.cost_cents for f, _ in adopted))
        for fill, event in adopted:
            account.apply(fill, event)
        self.adopted = [f"{f.ticker} {f.count} {f.side.upper()}" for f, _ in adopted]
        strategy = ObservedStrategy(build_strategy(self.params.strategy, self.model.target))
        executor = make_executor(self.params.backtest, exchange, account)
        self.exchange, self.account, self.strategy = exchange, account, strategy
        self.trader = Trader(strategy, RiskManager(self.params.risk), executor, exchange, account)
        self.trader.mark(now)
        self.start_state = rep.account_state(account, exchange.set_aside_cents)
        logger.info(
            "start at %s (venue time): cash $%.2f%s, positions %s%s",
            now.isoformat(),
            account.cash_cents / 100,
            f" (${exchange.set_aside_cents / 100:.2f} set aside)"
            if exchange.set_aside_cents
            else "",
            _positions(account),
            f" (adopted: {', '.join(self.adopted)})" if self.adopted else "",
        )
        self._reconcile("start", now)

    def _adoptions(
        self, held: dict[str, tuple[str, int]], now: pd.Timestamp
    ) -> list[tuple[Fill, str]]:
        """One buy fill per held position at its cost (``market_exposure``), no fee."""
        exposure = {p.ticker: p.market_exposure for p in self.client.get_positions()}
        out = []
        for ticker, (side, count) in sorted(held.items()):
            cost = exposure.get(ticker)
            if cost is None:
                raise SessionError(
                    f"position {ticker}: the exchange reports no market_exposure (its cost): "
                    "it cannot be adopted; close it first"
                )
            market = self.client.get_market(ticker)
            fill = Fill(
                ts=now,
                quote_ts=now,
                ticker=ticker,
                side=side,
                action="buy",
                count=count,
                cost_cents=round(cost * 100),
                fee_cents=0,
                source="book",
                order_id=ADOPTED,
            )
            out.append((fill, market.event_ticker))
        return out

    # --- cycles -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Cycles until ``stop`` is set (or one, with ``--once``)."""
        while not stop.is_set():
            self.cycle()
            if self.config.once:
                self.stopped = "--once: one cycle done"
                return
            stop.wait(self.config.interval_s)
        self.stopped = "interrupted"

    def cycle(self) -> None:
        """One decision at the venue's time, then a reconciliation."""
        assert self.trader is not None and self.strategy is not None
        trader, strategy = self.trader, self.strategy
        now, trading = self.clock.now()
        self.venue_last = now
        self.cycles += 1
        n = self.cycles
        if not trading:
            self.cycles_skipped += 1
            logger.warning("cycle %d at %s: the exchange is not trading: skipped", n, now)
            return
        predictions, snapshot = predictions_now(
            self.client, self.model, self.params, list(self.config.series), now
        )
        if "markets" in snapshot.tables:  # the events' structure, for the event limit
            trader.risk.learn(snapshot.tables["markets"])
        before = {
            "skipped": trader.skipped + strategy.skipped,
            "exits": Counter(strategy.exits),
            "refused": Counter(trader.risk.refused),
            "orders": len(trader.orders),
            "n_refused": len(trader.refused),
            "signals": trader.n_signals,
        }
        trader.step(now, predictions)
        orders = trader.orders[before["orders"] :]
        refused = trader.refused[before["n_refused"] :]
        exits = strategy.exits - before["exits"]
        skipped = (trader.skipped + strategy.skipped) - before["skipped"]
        signals = strategy.signals if strategy.signals is not None else pd.DataFrame()
        logger.info(
            "cycle %d at %s: %d predictions -> %d signals -> %d orders decided (%d refused by "
            "risk); signals without an order: %s",
            n,
            now.isoformat(),
            trader.n_signals - before["signals"],
            len(signals),
            len(orders) + len(refused),
            len(refused),
            _reasons(skipped),
        )
        for order in orders:
            self.notes[id(order)] = self._why(order, signals, exits)
            logger.info("order %s: %s", self._describe(order), self.notes[id(order)])
        why_refused = trader.risk.refused - before["refused"]
        for order in refused:
            self.notes[id(order)] = f"refused by risk ({_reasons(why_refused)})"
            logger.info("order %s: %s", self._describe(order), self.notes[id(order)])
        self._log_fills()
        self._reconcile(f"cycle {n}", now)
        assert self.account is not None
        logger.info(
            "cycle %d done: cash $%.2f, equity $%.2f, positions %s (%d open markets read)",
            n,
            self.account.cash_cents / 100,
            self.account.equity_cents / 100,
            _positions(self.account),
            len(snapshot.open_markets),
        )

    @staticmethod
    def _describe(order: ContractOrder) -> str:
        budget = (
            "" if order.max_cost_cents is None else f" budget ${order.max_cost_cents / 100:.2f}"
        )
        return (
            f"{order.action.upper()} {order.count} {order.side.upper()} {order.ticker} limit "
            f"{order.limit_cents}c{budget} ({order.time_in_force}, {order.client_order_id})"
        )

    @staticmethod
    def _why(order: ContractOrder, signals: pd.DataFrame, exits: Counter[str]) -> str:
        """The signal behind an order: the strategy's own note, else the edge of a buy, the exit
        reasons of a sell."""
        if order.note:
            return order.note
        if order.ticker not in signals.index:
            return "no signal row"
        s = signals.loc[order.ticker]
        if order.action == "sell":
            bid = s[f"{order.side}_bid"]
            return f"exit ({_reasons(exits)}), {order.side} bid {bid:.2f}"
        q = s["prob"] if order.side == "yes" else 1.0 - s["prob"]
        ask = s[f"{order.side}_ask"]
        edge = q - ask - float(fee_per_contract(ask, s["taker_rate"]))
        return f"model P({order.side}) {q:.3f} vs ask {ask:.2f}: edge {edge:+.3f} after the fee"

    def _log_fills(self) -> None:
        assert self.trader is not None
        for order in self.trader.orders:
            for fill in order.fills:
                if id(fill) in self._logged_fills:
                    continue
                self._logged_fills.add(id(fill))
                logger.info(
                    "fill %s %d %s %s @ %.2fc, fee %dc (%s) at %s, order %s",
                    fill.action.upper(),
                    fill.count,
                    fill.side.upper(),
                    fill.ticker,
                    fill.avg_price_cents,
                    fill.fee_cents,
                    fill.liquidity,
                    fill.ts.isoformat(),
                    fill.order_id,
                )

    def _reconcile(self, after: str, now: pd.Timestamp) -> None:
        """Reconcile; cash only while no buy rests (the venue holds its cost back)."""
        assert self.account is not None and self.exchange is not None and self.trader is not None
        check_cash = not any(o.action == "buy" for o in self.trader.executor.working)
        entry: dict[str, Any] = {
            "after": after,
            "at": rep.iso(now),
            "cash_checked": check_cash,
            "ok": True,
            "message": None,
        }
        self.reconciles.append(entry)
        try:
            reconcile(self.account, self.exchange, check_cash=check_cash)
        except ReconciliationError as exc:
            entry.update(ok=False, message=str(exc))
            self.stopped = f"reconciliation failed after {after}"
            raise ReconciliationError(
                f"reconciliation after {after} failed, trading stopped: {exc}"
            ) from None
        logger.info(
            "reconciled after %s: positions%s agree with the exchange",
            after,
            " and cash" if check_cash else "",
        )

    # --- report -------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        account, exchange, trader = self.account, self.exchange, self.trader
        base: dict[str, Any] = {
            "mode": self.config.mode,
            "base_url": self.client.transport.base_url,
            "dry_run": self.config.dry_run,
            "series": list(self.config.series),
            "started_at": rep.iso(self.started),
            "venue_started_at": rep.iso(self.venue_start),
            "venue_last_cycle_at": rep.iso(self.venue_last),
            "stopped": self.stopped,
            "strategy": self.params.strategy.name,
            "executor": self.params.backtest.executor,
            "model": {
                "name": self.model.name,
                "target": self.model.target,
                "path": str(self.model.path),
            },
            "cycles": self.cycles,
            "cycles_skipped": self.cycles_skipped,
            "reconcile": self.reconciles,
        }
        if account is None or exchange is None or trader is None:
            return {
                **base,
                "orders": dict.fromkeys(["decided", "refused_by_risk", "sent", "filled"], 0),
                "fills": 0,
                "contracts": 0,
                "fees": 0.0,
                "start": None,
                "end": None,
            }
        fills = [f for o in trader.orders for f in o.fills]
        sends = exchange.sends
        return {
            **base,
            "adopted_positions": self.adopted,
            "orders": {
                "decided": len(trader.orders) + len(trader.refused),
                "refused_by_risk": len(trader.refused),
                "refused_by_risk_reasons": dict(trader.risk.refused),
                "cut_by_risk": dict(trader.risk.reduced),
                "sent": sends["placed"] + sends["refused by the exchange"],
                "placed": sends["placed"],
                "refused_by_exchange": sends["refused by the exchange"],
                "not_sent": sends["not sent"],
                "dry_run_not_sent": sends["dry run: logged, not sent"],
                "filled": sum(o.filled > 0 for o in trader.orders),
                "still_working": len(trader.executor.working),
                "unfilled_reasons": dict(exchange.unfilled),
            },
            "fills": len(fills),
            "contracts": int(sum(f.count for f in fills)),
            "fees": sum(f.fee_cents for f in fills) / 100,
            "start": self.start_state,
            "end": rep.account_state(account, exchange.set_aside_cents),
        }

    def write_report(self) -> tuple[dict[str, Any], Path]:
        report = self.report()
        orders = self.trader.orders if self.trader is not None else []
        refused = self.trader.refused if self.trader is not None else []
        out_dir = rep.new_report_dir(self.config.report_root, self.config.mode, self.started)
        path = rep.write_report(
            out_dir, report, fills_frame(orders), rep.orders_frame(orders, refused, self.notes)
        )
        return report, path
