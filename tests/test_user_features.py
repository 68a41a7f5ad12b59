"""User features (``features.extra``): resolved from ``_target_``, their output checked, and
checked for look-ahead on the tables truncated at sampled cut-offs (``kalshi_lab.features``'s
``user``, ``truncate``, ``leak_check`` and ``record``).

The example features are in tests/feature_examples.py: honest ones that read every table, a
leaky ``outcome + noise`` and a subtler next-day candle, and broken ones.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data import tables as schemas
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.features import build_features, feature_columns, output_columns
from kalshi_lab.features.columns import KEY_COLUMNS, builtin_feature_columns
from kalshi_lab.features.leak_check import check_user_features, sample_cutoffs
from kalshi_lab.features.record import user_features_record
from kalshi_lab.features.truncate import TablesAt
from kalshi_lab.features.user import ParquetTables, compute_user_features, user_features
from kalshi_lab.params import FeatureParams, LeakCheckParams, Params, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.user_code import import_function

ROOT = Path(__file__).resolve().parents[1]
HONEST = {
    "days_open": "DAYS_OPEN",
    "mean_mid": "MEAN_MID",
    "trades_so_far": "TRADES_SO_FAR",
    "book_depth": "BOOK_DEPTH",
}


def extra(*entries: dict) -> list[str]:
    """A Hydra override of ``features.extra`` with ``entries`` (as a user types it)."""
    items = []
    for entry in entries:
        keys = ",".join(
            f"{k}:[{','.join(v)}]" if isinstance(v, list) else f"{k}:{v}" for k, v in entry.items()
        )
        items.append("{" + keys + "}")
    return [f"features.extra=[{','.join(items)}]"]


def entry(function: str, *columns: str, **kwargs) -> dict:
    return {"_target_": f"feature_examples.{function}", "columns": list(columns), **kwargs}


def features_params(overrides: list[str]) -> FeatureParams:
    return params_from_dict(compose(overrides, ROOT / "conf")).features


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Params, ParquetTables, pd.DataFrame]:
    """200 simulated markets over three months as the parquet stage writes them, their
    built-in feature table, and the tables read lazily as the features stage reads them."""
    params = params_from_dict(
        compose(
            [
                "data.start=2025-01-01",
                "data.end=2025-03-31",
                "data.synthetic.n_markets=200",
                "data.synthetic.min_duration_days=8",
                "data.synthetic.max_duration_days=25",
                "data.orderbook_snapshots_per_day=2",
            ],
            ROOT / "conf",
        )
    )
    work = tmp_path_factory.mktemp("user_features")
    write_synthetic_raw(params.data, work / "raw")
    (work / "parquet").mkdir()
    write_tables(work / "raw", work / "parquet")
    tables = ParquetTables(work / "parquet")
    built = build_features(tables["markets"], tables["candles"], tables["trades"], params.features)
    return params, tables, built


def run_check(sim, overrides: list[str]) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The features stage's steps: compute the user features, sample cut-offs, check."""
    _, tables, built = sim
    params = features_params(overrides)
    found = user_features(params)
    rows = built[list(KEY_COLUMNS)]
    values = compute_user_features(found, tables, rows)
    cutoffs = sample_cutoffs(built["as_of"], params.leak_check)
    check_user_features(found, tables, rows, values, cutoffs)
    return values, cutoffs


# --- the look-ahead check ------------------------------------------------------------------


def test_honest_user_features_pass_the_check(sim):
    overrides = extra(*(entry(f, c) for f, c in HONEST.items()))
    values, cutoffs = run_check(sim, overrides)
    assert list(values.columns) == list(HONEST.values())
    assert values.notna().mean().min() > 0.9  # the comparison is about values, not NaNs
    assert len(cutoffs) == 3
    # every cut-off hides data of every table these features read
    _, tables, _ = sim
    for t in cutoffs:
        known = TablesAt(tables, t)
        assert known["markets"]["result"].isna().sum() > tables["markets"]["result"].isna().sum()
        for name in ("candles", "trades", "orderbook"):
            assert len(known[name]) < len(tables[name]), (name, t)


LEAKY = [
    # the injected edge: the outcome plus noise, read from markets.result
    (entry("outcome_noise", "OUTCOME_NOISE", sd=2.0), "OUTCOME_NOISE"),
    # without noise: the difference is the hidden result, not noise drawn again
    (entry("outcome_noise", "OUTCOME_NOISE", sd=0.0), "OUTCOME_NOISE"),
    # subtler: the next day's candle
    (entry("next_mid", "NEXT_MID"), "NEXT_MID"),
]


