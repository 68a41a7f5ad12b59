"""One bot session: the backtest stage's replay, or paper/live trading cycles on Kalshi.

Backtest (:func:`run_backtest_session`) is the backtest stage's code path: ``run_backtest`` on
``data/predictions/predictions.parquet`` and the parquet tables, with params.yaml's strategy,
risk and backtest settings and ``--capital`` as the initial cash.

Paper and live (:class:`TradingSession`) trade through :class:`BotExchange`, a
:class:`~kalshi_lab.execution.live.LiveKalshiExchange`, with the SAME strategy, risk limits and
executor the backtest builds (:mod:`kalshi_lab.execution.factory`) driven by the same
:class:`~kalshi_lab.execution.trader.Trader`. Everything the session does to orders is written
to its journal (:mod:`kalshi_lab.bot.journal`) as it happens, and its report is built from the
journal, however it ends.

* start: the venue is asked first, so that a session refused at its start leaves nothing
  behind: its clock, every series (one that does not exist is an error; one without an open
  market right now only a note), and the balance (a key it refuses is an error); then the
  session's folder and journal are made; the previous session on the account is
  concluded and continued (:mod:`kalshi_lab.bot.restart`); the account adopts the exchange's
  available balance (``--capital`` sets the rest aside) and the positions carried over;
  positions nothing explains stop it unless ``--adopt-positions`` takes them over at their cost
  (``market_exposure``); resting orders it did not place stop it; then the account is
  reconciled with the exchange;
* each cycle, at the venue's time ``now``: predictions for the open markets of the series
  (:mod:`kalshi_lab.bot.signals`), the risk limits taught the structure of the events read
  (events never read, e.g. of adopted positions, count every cost as lost), the catch-up
  (resting and late fills, one round of asking the venue about unresolved orders,
  settlements; a fill of an order the bot did not place stops trading here, before anything
  is decided), a reconciliation when it booked fills, ``Trader.step(now, predictions)`` (the
  decision journaled before anything is sent), and a reconciliation. Every decision (signals,
  orders with their reasons, refusals by the risk limits), order and fill is logged at INFO;
* exit (:meth:`TradingSession.close`, on every way out): the orders still resting are
  cancelled (nothing keeps trading after the bot), the unresolved orders are brought to
  their outcome with the whole lookup budget, a last reconciliation, the journal's replay
  checked against the account, the journal closed, the report written from it.

A failed reconciliation or a lifecycle error (:mod:`kalshi_lab.execution.lifecycle`) stops
trading: a ReconciliationError, exit code 1.
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
from kalshi_lab.bot import report as rep
from kalshi_lab.bot.journal import ADOPTED, CARRIED, JOURNAL, Journal
from kalshi_lab.bot.restart import Carried, RestartError, conclude_previous, find_previous
from kalshi_lab.bot.signals import TrainedModel, predictions_now
from kalshi_lab.bot.stream_feed import StreamFeed
from kalshi_lab.bot.venue import VenueClock
from kalshi_lab.client import AuthError, KalshiClient, NotFoundError
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.execution import build_strategy, make_executor
from kalshi_lab.execution.account import ContractPosition, KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.fees import fee_per_contract
from kalshi_lab.execution.lifecycle import (
    LifecycleError,
    UnresolvedOrdersError,
)
from kalshi_lab.execution.live import LOOKUP_ATTEMPTS, LiveKalshiExchange
from kalshi_lab.execution.reconcile import ReconciliationError, reconcile
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.strategy import BaseMarketStrategy
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import Params

logger = logging.getLogger(__name__)


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
    #: lookups by client_order_id of an order whose POST's answer was lost, and the first
    #: wait between two (doubling)
    lookup_attempts: int = LOOKUP_ATTEMPTS
    lookup_backoff_s: float = 0.5
    #: the WebSocket stream to keep books from (None: every book from REST)
    stream_url: str | None = None


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
    (``--capital``)."""

    def __init__(self, client: KalshiClient, **kw: Any) -> None:
        super().__init__(client, **kw)
        self.set_aside_cents = 0

    def venue_balance_cents(self) -> int:
        return super().balance_cents()

    def balance_cents(self) -> int:
        return self.venue_balance_cents() - self.set_aside_cents


