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
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
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
    recorded_books,
    summarize,
    traded_signal_scores,
)
from kalshi_lab.data.tables import partition_filters, read_table, table_dataset, ticker_set
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.exposure import EventPayoffs
from kalshi_lab.execution.factory import build_strategy, make_executor
from kalshi_lab.execution.quotes import BOOK_COLUMNS, CANDLE_COLUMNS, QuoteIndex, ns
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
    exchange = SimulatedKalshiExchange(
        orderbook,
        candles,
        markets,
        series,
        backtest.taker_fee_rate,
        backtest.max_fill_share,
        backtest.max_volume_share,
        round(backtest.initial_cash * 100),
        backtest.max_quote_age_hours,
    )
    return _replay(
        predictions,
        exchange,
        markets,
        EventPayoffs(markets),
        recorded_books(orderbook),
        strategy,
        risk,
        backtest,
        target,
    )


def _replay(
    predictions: pd.DataFrame,
    exchange: SimulatedKalshiExchange,
    markets: pd.DataFrame,
    payoffs: EventPayoffs,
    recorded: pd.DataFrame,
    strategy: StrategyParams,
    risk: RiskParams,
    backtest: BacktestParams,
    target: str,
) -> BacktestResult:
    """The run of :func:`run_backtest` on its exchange (checked ``predictions``; ``payoffs``:
    the event payoffs ``markets`` teach the risk limits; ``recorded``: the recorded order book
    snapshots, :func:`recorded_books`)."""
    initial_cents = round(backtest.initial_cash * 100)
    account = KalshiAccount(initial_cents)
    trader = Trader(
        build_strategy(strategy, target),
        RiskManager(risk, payoffs=payoffs),
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
    summary.update(recorded_book_fills(fills, recorded))
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
    """What a backtest replays of the parquet tables: the order book and candles as a
    QuoteIndex (built once for every run over them, the tables then freed: the order book is
    most of the stage's memory), the recorded snapshots among them, the markets and series."""

    quotes: QuoteIndex
    recorded: pd.DataFrame  # recorded_books of the order book
    markets: pd.DataFrame
    series: pd.DataFrame
    payoffs: EventPayoffs  # what the markets teach the risk limits, learned once for every run

    @classmethod
    def read(
        cls,
        backtest: BacktestParams,
        tickers: Collection[str] | None = None,
        root: Path = paths.PARQUET_DIR,
    ) -> MarketTables:
        """The tables, their quotes indexed with ``backtest``'s fill and volume shares and
        quote age; with ``tickers`` (the markets predicted: nothing else can be bought, held
        or quoted), only their order book and candle rows.

        The order book and candles are read a partition at a time, each part indexed and
        freed before the next is read (QuoteIndex.from_parts): at 30,000 markets the whole
        order book read at once (11.6 M rows of the predicted markets) peaked at 1.2 GB."""
        wanted = None if tickers is None else ticker_set(tickers)  # once for every part
        counts = Counter[str]()
        recorded: list[pd.DataFrame] = []

        holding = None if wanted is None else _partitions_holding(root, wanted)

        def parts(
            name: str, columns: list[str], categorical: tuple[str, ...]
        ) -> Iterator[pd.DataFrame]:
            for partition in partition_filters(root, table=name):
                if holding is not None and not any(partition.equals(h) for h in holding):
                    continue  # none of the markets: no row of theirs
                part = read_table(
                    name,
                    root,
                    columns=columns,
                    categorical=categorical,
                    tickers=wanted,
                    filter=partition,
                )
                counts[name] += len(part)
                if name == "orderbook":
                    recorded.append(recorded_books(part))
                yield part

        quotes = QuoteIndex.from_parts(
            # source: recorded books are reported apart
            parts("orderbook", [*BOOK_COLUMNS, "source"], ("ticker", "side", "source")),
            parts("candles", CANDLE_COLUMNS, ("ticker",)),
            backtest.max_fill_share,
            backtest.max_volume_share,
            backtest.max_quote_age_hours,
        )
        markets = read_table("markets", root)
        if tickers is not None:
            logger.info(
                "backtest: read the order book and candles of the %d markets predicted, of %d "
                "(%d book rows, %d candles)",
                len(set(tickers)),
                len(markets),
                counts["orderbook"],
                counts["candles"],
            )
        books = (
            pd.concat(recorded, ignore_index=True) if recorded else recorded_books(pd.DataFrame())
        )
        return cls(
            quotes,
            books.drop_duplicates(ignore_index=True),
            markets,
            read_table("series", root),
            EventPayoffs(markets),
        )


def _partitions_holding(root: Path, tickers: pa.Array) -> list[ds.Expression] | None:
    """The partition filters (:func:`partition_filters`) of the markets ``tickers`` (a
    :func:`ticker_set`), from the markets table's partition keys; None (read every partition)
    when one of them is not listed there.

    Every row of the order book and candles lies in its market's partition: a partition
    without any of ``tickers`` has no row to read, and the backtest's markets are a few
    months of many (at 10,000 markets over a year, 35 of the order book's 60 partitions,
    each opened and its tickers scanned to find none).
    """
    markets = table_dataset("markets", root).to_table(columns=["ticker", "series", "month"])
    held = markets.filter(pc.is_in(markets["ticker"], value_set=tickers))
    if pc.count_distinct(held["ticker"]).as_py() < len(tickers):
        return None  # a market not listed: where its rows lie is not known
    keys = set(zip(held["series"].to_pylist(), held["month"].to_pylist(), strict=True))
    filters = [(ds.field("series") == s) & (ds.field("month") == m) for s, m in keys]
    # the very expressions partition_filters makes: each key must be one of its filters
    listed = partition_filters(root, table="markets")
    if not all(any(f.equals(g) for g in listed) for f in filters):
        return None
    return filters


def read_predictions(path: Path = paths.PREDICTIONS) -> pd.DataFrame:
    """The evaluate stage's predictions; DataError naming the stage to run when missing."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run the evaluate stage first")
    return pd.read_parquet(path)


def read_stage_predictions() -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The evaluate stage's validation predictions, and its test period's (None when it held
    out none)."""
    test = read_predictions(paths.PREDICTIONS_TEST) if paths.PREDICTIONS_TEST.exists() else None
    return read_predictions(paths.PREDICTIONS), test


def predicted_tickers(*predictions: pd.DataFrame | None) -> set[str]:
    """The markets of every frame of ``predictions``: the backtest stage's tables hold theirs
    (:meth:`MarketTables.read`)."""
    return set().union(*(set(p["ticker"]) for p in predictions if p is not None))


def backtest_quietly(
    params: Params, predictions: pd.DataFrame, tables: MarketTables
) -> BacktestResult:
    """:func:`backtest_on`, without its INFO lines: a run beside the stage's main one (delayed,
    test period) would repeat them."""
    quiet = [logging.getLogger(n) for n in ("kalshi_lab.backtest", "kalshi_lab.execution")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        return backtest_on(params, predictions, tables)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def backtest_on(
    params: Params,
    predictions: pd.DataFrame,
    tables: MarketTables,
    backtest: BacktestParams | None = None,
) -> BacktestResult:
    """params.yaml's strategy and risk on ``predictions`` over ``tables`` (``backtest``
    replaces params.backtest, e.g. with another capital; its shares and quote age must be the
    ones the tables' quotes were indexed with)."""
    backtest = backtest or params.backtest
    quotes = tables.quotes
    indexed = (quotes.max_fill_share, quotes.max_volume_share, quotes.max_quote_age_hours)
    wanted = (backtest.max_fill_share, backtest.max_volume_share, backtest.max_quote_age_hours)
    if indexed != wanted:
        raise ValueError(
            f"the quotes were indexed with (max_fill_share, max_volume_share, "
            f"max_quote_age_hours) {indexed}, the backtest asks for {wanted}"
        )
    predictions = check_predictions(predictions)
    exchange = SimulatedKalshiExchange.on_quotes(
        quotes,
        tables.markets,
        tables.series,
        backtest.taker_fee_rate,
        round(backtest.initial_cash * 100),
    )
    return _replay(
        predictions,
        exchange,
        tables.markets,
        tables.payoffs,
        tables.recorded,
        params.strategy,
        params.risk,
        backtest,
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
    backtest = backtest or params.backtest
    tables = MarketTables.read(backtest, set(predictions["ticker"]))
    return predictions, backtest_on(params, predictions, tables, backtest)
