"""run_backtest end to end on markets whose every cent can be checked by hand."""

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.backtest import loop, run_backtest
from kalshi_lab.data.tables import CANDLES
from kalshi_lab.errors import DataError
from kalshi_lab.execution.signals import OTHER_STRUCTURE, STRUCTURE_COLUMNS
from kalshi_lab.params import BacktestParams, RiskParams, StrategyParams
from table_files import write_table_files

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
    }
)
KELLY = StrategyParams(
    "kalshi_lab.execution.EdgeBasedStrategy",
    {"min_edge": 0.03, "kelly_fraction": 0.5, "exit_edge": -0.02},
)
#: 5 % of equity per market, 10 % per event; capital and daily loss never bind here
CAPS = RiskParams(10**9, 0.05, 0.10, 1.0, 1.0, kill_switch=False)


def run(
    executor: str = "simple",
    predictions: pd.DataFrame = PREDICTIONS,
    book: pd.DataFrame = BOOK,
    candles: pd.DataFrame = NO_CANDLES,
    markets: pd.DataFrame = MARKETS,
    risk: RiskParams = CAPS,
    ttl_hours: float = 0.0,
    strategy: StrategyParams = KELLY,
    max_age: float = 24.0,
):
    # nested: 4 children a day apart, so that each meets the next day's book
    params = BacktestParams(
        1000.0, executor, ttl_hours, 4, 1440, 0.07, 1.0, 0.1, max_age, 200, 0, ()
    )
    return run_backtest(
        predictions, book, candles, markets, SERIES, strategy, risk, params, "settlement"
    )


def candles(rows: list[tuple]) -> pd.DataFrame:
    """Hourly candles (ticker, end, yes_bid_close, yes_ask_close, volume), typed as stored."""
    keys = ("ticker", "end_period_ts", "yes_bid_close", "yes_ask_close", "volume")
    records = [dict(zip(keys, r, strict=True)) | {"period_minutes": 60} for r in rows]
    return pa.Table.from_pylist(records, schema=CANDLES).to_pandas()


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
    # what each prediction's market showed at its decision: A is closed at D1, its D0 book
    # (24 h old, at most backtest.max_quote_age_hours) still quoted
    seen = result.decision_quotes
    assert seen.values.tolist() == [["A", D0, True, D0], ["B", D0, True, D0], ["A", D1, False, D0]]
    assert str(seen["as_of"].dtype) == str(seen["quote_ts"].dtype) == "datetime64[ns, UTC]"
    aged = run(max_age=23.0).decision_quotes  # A's book is then too old at D1: no quote
    assert aged["quote_ts"].isna().tolist() == [False, False, True]


def test_the_event_limit_reads_each_event_s_structure_from_the_markets_table():
    """A and B as two rungs of one ladder: YES above 4.0 and NO above 4.2 never lose together,
    so a 6 % event cap leaves both at their 5 % market caps; markets of unknown structure count
    both costs as lost, and the cap cuts B."""
    ladder = MARKETS.assign(
        event_ticker="E",
        strike_type="greater",
        floor_strike=[4.0, 4.2],
        cap_strike=np.nan,
        structure="ladder",
    )
    predictions = PREDICTIONS.assign(event_ticker="E")
    caps = dataclasses.replace(CAPS, max_event_frac=0.06)
    exact = run(predictions=predictions, markets=ladder, risk=caps).fills
    assert exact.set_index("ticker")["count"].to_dict() == {"A": 119, "B": 158}  # as by hand
    unknown = run(predictions=predictions, markets=ladder.drop(columns="structure"), risk=caps)
    # B first (5,000 cents of budget), then A: (6,000 - 5,000) // 41.68 cents a contract
    assert unknown.fills.set_index("ticker")["count"].to_dict() == {"A": 23, "B": 158}


def test_nested_run_is_deterministic_and_never_overdraws():
    a, b = run("nested"), run("nested")
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


