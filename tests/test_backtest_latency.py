"""Latency rows: a delayed run is a return only if its decisions found fresher quotes.

Three markets over five days, decided at each midnight (a daily candle's end, as the features
stage's rows are), on the quotes the data has: daily candles only (closed Kalshi history), plus
books four times a day (the default simulator), or plus hourly candles (``data.hourly_candles``).
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.backtest import BacktestResult, run_backtest
from kalshi_lab.backtest.latency import (
    MIN_FRESH_SHARE,
    delayed,
    fresh_shares,
    latency_row,
    undelayed_row,
)
from kalshi_lab.backtest.report import DECISION_QUOTE_COLUMNS, FILL_COLUMNS
from kalshi_lab.data.tables import CANDLES, ORDERBOOK
from kalshi_lab.params import BacktestParams, RiskParams, StrategyParams

D0 = pd.Timestamp("2025-03-01", tz="UTC")
H = pd.Timedelta(hours=1)
DAYS = 5
TICKERS = ["A", "B", "C"]
MARKETS = pd.DataFrame(
    {
        "ticker": TICKERS,
        "event_ticker": ["EA", "EB", "EC"],
        "series_ticker": "S",
        "close_time": D0 + DAYS * 24 * H,
        "settlement_ts": D0 + DAYS * 24 * H + H,
        "result": ["yes", "no", "yes"],
    }
)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
KELLY = StrategyParams(
    "kalshi_lab.execution.EdgeBasedStrategy", {"min_edge": 0.03, "kelly_fraction": 0.5}
)
LOOSE = RiskParams(10**9, 0.05, 0.10, 1.0, 1.0, kill_switch=False)
#: the model's probability: well above every ask (YES bought), unless given
PROB = 0.9


def tables(
    books: tuple[str, ...] = (), hourly: bool = False, flat: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily candles of every market; 6-hourly books of ``books``; hourly candles if asked.
    Prices are random (YES bid 30-59 cents, ask 2 cents above), but 44/46 in ``flat``."""
    rng = np.random.default_rng(0)
    candles, book = [], []
    for t in TICKERS:
        for hour in range(0, DAYS * 24 + 1):
            at = D0 + hour * H
            bid = 44 if t in flat else int(rng.integers(30, 60))
            period = 1440 if hour % 24 == 0 else 60 if hourly else None
            if period:
                candles.append(
                    {"ticker": t, "period_minutes": period, "end_period_ts": at,
                     "yes_bid_close": bid / 100, "yes_ask_close": (bid + 2) / 100,
                     "volume": 5.0 * period}
                )  # fmt: skip
            if t in books and hour % 6 == 0:
                for side, price in (("yes", bid), ("no", 98 - bid)):
                    book.append(
                        {
                            "ticker": t,
                            "snapshot_ts": at,
                            "side": side,
                            "price": price / 100,
                            "count": 300.0,
                        }
                    )
    return (
        pa.Table.from_pylist(book, schema=ORDERBOOK).to_pandas(),
        pa.Table.from_pylist(candles, schema=CANDLES).to_pandas(),
    )


def predictions(prob: dict[str, float] | None = None) -> pd.DataFrame:
    """Every market at every midnight before its close."""
    times = [D0 + d * 24 * H for d in range(DAYS)]
    prob = prob or {}
    return pd.DataFrame(
        {
            "ticker": np.tile(TICKERS, len(times)),
            "event_ticker": np.tile(["EA", "EB", "EC"], len(times)),
            "series_ticker": "S",
            "as_of": np.repeat(times, len(TICKERS)),
            "prob": [prob.get(t, PROB) for t in TICKERS] * len(times),
            "mid": 0.5,
        }
    )


def run(preds: pd.DataFrame, data: tuple[pd.DataFrame, pd.DataFrame]) -> BacktestResult:
    params = BacktestParams(1000.0, "simple", 0.0, 4, 60, 0.07, 1.0, 0.1, 24.0, 200, 0, ())
    book, candles = data
    return run_backtest(preds, book, candles, MARKETS, SERIES, KELLY, LOOSE, params, "settlement")


def rows(data: tuple[pd.DataFrame, pd.DataFrame], hours=(6.0, 12.0)) -> dict[float, dict]:
    preds = predictions()
    return {k: latency_row(run(delayed(preds, k), data), k) for k in hours}


def test_on_daily_candles_alone_the_latency_rows_are_not_measurable():
    for hours, row in rows(tables()).items():
        assert row["measurable"] is False and row["return"] is None, hours
        assert row["fresh_quote_share"] == 0.0 and row["fresh_fill_share"] == 0.0
        assert "0% of the delayed decisions' quotes" in row["reason"]
    # the run it would have reported: fills against the midnight candle, 6 h old
    late = run(delayed(predictions(), 6.0), tables())
    assert len(late.fills) and (late.fills["quote_ts"] == late.fills["ts"] - 6 * H).all()


