"""Feature table: alignment by as_of, no look-ahead, honest labels, vectorised group logic."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.data import tables
from kalshi_lab.errors import DataError
from kalshi_lab.features import TARGET_COLUMNS, build_features, feature_columns, output_columns
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.grouped import Groups, rolling_std
from kalshi_lab.params import FeatureParams

PARAMS = FeatureParams(n_lags=3, volatility_window=3, min_price=0.01)
DAY = pd.Timedelta(days=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def frame(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    """Rows typed exactly as the parquet stage writes them (missing keys are null)."""
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def market(
    ticker: str,
    *,
    event: str = "EV",
    result: str | None = "yes",
    opened: str = "2025-01-01",
    close: str = "2025-01-20",
    can_close_early: bool = False,
    latest: str | None = None,
    structure: str = "binary",
    strike_type: str | None = None,
    floor: float | None = None,
    cap: float | None = None,
) -> dict:
    return {
        "ticker": ticker,
        "event_ticker": event,
        "series_ticker": "SER",
        "result": result,
        "open_time": ts(opened),
        "close_time": ts(close),
        "settlement_ts": None,
        "can_close_early": can_close_early,
        "latest_expiration_time": None if latest is None else ts(latest),
        "structure": structure,
        "strike_type": strike_type,
        "floor_strike": floor,
        "cap_strike": cap,
    }


def candle(
    ticker: str,
    end: str,
    price: float | None,
    *,
    bid: float = 0.40,
    ask: float = 0.50,
    oi: float = 0.0,
    period: int = 1440,
) -> dict:
    return {
        "ticker": ticker,
        "period_minutes": period,
        "end_period_ts": ts(end),
        "price_mean": price,
        "yes_bid_close": bid,
        "yes_ask_close": ask,
        "open_interest": oi,
    }


def trade(
    ticker: str, created: str, *, count: float = 1.0, yes_price: float = 0.5, side: str = "yes"
) -> dict:
    return {
        "trade_id": f"{ticker}-{created}-{side}",
        "ticker": ticker,
        "created_time": ts(created),
        "count": count,
        "yes_price": yes_price,
        "no_price": round(1.0 - yes_price, 4),
        "taker_side": side,
    }


def daily(ticker: str, prices: list[float | None], start: str = "2025-01-02", **kw) -> list[dict]:
    """One daily candle per price, the first ending at ``start`` 00:00 UTC."""
    return [candle(ticker, str(ts(start) + i * DAY), p, **kw) for i, p in enumerate(prices)]


def build(
    markets: list[dict],
    candles: list[dict],
    trades: list[dict] = (),
    params: FeatureParams = PARAMS,
) -> pd.DataFrame:
    return build_features(
        frame(markets, tables.MARKETS),
        frame(candles, tables.CANDLES),
        frame(list(trades), tables.TRADES),
        params,
    )


def row(out: pd.DataFrame, ticker: str, as_of: str) -> pd.Series:
    hit = out[(out["ticker"] == ticker) & (out["as_of"] == ts(as_of))]
    assert len(hit) == 1, f"no single row for {ticker} at {as_of}"
    return hit.iloc[0]


def test_trade_at_2359_lands_with_the_candle_ending_next_midnight():
    out = build(
        [market("A")],
        daily("A", [0.50, 0.30, 0.40]),  # candles ending Jan 2, 3, 4 00:00
        [
            trade("A", "2025-01-02 23:59:00", count=10, yes_price=0.30),  # day of the Jan 3 candle
            trade("A", "2025-01-03 00:00:00", count=2, yes_price=0.30, side="no"),  # inclusive END
            trade("A", "2025-01-03 00:00:01", count=5, yes_price=0.40),  # next day
        ],
    )
    jan2, jan3, jan4 = (row(out, "A", d) for d in ("2025-01-02", "2025-01-03", "2025-01-04"))
    assert jan2["VOLUME_1"] == 0.0 and jan2["N_TRADES"] == 0.0
    assert jan3["price"] == 0.30  # the candle ending Jan 3 ...
    assert jan3["VOLUME_1"] == pytest.approx(3.0)  # ... and the trades of its day: 10 x 0.30
    assert jan3["NO_VOLUME"] == pytest.approx(1.4)  # 2 NO contracts at 0.70
    assert jan3["N_TRADES"] == 2.0
    assert jan3["FLOW_IMBALANCE"] == pytest.approx((3.0 - 1.4) / 4.4)
    assert jan3["RET_1"] == pytest.approx(0.30 / 0.50 - 1)
    assert jan4["VOLUME_1"] == pytest.approx(2.0) and jan4["VOLUME_2"] == pytest.approx(3.0)


def test_output_is_sorted_typed_and_has_the_documented_columns():
    out = build([market("B"), market("A")], daily("B", [0.5, 0.5]) + daily("A", [0.5, 0.6, 0.7]))
    assert list(out.columns) == output_columns(PARAMS)
    assert list(out["ticker"]) == ["A", "A", "A", "B", "B"]
    assert out.groupby("ticker")["as_of"].apply(lambda s: s.is_monotonic_increasing).all()
    assert str(out["as_of"].dt.tz) == "UTC"
    assert (out["as_of"] == out["as_of"].dt.normalize()).all()  # 00:00 UTC: a candle's END
    assert set(TARGET_COLUMNS.values()).isdisjoint(feature_columns(PARAMS))
    assert (out["market_prob"] == out["mid"]).all()


def test_lags_never_cross_markets_and_follow_the_documented_convention():
    out = build(
        [market("A"), market("B")],
        daily("A", [0.2, 0.4, 0.5, 0.6]) + daily("B", [0.9, 0.45]),
        [trade("A", "2025-01-03 12:00", count=4), trade("B", "2025-01-01 12:00", count=8)],
    )
    a = out[out["ticker"] == "A"].reset_index(drop=True)
    b = out[out["ticker"] == "B"].reset_index(drop=True)
    # RET_1 is the return into the day ending at as_of, RET_k the one k - 1 days earlier.
    assert a.loc[3, "RET_1"] == pytest.approx(0.6 / 0.5 - 1)
    assert a.loc[3, "RET_2"] == pytest.approx(0.5 / 0.4 - 1)
    assert a.loc[3, "RET_3"] == pytest.approx(0.4 / 0.2 - 1)
    assert a.loc[3, "VOLUME_2"] == pytest.approx(2.0)
    # B's first rows have no history: NaN, never A's last values.
    assert math.isnan(b.loc[0, "RET_1"]) and math.isnan(b.loc[0, "VOLUME_2"])
    assert b.loc[0, "VOLUME_1"] == pytest.approx(4.0)
    assert math.isnan(b.loc[1, "RET_2"]) and math.isnan(b.loc[1, "VOLUME_3"])
    assert b.loc[1, "RET_1"] == pytest.approx(0.45 / 0.9 - 1)


def test_no_trade_days_are_flat_flagged_and_have_no_direction_label():
    out = build([market("A")], daily("A", [0.50, None, None, 0.60, 0.55]))
    r = out.set_index(out["as_of"].dt.strftime("%m-%d"))
    assert list(r["price"]) == [0.50, 0.50, 0.50, 0.60, 0.55]
    assert r.loc["01-03", "RET_1"] == 0.0 and r.loc["01-04", "RET_1"] == 0.0
    assert list(r["NO_TRADE"]) == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert list(r["DAYS_SINCE_TRADE"]) == [0.0, 1.0, 2.0, 0.0, 0.0]
    direction = r[TARGET_COLUMNS["direction"]]
    assert math.isnan(direction["01-02"]) and math.isnan(direction["01-03"])  # next day no trade
    assert direction["01-04"] == 1.0  # 0.60 against the carried 0.50
    assert direction["01-05"] == 0.0  # 0.55 < 0.60
    assert math.isnan(direction["01-06"])  # the market's last row


def test_rows_stop_before_close_and_the_partial_close_day_is_only_a_target():
    out = build(
        [market("A", close="2025-01-04 12:00")],
        daily("A", [0.5, 0.6, 0.7, 0.8, None]),  # Jan 5 contains the close; Jan 6 is after it
    )
    assert [d.day for d in out["as_of"]] == [2, 3, 4]
    last = row(out, "A", "2025-01-04")
    assert last[TARGET_COLUMNS["direction"]] == 1.0  # 0.8 traded on Jan 4 before the 12:00 close
    assert last["DAYS_TO_CLOSE"] == 0.5
    # Without a trade on the close day, there is no label: no settlement 0/1 is appended.
    quiet = build([market("A", close="2025-01-04 12:00")], daily("A", [0.5, 0.6, 0.7, None]))
    assert math.isnan(row(quiet, "A", "2025-01-04")[TARGET_COLUMNS["direction"]])


def test_settlement_target_comes_from_the_result():
    out = build(
        [
            market("Y", result="yes"),
            market("N", result="no"),
            market("U", result=None),
            market("V", result="void"),
        ],
        [c for t in "YNUV" for c in daily(t, [0.5, 0.5])],
    )
    target = out.groupby("ticker")[TARGET_COLUMNS["settlement"]].first()
    assert target["Y"] == 1.0 and target["N"] == 0.0
    assert math.isnan(target["U"]) and math.isnan(target["V"])


def test_bracket_features_sum_over_the_strikes_open_at_as_of():
    brackets = {"event": "E", "structure": "bracket"}
    out = build(
        [
            market("E-LOW", **brackets, strike_type="less", cap=1.0),
            market("E-MID", **brackets, strike_type="between", floor=1.0, cap=2.0),
            market(
                "E-HIGH", **brackets, strike_type="greater", floor=2.0, close="2025-01-02 06:00"
            ),
            market("X", event="OTHER"),
        ],
        daily("E-LOW", [0.3, 0.3], bid=0.2, ask=0.4)
        + daily("E-MID", [0.4, 0.4], bid=0.4, ask=0.5)
        + daily("E-HIGH", [0.3, 0.3], bid=0.3, ask=0.3)
        + daily("X", [0.9, 0.9], bid=0.8, ask=0.9),
    )
    jan2 = out[out["as_of"] == ts("2025-01-02")].set_index("ticker")
    assert jan2.loc["E-LOW", "BRACKET_OVERROUND"] == pytest.approx(0.3 + 0.45 + 0.3 - 1)
    assert jan2.loc["E-MID", "EVENT_N_OPEN"] == 3.0
    assert jan2.loc["E-MID", "BRACKET_SHARE"] == pytest.approx(0.45 / 1.05)
    # a binary has no bracket to sum over, and no ladder: only its count of open strikes
    assert jan2.loc["X", "EVENT_N_OPEN"] == 1.0
    assert jan2.loc["X", ["BRACKET_OVERROUND", "BRACKET_SHARE", "LADDER_Z"]].isna().all()
    assert jan2.loc["E-MID", ["LADDER_Z", "LADDER_ARB_GAP", "ladder_mean"]].isna().all()
    assert jan2.loc["E-MID", "structure"] == "bracket"
    assert jan2.loc["E-MID", "strike_type"] == "between"
    assert jan2.loc["E-MID", ["floor_strike", "cap_strike"]].tolist() == [1.0, 2.0]
    jan3 = out[out["as_of"] == ts("2025-01-03")].set_index("ticker")
    assert "E-HIGH" not in jan3.index  # closed: no row, and not in its siblings' sums
    assert jan3.loc["E-LOW", "BRACKET_OVERROUND"] == pytest.approx(0.75 - 1)
    assert jan3.loc["E-LOW", "EVENT_N_OPEN"] == 2.0


#: a ladder on one day: (strike, bid, ask) with mids 0.8, 0.5, 0.2 "above" each strike
LADDER_QUOTES = ((4.0, 0.79, 0.81), (4.1, 0.49, 0.51), (4.2, 0.19, 0.21))
# its implied distribution by hand: buckets below 4.0 (0.2), 4.0-4.1 (0.3), 4.1-4.2 (0.3) and
# above 4.2 (0.2) at 3.95, 4.05, 4.15, 4.25 (the tails one mean spacing, 0.1, wide), each
# uniform over its 0.1: mean 4.1, variance 0.4 x 0.15^2 + 0.6 x 0.05^2 + 0.1^2 / 12
LADDER_MEAN = 0.2 * 3.95 + 0.3 * 4.05 + 0.3 * 4.15 + 0.2 * 4.25
LADDER_SD = math.sqrt(
    sum(
        q * ((v - LADDER_MEAN) ** 2 + 0.1**2 / 12)
        for q, v in ((0.2, 3.95), (0.3, 4.05), (0.3, 4.15), (0.2, 4.25))
    )
)


def ladder(kind: str, quotes=LADDER_QUOTES, **kw) -> tuple[list[dict], list[dict]]:
    """A ladder of three strikes quoted on 2025-01-02; ``kind`` greater or less (then each
    market's YES is the complement: P(below x) = 1 - P(above x))."""
    markets, candles = [], []
    for x, bid, ask in quotes:
        strikes = {"floor": x} if kind == "greater" else {"cap": x}
        markets.append(
            market(f"L-{x}", event="L", structure="ladder", strike_type=kind, **strikes, **kw)
        )
        if kind != "greater":
            bid, ask = round(1 - ask, 2), round(1 - bid, 2)
        candles.append(candle(f"L-{x}", "2025-01-02", None, bid=bid, ask=ask))
    return markets, candles


def test_ladder_features_are_the_implied_distribution_by_hand():
    out = build(*ladder("greater")).set_index("ticker")
    assert out["ladder_mean"].tolist() == pytest.approx([LADDER_MEAN] * 3)
    assert out["ladder_sd"].tolist() == pytest.approx([LADDER_SD] * 3)
    # the mean lies above 4.0 (toward its YES), at 4.1, below 4.2
    z = (LADDER_MEAN - np.array([4.0, 4.1, 4.2])) / LADDER_SD
    assert out["LADDER_Z"].tolist() == pytest.approx(z.tolist())
    assert out["LADDER_SD_STEPS"].tolist() == pytest.approx([LADDER_SD / 0.1] * 3)
    # no sum of mids across cumulative strikes: no bracket features on a ladder
    assert out[["BRACKET_OVERROUND", "BRACKET_SHARE"]].isna().all().all()
    assert out["EVENT_N_OPEN"].tolist() == [3.0] * 3
    # monotone: every higher strike's bid is below the lower one's ask (0.49 - 0.81, 0.19 - 0.51)
    assert out["LADDER_ARB_GAP"].tolist() == pytest.approx([-0.32, -0.32, -0.32])
    assert out["LADDER_N_CROSSED"].tolist() == [0.0] * 3


def test_a_below_ladder_means_the_same_distribution_seen_from_its_yes_side():
    above = build(*ladder("greater")).set_index("ticker")
    below = build(*ladder("less")).set_index("ticker")
    for name in ("ladder_mean", "ladder_sd", "LADDER_SD_STEPS", "LADDER_ARB_GAP"):
        assert below[name].tolist() == pytest.approx(above[name].tolist()), name
    # YES on "below 4.0" is the unlikely side: the mean lies on its NO side
    assert below["LADDER_Z"].tolist() == pytest.approx((-above["LADDER_Z"]).tolist())


def test_a_crossed_ladder_shows_its_executable_gap_and_a_clipped_distribution():
    crossed = ((4.0, 0.79, 0.81), (4.1, 0.49, 0.52), (4.2, 0.55, 0.57))
    out = build(*ladder("greater", crossed)).set_index("ticker")
    # 4.2's bid 0.55 over 4.1's ask 0.52: buy "above 4.1", sell "above 4.2", 3 cents before fees
    assert out.loc["L-4.0", "LADDER_ARB_GAP"] == pytest.approx(0.49 - 0.81)
    assert out.loc["L-4.1", "LADDER_ARB_GAP"] == pytest.approx(0.03)
    assert out.loc["L-4.2", "LADDER_ARB_GAP"] == pytest.approx(0.03)
    assert out["LADDER_N_CROSSED"].tolist() == [1.0] * 3
    # the negative 4.1-4.2 bucket counts 0; mass 0.2 + 0.295 + 0 + 0.56, renormalised
    q = {3.95: 0.2, 4.05: 0.8 - 0.505, 4.25: 0.56}
    mean = sum(v * w for v, w in q.items()) / sum(q.values())
    assert out["ladder_mean"].tolist() == pytest.approx([mean] * 3)


def test_ladder_features_need_two_quoted_strikes():
    markets, candles = ladder("greater")
    # the two higher strikes list (and are first quoted) a day later
    later = [c | {"end_period_ts": ts("2025-01-03")} for c in candles[1:]]
    out = build(markets, [candles[0], *later, candles[0] | {"end_period_ts": ts("2025-01-03")}])
    first = row(out, "L-4.0", "2025-01-02")
    assert first["EVENT_N_OPEN"] == 1.0
    ladder_columns = ["LADDER_Z", "LADDER_SD_STEPS", "LADDER_ARB_GAP", "ladder_mean"]
    assert first[ladder_columns].astype(float).isna().all()
    assert not np.isnan(row(out, "L-4.0", "2025-01-03")["LADDER_Z"])


def _random_tables(seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """A ladder A, B, C (above 1, 2, 3) of 12 days, randomly priced: sometimes crossed."""
    rng = np.random.default_rng(seed)
    markets = [
        market(t, event="E", structure="ladder", strike_type="greater", floor=float(k))
        for k, t in enumerate("ABC", start=1)
    ]
    candles, trades = [], []
    for t in ("A", "B", "C"):
        for i in range(12):
            price = None if rng.random() < 0.3 else round(float(rng.uniform(0.05, 0.95)), 2)
            bid = round(float(rng.uniform(0.05, 0.9)), 2)
            candles.append(
                candle(
                    t,
                    str(ts("2025-01-02") + i * DAY),
                    price,
                    bid=bid,
                    ask=bid + 0.03,
                    oi=float(rng.integers(0, 100)),
                )
            )
            for _ in range(rng.integers(0, 4)):
                created = (
                    ts("2025-01-01") + i * DAY + pd.Timedelta(seconds=int(rng.integers(1, 86_400)))
                )
                trades.append(
                    trade(
                        t,
                        str(created),
                        count=float(rng.integers(1, 20)),
                        yes_price=round(float(rng.uniform(0.05, 0.95)), 2),
                        side=str(rng.choice(["yes", "no"])),
                    )
                )
    return markets, candles, trades


def test_no_feature_uses_a_later_candle_or_trade():
    markets, candles, trades = _random_tables(seed=3)
    cutoff = ts("2025-01-07")
    rng = np.random.default_rng(4)
    later_candles = [
        {
            **c,
            "price_mean": float(rng.uniform(0.01, 0.99)),
            "yes_bid_close": 0.01,
            "yes_ask_close": 0.99,
            "open_interest": 1e6,
        }
        for c in candles
        if c["end_period_ts"] > cutoff
    ]
    later_trades = [
        {**t, "count": 1e4, "taker_side": "no"} for t in trades if t["created_time"] > cutoff
    ] + [trade("A", "2025-01-07 00:00:01", count=50)]
    perturbed = build(
        markets,
        [c for c in candles if c["end_period_ts"] <= cutoff] + later_candles[:-5],
        [t for t in trades if t["created_time"] <= cutoff] + later_trades,
    )
    original = build(markets, candles, trades)
    known = [c for c in output_columns(PARAMS) if c not in TARGET_COLUMNS.values()]
    before = original[original["as_of"] <= cutoff][known].reset_index(drop=True)
    after = perturbed[perturbed["as_of"] <= cutoff][known].reset_index(drop=True)
    assert len(before) == 3 * 6
    assert before["LADDER_Z"].notna().all() and (before["LADDER_N_CROSSED"] > 0).any()
    pd.testing.assert_frame_equal(before, after)
    # ... while the perturbation does change the later rows and the targets.
    assert not original[TARGET_COLUMNS["direction"]].equals(perturbed[TARGET_COLUMNS["direction"]])


def test_days_without_a_candle_get_a_row_with_carried_quotes():
    out = build(
        [market("A")],
        [
            candle("A", "2025-01-02", 0.5, bid=0.45, ask=0.55, oi=10),
            candle("A", "2025-01-05", 0.6, bid=0.55, ask=0.65, oi=25),
            candle("A", "2025-01-05 01:00", 0.9, period=60),
        ],  # hourly: ignored
    )
    assert [d.day for d in out["as_of"]] == [2, 3, 4, 5]
    gap = row(out, "A", "2025-01-04")
    assert gap["yes_bid"] == 0.45 and gap["yes_ask"] == 0.55 and gap["price"] == 0.5
    assert gap["NO_TRADE"] == 1.0 and gap["RET_1"] == 0.0 and gap["OI_CHANGE"] == 0.0
    assert row(out, "A", "2025-01-05")["OI_CHANGE"] == 15.0


def test_snapshot_features_have_their_documented_values():
    out = build(
        [market("A", opened="2024-12-31 12:00", close="2025-01-10")],
        daily("A", [0.004, 0.008, 0.5], bid=0.20, ask=0.30),
    )
    first, second = row(out, "A", "2025-01-02"), row(out, "A", "2025-01-03")
    assert first["TS"] == 1.5 and first["DAYS_TO_CLOSE"] == 8.0
    assert second["RET_1"] == 0.0  # both below min_price 0.01: a tick, not a 100 % return
    assert first["SPREAD"] == pytest.approx(0.10) and first["MID"] == pytest.approx(0.25)
    assert first["MID_DIST"] == pytest.approx(0.25)
    assert first["LOGIT_MID"] == pytest.approx(math.log(0.25 / 0.75))


def test_volatility_equals_pandas_rolling_std_per_market():
    rng = np.random.default_rng(0)
    sizes = np.array([5, 1, 9, 3])
    x = rng.normal(size=sizes.sum())
    x[[0, 6, 7]] = np.nan
    groups = Groups.from_sizes(sizes)
    ids = np.repeat(np.arange(len(sizes)), sizes)
    expected = pd.Series(x).groupby(ids).rolling(4, min_periods=2).std().to_numpy()
    np.testing.assert_allclose(rolling_std(x, 4, groups), expected, rtol=1e-12)


def test_feature_columns_grow_with_n_lags():
    short = feature_columns(FeatureParams(n_lags=2, volatility_window=3, min_price=0.01))
    long = feature_columns(FeatureParams(n_lags=5, volatility_window=3, min_price=0.01))
    assert len(long) - len(short) == 6
    assert long[:2] == ["RET_1", "RET_2"] and "VOLUME_5" in long and "TS" in long
    out = build(
        [market("A")],
        daily("A", [0.5, 0.6]),
        params=FeatureParams(n_lags=5, volatility_window=3, min_price=0.01),
    )
    assert set(long) <= set(out.columns)


def test_bad_inputs_are_data_errors():
    with pytest.raises(DataError, match="share a"):
        build([market("A")], [candle("A", "2025-01-02", 0.5), candle("A", "2025-01-01 18:00", 0.5)])
    with pytest.raises(DataError, match="lacks columns"):
        build_features(
            frame([market("A")], tables.MARKETS),
            pd.DataFrame({"ticker": []}),
            frame([], tables.TRADES),
            PARAMS,
        )


def test_empty_inputs_give_an_empty_table_with_all_columns():
    out = build([market("A")], [])
    assert out.empty and list(out.columns) == output_columns(PARAMS)


def test_an_early_close_does_not_show_in_the_rows_before_it():
    """Kalshi moves close_time to the early close: no feature row before it may change."""
    early = "2025-01-05 12:00"
    markets, candles, trades = _random_tables(seed=8)  # A, B, C of event E, 12 days

    def with_close_of_a(close: str) -> pd.DataFrame:
        a = market("A", event="E", close=close, can_close_early=True, latest="2025-01-25")
        return build([a, *markets[1:]], candles, trades)

    moved, scheduled = with_close_of_a(early), with_close_of_a("2025-01-20")
    known = [*KEY_COLUMNS, *feature_columns(PARAMS)]
    before = scheduled[scheduled["as_of"] < ts(early)][known].reset_index(drop=True)
    assert set(before["ticker"]) == {"A", "B", "C"}
    pd.testing.assert_frame_equal(
        moved[moved["as_of"] < ts(early)][known].reset_index(drop=True), before
    )
    assert row(moved, "A", "2025-01-02")["DAYS_TO_CLOSE"] == 23.0  # to the latest expiration
    assert (moved["as_of"] < moved["close_time"]).all()  # the moved close still ends the rows
    assert moved["as_of"][moved["ticker"] == "A"].max() == ts("2025-01-05")


def test_early_closers_without_a_latest_expiration_fall_back_to_close_time_with_a_warning(caplog):
    markets = [
        market("A", close="2025-01-10", can_close_early=True),
        market("B", close="2025-01-10", can_close_early=True, latest="2025-01-12"),
        market("C", close="2025-01-10", latest="2025-01-12"),  # cannot close early: close_time
    ]
    with caplog.at_level(logging.WARNING, logger="kalshi_lab.features"):
        out = build(markets, [c for t in "ABC" for c in daily(t, [0.5])])
    days = out.set_index("ticker")["DAYS_TO_CLOSE"]
    assert days.to_dict() == {"A": 8.0, "B": 10.0, "C": 8.0}
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 of 2 markets that can close early lack latest_expiration_time" in warning