def test_recorded_history_without_books_trades_on_candles():
    # A has no book: the hourly candle ending at D0 quotes it (YES ask 40, bid 38), and 10 % of
    # its 1,000 traded contracts cap the fill below the 119 the caps allow
    result = run(book=BOOK[BOOK["ticker"] == "B"], candles=candles([("A", D0, 0.38, 0.40, 1000.0)]))
    fills = result.fills.set_index("ticker")
    assert fills.loc["A", ["source", "quote_ts", "count", "price"]].tolist() == [
        "candle",
        D0,
        100,
        0.40,
    ]
    assert fills.loc["B", "source"] == "book"
    s = result.summary
    assert (s["n_fills_candle"], s["n_contracts_candle"]) == (1, 100)
    assert (s["n_fills_book"], s["n_contracts_book"]) == (1, 158)
    # marked at the candle's bid at D0: 100 YES at 38
    cash = 100_000 - (4000 + 168) - (4740 + 233)  # fee ceil(0.07 x 100 x 40 x 60 / 100) = 168
    assert result.equity["equity"].iloc[0] == pytest.approx((cash + 100 * 38 + 158 * 28) / 100)


def test_a_run_without_orders_says_why(caplog):
    with caplog.at_level(logging.WARNING, logger="kalshi_lab.backtest"):
        result = run(book=BOOK.iloc[:0])
    assert result.summary["n_orders"] == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "placed no order" in warning
    assert "2 no ask to buy at" in warning and "1 market closed" in warning


def test_a_run_whose_orders_all_fail_says_why(caplog):
    # the candle quotes A, but 10 % of its 5 traded contracts is under one contract
    only_a = PREDICTIONS.iloc[:1]
    with caplog.at_level(logging.WARNING, logger="kalshi_lab.backtest"):
        result = run(
            predictions=only_a, book=BOOK.iloc[:0], candles=candles([("A", D0, 0.38, 0.40, 5.0)])
        )
    assert (result.summary["n_orders"], result.summary["n_trades"]) == (1, 0)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "filled none of its 1 orders" in warning and "max_volume_share" in warning


