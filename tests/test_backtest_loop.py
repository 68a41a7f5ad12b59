"""run_backtest end to end on two markets whose every cent can be checked by hand."""

import json

import pandas as pd
import pytest

from kalshi_lab.backtest import run_backtest
from kalshi_lab.data.tables import CANDLES
from kalshi_lab.errors import DataError
from kalshi_lab.params import BacktestParams, StrategyParams

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only

D0 = pd.Timestamp("2025-01-01", tz="UTC")
D1 = D0 + pd.Timedelta(days=1)
H = pd.Timedelta(hours=1)
BOOK = pd.DataFrame(
    [
        ("A", D0, "yes", 0.38, 1000.0),
        ("A", D0, "no", 0.60, 1000.0),  # YES ask 40
        ("B", D0, "yes", 0.70, 1000.0),  # NO ask 30
        ("B", D0, "no", 0.28, 1000.0),
        ("B", D1, "yes", 0.73, 1000.0),
        ("B", D1, "no", 0.25, 1000.0),
    ],
    columns=["ticker", "snapshot_ts", "side", "price", "count"],
)
MARKETS = pd.DataFrame(
    {
        "ticker": ["A", "B"],
        "event_ticker": ["EA", "EB"],
        "series_ticker": ["S", "S"],
        "close_time": [D0 + 10 * H, D1 + 10 * H],
        "settlement_ts": [D0 + 12 * H, D1 + 12 * H],
        "result": ["yes", "no"],
    }
)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
PREDICTIONS = pd.DataFrame(
    {
        "ticker": ["A", "B", "A"],
        "event_ticker": ["EA", "EB", "EA"],
        "series_ticker": "S",
        "as_of": [D0, D0, D1],  # A is closed at D1: no trade
        "prob": [0.6, 0.2, 0.6],
        "mid": [0.39, 0.71, 0.39],
        "close_time": [D0 + 10 * H, D1 + 10 * H, D0 + 10 * H],
    }
)
KELLY = StrategyParams("edge_kelly", 0.03, 0.5, 0.05, 0.10, exit_edge=-0.02)


def run(executor: str = "simple", predictions: pd.DataFrame = PREDICTIONS):
    params = BacktestParams(1000.0, executor, 4, 0.07, 1.0, 0.1)
    return run_backtest(predictions, BOOK, NO_CANDLES, MARKETS, SERIES, KELLY, params, "settlement")


def test_two_markets_by_hand():
    result = run()
    # caps: 5% of $1,000 = 5,000 cents per market (Kelly asks for more)
    # A: floor(5000 / 41.68) = 119 YES at 40 = 4760 + fee ceil(199.92) = 200
    # B: floor(5000 / 31.47) = 158 NO at 30 = 4740 + fee ceil(232.26) = 233
    fills = result.fills.set_index("ticker")
    assert fills.loc["A", ["side", "count", "price"]].tolist() == ["yes", 119, 0.40]
    assert fills.loc["B", ["side", "count", "price"]].tolist() == ["no", 158, 0.30]
    assert fills["fee"].tolist() == [2.33, 2.00]
    cash0 = 100_000 - 4960 - 4973
    eq = result.equity
    assert eq["ts"].tolist() == [D0, D1, D1 + 12 * H]
    # D0: marked at the bids, A YES 38, B NO 28
    assert eq["equity"].iloc[0] == pytest.approx((cash0 + 119 * 38 + 158 * 28) / 100)
    # A settles YES at D0 12:00 (+119 x 100); D1: B marked at its new NO bid 25
    assert eq["cash"].iloc[1] == pytest.approx((cash0 + 11_900) / 100)
    assert eq["positions_value"].iloc[1] == pytest.approx(158 * 25 / 100)
    # B settles NO after the last decision: a final row
    final = (cash0 + 11_900 + 15_800) / 100
    assert eq["equity"].iloc[-1] == pytest.approx(final) == 1177.67
    s = result.summary
    assert s["final_equity"] == pytest.approx(final)
    assert s["total_return"] == pytest.approx(final / 1000 - 1)
    assert s["max_drawdown"] == pytest.approx(1 - eq["equity"].iloc[0] / 1000)
    assert (s["n_trades"], s["n_contracts"], s["n_settled"], s["hit_rate"]) == (2, 277, 2, 1.0)
    assert s["fees_paid"] == pytest.approx(4.33)
    json.dumps(s, allow_nan=False)


def test_twap_run_is_deterministic_and_never_overdraws():
    a, b = run("twap"), run("twap")
    pd.testing.assert_frame_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.fills, b.fills)
    assert a.summary == b.summary
    assert (a.equity["cash"] >= 0).all()
    # B's second child met the D1 book (NO ask 27), not the decision's
    b_fills = a.fills[a.fills["ticker"] == "B"]
    assert b_fills["quote_ts"].tolist() == [D0, D1]
    assert b_fills["price"].tolist() == [0.30, 0.27]


def test_bad_predictions_are_data_errors():
    with pytest.raises(DataError, match="lack columns"):
        run(predictions=PREDICTIONS.drop(columns="prob"))
    with pytest.raises(DataError, match="empty"):
        run(predictions=PREDICTIONS.iloc[:0])