@pytest.mark.parametrize(("leaky", "column"), LEAKY, ids=["noise", "outcome", "next_day"])
def test_a_leaky_user_feature_is_refused_naming_it_a_ticker_and_an_as_of(sim, leaky, column):
    _, tables, built = sim
    honest = entry("days_open", "DAYS_OPEN")
    with pytest.raises(DataError) as caught:
        run_check(sim, extra(honest, leaky))
    message = str(caught.value)
    assert "\n" not in message
    named = re.match(
        rf"features\.extra\[1\] \({re.escape(leaky['_target_'])}\) looks ahead: {column} on "
        r"(\S+) at as_of (\S+) is .* from all the data but .* from the data known at (\S+) \(",
        message,
    )
    assert named, message
    ticker, as_of, t = named.groups()
    assert ticker in set(built["ticker"])
    assert pd.Timestamp(as_of) <= pd.Timestamp(t)


def test_the_outcome_leak_shows_as_hidden_results(sim):
    """At the cut-off the named row's market has not settled: its result was hidden."""
    _, tables, _ = sim
    with pytest.raises(DataError) as caught:
        run_check(sim, extra(entry("outcome_noise", "OUTCOME_NOISE", sd=0.0)))
    ticker, t = re.search(r"on (\S+) at .* known at (\S+) \(", str(caught.value)).groups()
    markets = tables["markets"].set_index("ticker")
    assert markets.loc[ticker, "settlement_ts"] > pd.Timestamp(t)
    assert "but nan from the data known" in str(caught.value)


def test_cutoffs_are_seeded_days_with_enough_rows_before_the_last():
    days = pd.date_range("2025-01-01", periods=10, freq="D", tz="UTC")
    as_of = pd.Series(np.repeat(days, 10))  # 10 rows a day: 10, 20, ... known by each day
    params = LeakCheckParams(enabled=True, cutoffs=3, seed=4, min_rows=30)
    chosen = sample_cutoffs(as_of, params)
    assert chosen == sample_cutoffs(as_of, params) and chosen == sorted(chosen)
    assert len(set(chosen)) == 3 and set(chosen) <= set(days[2:-1])
    others = {tuple(sample_cutoffs(as_of, LeakCheckParams(True, 3, s, 30))) for s in range(8)}
    assert len(others) > 1  # the seed chooses
    # fewer qualifying days than asked: all of them
    assert sample_cutoffs(as_of, LeakCheckParams(True, 5, 0, 80)) == list(days[7:9])
    with pytest.raises(DataError, match=r"features\.leak_check\.min_rows"):
        sample_cutoffs(as_of, LeakCheckParams(True, 3, 0, 100))  # only the last day has 100


# --- truncation ----------------------------------------------------------------------------

