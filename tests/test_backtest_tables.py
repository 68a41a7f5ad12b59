"""The backtest reads the order book and candles a partition at a time, only of the markets
predicted, into one QuoteIndex for all its runs: the same quotes and the same runs as the
whole tables read at once (what it did before)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from kalshi_lab.backtest import loop as loop_module
from kalshi_lab.backtest import run_backtest
from kalshi_lab.backtest.loop import MarketTables, backtest_on
from kalshi_lab.compose_params import compose
from kalshi_lab.data import tables as tables_module
from kalshi_lab.data.tables import ONE_SCAN_ROWS, partition_filters, read_table, table_dataset
from kalshi_lab.execution.quotes import BOOK_COLUMNS, CANDLE_COLUMNS, QuoteIndex
from kalshi_lab.params import Params, params_from_dict
from table_files import simulated_tables

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return simulated_tables(tmp_path_factory.mktemp("simulated"))


@pytest.fixture(scope="module")
def params() -> Params:
    return params_from_dict(compose([], ROOT / "conf"))


def predicted(root: Path) -> list[str]:
    """A third of the markets, of every partition: the others must not be read."""
    return sorted(read_table("markets", root)["ticker"])[::3]


def whole(root: Path, tickers: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The order book and candles of ``tickers`` read at once, as the stage read them before."""
    book = read_table("orderbook", root, [*BOOK_COLUMNS, "source"], ("ticker", "side"), tickers)
    candles = read_table("candles", root, CANDLE_COLUMNS, ("ticker",), tickers)
    return book, candles


def test_reading_a_partition_at_a_time_reads_the_rows_of_the_whole_tables(tables):
    tickers = predicted(tables)
    parts = partition_filters(tables, table="orderbook")
    assert len(parts) >= 6
    for name, columns in (("orderbook", BOOK_COLUMNS), ("candles", CANDLE_COLUMNS)):
        got = [read_table(name, tables, columns, ("ticker",), tickers, f) for f in parts]
        assert any(len(p) == 0 for p in got) or name == "candles"  # partitions without them
        once = read_table(name, tables, columns, ("ticker",), tickers)
        assert set(once["ticker"]) == set(tickers)
        pd.testing.assert_frame_equal(
            pd.concat(got, ignore_index=True).astype({"ticker": str}),
            once.astype({"ticker": str}),
        )


def test_the_tables_index_the_quotes_of_the_whole_tables(tables, params):
    tickers = predicted(tables)
    read = MarketTables.read(params.backtest, tickers, tables)
    book, candles = whole(tables, tickers)
    b = params.backtest
    index = QuoteIndex(book, candles, b.max_fill_share, b.max_volume_share, b.max_quote_age_hours)
    times = sorted(set(book["snapshot_ts"].iloc[::50]) | set(candles["end_period_ts"].iloc[::7]))
    hour = pd.Timedelta(hours=1)
    asked = [*tickers, "NOT-A-MARKET"]
    for ts in [t + dt for t in times for dt in (pd.Timedelta(0), 5 * hour)]:
        pd.testing.assert_frame_equal(read.quotes.top(asked, ts), index.top(asked, ts))
        for ticker in tickers[::5]:
            for side in ("yes", "no"):
                got = read.quotes.levels(ticker, ts.value, side)
                assert got == index.levels(ticker, ts.value, side)
    for ticker in tickers:
        np.testing.assert_array_equal(read.quotes.times(ticker), index.times(ticker))
    assert read.recorded.empty  # simulated books are snapshots
    assert len(read.markets) == len(read_table("markets", tables))


def test_runs_over_the_read_tables_are_the_runs_over_the_whole_tables(tables, params):
    tickers = predicted(tables)
    markets = read_table("markets", tables)
    book, candles = whole(tables, tickers)
    daily = candles[candles["period_minutes"] == 1440].merge(markets, on="ticker")
    daily = daily.sort_values(["end_period_ts", "ticker"], kind="stable")
    mid = ((daily["yes_bid_close"] + daily["yes_ask_close"]) / 2).fillna(0.5).to_numpy()
    noise = np.random.default_rng(0).normal(0.0, 0.15, size=len(daily))
    predictions = pd.DataFrame(
        {
            "ticker": daily["ticker"].astype(str).to_numpy(),
            "event_ticker": daily["event_ticker"].to_numpy(),
            "as_of": daily["end_period_ts"].to_numpy(),
            "prob": np.clip(mid + noise, 0.01, 0.99),
            "mid": mid,
        }
    )
    read = MarketTables.read(params.backtest, tickers, tables)
    series = read_table("series", tables)
    for run in range(2):  # the index serves a second run as it served the first
        got = backtest_on(params, predictions, read)
        expected = run_backtest(
            predictions,
            book,
            candles,
            markets,
            series,
            params.strategy,
            params.risk,
            params.backtest,
            params.model.target,
        )
        assert len(got.fills) > 10, run
        pd.testing.assert_frame_equal(got.fills, expected.fills)
        pd.testing.assert_frame_equal(got.equity, expected.equity)
        pd.testing.assert_frame_equal(got.decision_quotes, expected.decision_quotes)
        assert got.summary == expected.summary


