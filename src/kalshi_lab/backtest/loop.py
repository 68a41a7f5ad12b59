"""run_backtest: replay predictions through strategy -> executor -> exchange -> account.

Time runs over the sorted unique ``as_of`` of the predictions. At each decision time ts:

1. everything scheduled up to ts happens in time order: TWAP children due by then, and the
   settlement of every market with ``settlement_ts <= ts`` (MARKETS ``result``: $1 per contract
   to the winning side, cost back if void);
2. the account is marked at the bids quoted at ts: the snapshot at or before ts or, for a
   market without one, the latest candle that ended by ts;
3. the strategy decides at ts from the predictions made at ts, and the executor fills the
   orders against the quote at their send time (ts itself for the simple executor);
4. the account is marked again and one equity row is recorded at ts.

After the last decision, the remaining TWAP children are sent and every market that settled in
the data is settled; if that changed anything a final equity row is recorded at the time of the
last change (positions still open there stay marked at their bids). No step draws a random
number: the same inputs give the same result. At the end the run says what became of its
signals (orders, and why the others placed none) and of its sends (why some filled nothing);
a run that placed or filled nothing says so in a WARNING, never only through zeros.
"""

from __future__ import annotations

import logging
from collections import Counter

import pandas as pd
from tqdm import tqdm

from kalshi_lab.backtest.report import (
    EQUITY_COLUMNS,
    BacktestResult,
    closed_frame,
    equity_row,
    fills_frame,
    summarize,
    traded_signal_scores,
)
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import RESULTS, KalshiAccount
from kalshi_lab.execution.decision import ContractOrder
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.executor import BaseExecutor, make_executor
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.strategy import BaseMarketStrategy, make_strategy
from kalshi_lab.params import BacktestParams, RiskParams, StrategyParams

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = (
    "ticker",
    "event_ticker",
    "series_ticker",
    "as_of",
    "prob",
    "mid",
)
_END_OF_TIME = pd.Timestamp.max.tz_localize("UTC")


class _Clock:
    """Scheduled events between decisions: settlements and TWAP children, in time order."""

    def __init__(
        self,
        markets: pd.DataFrame,
        executor: BaseExecutor,
        exchange: SimulatedKalshiExchange,
        account: KalshiAccount,
    ) -> None:
        settled = markets[markets["settlement_ts"].notna() & markets["result"].notna()]
        unusable = ~settled["result"].isin(RESULTS)
        if unusable.any():
            logger.warning(
                "%d settled markets with results outside %s are never settled, e.g. %s",
                int(unusable.sum()),
                RESULTS,
                settled.loc[unusable, "ticker"].iloc[0],
            )
        settled = settled[~unusable].reset_index(drop=True)
        self._settlements = pd.DataFrame(
            {
                "ticker": settled["ticker"],
                "result": settled["result"],
                "ts": pd.to_datetime(settled["settlement_ts"], utc=True),
            }
        ).sort_values(["ts", "ticker"], kind="stable")
        self._next = 0
        self.executor = executor
        self.exchange = exchange
        self.account = account
        self.last_settled: pd.Timestamp | None = None

    def run_until(self, until: pd.Timestamp) -> list[ContractOrder]:
        """Everything due at or before ``until``; returns the orders the executor touched."""
        touched: list[ContractOrder] = []
        rows = self._settlements
        while self._next < len(rows) and rows["ts"].iat[self._next] <= until:
            at = rows["ts"].iat[self._next]
            touched += self.executor.advance(at, self.exchange, self.account)
            while self._next < len(rows) and rows["ts"].iat[self._next] == at:
                ticker, result = rows["ticker"].iat[self._next], rows["result"].iat[self._next]
                if self.account.settle(ticker, result, at):
                    self.last_settled = at
                self._next += 1
        touched += self.executor.advance(until, self.exchange, self.account)
        return touched


def _mark(account: KalshiAccount, exchange: SimulatedKalshiExchange, ts: pd.Timestamp) -> None:
    if account.positions:
        account.mark(exchange.quotes(list(account.positions), ts))


def _check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = sorted(set(PREDICTION_COLUMNS) - set(predictions.columns))
    if missing:
        raise DataError(f"predictions lack columns {missing}")
    if predictions.empty:
        raise DataError("predictions are empty: nothing to backtest")
    out = predictions.copy()
    out["as_of"] = pd.to_datetime(out["as_of"], utc=True)
    if not out["prob"].between(0.0, 1.0).all():
        raise DataError("predictions prob must lie in [0, 1]")
    return out