def _positions(account: KalshiAccount) -> str:
    held = [f"{t} {p.contracts} {p.side.upper()}" for t, p in sorted(account.positions.items())]
    return ", ".join(held) or "none"


def _ledger(account: KalshiAccount) -> dict[str, Any]:
    """What a journal replay must reproduce exactly: cash and each position's basis."""
    return {
        "cash": account.cash_cents,
        "positions": {
            t: (p.side, p.contracts, p.cost_cents, p.fees_cents)
            for t, p in sorted(account.positions.items())
        },
    }


@dataclass
class Closed:
    """What :meth:`TradingSession.close` wrote, and the failure the exit itself found."""

    report: dict[str, Any]
    path: Path
    failure: Exception | None


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
        self.journal: Journal | None = None
        self.exchange: BotExchange | None = None
        self.account: KalshiAccount | None = None
        self.trader: Trader | None = None
        self.strategy: ObservedStrategy | None = None
        self.venue_start: pd.Timestamp | None = None
        self.venue_last: pd.Timestamp | None = None
        self.cycles = 0
        self.cycles_skipped = 0
        self.stopped = "not started"
        self.notes: dict[int, str] = {}  # id(order) -> why it was decided or refused
        self._logged_fills: set[int] = set()
        self._before: dict[str, Any] = {}  # the counters before the cycle's step
        self.feed: StreamFeed | None = None

    @property
    def folder(self) -> Path | None:
        """The session's report directory (its journal's), once it started."""
        return None if self.journal is None else self.journal.path.parent

    # --- start --------------------------------------------------------------------------

    def start(self) -> None:
        """Open the journal, continue the previous session, adopt the account (or refuse),
        build the trader and reconcile."""
        now, _ = self.clock.now()
        self.venue_start = self.venue_last = now
        client, config = self.client, self.config
        base_url = client.transport.base_url
        self._check_venue()
        previous = find_previous(config.report_root, base_url)
        folder = rep.new_report_dir(config.report_root, config.mode, self.started)
        self.journal = journal = Journal.create(folder / JOURNAL, self._session(now))
        carried = Carried()
        if previous is not None:
            try:
                carried = conclude_previous(
                    previous,
                    client,
                    now,
                    folder.name,
                    lookup_attempts=config.lookup_attempts,
                    lookup_backoff_s=config.lookup_backoff_s,
                )
            except RestartError as exc:
                raise SessionError(str(exc)) from None
            journal.set_meta("carried_from", carried.source)
            journal.add_used_ids(carried.used_ids)
        if config.stream_url is not None:
            self.feed = StreamFeed(config.stream_url, client.transport.signer).start()
        exchange = BotExchange(
            client,
            dry_run=config.dry_run,
            since=now,
            journal=journal,
            lookup_attempts=config.lookup_attempts,
            lookup_backoff_s=config.lookup_backoff_s,
            book_source=self.feed,
            fill_source=self.feed,
        )
        exchange.restore((), used_ids=carried.used_ids)
        self.exchange = exchange
        exchange.skip_listed(now)  # in the balance and positions taken over below
        held = exchange.positions()
        kept = {t: p for t, p in carried.positions.items() if held.get(t) == (p.side, p.contracts)}
        for ticker in sorted(set(carried.positions) - set(kept)):
            p = carried.positions[ticker]
            logger.warning(
                "%s: %s carried %d %s, the exchange holds %s: not carried over",
                ticker,
                carried.source,
                p.contracts,
                p.side.upper(),
                "nothing" if ticker not in held else f"{held[ticker][1]} {held[ticker][0]}",
            )
        unexplained = {t: h for t, h in held.items() if t not in kept}
        if unexplained and not config.adopt_positions:
            listed = ", ".join(f"{t} {n} {s.upper()}" for t, (s, n) in sorted(unexplained.items()))
            why = "" if carried.source is None else f" (the journal of {carried.source} does not"
            raise SessionError(
                f"the exchange holds positions the bot does not know: {listed}"
                f"{why + ' explain them)' if why else ''}; close them, or pass "
                "--adopt-positions to take them over at their cost"
            )
        resting = exchange.resting_orders()
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
        openings = self._carried(kept, now) + (
            self._adoptions(unexplained, now) if unexplained else []
        )
        initial = cash + sum(f.cost_cents + f.fee_cents for f, _ in openings)
        account = KalshiAccount(initial)
        for fill, event in openings:
            account.apply(fill, event)
            journal.record_opening(fill, event)
        adopted = [
            f"{f.ticker} {f.count} {f.side.upper()}" for f, _ in openings if f.order_id == ADOPTED
        ]
        strategy = ObservedStrategy(build_strategy(self.params.strategy, self.model.target))
        executor = make_executor(self.params.backtest, exchange, account)
        journal.decision_of = executor.decision_of
        self.exchange, self.account, self.strategy = exchange, account, strategy
        self.trader = Trader(
            strategy,
            RiskManager(self.params.risk),
            executor,
            exchange,
            account,
            on_decision=self._journal_decision,
        )
        self.trader.mark(now)
        journal.set_meta(
            "start",
            {
                "state": rep.account_state(account, exchange.set_aside_cents),
                "initial_cash_cents": initial,
                "set_aside_cents": exchange.set_aside_cents,
                "adopted": adopted,
                "carried": [f"{t} {p.contracts} {p.side.upper()}" for t, p in sorted(kept.items())],
                "marks": {t: p.mark_cents for t, p in account.positions.items()},
            },
        )
        logger.info(
            "start at %s (venue time): cash $%.2f%s, positions %s%s",
            now.isoformat(),
            account.cash_cents / 100,
            f" (${exchange.set_aside_cents / 100:.2f} set aside)"
            if exchange.set_aside_cents
            else "",
            _positions(account),
            f" (adopted: {', '.join(adopted)})" if adopted else "",
        )
        self._write_progress()
        self._reconcile("start", now)

    def _check_venue(self) -> None:
        """What must hold before the session makes its folder: every series exists, and the
        venue takes the key (``GET /portfolio/balance``, the first signed request)."""
        base_url = self.client.transport.base_url
        for series in self.config.series:
            try:
                info = self.client.get_series_information(series)
            except NotFoundError:
                raise SessionError(
                    f"series {series} does not exist on {base_url} (GET /series/{series}: "
                    "HTTP 404): check --series, or data.series in params.yaml"
                ) from None
            logger.info("series %s: %s", series, info.title or "(no title)")
        try:
            self.client.get_balance()
        except AuthError as exc:
            raise SessionError(
                f"{base_url} refused the API key ({exc}): check KALSHI_API_KEY_ID and the "
                "private key (KALSHI_PRIVATE_KEY_PATH or KALSHI_PRIVATE_KEY) are a pair the "
                "exchange knows"
            ) from None

    def _session(self, now: pd.Timestamp) -> dict[str, Any]:
        """The journal's ``session``: what the report says of the run (no credential)."""
        return {
            "mode": self.config.mode,
            "base_url": self.client.transport.base_url,
            "dry_run": self.config.dry_run,
            "series": list(self.config.series),
            "started_at": rep.iso(self.started),
            "venue_started_at": rep.iso(now),
            "strategy": self.params.strategy.name,
            "executor": self.params.backtest.executor,
            "model": {
                "name": self.model.name,
                "target": self.model.target,
                "path": str(self.model.path),
            },
        }

    @staticmethod
    def _carried(
        positions: Mapping[str, ContractPosition], now: pd.Timestamp
    ) -> list[tuple[Fill, str]]:
        """One buy fill per carried position at its basis (cost and buy fees)."""
        return [
            (
                Fill(
                    ts=now,
                    quote_ts=now,
                    ticker=ticker,
                    side=p.side,
                    action="buy",
                    count=p.contracts,
                    cost_cents=p.cost_cents,
                    fee_cents=p.fees_cents,
                    source="book",
                    order_id=CARRIED,
                ),
                p.event_ticker,
            )
            for ticker, p in sorted(positions.items())
        ]

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
        """One decision at the venue's time, reconciled after every fill event."""
        assert self.trader is not None and self.strategy is not None
        trader, strategy = self.trader, self.strategy
        now, trading = self.clock.now()
        self.venue_last = now
        self.cycles += 1
        n = self.cycles
        if not trading:
            self.cycles_skipped += 1
            logger.warning("cycle %d at %s: the exchange is not trading: skipped", n, now)
            self._write_progress()
            return
        predictions, snapshot = predictions_now(
            self.client, self.model, self.params, list(self.config.series), now, self.folder
        )
        if "markets" in snapshot.tables:  # the events' structure, for the event limit
            trader.risk.learn(snapshot.tables["markets"])
        booked = trader.executor.booked
        self._before = before = {
            "skipped": trader.skipped + strategy.skipped,
            "exits": Counter(strategy.exits),
            "refused": Counter(trader.risk.refused),
            "orders": len(trader.orders),
            "n_refused": len(trader.refused),
            "signals": trader.n_signals,
        }
        try:
            trader.catch_up(now)  # nothing is decided before the venue's news is booked
            self._log_fills()
            if trader.executor.booked > booked:
                self._reconcile(f"cycle {n} fills", now)
            trader.step(now, predictions, caught_up=True)
        except LifecycleError as exc:
            self._halt(f"cycle {n}", now, exc)
        orders = trader.orders[before["orders"] :]
        refused = trader.refused[before["n_refused"] :]
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
        for order in [*orders, *refused]:
            logger.info("order %s: %s", self._describe(order), self.notes[id(order)])
        self._log_fills()
        self._reconcile(f"cycle {n}", now)
        self._write_progress()
        assert self.account is not None
        logger.info(
            "cycle %d done: cash $%.2f, equity $%.2f, positions %s (%d open markets read)",
            n,
            self.account.cash_cents / 100,
            self.account.equity_cents / 100,
            _positions(self.account),
            len(snapshot.open_markets),
        )
        if self.feed is not None:
            assert self.exchange is not None
            reads, seen = self.exchange.book_reads, self.exchange.fills_first_seen
            logger.info(
                "books so far: %d from the stream, %d from REST; fills first told by the "
                "stream %d, by a REST listing %d (stream %s; %s)",
                reads["stream"],
                reads["rest"],
                seen["stream"],
                seen["rest"],
                "up" if self.feed.up else "down",
                self.feed.stream.stats,
            )

    def _journal_decision(
        self, decision: PredictionMarketDecision, refused: list[ContractOrder]
    ) -> None:
        """The Trader's ``on_decision``: every order decided, with why, journaled before any
        is sent."""
        assert self.strategy is not None and self.trader is not None and self.journal
        signals = self.strategy.signals if self.strategy.signals is not None else pd.DataFrame()
        exits = self.strategy.exits - self._before.get("exits", Counter())
        why_refused = self.trader.risk.refused - self._before.get("refused", Counter())
        rows = []
        for order in decision.orders:
            self.notes[id(order)] = self._why(order, signals, exits)
            rows.append((order, False, self.notes[id(order)]))
        for order in refused:
            self.notes[id(order)] = f"refused by risk ({_reasons(why_refused)})"
            rows.append((order, True, self.notes[id(order)]))
        self.journal.record_decisions(rows)

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

    # --- reconciliation -----------------------------------------------------------------

    def _entry(self, after: str, now: pd.Timestamp | None, **kw: Any) -> dict[str, Any]:
        return {"after": after, "at": rep.iso(now), "ok": True, "message": None, **kw}

    def _reconcile(self, after: str, now: pd.Timestamp | None) -> None:
        """Reconcile; markets with unresolved orders are not compared, cash only while no buy
        rests and no order is unresolved (the venue holds back a resting buy's cost)."""
        assert self.account is not None and self.exchange is not None and self.trader is not None
        assert self.journal is not None
        # a market with an order still working is not compared: a resting order fills at
        # the venue at any moment, and its fills are listed when the venue gets to it
        executor = self.trader.executor
        check_cash = not self.exchange.unresolved() and not any(
            o.action == "buy" for o in executor.working
        )
        skip = sorted(executor.working_tickers())
        entry = self._entry(after, now, cash_checked=check_cash, not_compared=skip)
        try:
            reconcile(self.account, self.exchange, check_cash=check_cash, skip=skip)
        except ReconciliationError as exc:
            entry.update(ok=False, message=str(exc))
            self.journal.record_reconciliation(entry)
            if after != "exit":  # the exit's findings do not change why the session stopped
                self.stopped = f"reconciliation failed after {after}"
            raise ReconciliationError(
                f"reconciliation after {after} failed, trading stopped: {exc}"
            ) from None
        self.journal.record_reconciliation(entry)
        logger.info(
            "reconciled after %s: positions%s agree with the exchange%s",
            after,
            " and cash" if check_cash else "",
            f" ({', '.join(skip)} not compared: orders working or unresolved)" if skip else "",
        )

    def _halt(self, after: str, now: pd.Timestamp, exc: LifecycleError) -> None:
        """Stop trading at once on a lifecycle error, the reconciliation's differences named."""
        assert self.account is not None and self.exchange is not None and self.journal
        message = str(exc)
        try:
            reconcile(self.account, self.exchange, check_cash=False)
        except ReconciliationError as diff:
            message = f"{message}; {diff}"
        self.journal.record_reconciliation(self._entry(after, now, ok=False, message=message))
        self.stopped = f"trading stopped in {after}"
        raise LifecycleError(f"trading stopped in {after}: {message}") from None

    # --- exit ---------------------------------------------------------------------------

    def _write_progress(self) -> None:
        assert self.journal is not None
        progress: dict[str, Any] = {
            "cycles": self.cycles,
            "cycles_skipped": self.cycles_skipped,
            "venue_last_cycle_at": rep.iso(self.venue_last),
            "stopped": self.stopped,
        }
        if self.trader is not None and self.account is not None:
            progress |= {
                "refused_by_risk_reasons": dict(self.trader.risk.refused),
                "cut_by_risk": dict(self.trader.risk.reduced),
                "marks": {t: p.mark_cents for t, p in self.account.positions.items()},
            }
            self.journal.set_working(o.client_order_id for o in self.trader.executor.working)
        self.journal.set_meta("progress", progress)

    def close(self) -> Closed | None:
        """End the session however it went: bring the unresolved orders to their outcome,
        reconcile, check the journal against the account, close the journal and write the
        report from it. None when the session never got as far as its journal. The stream
        is closed last: the fills it tells while the orders are concluded are booked too."""
        journal = self.journal
        if journal is None:
            if self.feed is not None:
                self.feed.close()
            return None
        failure: Exception | None = None
        try:
            if self.trader is not None:
                failure = self._conclude()
            self._write_progress()
            journal.close(self.stopped, self.venue_last)
            report, path = rep.write_from_journal(journal)
        finally:
            journal.release()
            if self.feed is not None:
                self.feed.close()
        return Closed(report, path, failure)

    def _conclude(self) -> Exception | None:
        """The exit's venue work: the failure it finds (None: the books are the venue's)."""
        assert self.trader is not None and self.exchange is not None and self.journal
        assert self.account is not None
        now = self.venue_last
        try:
            if now is not None:  # nothing of the session keeps resting after it
                self.trader.executor.cancel_working(now)
            self.trader.executor.book_reported(self.exchange.conclude(now))
            self._log_fills()
            unresolved = self.exchange.unresolved()
            self._reconcile("exit", now)
            if unresolved:
                described = "; ".join(self.exchange.orders[c].describe() for c in unresolved)
                raise UnresolvedOrdersError(
                    f"{len(unresolved)} order(s) without a known outcome at the exit "
                    f"({described}): the next start concludes them"
                )
        except ReconciliationError as exc:  # recorded by _reconcile, or a lifecycle error
            if isinstance(exc, LifecycleError):
                self.journal.record_reconciliation(
                    self._entry("exit", now, ok=False, message=str(exc))
                )
            return exc
        except KalshiLabError as exc:  # the venue did not answer: the journal stays right
            self.journal.record_reconciliation(
                self._entry("exit", now, ok=False, message=f"not reconciled: {exc}")
            )
            return exc
        replayed = self.journal.replay()
        if replayed is None or _ledger(replayed) != _ledger(self.account):
            message = (
                "the journal's replay differs from the account: "
                f"{None if replayed is None else _ledger(replayed)} vs {_ledger(self.account)}"
            )
            logger.error(message)
            return LifecycleError(message)
        return None
