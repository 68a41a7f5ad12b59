"""Summary statistics: drawdown as a positive fraction, daily Sharpe, no NaN for quiet runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.backtest.report import (
    exposure,
    fills_frame,
    max_drawdown,
    sharpe_daily,
    sortino_daily,
    summarize,
    traded_signal_scores,
)
from kalshi_lab.backtest.uncertainty import bootstrap_return, pnl_by_structure, release_pnl
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import Fill

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


def test_sortino_divides_by_the_downside_only():
    values = pd.Series([100.0, 110.0, 99.0, 108.9])  # +10 %, -10 %, +10 %
    r = values.pct_change().dropna()
    downside = math.sqrt(((r.clip(upper=0)) ** 2).mean())
    assert sortino_daily(values) == pytest.approx(r.mean() / downside * math.sqrt(365))
    assert sortino_daily(pd.Series([100.0, 101.0, 102.0])) == 0.0  # no losing day


def test_exposure_is_the_share_of_equity_in_positions():
    equity = pd.DataFrame({"positions_value": [0.0, 50.0, 25.0], "equity": [100.0, 100.0, 50.0]})
    assert exposure(equity) == pytest.approx((1 / 3, 0.5))


def test_traded_signals_are_scored_against_the_market_price_paid():
    fills = pd.DataFrame(
        {
            "decided_at": [T0, T0, T0 + pd.Timedelta(days=1)],
            "ticker": ["A", "A", "B"],  # A bought twice in one decision: scored once
            "side": ["yes", "yes", "no"],
            "action": ["buy", "buy", "buy"],
            "price": [0.40, 0.41, 0.70],
        }
    )
    predictions = pd.DataFrame(
        {"as_of": [T0, T0 + pd.Timedelta(days=1)], "ticker": ["A", "B"], "prob": [0.6, 0.2]}
    )
    outcomes = pd.Series({"A": 1.0, "B": 1.0})  # B resolved YES: the NO buy lost
    s = traded_signal_scores(fills, predictions, outcomes)
    assert s["n_traded_signals_scored"] == 2
    assert s["traded_model_brier"] == pytest.approx(((0.6 - 1) ** 2 + (0.8 - 0) ** 2) / 2)
    assert s["traded_market_brier"] == pytest.approx(((0.40 - 1) ** 2 + (0.70 - 0) ** 2) / 2)
    assert s["traded_model_log_loss"] == pytest.approx(-(math.log(0.6) + math.log(0.2)) / 2)


def test_pnl_by_structure_puts_every_position_fee_and_contract_under_its_event_s_structure():
    markets = pd.DataFrame(
        {
            "ticker": ["L-1", "L-2", "B-1", "S"],
            "structure": ["ladder", "ladder", "bracket", "binary"],
        }
    )
    fills = pd.DataFrame(
        {
            "ticker": ["L-1", "L-2", "L-2", "B-1", "GONE"],
            "action": ["buy", "buy", "sell", "buy", "buy"],
            "count": [10, 5, 5, 3, 2],
            "fee": [0.10, 0.05, 0.04, 0.02, 0.01],
        }
    )
    positions = pd.DataFrame(
        {
            "ticker": ["L-1", "L-2", "B-1", "GONE"],
            "event_ticker": ["L", "L", "B", "G"],
            "pnl": [2.50, -1.00, -0.30, 0.40],
        }
    )
    parts = pnl_by_structure(fills, positions, markets)
    assert list(parts) == ["ladder", "bracket", "other"]  # STRUCTURES order; unknown: other
    assert parts["ladder"] == {
        "n_events": 1,
        "n_positions": 2,
        "contracts": 15,  # bought; the sell is not a contract more
        "fees_paid": pytest.approx(0.19),
        "pnl": pytest.approx(1.50),
    }
    assert parts["other"]["pnl"] == pytest.approx(0.40) and parts["other"]["contracts"] == 2
    assert "binary" not in parts  # listed, not traded


def test_the_return_interval_resamples_releases_so_two_events_of_one_release_move_together():
    # U3 and KXU3 events closing on one date are one release: their P&L is summed first
    markets = pd.DataFrame(
        {
            "event_ticker": ["U3-A", "U3-A", "KXU3-A", "U3-B", "CPI-A"],
            "series_ticker": ["U3", "U3", "KXU3", "U3", "CPI"],
            "close_time": pd.to_datetime(
                ["2025-03-07 13:30"] * 3 + ["2025-04-04 13:30", "2025-03-07 13:30"], utc=True
            ),
        }
    )
    by_event = pd.DataFrame(
        {
            "event_ticker": ["U3-A", "KXU3-A", "U3-B", "CPI-A", "UNLISTED"],
            "pnl": [100.0, -100.0, 50.0, -50.0, 7.0],
            "n_positions": [1, 1, 1, 1, 1],
        }
    )
    pnl = release_pnl(by_event, markets)
    # releases sorted by key: CPI 03-07, U3 03-07 (100 - 100), U3 04-04, the unlisted event
    assert pnl.tolist() == [-50.0, 0.0, 50.0, 7.0]
    # the two events of one release cancel: resampled together they never move the return
    hedged = bootstrap_return(np.array([0.0, 0.0]), 1000.0, 500, 0)
    assert hedged == {"return_ci_low": 0.0, "return_ci_high": 0.0, "p_loss": 1.0}
    apart = bootstrap_return(np.array([100.0, -100.0]), 1000.0, 500, 0)
    assert apart["return_ci_low"] < -0.1 and apart["return_ci_high"] > 0.1


def test_a_losing_run_has_no_fee_share_and_open_positions_show_as_unsettled_pnl():
    acct = KalshiAccount(100_000)
    # settled: 10 YES at 40 cents plus 2 cents of fees, lost: -402 cents
    acct.apply(Fill(T0, T0, "A", "yes", "buy", 10, 400, 2, "book"), "EA")
    acct.settle("A", "no", T0 + pd.Timedelta(days=1))
    # still open at the end: 20 YES at 50 cents, marked at a 30-cent bid: -400 cents unsettled
    acct.apply(Fill(T0, T0, "B", "yes", "buy", 20, 1000, 0, "book"), "EB")
    acct.mark(pd.DataFrame({"yes_bid": [30.0], "no_bid": [70.0]}, index=["B"]))
    equity = pd.DataFrame(
        {
            "ts": [T0, T0 + pd.Timedelta(days=2)],
            "cash": [1000.0, acct.cash_cents / 100],
            "positions_value": [0.0, acct.positions_value_cents / 100],
            "equity": [1000.0, acct.equity_cents / 100],
        }
    )
    s = summarize(equity, [], acct, 100_000)
    assert s["gross_pnl"] == pytest.approx(-8.00) and s["fee_share_of_gross_pnl"] is None
    assert s["unsettled_pnl"] == pytest.approx(-4.00)
    assert s["unsettled_share_of_pnl"] == pytest.approx(400 / (400 + 402))
    json.dumps(s, allow_nan=False)