T = pd.Timestamp("2025-01-10", tz="UTC")
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def typed(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def market(ticker: str, event: str, opened, settled, strike: float, **more) -> dict:
    return {
        "ticker": ticker,
        "event_ticker": event,
        "series_ticker": "S",
        "market_type": "binary",
        "yes_sub_title": f"Above {strike}",
        "status": "finalized",
        "result": "yes",
        "open_time": opened,
        "close_time": settled - HOUR,
        "settlement_ts": settled,
        "can_close_early": False,
        "strike_type": "greater",
        "floor_strike": strike,
        "structure": "ladder",
        "last_price": 0.99,
        "volume": 10.0,
        "open_interest": 5.0,
        **more,
    }


@pytest.fixture
def small_tables() -> dict[str, pd.DataFrame]:
    """Event E: A settled before T, B settles after T and closed early after T (its contract
    bound 5 days later), C listed after T. Event F: D and, listed after T, G."""
    markets = [
        market("A", "E", T - 5 * DAY, T - DAY, 1.0),
        market(
            "B",
            "E",
            T - 5 * DAY,
            T + 2 * DAY,
            2.0,
            can_close_early=True,
            latest_expiration_time=T + 5 * DAY,
        ),
        market("C", "E", T + HOUR, T + 3 * DAY, 3.0),
        market("D", "F", T - DAY, T + 3 * DAY, 1.0),
        market("G", "F", T + DAY, T + 3 * DAY, 2.0),
    ]
    stamped = [T - HOUR, T, T + HOUR]
    return {
        "markets": typed(markets, schemas.MARKETS),
        "events": typed(
            [{"event_ticker": e, "series_ticker": "S"} for e in ("E", "F", "H")], schemas.EVENTS
        ),
        "series": typed([{"series_ticker": "S", "title": "s"}], schemas.SERIES),
        "candles": typed(
            [{"ticker": "A", "period_minutes": 1440, "end_period_ts": s} for s in stamped],
            schemas.CANDLES,
        ),
        "trades": typed([{"ticker": "A", "created_time": s} for s in stamped], schemas.TRADES),
        "orderbook": typed([{"ticker": "A", "snapshot_ts": s} for s in stamped], schemas.ORDERBOOK),
    }


def test_truncation_keeps_what_was_known_at_t_and_hides_the_rest(small_tables):
    known = TablesAt(small_tables, T)
    markets = known["markets"].set_index("ticker")
    assert list(markets.index) == ["A", "B", "D"]  # C and G were listed after T
    assert markets.loc["A", "result"] == "yes" and markets.loc["A", "settlement_ts"] == T - DAY
    assert markets.loc["B", "result"] is None and pd.isna(markets.loc["B", "settlement_ts"])
    # B's early close came after T: the close known then is its contract's bound
    assert markets.loc["B", "close_time"] == T + 5 * DAY
    assert markets.loc["D", "close_time"] == T + 3 * DAY - HOUR  # cannot close early: kept
    # what the fetch saw is known at no earlier time
    assert markets[["last_price", "volume", "open_interest"]].isna().all().all()
    assert markets["status"].isna().all()
    # E is a ladder of A and B at T; F's second strike G was not listed: D is a binary
    assert markets["structure"].to_dict() == {"A": "ladder", "B": "ladder", "D": "binary"}
    assert list(known["events"]["event_ticker"]) == ["E", "F"]  # H has no market listed by T
    assert known["series"].equals(small_tables["series"])
    for name, stamp in (
        ("candles", "end_period_ts"),
        ("trades", "created_time"),
        ("orderbook", "snapshot_ts"),
    ):
        assert list(known[name][stamp]) == [T - HOUR, T], name  # a stamp at T is known at T
    assert small_tables["markets"]["result"].notna().all()  # the full tables are untouched


def test_truncation_reads_a_table_only_when_asked(small_tables):
    read = []

    class Counting(dict):
        def __getitem__(self, name):
            read.append(name)
            return super().__getitem__(name)

    known = TablesAt(Counting(small_tables), T)
    known["trades"], known["trades"]
    assert read == ["trades"]  # once, and nothing else: not the order book


def test_parquet_tables_are_read_on_first_access(sim, monkeypatch):
    from kalshi_lab.features import user

    read = []
    monkeypatch.setattr(user, "read_table", lambda name, root: read.append(name) or name)
    _, tables, _ = sim
    fresh = ParquetTables(tables.root)
    assert set(fresh) == set(schemas.TABLES) and read == []
    assert fresh["events"] == fresh["events"] == "events" and read == ["events"]
    with pytest.raises(KeyError):
        fresh["orderbooks"]


# --- entries and their output --------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            extra(entry("days_open", "RET_1")),
            "features.extra[0] (feature_examples.days_open): columns ['RET_1'] are built-in",
        ),
        (
            extra(entry("no_such_function", "X")),
            "features.extra[0] (feature_examples.no_such_function): _target_ cannot be used: "
            "Error loading 'feature_examples.no_such_function'",
        ),
        (
            extra(entry("NOT_CALLABLE", "X")),
            "features.extra[0] (feature_examples.NOT_CALLABLE): _target_ cannot be used: Located "
            "non-callable of type 'int'",
        ),
        (
            extra(entry("days_open", "X", window=3)),
            "features.extra[0] (feature_examples.days_open): must be f(tables, rows, **kwargs) "
            "taking its keys ['window']: got an unexpected keyword argument 'window'",
        ),
    ],
    ids=["built-in name", "no such function", "not callable", "unknown key"],
)
def test_a_bad_entry_is_one_line_naming_it(override, message):
    with pytest.raises(ParamError) as caught:
        user_features(features_params(override))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


ROWS = pd.DataFrame(
    {
        "ticker": ["A", "A", "B"],
        "event_ticker": ["E", "E", "F"],
        "series_ticker": ["S", "S", "S"],
        "as_of": pd.to_datetime(["2025-01-02", "2025-01-03", "2025-01-02"], utc=True),
    }
)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("too_short", "returned 2 rows for 3 rows"),
        ("other_index", "returned another index than its rows': use rows.index"),
        ("text", "column X is object, not numeric"),
        ("infinite", "column X is infinite on A at as_of 2025-01-02T00:00:00+00:00"),
        ("a_series", "returned a Series, not a DataFrame"),
        ("days_open", "returned columns ['DAYS_OPEN'], its columns are ['X']"),
    ],
)
def test_a_bad_output_is_one_line_naming_the_entry(function, message):
    (feature,) = user_features(features_params(extra(entry(function, "X"))))
    markets = pd.DataFrame({"ticker": ["A", "B"], "open_time": ROWS["as_of"].iloc[:2]})
    with pytest.raises(DataError) as caught:
        feature.compute({"markets": markets}, ROWS)
    assert str(caught.value) == f"features.extra[0] (feature_examples.{function}) {message}"


