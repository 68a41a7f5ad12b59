"""run_backtest: replay predictions through a Trader (strategy -> risk -> executor -> exchange).

Time runs over the sorted unique ``as_of`` of the predictions; at each decision time ts the
Trader catches up on the executor's scheduled work and the exchange's settlements, marks the
account at the quotes known at ts, decides from the predictions made at ts, applies the risk
limits and executes (see :mod:`kalshi_lab.execution.trader`). One equity row is recorded at ts.

After the last decision, the remaining scheduled work is done and every market that settled in
the data is settled; if that changed anything a final equity row is recorded at the time of the
last change (positions still open there stay marked at their bids). No step draws a random
number: the same inputs give the same result. At the end the run says what became of its
signals and sends; a run that placed or filled nothing says so in a WARNING.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from kalshi_lab import paths
from kalshi_lab.backtest.report import (
    DECISION_QUOTE_COLUMNS,
    EQUITY_COLUMNS,
    BacktestResult,
    equity_row,
    fills_frame,
    positions_frame,
    recorded_book_fills,
    summarize,
    traded_signal_scores,
)
from kalshi_lab.data.tables import read_table
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.factory import build_strategy, make_executor
from kalshi_lab.execution.quotes import BOOK_COLUMNS, CANDLE_COLUMNS, ns
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.signals import check_predictions
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import BacktestParams, Params, RiskParams, StrategyParams

logger = logging.getLogger(__name__)

_END_OF_TIME = pd.Timestamp.max.tz_localize("UTC")


def _reasons(counts: Counter[str]) -> str:
    """``"12 reason; 3 other reason"``, most frequent first; ``"none"`` when empty."""
    return "; ".join(f"{n} {reason}" for reason, n in counts.most_common()) or "none"


def _explain(trader: Trader, exchange: SimulatedKalshiExchange) -> None:
    """Log what became of the signals and sends; WARN when the run placed or filled nothing."""
    orders = trader.orders
    n_filled = sum(o.filled > 0 for o in orders)
    skipped = _reasons(trader.skipped + trader.strategy.skipped)
    unfilled = _reasons(exchange.unfilled)
    logger.info(
        "backtest: %d signals -> %d orders (%d filled); signals without an order: %s",
        trader.n_signals,
        len(orders),
        n_filled,
        skipped,
    )
    logger.info("backtest: sends that filled nothing: %s", unfilled)
    logger.info("backtest: exits decided: %s", _reasons(trader.strategy.exits))
    if not orders:
        logger.warning("backtest placed no order: of %d signals, %s", trader.n_signals, skipped)
    elif not n_filled:
        logger.warning("backtest filled none of its %d orders: %s", len(orders), unfilled)


def _by_decision_time(predictions: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """The predictions made at each as_of, in time order (rows in their given order within a
    time), as groupby("as_of") gives them: slices of one stable sort, cheaper than groupby."""
    ordered = predictions.sort_values("as_of", kind="stable")
    times = ordered["as_of"].to_numpy("datetime64[ns]")  # UTC; not Timestamp objects
    starts = np.flatnonzero(np.concatenate([[True], times[1:] != times[:-1]]))
    ends = np.append(starts[1:], len(ordered))
    stamps = ordered["as_of"].iloc[starts]
    return [
        (ts, ordered.iloc[a:b])
        for ts, a, b in zip(stamps, starts.tolist(), ends.tolist(), strict=True)
    ]


class _DecisionQuotes:
    """The quote each prediction's market showed at its decision, gathered step by step as
    arrays (a frame per step would cost more than the step's own quote lookup)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []

    def add(self, ts: pd.Timestamp, predictions: pd.DataFrame, quotes: pd.DataFrame) -> None:
        """The rows of ``predictions`` (made at ``ts``) in ``quotes``, the step's quotes (one
        row per market, the predicted ones first: a market not quoted, e.g. of an event of
        structure other, has no quote)."""
        tickers = predictions["ticker"].to_numpy(dtype=object)
        n = len(tickers)
        if not np.array_equal(quotes.index.to_numpy(dtype=object)[:n], tickers):
            quotes = quotes.reindex(tickers)  # rare: a market predicted twice or not quoted
        quote_ns = quotes["quote_ts"].to_numpy("datetime64[ns]")[:n].view(np.int64)
        is_open = quotes["is_open"].to_numpy()[:n] == True  # noqa: E712 (NaN: not quoted)
        self._parts.append((tickers, ns(ts), is_open, quote_ns))

    def frame(self) -> pd.DataFrame:
        """DECISION_QUOTE_COLUMNS, one row per prediction, in decision order."""
        if not self._parts:
            return pd.DataFrame(columns=DECISION_QUOTE_COLUMNS)
        tickers, times, is_open, quote_ns = zip(*self._parts, strict=True)
        sizes = [len(t) for t in tickers]
        as_of = np.repeat(np.array(times, dtype=np.int64), sizes)
        return pd.DataFrame(
            {
                "ticker": np.concatenate(tickers),
                "as_of": pd.DatetimeIndex(as_of.view("M8[ns]"), tz="UTC"),
                "is_open": np.concatenate(is_open),
                "quote_ts": pd.DatetimeIndex(np.concatenate(quote_ns).view("M8[ns]"), tz="UTC"),
            },
            columns=DECISION_QUOTE_COLUMNS,
        )


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

    ``predictions`` has one row per market and decision time (columns signals.PREDICTION_COLUMNS;
    ``prob`` is the model's probability that ``target`` is 1); ``orderbook``, ``candles``,
    ``markets`` and ``series`` are the typed tables of kalshi_lab.data.tables. Candles quote
    the markets that have no book snapshot (recorded history); ``markets`` also gives the risk
    limits each event's payoff structure (its strikes).
    """
    predictions = check_predictions(predictions)
    initial_cents = round(backtest.initial_cash * 100)
    exchange = SimulatedKalshiExchange(
        orderbook,
        candles,
        markets,
        series,
        backtest.taker_fee_rate,
        backtest.max_fill_share,
        backtest.max_volume_share,
        initial_cents,
        backtest.max_quote_age_hours,
    )
    account = KalshiAccount(initial_cents)
    trader = Trader(
        build_strategy(strategy, target),
        RiskManager(risk, markets),
        make_executor(backtest, exchange, account),
        exchange,
        account,
    )

    rows: list[dict[str, object]] = []
    seen = _DecisionQuotes()
    for ts, signals in tqdm(_by_decision_time(predictions), desc="backtest", disable=None):
        trader.step(ts, signals)
        seen.add(ts, signals, trader.last_quotes)
        rows.append(equity_row(ts, account))

    last = rows[-1]["ts"]
    trader.catch_up(_END_OF_TIME)
    orders = trader.orders
    fill_times = [f.ts for o in orders for f in o.fills]
    changes = [t for t in (trader.last_settled, *fill_times) if t is not None]
    end = max(changes, default=last)
    if end > last:
        trader.mark(end)
        rows.append(equity_row(end, account))

    _explain(trader, exchange)
    trader.risk.explain()
    equity = pd.DataFrame(rows, columns=EQUITY_COLUMNS)
    summary = summarize(equity, orders, account, initial_cents)
    fills = fills_frame(orders)
    summary.update(recorded_book_fills(fills, orderbook))
    if target == "settlement":
        resolved = markets[markets["result"].isin(["yes", "no"])]
        outcomes = pd.Series(
            (resolved["result"] == "yes").astype(float).to_numpy(), index=resolved["ticker"]
        )
        summary.update(traded_signal_scores(fills, predictions, outcomes))
    logger.info("backtest %s/%s: %s", strategy.name, backtest.executor, summary)
    positions = positions_frame(account)
    return BacktestResult(
        equity=equity,
        fills=fills,
        positions=positions,
        summary=summary,
        decision_quotes=seen.frame(),
    )


@dataclass(frozen=True)
class MarketTables:
    """The parquet tables a backtest replays, only the columns it reads (tickers categorical)."""

    orderbook: pd.DataFrame
    candles: pd.DataFrame
    markets: pd.DataFrame
    series: pd.DataFrame

    @classmethod
    def read(cls, tickers: Collection[str] | None = None) -> MarketTables:
        """The tables; with ``tickers`` (the markets predicted: nothing else can be bought,
        held or quoted), only their order book and candle rows."""
        tables = cls(
            read_table(
                "orderbook",
                columns=[*BOOK_COLUMNS, "source"],  # source: recorded books are reported apart
                categorical=("ticker", "side", "source"),
                tickers=tickers,
            ),
            read_table("candles", columns=CANDLE_COLUMNS, categorical=("ticker",), tickers=tickers),
            read_table("markets"),
            read_table("series"),
        )
        if tickers is not None:
            logger.info(
                "backtest: read the order book and candles of the %d markets predicted, of %d "
                "(%d book rows, %d candles)",
                len(set(tickers)),
                len(tables.markets),
                len(tables.orderbook),
                len(tables.candles),
            )
        return tables


def read_predictions(path: Path = paths.PREDICTIONS) -> pd.DataFrame:
    """The evaluate stage's predictions; DataError naming the stage to run when missing."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run the evaluate stage first")
    return pd.read_parquet(path)


def backtest_on(
    params: Params,
    predictions: pd.DataFrame,
    tables: MarketTables,
    backtest: BacktestParams | None = None,
) -> BacktestResult:
    """params.yaml's strategy and risk on ``predictions`` over ``tables`` (``backtest``
    replaces params.backtest, e.g. with another capital)."""
    return run_backtest(
        predictions,
        tables.orderbook,
        tables.candles,
        tables.markets,
        tables.series,
        params.strategy,
        params.risk,
        backtest or params.backtest,
        params.model.target,
    )


def backtest_pipeline(
    params: Params, backtest: BacktestParams | None = None
) -> tuple[pd.DataFrame, BacktestResult]:
    """The backtest stage's main run: the validation predictions over the parquet tables.

    A bad strategy configuration stops before anything is read.
    """
    build_strategy(params.strategy, params.model.target)
    predictions = read_predictions()
    tables = MarketTables.read(set(predictions["ticker"]))
    return predictions, backtest_on(params, predictions, tables, backtest)