def _history(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three markets over four days: A and C quoted by hourly candles only (a fifth of the
    hours missing), B by 6-hourly books from D1 on and the same candles; predictions every 5
    hours (on and between B's books) with a wide edge somewhere."""
    rng = np.random.default_rng(seed)
    tickers = ["A", "B", "C"]
    close = D0 + pd.Timedelta(days=4)
    markets = pd.DataFrame(
        {
            "ticker": tickers,
            "event_ticker": ["EA", "EB", "EC"],
            "series_ticker": "S",
            "close_time": close,
            "settlement_ts": close + 2 * H,
            "result": ["yes", "no", "yes"],
        }
    )
    rows = []
    for t in tickers:
        for hour in range(-2, 96):
            bid = int(rng.integers(20, 70))
            volume = float(rng.integers(0, 900))
            if rng.random() < 0.8:
                rows.append((t, D0 + hour * H, bid / 100, (bid + 3) / 100, volume))
    book = [
        (t, D1 + hour * H, side, int(rng.integers(20, 45)) / 100, float(rng.integers(10, 400)))
        for t in ("B",)
        for hour in range(0, 72, 6)
        for side in ("yes", "no")
    ]
    times = pd.date_range(D0, close - H, freq="5h")
    predictions = pd.DataFrame(
        {
            "ticker": np.tile(tickers, len(times)),
            "event_ticker": np.tile(["EA", "EB", "EC"], len(times)),
            "series_ticker": "S",
            "as_of": np.repeat(times, len(tickers)),
            "prob": rng.choice([0.1, 0.5, 0.9], size=len(times) * len(tickers)),
            "mid": 0.5,
        }
    )
    book = pd.DataFrame(book, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    return predictions, book, candles(rows), markets


@pytest.mark.parametrize("max_age", [24.0, 1.0])
@pytest.mark.parametrize("executor", ["simple", "resting", "nested"])
def test_fills_and_equity_up_to_t_ignore_candles_and_books_after_t(executor, max_age):
    """Whatever quotes (a book, a fresher candle) and however old a quote may be."""
    predictions, book, candle_table, markets = _history(seed=5)
    cutoff = D1 + 12 * H
    ttl = 30.0 if executor == "resting" else 0.0
    executor = "simple" if executor == "resting" else executor
    full = run(executor, predictions, book, candle_table, markets, ttl_hours=ttl, max_age=max_age)
    later = candle_table["end_period_ts"] > cutoff
    altered = (
        candle_table[later].iloc[::2].assign(yes_bid_close=0.01, yes_ask_close=0.02, volume=1e6)
    )
    late_book = book[book["snapshot_ts"] > cutoff].iloc[::3].assign(price=0.97, count=1e6)
    truncated = run(
        executor,
        predictions,
        pd.concat([book[book["snapshot_ts"] <= cutoff], late_book]),
        pd.concat([candle_table[~later], altered]),
        markets,
        ttl_hours=ttl,
        max_age=max_age,
    )
    early = full.fills["ts"] <= cutoff
    assert set(full.fills.loc[early, "source"]) == {"book", "candle"}
    if ttl:  # resting orders filled as maker before the cutoff
        assert (full.fills.loc[early, "liquidity"] == "maker").any()
    pd.testing.assert_frame_equal(
        truncated.fills[truncated.fills["ts"] <= cutoff], full.fills[early]
    )
    pd.testing.assert_frame_equal(
        truncated.equity[truncated.equity["ts"] <= cutoff],
        full.equity[full.equity["ts"] <= cutoff],
    )
    seen, seen_truncated = full.decision_quotes, truncated.decision_quotes
    pd.testing.assert_frame_equal(
        seen_truncated[seen_truncated["as_of"] <= cutoff], seen[seen["as_of"] <= cutoff]
    )
    assert (seen["quote_ts"].dropna() <= seen.loc[seen["quote_ts"].notna(), "as_of"]).all()
    assert not truncated.fills.equals(full.fills)  # the later data did matter later
    # B, quoted by books and candles: between its books an hourly candle quoted it
    b = seen[(seen["ticker"] == "B") & (seen["as_of"] > D1)]
    on_book = b["as_of"].dt.hour % 6 == 0
    assert (b.loc[~on_book, "quote_ts"] > b.loc[~on_book, "as_of"].dt.floor("6h")).any()
    if max_age == 1.0:  # the gaps in the candles left decisions without a quote
        assert (
            seen["quote_ts"].isna().sum()
            > run(executor, predictions, book, candle_table, markets, ttl_hours=ttl)
            .decision_quotes["quote_ts"]
            .isna()
            .sum()
        )


def test_risk_limits_hold_in_the_loop_whatever_the_strategy_sizes():
    # the strategy alone buys about 9,500 cents (5 % of equity in each of A and B)
    capped = run(risk=RiskParams(10**9, 1.0, 1.0, 0.05, 1.0, kill_switch=False))
    spent = (capped.fills["cost"] + capped.fills["fee"]).sum()
    assert 0 < spent <= 0.05 * 1000.0
    killed = run(risk=RiskParams(10**9, 1.0, 1.0, 1.0, 1.0, kill_switch=True))
    assert killed.fills.empty and killed.summary["n_orders"] == 0


def test_the_backtest_reads_exactly_the_columns_the_exchange_needs(tmp_path):
    from kalshi_lab.data.tables import read_table
    from kalshi_lab.execution.quotes import CANDLE_COLUMNS

    table = candles([("A", D0, 0.38, 0.40, 1000.0), ("B", D0, 0.20, 0.25, 10.0)])
    assert len(table.columns) > len(CANDLE_COLUMNS)  # as the parquet stage writes it
    write_table_files(tmp_path, "candles", pa.Table.from_pandas(table, schema=CANDLES))
    read = read_table("candles", tmp_path, CANDLE_COLUMNS, categorical=("ticker",))
    assert list(read.columns) == CANDLE_COLUMNS and read["ticker"].dtype == "category"
    pd.testing.assert_frame_equal(
        read.astype({"ticker": object}), read_table("candles", tmp_path, CANDLE_COLUMNS)
    )
    write_table_files(tmp_path, "candles", table.drop(columns="volume"))
    with pytest.raises(DataError, match=r"candles/part-0\.parquet lacks columns \['volume'\]"):
        read_table("candles", tmp_path, CANDLE_COLUMNS, categorical=("ticker",))


def test_a_market_not_predicted_changes_nothing():
    """Why the backtest reads only the predicted markets' rows: another market's book and
    candles cannot change a run."""
    other = pd.DataFrame(
        [("C", D0 - H, "yes", 0.50, 10.0), ("C", D0, "no", 0.45, 99.0)], columns=BOOK.columns
    )
    with_other = run(book=pd.concat([other, BOOK], ignore_index=True),
                     candles=candles([("C", D0, 0.40, 0.45, 500.0)]))  # fmt: skip
    alone = run()
    pd.testing.assert_frame_equal(with_other.equity, alone.equity)
    pd.testing.assert_frame_equal(with_other.fills, alone.fills)
    assert with_other.summary == alone.summary


def test_read_table_keeps_the_rows_of_the_markets_asked_for(tmp_path):
    from kalshi_lab.data.tables import read_table

    book = pd.concat(
        [BOOK, BOOK.assign(ticker="C"), BOOK.iloc[:2].assign(ticker=None)], ignore_index=True
    )
    write_table_files(tmp_path, "orderbook", book)
    columns = list(BOOK.columns)
    full = read_table("orderbook", tmp_path, columns, categorical=("ticker", "side"))
    for tickers in ({"A"}, {"A", "C", "unknown"}, set()):
        read = read_table("orderbook", tmp_path, columns, ("ticker", "side"), tickers)
        expected = full[full["ticker"].isin(list(tickers))].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            read.astype({"ticker": object, "side": object}),
            expected.astype({"ticker": object, "side": object}),
        )
    everything = read_table("orderbook", tmp_path, columns, ("ticker",), {"A", "B", "C"})
    assert len(everything) == len(book) - 2  # rows without a ticker are no market's
    plain = read_table("orderbook", tmp_path, columns, tickers={"B"})  # not categorical
    assert plain["ticker"].tolist() == ["B"] * 4 and plain["side"].dtype == object
    prices = read_table("orderbook", tmp_path, ["price"], tickers={"B"})  # ticker not read
    assert prices["price"].tolist() == BOOK.loc[BOOK["ticker"] == "B", "price"].tolist()
    write_table_files(tmp_path, "orderbook", BOOK.drop(columns="ticker"))
    with pytest.raises(DataError, match=r"orderbook/part-0\.parquet lacks columns \['ticker'\]"):
        read_table("orderbook", tmp_path, ["price"], tickers={"B"})


# --- event structure ------------------------------------------------------------------------

ARB = StrategyParams(
    "kalshi_lab.execution.LadderArbitrageStrategy", {"min_profit": 0.01, "pair_fraction": 1.0}
)
LOOSE = RiskParams(10**9, 1.0, 1.0, 1.0, 1.0, kill_switch=False)
NAN = float("nan")


def placed(predictions: pd.DataFrame, places: dict[str, tuple]) -> pd.DataFrame:
    """``predictions`` with their markets' places in their events: ticker -> (structure,
    strike_type, floor_strike, cap_strike), the evaluate stage's columns."""
    out = predictions.copy()
    for k, column in enumerate(STRUCTURE_COLUMNS):
        values = out["ticker"].map({t: p[k] for t, p in places.items()})
        out[column] = values.astype(object if k < 2 else float)
    return out


def test_markets_of_structure_other_are_skipped_and_counted(caplog):
    preds = placed(
        PREDICTIONS, {"A": ("binary", None, NAN, NAN), "B": ("other", "custom", NAN, NAN)}
    )
    with caplog.at_level(logging.INFO, logger="kalshi_lab.backtest"):
        result = run(predictions=preds)
    # B would be bought (test_two_markets_by_hand); as a market of an "other" event it is not
    assert result.fills["ticker"].tolist() == ["A"]
    alone = run().fills.query("ticker == 'A'").reset_index(drop=True)
    pd.testing.assert_frame_equal(result.fills, alone)
    (line,) = [
        r.getMessage() for r in caplog.records if "signals without an order" in r.getMessage()
    ]
    assert f"1 {OTHER_STRUCTURE}" in line and "1 market closed" in line


#: an "above" ladder: L pays above 4.0, U above 4.1; U's YES bid 0.50 is over L's YES ask 0.40
LADDER_BOOK = pd.DataFrame(
    [
        ("L", D0, "yes", 0.38, 500.0),
        ("L", D0, "no", 0.60, 100.0),  # YES ask 40, 100 contracts
        ("U", D0, "yes", 0.50, 100.0),  # NO ask 50, 100 contracts
        ("U", D0, "no", 0.45, 500.0),
    ],
    columns=BOOK.columns,
)
LADDER_PLACES = {"L": ("ladder", "greater", 4.0, NAN), "U": ("ladder", "greater", 4.1, NAN)}


@pytest.mark.parametrize(
    ("results", "both_win"),
    [(["yes", "no"], True), (["yes", "yes"], False), (["no", "no"], False)],
    ids=["between-the-strikes", "above-both", "below-both"],
)
def test_ladder_arbitrage_books_its_riskless_profit_at_settlement(results, both_win):
    markets = MARKETS.assign(ticker=["L", "U"], event_ticker="EL", result=results)
    preds = placed(
        pd.DataFrame(
            {"ticker": ["L", "U"], "event_ticker": "EL", "series_ticker": "S", "as_of": D0,
             "prob": 0.5, "mid": 0.5}
        ),
        LADDER_PLACES,
    )  # fmt: skip
    result = run(predictions=preds, book=LADDER_BOOK, markets=markets, risk=LOOSE, strategy=ARB)
    fills = result.fills.set_index("ticker")
    # the depth, 100 pairs: YES L at 40 (fee 0.07 x 100 x 0.4 x 0.6 = $1.68) and NO U at 50
    # (fee $1.75); profit per pair 1 - (0.40 + 0.0168) - (0.50 + 0.0175) = 0.0657
    assert fills.loc["L", ["side", "count", "price", "fee"]].tolist() == ["yes", 100, 0.40, 1.68]
    assert fills.loc["U", ["side", "count", "price", "fee"]].tolist() == ["no", 100, 0.50, 1.75]
    pnl_cents = round(result.summary["final_equity"] * 100) - 100_000
    # one leg pays $1 a pair whatever the value; both do when it ends between the strikes
    assert pnl_cents == 100 * 657 // 100 + (100 * 100 if both_win else 0)
    assert result.summary["n_settled"] == 2


def _ladder_history(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """An "above" ladder (U1..U4, value 2.5) and a "below" one (D10..D30, value 25) quoted by
    random books every 6 hours for three days (mispriced pairs at most times), predicted at
    each book."""
    rng = np.random.default_rng(seed)
    places = {
        **{f"U{x}": ("ladder", "greater", float(x), NAN) for x in (1, 2, 3, 4)},
        **{f"D{x}": ("ladder", "less", NAN, float(x)) for x in (10, 20, 30)},
    }
    tickers = list(places)
    event = ["EU"] * 4 + ["ED"] * 3
    close = D0 + pd.Timedelta(days=3)
    markets = pd.DataFrame(
        {
            "ticker": tickers,
            "event_ticker": event,
            "series_ticker": "S",
            "close_time": close,
            "settlement_ts": close + 2 * H,
            "result": ["yes", "yes", "no", "no", "no", "no", "yes"],
        }
    )
    times = pd.date_range(D0, close - H, freq="6h")
    book = []
    for ts in times:
        for t in tickers:
            yes = int(rng.integers(20, 70))
            no = int(rng.integers(5, 97 - yes))
            for side, best in (("yes", yes), ("no", no)):
                book.append((t, ts, side, best / 100, float(rng.integers(10, 300))))
    predictions = pd.DataFrame(
        {
            "ticker": np.tile(tickers, len(times)),
            "event_ticker": np.tile(event, len(times)),
            "series_ticker": "S",
            "as_of": np.repeat(times, len(tickers)),
            "prob": 0.5,
            "mid": 0.5,
        }
    )
    book = pd.DataFrame(book, columns=BOOK.columns)
    return placed(predictions, places), book, markets


def test_ladder_arbitrage_decisions_up_to_t_ignore_quotes_and_predictions_after_t(monkeypatch):
    decided: list[tuple[pd.Timestamp, list[tuple]]] = []

    class Recording(loop.Trader):
        def step(self, ts, predictions):
            decision = super().step(ts, predictions)
            orders = [
                (o.ticker, o.side, o.count, o.limit_cents, o.max_cost_cents) for o in decision
            ]
            decided.append((ts, orders))
            return decision

    monkeypatch.setattr(loop, "Trader", Recording)

    def backtest(predictions, book, markets):
        decided.clear()
        result = run(predictions=predictions, book=book, markets=markets, risk=LOOSE, strategy=ARB)
        return result, list(decided)

    predictions, book, markets = _ladder_history(seed=3)
    cutoff = D1
    full, full_decisions = backtest(predictions, book, markets)
    later_book = book["snapshot_ts"] > cutoff
    later = predictions["as_of"] > cutoff
    altered_book = book.copy()
    altered_book.loc[later_book, "price"] = 0.97 - altered_book.loc[later_book, "price"]
    altered_book.loc[later_book, "count"] = 1e6
    altered = predictions.copy()
    altered.loc[later, "structure"] = "bracket"
    variants = [
        (altered, altered_book),
        (predictions[~later], book[~later_book]),  # dropped
    ]
    early = [(ts, orders) for ts, orders in full_decisions if ts <= cutoff]
    assert sum(len(orders) for _, orders in early) >= 6  # pairs were bought before the cutoff
    for new_predictions, new_book in variants:
        result, decisions = backtest(new_predictions, new_book, markets)
        assert [(ts, o) for ts, o in decisions if ts <= cutoff] == early
        pd.testing.assert_frame_equal(
            result.fills[result.fills["ts"] <= cutoff], full.fills[full.fills["ts"] <= cutoff]
        )
        pd.testing.assert_frame_equal(
            result.equity[result.equity["ts"] <= cutoff], full.equity[full.equity["ts"] <= cutoff]
        )
        assert decisions != full_decisions  # the later data did matter later


def test_fills_quoted_by_recorded_books_are_counted_apart():
    # A's book rebuilt from a recorded stream, B's a fetched snapshot; read as the stage reads
    # it (categoricals), and a table built before the source column (none recorded)
    source = np.where(BOOK["ticker"] == "A", "recorded", "snapshot")
    for book in (BOOK.assign(source=source), BOOK.assign(source=pd.Categorical(source))):
        summary = run(book=book).summary
        assert (summary["n_fills_recorded_book"], summary["n_contracts_recorded_book"]) == (1, 119)
    summary = run().summary
    assert (summary["n_fills_recorded_book"], summary["n_contracts_recorded_book"]) == (0, 0)
