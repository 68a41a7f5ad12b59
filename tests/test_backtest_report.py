"""Summary statistics: drawdown as a positive fraction, daily Sharpe, no NaN for quiet runs."""

import json
import math

import pandas as pd
import pytest

from kalshi_lab.backtest.report import fills_frame, max_drawdown, sharpe_daily, summarize
from kalshi_lab.execution.account import KalshiAccount

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def test_max_drawdown_is_a_positive_fraction_of_the_peak():
    assert max_drawdown(pd.Series([100.0, 120.0, 90.0, 130.0])) == pytest.approx(0.25)
    assert max_drawdown(pd.Series([100.0, 100.0])) == 0.0


def test_sharpe_daily_is_annualised_and_zero_without_variance():
    values = pd.Series([100.0, 101.0, 100.0, 102.0])
    r = values.pct_change().dropna()
    assert sharpe_daily(values) == pytest.approx(r.mean() / r.std() * math.sqrt(365))
    assert sharpe_daily(pd.Series([100.0, 100.0, 100.0])) == 0.0


def test_quiet_run_summary_is_json_without_nan():
    equity = pd.DataFrame(
        {
            "ts": [T0, T0 + pd.Timedelta(days=1)],
            "cash": [1000.0, 1000.0],
            "positions_value": [0.0, 0.0],
            "equity": [1000.0, 1000.0],
        }
    )
    s = summarize(equity, [], KalshiAccount(100_000), 100_000)
    assert s["total_return"] == 0.0 and s["hit_rate"] == 0.0 and s["n_trades"] == 0
    assert s["max_drawdown"] == 0.0 and s["sharpe_daily"] == 0.0
    json.dumps(s, allow_nan=False)
    assert list(fills_frame([]).columns)[:4] == ["ts", "quote_ts", "source", "decided_at"]
