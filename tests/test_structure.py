"""Event structure from the API's fields: ladders, brackets, binaries, other.

Markets are written as Kalshi sends them (current, legacy and ``/historical/markets`` shapes,
and documents drawn from the OpenAPI spec's ``Market`` schema) with real tickers' conventions:
``KXU3-25JUN-T4.1`` (a threshold of a ladder), ``KXHIGHNY-25JUN01-B80.5`` (a range of a
bracket set, with ``T`` tails open at either end).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.compose_params import compose
from kalshi_lab.data import structure
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.features import build_features
from kalshi_lab.params import FeatureParams, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from openapi_shapes import strategy

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
PARAMS = FeatureParams(n_lags=3, volatility_window=3, min_price=0.01)
#: what these tests leave out of their raw data (the parquet stage refuses what is not allowed)
NO_MARKET_DATA = ("candlesticks", "trades", "orderbooks")
SERIES = ("KXU3", "KXHIGHNY", "KXFED", "KXRECSSN")
# the unemployment ladder: "above X %", cumulative, not exclusive
U3 = "KXU3-25JUN"
U3_STRIKES = (3.9, 4.0, 4.1, 4.2, 4.3)
# the New York high: exclusive ranges with open tails (integer degrees)
NY = "KXHIGHNY-25JUN01"
NY_MARKETS = (
    ("T78", "less", None, 78.0),
    ("B78.5", "between", 78.0, 79.0),
    ("B80.5", "between", 80.0, 81.0),
    ("T81", "greater", 81.0, None),
)


def market(ticker: str, event: str, strike_type=None, floor=None, cap=None, **fields) -> dict:
    """A Market document in the current format (only the fields the parser reads)."""
    doc = {
        "ticker": ticker,
        "event_ticker": event,
        "market_type": "binary",
        "yes_sub_title": ticker,
        "status": "finalized",
        "result": "no",
        "open_time": "2025-05-01T14:00:00Z",
        "close_time": "2025-06-06T12:25:00Z",
        "settlement_ts": "2025-06-06T14:00:00Z",
        "last_price_dollars": "0.4200",
        "volume_fp": "10.00",
        "open_interest_fp": "5.00",
        "price_level_structure": "linear_cent",
        **fields,
    }
    if strike_type is not None:
        doc["strike_type"] = strike_type
    if floor is not None:
        doc["floor_strike"] = floor
    if cap is not None:
        doc["cap_strike"] = cap
    return doc


def legacy(doc: dict) -> dict:
    """The same market as recorded before 2026-03-12: integer cents and counts."""
    out = {k: v for k, v in doc.items() if not k.endswith(("_dollars", "_fp"))}
    out.update(last_price=42, volume=10, open_interest=5)
    return out


def u3_ladder() -> list[dict]:
    return [
        market(f"{U3}-T{x:g}", U3, "greater", floor=x, yes_sub_title=f"Above {x:g}%")
        for x in U3_STRIKES
    ]


def ny_brackets() -> list[dict]:
    return [market(f"{NY}-{s}", NY, kind, lo, hi) for s, kind, lo, hi in NY_MARKETS]


def write(raw_dir, events: dict[str, bool], pages: list[list[dict]]) -> pd.DataFrame:
    """Record ``events`` (ticker -> mutually_exclusive) and market pages; parse the markets."""
    with RawWriter(raw_dir, may_be_empty=NO_MARKET_DATA) as w:
        for s in SERIES:
            w.write("series", f"/series/{s}", {}, T0, {"series": {"ticker": s}})
        for event, exclusive in events.items():
            doc = {"event_ticker": event, "series_ticker": event.split("-")[0]}
            doc["mutually_exclusive"] = exclusive
            w.write("events", f"/events/{event}", {}, T0, {"event": doc, "markets": []})
        for k, page in enumerate(pages):
            path = "/historical/markets" if k % 2 else "/markets"
            w.write("markets", path, {"limit": 1000}, T0, {"markets": page, "cursor": ""})
    table = parse_raw(raw_dir)["markets"].to_pandas()
    return table.set_index("ticker")


def test_a_ladder_brackets_and_binaries_in_all_formats(tmp_path):
    fed = "KXFED-25JUN"
    events = {U3: False, NY: True, "KXRECSSN-25": False, fed: True}
    pages = [
        u3_ladder()[:3],  # the ladder split over a live and a historical page
        [legacy(m) for m in u3_ladder()[3:]] + ny_brackets(),
        [market("KXRECSSN-25", "KXRECSSN-25", "custom", custom_strike={"Recession": "2025"})],
        [
            market(f"{fed}-H0", fed, "custom", custom_strike={"Decision": "Hold"}),
            market(f"{fed}-C25", fed, "custom", custom_strike={"Decision": "Cut 25"}),
        ],
    ]
    got = write(tmp_path, events, pages)
    assert got.loc[[f"{U3}-T{x:g}" for x in U3_STRIKES], "structure"].eq("ladder").all()
    assert got.loc[f"{U3}-T4.1", "strike_type"] == "greater"
    assert got.loc[f"{U3}-T4.1", "floor_strike"] == 4.1
    assert got.loc[[f"{NY}-{s[0]}" for s in NY_MARKETS], "structure"].eq("bracket").all()
    assert got.loc["KXRECSSN-25", "structure"] == "binary"  # one market: a yes/no question
    # exclusive, but custom strikes: no region of one underlying to reason on
    assert got.loc[[f"{fed}-H0", f"{fed}-C25"], "structure"].eq("other").all()


def frame(docs: list[dict], exclusive: bool, **extra) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "event_ticker": [d["event_ticker"] for d in docs],
            "market_type": [d["market_type"] for d in docs],
            "strike_type": [d.get("strike_type") for d in docs],
            "floor_strike": [d.get("floor_strike", np.nan) for d in docs],
            "cap_strike": [d.get("cap_strike", np.nan) for d in docs],
            "yes_sub_title": [d.get("yes_sub_title") for d in docs],
        }
    )
    rows["floor_strike"] = rows["floor_strike"].astype(float)
    rows["cap_strike"] = rows["cap_strike"].astype(float)
    rows["multivariate"] = False
    rows["mutually_exclusive"] = exclusive
    for name, value in extra.items():
        rows[name] = value
    return rows


@pytest.mark.parametrize(
    ("docs", "exclusive", "expected"),
    [
        pytest.param(u3_ladder(), False, "ladder", id="above-ladder"),
        pytest.param(
            [market(f"E-B{x:g}", "E", "less_or_equal", cap=x) for x in (1, 2, 3)],
            False,
            "ladder",
            id="below-ladder",
        ),
        pytest.param(
            [
                market("E-T1", "E", "greater", floor=1),
                market("E-T1b", "E", "greater_or_equal", floor=1),
            ],
            False,
            "other",
            id="one-strike-twice",
        ),
        pytest.param(ny_brackets(), True, "bracket", id="brackets-with-tails"),
        pytest.param(
            [market("E-L5", "E", "less", cap=5), market("E-T5", "E", "greater_or_equal", floor=5)],
            True,
            "bracket",
            id="two-complementary-tails",
        ),
        pytest.param(
            [market("E-B1", "E", "between", 1, 3), market("E-B2", "E", "between", 2, 4)],
            True,
            "other",
            id="overlapping-ranges",
        ),
        pytest.param(
            [market("E-B1", "E", "between", 1, 2), market("E-B2", "E", "between", 2, 3)],
            True,
            "other",
            id="ranges-sharing-an-included-end",
        ),
        pytest.param(
            [market("E-T1", "E", "greater", floor=1), market("E-B2", "E", "between", 2, 3)],
            False,
            "other",
            id="a-threshold-and-a-range-inside-it",
        ),
        pytest.param(
            [market("E-T1", "E", "greater"), market("E-T2", "E", "greater", floor=2)],
            False,
            "other",
            id="a-threshold-without-its-strike",
        ),
        pytest.param(
            [
                market("B-T100000", "B", "greater", 99999.99, yes_sub_title="$100,000 or above"),
                market("B-T102500", "B", "greater", 102499.99, yes_sub_title="$102,500 or above"),
            ],
            False,
            "ladder",
            id="crypto-ladder",
        ),
        pytest.param(
            [
                market("S-KC8", "S", "greater", 7.5, yes_sub_title="Kansas City wins by over 7.5"),
                market("S-DEN4", "S", "greater", 3.5, yes_sub_title="Denver wins by over 3.5"),
            ],
            False,
            "other",
            id="spread-thresholds-on-two-margins",
        ),
        pytest.param(
            [market(f"E-T{x}", "E", "greater", float(x), yes_sub_title=None) for x in (1, 2)],
            False,
            "ladder",
            id="ladder-without-sub-titles",
        ),
        pytest.param([market("E-1", "E")], False, "binary", id="binary-without-strike"),
        pytest.param([market("E-T9", "E", "greater", floor=9)], False, "binary", id="lone-strike"),
        pytest.param(
            [market("E-S", "E", "functional", market_type="scalar")], False, "other", id="scalar"
        ),
        pytest.param([market("E-X", "E", "structured")], False, "other", id="structured"),
    ],
)
def test_classification(docs, exclusive, expected):
    assert list(structure.classify(frame(docs, exclusive))) == [expected] * len(docs)


def test_a_multivariate_market_makes_its_event_other():
    rows = frame(u3_ladder(), False)
    rows.loc[2, "multivariate"] = True
    assert set(structure.classify(rows)) == {"other"}


def test_a_combo_market_is_read_as_multivariate(tmp_path):
    combo = market("KXMVE-1", "KXRECSSN-25", mve_collection_ticker="KXMVESPORTS")
    got = write(tmp_path, {"KXRECSSN-25": False}, [[combo]])
    assert got.loc["KXMVE-1", "structure"] == "other"


def test_the_strikes_decide_and_a_disagreeing_flag_is_logged(caplog):
    rows = pd.concat([frame(u3_ladder(), True), frame(ny_brackets(), False)], ignore_index=True)
    with caplog.at_level(logging.INFO, logger="kalshi_lab.data.structure"):
        got = structure.classify(rows)
    assert list(got) == ["ladder"] * 5 + ["bracket"] * 4
    text = caplog.text
    assert "1 ladder (5 markets), 1 bracket (4 markets), 0 binary (0 markets)" in text
    assert "1 ladders flagged mutually_exclusive" in text
    assert "1 bracket sets not flagged mutually_exclusive" in text


def test_yes_regions_of_a_ladder_are_nested_and_brackets_exclusive():
    values = np.linspace(3.5, 4.7, 121)
    rows = frame(u3_ladder(), False)
    ladder = structure.yes_region(rows["strike_type"], rows["floor_strike"], rows["cap_strike"])
    pays = ladder.pays(values)
    # several strikes pay together, and a higher strike pays only where every lower one does
    assert (pays.sum(axis=0) > 1).any()
    assert (pays[1:] <= pays[:-1]).all()
    assert pays[2, values == 4.1].tolist() == [False]  # "greater" excludes the strike itself
    rows = frame(ny_brackets(), True)
    brackets = structure.yes_region(rows["strike_type"], rows["floor_strike"], rows["cap_strike"])
    degrees = np.arange(60, 100, dtype=float)
    assert brackets.pays(degrees).sum(axis=0).tolist() == [1] * len(degrees)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(strategy("Market"), min_size=1, max_size=4),
    st.booleans(),
    st.sampled_from(["/markets", "/historical/markets"]),
)
def test_spec_shaped_markets_keep_their_strikes_and_get_a_structure(
    tmp_path_factory, docs, exclusive, path
):
    raw = tmp_path_factory.mktemp("raw")
    for k, doc in enumerate(docs):  # one event, distinct tickers; times as the parser needs
        doc.update(ticker=f"E-{k}", event_ticker="E", close_time=doc["open_time"])
    with RawWriter(raw, may_be_empty=NO_MARKET_DATA) as w:
        w.write("series", "/series/KXU3", {}, T0, {"series": {"ticker": "KXU3"}})
        event = {"event_ticker": "E", "series_ticker": "KXU3", "mutually_exclusive": exclusive}
        w.write("events", "/events/E", {}, T0, {"event": event, "markets": []})
        w.write("markets", path, {}, T0, {"markets": docs, "cursor": ""})
    got = parse_raw(raw)["markets"].to_pandas().set_index("ticker")
    for k, doc in enumerate(docs):
        row = got.loc[f"E-{k}"]
        assert row["strike_type"] == (doc.get("strike_type") or None)
        for name in ("floor_strike", "cap_strike"):
            assert (row[name] == doc[name]) if doc.get(name) is not None else np.isnan(row[name])
    assert got["structure"].nunique() == 1  # one event, one structure
    kinds = [d.get("strike_type") for d in docs]
    combo = any(d.get("mve_collection_ticker") or d.get("mve_selected_legs") for d in docs)
    scalar = any(d["market_type"] != "binary" for d in docs)
    if combo or scalar or {"functional", "structured"} & set(kinds):
        assert got["structure"].iat[0] == "other"
    elif len(docs) == 1:
        assert got["structure"].iat[0] == "binary"


# --- event features mean the same on real shapes and on the simulator --------------------


def candle_doc(end: int, bid: int, ask: int, form: str) -> dict:
    """A daily candle as Kalshi sends it: ``current`` (``*_dollars`` strings), ``legacy``
    (integer cents, before 2026-03-12) or ``historical`` (unsuffixed dollar strings)."""

    def side(cents: int) -> dict:
        if form == "legacy":
            return dict.fromkeys(("open", "low", "high", "close"), cents)
        text = f"{cents / 100:.4f}"
        suffix = "_dollars" if form == "current" else ""
        return {f"{k}{suffix}": text for k in ("open", "low", "high", "close")}

    volume = {"legacy": 3, "current": "3.00", "historical": "3.00"}[form]
    count = "volume_fp" if form == "current" else "volume"
    interest = "open_interest_fp" if form == "current" else "open_interest"
    return {
        "end_period_ts": end,
        "yes_bid": side(bid),
        "yes_ask": side(ask),
        "price": {},
        count: volume,
        interest: volume,
    }


def check_event_features_mean_what_they_say(features: pd.DataFrame) -> dict[str, int]:
    """The invariants that give the event features their meaning, on any data; returns how
    many event-days of each structure it checked."""
    quoted = features[features["mid"].notna()]
    checked = {}
    for (event, _), day in quoted.groupby(["event_ticker", "as_of"]):
        structure_ = day["structure"].iat[0]
        assert (day["EVENT_N_OPEN"] >= len(day)).all(), event
        if structure_ == "ladder" and len(day) >= 2:
            up = day["strike_type"].isin(structure.ABOVE)
            strike = np.where(up, day["floor_strike"], day["cap_strike"])
            # the implied mean lies further on YES's side the easier YES is: a lower "above"
            # strike, a higher "below" strike
            toward_yes = np.where(up, -strike, strike)
            order = np.argsort(toward_yes)
            assert np.all(np.diff(day["LADDER_Z"].to_numpy()[order]) > 0), event
            spacing = np.ptp(strike) / (len(day) - 1)
            mean = day["ladder_mean"].iat[0]
            assert strike.min() - spacing <= mean <= strike.max() + spacing, event
            assert day[["BRACKET_OVERROUND", "BRACKET_SHARE"]].isna().all().all(), event
        elif structure_ == "bracket" and len(day) >= 2:
            assert day["BRACKET_SHARE"].sum() == pytest.approx(1.0), event
            assert day["BRACKET_OVERROUND"].iat[0] == pytest.approx(day["mid"].sum() - 1), event
            assert day["LADDER_Z"].isna().all(), event
        else:
            assert day[["BRACKET_SHARE", "LADDER_Z"]].isna().all().all(), event
        checked[structure_] = checked.get(structure_, 0) + 1
    return checked


def test_event_features_of_real_shapes(tmp_path):
    """A U3 ladder and an NYC bracket set, candles in the API's three forms, through parse
    and features: the features mean what they say, and a real crossing is seen."""
    day0 = int(dt.datetime(2025, 6, 2, tzinfo=dt.UTC).timestamp())
    # "above" mids 0.80, 0.62, 0.45, 0.30, 0.12; on day 2, T4.2's bid crosses T4.1's ask
    quotes = {3.9: (79, 81), 4.0: (61, 63), 4.1: (44, 46), 4.2: (29, 31), 4.3: (11, 13)}
    ny = {"T78": (9, 11), "B78.5": (30, 33), "B80.5": (44, 47), "T81": (20, 22)}
    forms = ("current", "legacy", "historical")
    with RawWriter(tmp_path, may_be_empty=("trades", "orderbooks")) as w:
        for s in ("KXU3", "KXHIGHNY"):
            w.write("series", f"/series/{s}", {}, T0, {"series": {"ticker": s}})
        for event, exclusive in ((U3, False), (NY, True)):
            doc = {"event_ticker": event, "series_ticker": event.split("-")[0]}
            doc["mutually_exclusive"] = exclusive
            w.write("events", f"/events/{event}", {}, T0, {"event": doc, "markets": []})
        page = {"markets": u3_ladder() + ny_brackets(), "cursor": ""}
        w.write("markets", "/markets", {}, T0, page)
        tickers = {f"{U3}-T{x:g}": q for x, q in quotes.items()}
        tickers |= {f"{NY}-{s}": q for s, q in ny.items()}
        for k, (ticker, (bid, ask)) in enumerate(tickers.items()):
            form = forms[k % 3]
            candles = [candle_doc(day0 + d * 86400, bid, ask, form) for d in range(2)]
            if ticker == f"{U3}-T4.2":
                candles.append(candle_doc(day0 + 2 * 86400, 47, 49, form))
            else:
                candles.append(candle_doc(day0 + 2 * 86400, bid, ask, form))
            path = f"/series/{ticker.split('-')[0]}/markets/{ticker}/candlesticks"
            if form == "historical":
                path = f"/historical/markets/{ticker}/candlesticks"
            body = {"ticker": ticker, "candlesticks": candles}
            w.write("candlesticks", path, {"period_interval": 1440}, T0, body)
    tables = {k: v.to_pandas() for k, v in parse_raw(tmp_path).items()}
    features = build_features(tables["markets"], tables["candles"], tables["trades"], PARAMS)
    assert check_event_features_mean_what_they_say(features) == {"ladder": 3, "bracket": 3}
    crossed = features[features["as_of"] == pd.Timestamp(day0 + 2 * 86400, unit="s", tz="UTC")]
    crossed = crossed.set_index("ticker")
    assert crossed.loc[f"{U3}-T4.2", "LADDER_ARB_GAP"] == pytest.approx(0.47 - 0.46)
    assert crossed.loc[f"{U3}-T3.9", "LADDER_N_CROSSED"] == 1
    first = features[features["as_of"] == pd.Timestamp(day0, unit="s", tz="UTC")]
    assert (first.loc[first["structure"] == "ladder", "LADDER_N_CROSSED"] == 0).all()


def test_event_features_of_the_simulator_mean_the_same(tmp_path):
    """The default simulator's ladders, brackets and binaries, through the same parse and
    features, pass the same invariants as the real shapes above."""
    params = params_from_dict(
        compose(
            [
                "data.end=2025-03-31",
                "data.synthetic.n_markets=240",
                "data.synthetic.min_duration_days=8",
                "data.synthetic.max_duration_days=20",
                "data.orderbook_snapshots_per_day=1",
            ],
            ROOT / "conf",
        )
    )
    write_synthetic_raw(params.data, tmp_path)
    tables = {k: v.to_pandas() for k, v in parse_raw(tmp_path).items()}
    features = build_features(tables["markets"], tables["candles"], tables["trades"], PARAMS)
    checked = check_event_features_mean_what_they_say(features)
    assert checked["ladder"] > 100 and checked["bracket"] > 20 and checked["binary"] > 100