@pytest.mark.parametrize(
    ("data", "fresh_after_3h"),
    [(tables(books=tuple(TICKERS)), False), (tables(hourly=True), True)],
    ids=["books", "hourly-candles"],
)
def test_with_books_or_hourly_candles_the_latency_rows_are_measured(data, fresh_after_3h):
    preds = predictions()
    for hours, row in rows(data).items():
        late = run(delayed(preds, hours), data)
        assert row["measurable"] is True and row["reason"] is None, hours
        assert row["return"] == late.summary["total_return"] != 0.0
        assert row["fresh_quote_share"] == row["fresh_fill_share"] == 1.0
    # 3 hours after midnight a 6-hourly book has nothing newer; an hourly candle has
    (three,) = rows(data, hours=(3.0,)).values()
    assert three["measurable"] is fresh_after_3h


def test_fills_only_where_the_quote_did_not_move_are_not_a_measurement():
    """A and C have books: 6 h later their quotes are new and show no edge (prob at the
    mid); B has daily candles only, so its midnight edge is still there and is what the
    delayed run buys. Two thirds of the decisions saw fresh quotes, none of the fills."""
    data = tables(books=("A", "C"), flat=("A", "C"))
    late = delayed(predictions({"A": 0.45, "C": 0.45}), 6.0)
    result = run(late, data)
    assert set(result.fills["ticker"]) == {"B"}
    row = latency_row(result, 6.0)
    assert row["fresh_quote_share"] == pytest.approx(2 / 3) and row["fresh_fill_share"] == 0.0
    assert row["measurable"] is False and row["return"] is None
    assert "0% of its fills'" in row["reason"]


def _result(decisions: list[tuple], fills: list[tuple], total_return: float) -> BacktestResult:
    """A BacktestResult of hand-made decision quotes (ticker, as_of, is_open, quote_ts) and
    fills (decided_at, quote_ts)."""
    seen = pd.DataFrame(decisions, columns=DECISION_QUOTE_COLUMNS)
    seen["quote_ts"] = pd.to_datetime(seen["quote_ts"], utc=True)
    fill_rows = pd.DataFrame(
        [{"decided_at": d, "quote_ts": q, "ts": d} for d, q in fills], columns=FILL_COLUMNS
    )
    return BacktestResult(
        equity=pd.DataFrame(),
        fills=fill_rows,
        positions=pd.DataFrame(),
        summary={"total_return": total_return},
        decision_quotes=seen,
    )


def test_the_rule_counts_open_quoted_decisions_and_fills_against_the_undelayed_time():
    late = D0 + 6 * H  # decisions made at D0, acted on 6 h later
    fresh, stale = D0 + H, D0  # a quote after the undelayed decision; the one it saw
    decisions = [
        ("A", late, True, fresh),
        ("B", late, True, stale),
        ("C", late, False, fresh),  # closed: not counted
        ("D", late, True, None),  # no quote: not counted
    ]
    half = _result(decisions, [(late, fresh), (late, stale)], 0.05)
    assert fresh_shares(half, 6.0) == (0.5, 0.5) and MIN_FRESH_SHARE == 0.5
    assert latency_row(half, 6.0) == {
        "return": 0.05,
        "measurable": True,
        "fresh_quote_share": 0.5,
        "fresh_fill_share": 0.5,
        "reason": None,
    }
    # as if acted on 5.5 h or 5 h later: D0 + 1h is after the undelayed decision, or at it
    assert fresh_shares(half, 5.5) == (0.5, 0.5)
    assert fresh_shares(half, 5.0) == (0.0, 0.0)
    stale_fills = _result(decisions, [(late, stale), (late, stale), (late, fresh)], 0.05)
    assert latency_row(stale_fills, 6.0)["measurable"] is False
    no_fills = _result(decisions, [], 0.0)  # no edge left on fresh quotes: a result
    assert latency_row(no_fills, 6.0)["return"] == 0.0
    assert latency_row(no_fills, 6.0)["fresh_fill_share"] is None
    nothing = _result([("C", late, False, fresh)], [], 0.0)
    assert latency_row(nothing, 6.0)["measurable"] is False
    assert latency_row(nothing, 6.0)["reason"] == (
        "no delayed decision found an open market with a quote"
    )
    assert undelayed_row(half) == {
        "return": 0.05,
        "measurable": True,
        "fresh_quote_share": None,
        "fresh_fill_share": None,
        "reason": None,
    }