def test_output_is_float_in_the_declared_order_and_booleans_count():
    def two(tables, rows):
        return pd.DataFrame({"B": rows["ticker"] == "A", "A": np.arange(len(rows))}, rows.index)

    sys.modules[__name__].two = two  # importable by its dotted name
    overrides = [f"features.extra=[{{_target_:{__name__}.two,columns:[A,B]}}]"]
    values = compute_user_features(user_features(features_params(overrides)), {}, ROWS)
    assert list(values.columns) == ["A", "B"] and (values.dtypes == np.float64).all()
    assert values["B"].tolist() == [1.0, 1.0, 0.0]


def test_an_error_inside_the_function_keeps_its_traceback_with_the_entry_named():
    (feature,) = user_features(features_params(extra(entry("days_open", "DAYS_OPEN"))))
    with pytest.raises(KeyError) as caught:
        feature.compute({}, ROWS)  # no markets table
    assert caught.value.__notes__ == [
        "raised by the user feature features.extra[0] (feature_examples.days_open)"
    ]


# --- params, columns and the record --------------------------------------------------------


def test_user_columns_are_model_inputs_after_the_built_in_ones():
    params = features_params(extra(entry("days_open", "DAYS_OPEN"), entry("mean_mid", "M", "N")))
    assert feature_columns(params) == [*builtin_feature_columns(params), "DAYS_OPEN", "M", "N"]
    assert output_columns(params)[-3:] == ["DAYS_OPEN", "M", "N"]
    assert params.extra[1].kwargs == {} and params.extra[1].columns == ("M", "N")
    with_key = features_params(extra(entry("mean_mid", "M", days=3)))
    assert with_key.extra[0].kwargs == {"days": 3}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"_target_": "m.f", "columns": ["days"]}], "features.extra[0].columns[0]: String should"),
        ([{"_target_": "m", "columns": ["X"]}], "features.extra[0]._target_: String should match"),
        ([{"columns": ["X"]}], "features.extra[0]._target_: Field required"),
        ([{"_target_": "m.f"}], "features.extra[0].columns: Field required"),
        ([{"_target_": "m.f", "columns": []}], "features.extra[0].columns: Tuple should have at"),
        (
            [{"_target_": "m.f", "columns": ["X", "X"]}],
            "features.extra[0].columns: must not repeat a name",
        ),
        (
            [{"_target_": "m.f", "columns": ["X"]}, {"_target_": "m.g", "columns": ["Y", "X"]}],
            "features.extra: entry 1 (m.g) returns ['X'], which an earlier entry returns",
        ),
    ],
)
def test_a_malformed_entry_names_the_key(value, message):
    raw = compose([], ROOT / "conf")
    raw["features"]["extra"] = value
    with pytest.raises(ParamError) as caught:
        params_from_dict(raw)
    assert str(caught.value).startswith(message), caught.value


def test_the_code_defaults_are_conf_s():
    built_in_code = FeatureParams(n_lags=10, volatility_window=7, min_price=0.01)
    composed = features_params([])
    assert built_in_code.leak_check == composed.leak_check
    assert built_in_code.extra == composed.extra == ()


def test_the_record_says_what_ran():
    cutoffs = [pd.Timestamp("2025-02-01", tz="UTC")]
    on = features_params(extra(entry("mean_mid", "MEAN_MID", days=3)))
    assert user_features_record(on, cutoffs) == {
        "user_features": [
            {
                "_target_": "feature_examples.mean_mid",
                "columns": ["MEAN_MID"],
                "kwargs": {"days": 3},
            }
        ],
        "leak_check": {
            "enabled": True,
            "ran": True,
            "result": "passed",
            "cutoffs": ["2025-02-01T00:00:00+00:00"],
            "seed": 0,
        },
    }
    off = features_params([*extra(entry("days_open", "D")), "features.leak_check.enabled=false"])
    assert user_features_record(off, [])["leak_check"] == {
        "enabled": False,
        "ran": False,
        "result": "not run: features.leak_check.enabled is false",
        "cutoffs": [],
        "seed": 0,
    }
    none = user_features_record(features_params([]), [])
    assert none["user_features"] == [] and none["leak_check"]["ran"] is False
    assert none["leak_check"]["result"] == "not run: no user features"


def test_a_file_at_the_repository_root_is_importable(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root_features_example.py").write_text("def f(tables, rows):\n    return 1\n")
    assert import_function("root_features_example.f")(None, None) == 1
    assert sys.path[-1] == str(tmp_path)  # appended: never shadows an installed package
    with pytest.raises(ImportError) as caught:
        import_function("root_features_example.g")
    assert "\n" not in str(caught.value)