def _reasons(counts: Counter[str]) -> str:
    """``"12 reason; 3 other reason"``, most frequent first; ``"none"`` when empty."""
    return "; ".join(f"{n} {reason}" for reason, n in counts.most_common()) or "none"


def _explain(
    strategy: BaseMarketStrategy, exchange: SimulatedKalshiExchange, orders: list[ContractOrder]
) -> None:
    """Log what became of the signals and sends; WARN when the run placed or filled nothing."""
    n_filled = sum(o.filled > 0 for o in orders)
    skipped, unfilled = _reasons(strategy.skipped), _reasons(exchange.unfilled)
    logger.info(
        "backtest: %d signals -> %d orders (%d filled); signals without an order: %s",
        strategy.n_signals,
        len(orders),
        n_filled,
        skipped,
    )
    logger.info("backtest: sends that filled nothing: %s", unfilled)
    logger.info("backtest: exits decided: %s", _reasons(strategy.exits))
    if not orders:
        logger.warning("backtest placed no order: of %d signals, %s", strategy.n_signals, skipped)
    elif not n_filled:
        logger.warning("backtest filled none of its %d orders: %s", len(orders), unfilled)


def run_backtest(
    predictions: pd.DataFrame,
    orderbook: pd.DataFrame,
    candles: pd.DataFrame,
    markets: pd.DataFrame,
    series: pd.DataFrame,
    strategy: StrategyParams,
    risk: RiskParams,
    backtest: BacktestParams,
    target: str,
) -> BacktestResult:
    """Backtest ``strategy`` on ``predictions`` (decided at as_of, filled at or before it).

    ``predictions`` has one row per market and decision time (columns PREDICTION_COLUMNS;
    ``prob`` is the model's probability that ``target`` is 1); ``orderbook``, ``candles``,
    ``markets`` and ``series`` are the typed tables of kalshi_lab.data.tables. Candles quote
    the markets that have no book snapshot (recorded history).
    """
    predictions = _check_predictions(predictions)
    exchange = SimulatedKalshiExchange(
        orderbook,
        candles,
        markets,
        series,
        backtest.taker_fee_rate,
        backtest.max_fill_share,
        backtest.max_volume_share,
    )
    initial_cents = round(backtest.initial_cash * 100)
    account = KalshiAccount(initial_cents)
    strat: BaseMarketStrategy = make_strategy(strategy, target)
    executor = make_executor(backtest)
    gate = RiskManager(risk)
    clock = _Clock(markets, executor, exchange, account)

    rows: list[dict[str, object]] = []
    orders: list[ContractOrder] = []
    groups = predictions.groupby("as_of", sort=True)
    for ts, signals in tqdm(groups, total=groups.ngroups, desc="backtest", disable=None):
        strat.receive(clock.run_until(ts))
        _mark(account, exchange, ts)
        decision = strat.generate_trade_decision(ts, signals, exchange, account)
        decision, refused = gate.check(decision, account, working=orders)
        strat.receive(refused)
        strat.receive(executor.execute(decision, exchange, account))
        orders.extend(decision.orders)
        _mark(account, exchange, ts)
        rows.append(equity_row(ts, account))

    last = rows[-1]["ts"]
    clock.run_until(_END_OF_TIME)
    fill_times = [f.ts for o in orders for f in o.fills]
    changes = [t for t in (clock.last_settled, *fill_times) if t is not None]
    end = max(changes, default=last)
    if end > last:
        _mark(account, exchange, end)
        rows.append(equity_row(end, account))

    _explain(strat, exchange, orders)
    gate.explain()
    equity = pd.DataFrame(rows, columns=EQUITY_COLUMNS)
    summary = summarize(equity, orders, account, initial_cents)
    fills = fills_frame(orders)
    if target == "settlement":
        resolved = markets[markets["result"].isin(["yes", "no"])]
        outcomes = pd.Series(
            (resolved["result"] == "yes").astype(float).to_numpy(), index=resolved["ticker"]
        )
        summary.update(traded_signal_scores(fills, predictions, outcomes))
    logger.info("backtest %s/%s: %s", strategy.name, backtest.executor, summary)
    return BacktestResult(equity=equity, fills=fills, closed=closed_frame(account), summary=summary)