def test_a_backtest_with_other_shares_than_the_index_is_refused(tables, params):
    tickers = predicted(tables)[:3]
    read = MarketTables.read(params.backtest, tickers, tables)
    market = read.markets.set_index("ticker").loc[tickers[0]]
    predictions = pd.DataFrame(
        {
            "ticker": [tickers[0]],
            "event_ticker": [market["event_ticker"]],
            "as_of": [market["open_time"]],
            "prob": [0.5],
            "mid": [0.5],
        }
    )
    other = dataclasses.replace(params.backtest, max_fill_share=params.backtest.max_fill_share / 2)
    with pytest.raises(ValueError, match="max_fill_share"):
        backtest_on(params, predictions, read, other)
    richer = dataclasses.replace(params.backtest, initial_cash=2 * params.backtest.initial_cash)
    result = backtest_on(params, predictions, read, richer)  # another capital: the same index
    assert result.summary["initial_cash"] == richer.initial_cash


@pytest.mark.parametrize("name", ["markets", "events", "series", "candles", "orderbook"])
def test_a_small_table_read_in_one_scan_is_the_table_read_column_by_column(
    tables, name, monkeypatch
):
    categorical = {"markets": ("ticker",), "candles": ("ticker",), "orderbook": ("side",)}
    tickers = predicted(tables) if name in ("candles", "orderbook") else None
    options = {"categorical": categorical.get(name, ()), "tickers": tickers}
    assert tables_module.table_dataset(name, tables).count_rows() <= ONE_SCAN_ROWS
    once = read_table(name, tables, **options)
    monkeypatch.setattr(tables_module, "ONE_SCAN_ROWS", 0)  # every table: column by column
    by_column = read_table(name, tables, **options)
    pd.testing.assert_frame_equal(once, by_column, check_exact=True)
    for column in categorical.get(name, ()):
        assert once[column].cat.categories.equals(by_column[column].cat.categories)


def _spy_reads(monkeypatch) -> list[str]:
    """The tables MarketTables.read reads a partition of (one entry per partition read)."""
    reads: list[str] = []

    def read(name, *args, **kwargs):
        if kwargs.get("filter") is not None:
            reads.append(name)
        return read_table(name, *args, **kwargs)

    monkeypatch.setattr(loop_module, "read_table", read)
    return reads


def test_only_the_partitions_holding_a_predicted_market_are_read(tables, params, monkeypatch):
    keys = table_dataset("markets", tables).to_table(columns=["ticker", "series", "month"])
    keys = keys.to_pandas()
    first = keys[
        (keys["series"] == keys["series"].iloc[0]) & (keys["month"] == keys["month"].iloc[0])
    ]
    tickers = sorted(first["ticker"])[::2]
    reads = _spy_reads(monkeypatch)
    read = MarketTables.read(params.backtest, tickers, tables)
    n_book = len(partition_filters(tables, table="orderbook"))
    assert n_book >= 6 and reads == ["orderbook", "candles"]  # their one partition of each
    book, candles = whole(tables, tickers)
    b = params.backtest
    index = QuoteIndex(book, candles, b.max_fill_share, b.max_volume_share, b.max_quote_age_hours)
    for ts in sorted(set(book["snapshot_ts"].iloc[::20]) | set(candles["end_period_ts"])):
        pd.testing.assert_frame_equal(read.quotes.top(tickers, ts), index.top(tickers, ts))
    for ticker in tickers:
        np.testing.assert_array_equal(read.quotes.times(ticker), index.times(ticker))
    # a market the markets table does not list: where its rows lie is not known, all are read
    reads.clear()
    MarketTables.read(params.backtest, [*tickers, "NOT-A-MARKET"], tables)
    n_candles = len(partition_filters(tables, table="candles"))
    assert reads.count("orderbook") == n_book and reads.count("candles") == n_candles


def test_partitions_whose_filters_are_not_recognised_are_all_read(tables, params, monkeypatch):
    """Were partition_filters to build its filters otherwise (here the keys swapped), the
    partitions holding the markets could not be told: every one is read, none is missed."""

    def swapped(root, table="markets"):
        return [
            (ds.field("month") == m) & (ds.field("series") == s)
            for s, m in (
                (str(f).split('"')[1], str(f).split('"')[3]) for f in partition_filters(root, table)
            )
        ]

    monkeypatch.setattr(loop_module, "partition_filters", swapped)
    reads = _spy_reads(monkeypatch)
    tickers = predicted(tables)[:3]
    read = MarketTables.read(params.backtest, tickers, tables)
    assert reads.count("orderbook") == len(partition_filters(tables, table="orderbook"))
    for ticker in tickers:
        assert len(read.quotes.times(ticker))
