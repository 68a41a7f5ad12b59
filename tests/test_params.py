"""Bad parameter values stop with one message that names the parameter."""

import copy
import dataclasses
import datetime as dt
import re

import pytest
import yaml

from kalshi_lab.compose_params import compose
from kalshi_lab.errors import ParamError
from kalshi_lab.execution import build_strategy
from kalshi_lab.params import (
    SplitParams,
    StrategyParams,
    SyntheticParams,
    load_params,
    params_from_dict,
)


@pytest.fixture(scope="module")
def default() -> dict:
    with open("params.yaml") as f:
        return yaml.safe_load(f)


def with_value(raw: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


@pytest.fixture(scope="module")
def kalshi() -> dict:
    return compose(["data=kalshi"])


#: one bad value per rule: (dotted key, value, what the message says after "<key>: ")
RULES = [
    ("data.source", "csv", "Input should be 'synthetic' or 'kalshi'"),
    ("data.start", "not-a-date", "Input should be a valid date"),
    ("data.end", "2024-01-01", "must be on or after data.start (2025-01-01), got '2024-01-01'"),
    ("data.end", "2025-01-05", "leaves 5 days: a market needs data.synthetic.min_duration_days"),
    ("data.hourly_candles", "yes", "Input should be a valid boolean"),
    ("data.orderbook_snapshots_per_day", 5, "Input should be 1, 2, 3, 4, 6, 8, 12 or 24"),
    ("data.orderbook_snapshots_per_day", None, "is required by data=synthetic"),
    ("data.synthetic", None, "is required by data=synthetic"),
    ("data.synthetic.seed", 1.5, "Input should be a valid integer"),
    ("data.synthetic.n_markets", 0, "Input should be greater than or equal to 1"),
    ("data.synthetic.n_markets", 100_001, "Input should be less than or equal to 100000"),
    ("data.synthetic.n_markets", True, "Input should be a valid integer, got True"),
    ("data.synthetic.max_strikes", 1, "Input should be greater than or equal to 2"),
    ("data.synthetic.max_strikes", 2, "must be >= 3 when data.synthetic.event_shares.bracket > 0"),
    ("data.synthetic.event_shares.ladder", -0.1, "Input should be greater than or equal to 0"),
    ("data.synthetic.event_shares.bracket", "0.15", "Input should be a valid number"),
    ("data.synthetic.event_shares.other", 0.0, "Unexpected keyword argument"),
    ("data.synthetic.binary_event_share", 0.4, "Unexpected keyword argument"),
    ("data.synthetic.min_duration_days", 1, "Input should be greater than or equal to 2"),
    ("data.synthetic.max_duration_days", 9, "must be >= data.synthetic.min_duration_days (10)"),
    ("data.synthetic.information_rate", 0, "Input should be greater than 0"),
    ("data.synthetic.price_lag_hours", 0, "Input should be greater than 0"),
    ("data.synthetic.price_noise", -0.1, "Input should be greater than or equal to 0"),
    ("data.synthetic.longshot_bias", 0.0, "Input should be greater than 0"),
    ("data.synthetic.longshot_bias", 1.01, "Input should be less than or equal to 1"),
    ("data.synthetic.half_spread_cents", -1, "Input should be greater than or equal to 0"),
    ("data.synthetic.depth_contracts", 0, "Input should be greater than 0"),
    ("data.synthetic.book_levels", 0, "Input should be greater than or equal to 1"),
    ("data.synthetic.trades_per_day", 0, "Input should be greater than 0"),
    ("data.synthetic.informed_share", 1.5, "Input should be less than or equal to 1"),
    ("data.synthetic.typo", 1, "Unexpected keyword argument"),
    ("features.n_lags", 0, "Input should be greater than or equal to 1"),
    ("features.n_lags", 61, "Input should be less than or equal to 60"),
    ("features.volatility_window", 1, "Input should be greater than or equal to 2"),
    ("features.min_price", 1.0, "Input should be less than 1"),
    ("features.min_price", 0.0, "Input should be greater than 0"),
    ("split.train_size", 0.0, "Input should be greater than 0"),
    ("split.train_size", 1.0, "Input should be less than 1"),
    ("split.train_size", "0.5", "Input should be a valid number, got '0.5'"),
    ("split.embargo_days", -1, "Input should be greater than or equal to 0"),
    (
        "model.name",
        "xgboost",
        "Input should be 'lightgbm', 'logreg', 'hist_gb', 'lightgbm_offset' or 'anchored_logit'",
    ),
    ("model.target", "price", "Input should be 'settlement' or 'direction'"),
    ("model.seed", "0", "Input should be a valid integer"),
    ("model.params", [1], "Input should be a valid dictionary"),
    ("strategy._target_", None, "Input should be a valid string"),
    ("strategy._target_", "EdgeBasedStrategy", "String should match pattern"),
    ("risk.max_contracts_per_market", 0, "Input should be greater than or equal to 1"),
    ("risk.max_position_frac", 0.0, "Input should be greater than 0"),
    ("risk.max_event_frac", 1.5, "Input should be less than or equal to 1"),
    ("risk.max_capital_frac", 0.0, "Input should be greater than 0"),
    ("risk.max_daily_loss_frac", 2.0, "Input should be less than or equal to 1"),
    ("risk.kill_switch", 1, "Input should be a valid boolean"),
    ("backtest.initial_cash", -5.0, "Input should be greater than 0"),
    ("backtest.executor", "twap", "Input should be 'simple' or 'nested'"),
    ("backtest.order_ttl_hours", -1, "Input should be greater than or equal to 0"),
    ("backtest.nested_slices", 0, "Input should be greater than or equal to 1"),
    ("backtest.nested_step_minutes", 0, "Input should be greater than or equal to 1"),
    ("backtest.taker_fee_rate", 1.0, "Input should be less than 1"),
    ("backtest.max_fill_share", 0.0, "Input should be greater than 0"),
    ("backtest.max_volume_share", 1.5, "Input should be less than or equal to 1"),
    ("backtest.max_quote_age_hours", 0, "Input should be greater than 0"),
    ("backtest.max_quote_age_hours", "a day", "Input should be a valid number"),
    ("backtest.typo", 1, "Unexpected keyword argument"),
]

#: the rules of data=kalshi, on its default composition
KALSHI_RULES = [
    ("data.base_url", "ftp://example.com/trade-api/v2", "String should match pattern"),
    ("data.base_url", "https://example.com/", "String should match pattern"),
    ("data.base_url", None, "is required by data=kalshi"),
    ("data.series", [], "List should have at least 1 item"),
    ("data.series", None, "is required by data=kalshi"),
    ("data.series", ["KX U3"], "String should match pattern"),
    ("data.events", ["A,B"], "String should match pattern"),
    ("data.tickers", [" KXU3"], "String should match pattern"),
    ("data.orderbook_depth", -1, "Input should be greater than or equal to 0"),
    ("data.orderbook_depth", 101, "Input should be less than or equal to 100"),
    ("data.concurrency", 0, "Input should be greater than or equal to 1"),
    ("data.concurrency", 33, "Input should be less than or equal to 32"),
    ("data.concurrency", None, "is required by data=kalshi"),
    ("data.timeout_s", 0, "Input should be greater than 0"),
    ("data.max_retries", -1, "Input should be greater than or equal to 0"),
    ("data.max_retries", None, "is required by data=kalshi"),
    ("data.rate_limit", None, "is required by data=kalshi"),
    ("data.rate_limit.tier", "gold", "must be one of ['advanced', 'basic', 'premier', 'prime']"),
    ("data.rate_limit.tiers.basic.reads_per_s", 0, "Input should be greater than 0"),
    ("data.rate_limit.tiers.basic.writes_per_s", "10", "Input should be a valid number"),
    ("data.rate_limit.tiers.basic.per_day", 1, "Unexpected keyword argument"),
]


@pytest.mark.parametrize(("key", "value", "reason"), RULES, ids=[f"{k}={v!r}" for k, v, _ in RULES])
def test_invalid_value_names_the_parameter(default, key, value, reason):
    with pytest.raises(ParamError, match="^" + re.escape(f"{key}: {reason}")):
        params_from_dict(with_value(default, key, value))


@pytest.mark.parametrize(
    ("key", "value", "reason"), KALSHI_RULES, ids=[f"{k}={v!r}" for k, v, _ in KALSHI_RULES]
)
def test_invalid_kalshi_value_names_the_parameter(kalshi, key, value, reason):
    with pytest.raises(ParamError, match=re.escape(reason)) as caught:
        params_from_dict(with_value(kalshi, key, value))
    # a list item is named by its index: data.series[0]
    assert re.match(re.escape(key) + r"(\[0\])?: ", str(caught.value)), caught.value


def test_event_shares_must_sum_to_one_and_the_error_names_the_mapping(default):
    raw = with_value(default, "data.synthetic.event_shares.binary", 0.4)
    with pytest.raises(ParamError) as caught:
        params_from_dict(raw)
    assert str(caught.value) == (
        "data.synthetic.event_shares: must sum to 1 (they sum to 1.1), "
        "got {'ladder': 0.55, 'bracket': 0.15, 'binary': 0.4}"
    )
    raw = with_value(default, "data.synthetic.event_shares", {"ladder": 0.7, "bracket": 0.3})
    with pytest.raises(
        ParamError, match=r"^data\.synthetic\.event_shares\.binary: Field required$"
    ):
        params_from_dict(raw)
    # one structure only; decimals whose float sum is 0.9999999999999999
    for shares in (
        {"ladder": 0.0, "bracket": 0.0, "binary": 1.0},
        {"ladder": 0.7, "bracket": 0.2, "binary": 0.1},
    ):
        ok = params_from_dict(with_value(default, "data.synthetic.event_shares", shares))
        assert ok.data.synthetic.event_shares.ordered() == tuple(shares.values())


def test_missing_key_is_named_and_one_line_counts_the_other_errors(default):
    raw = with_value(default, "features.n_lags", 0)
    del raw["split"]["embargo_days"]
    with pytest.raises(ParamError) as caught:
        params_from_dict(raw)
    assert str(caught.value) == (
        "features.n_lags: Input should be greater than or equal to 1, got 0 (and 1 more)"
    )
    del raw["features"]
    with pytest.raises(ParamError, match=r"^features: Field required \(and 1 more\)$"):
        params_from_dict(raw)


def test_sections_are_frozen_and_validate_on_replace(default):
    params = params_from_dict(default)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.backtest.initial_cash = 1.0  # type: ignore[misc]
    assert dataclasses.replace(params.backtest, initial_cash=5).initial_cash == 5.0
    with pytest.raises(
        ParamError, match=r"^backtest\.initial_cash: Input should be greater than 0"
    ):
        dataclasses.replace(params.backtest, initial_cash=0.0)


def test_a_section_built_in_code_names_the_key_of_a_positional_argument():
    with pytest.raises(ParamError, match=r"^split\.embargo_days: Input should be greater than or"):
        SplitParams(0.5, -1)
    with pytest.raises(
        ParamError, match=r"^data\.synthetic\.n_markets: Field required \(and 18 more\)$"
    ):
        SyntheticParams(seed=1)  # type: ignore[call-arg]


def test_whole_numbers_become_floats_and_dates_are_parsed(default):
    params = params_from_dict(default)
    assert params.data.synthetic.news_floor_hours == 6.0  # written as 6 in params.yaml
    assert isinstance(params.data.synthetic.news_floor_hours, float)
    assert params.data.start == dt.date(2025, 1, 1)


def test_rate_limit_reads_the_chosen_tier(kalshi):
    limits = params_from_dict(with_value(kalshi, "data.rate_limit.tier", "premier")).data.rate_limit
    assert (limits.reads_per_s, limits.writes_per_s) == (100.0, 100.0)


def strategy_of(raw: dict, target: str = "settlement"):
    """Build the strategy params.yaml configures, as the backtest does."""
    params = params_from_dict(raw)
    return build_strategy(params.strategy, target)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strategy.kelly_fraction", 0.0),
        ("strategy.kelly_fraction", 1.5),
        ("strategy.kelly_fraction", -0.1),
        ("strategy.min_edge", 1.0),
        ("strategy.stop_loss", 2.0),
    ],
)
def test_invalid_strategy_value_names_the_parameter_when_the_strategy_is_built(default, key, value):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        strategy_of(with_value(default, key, value))


def test_edge_kelly_needs_a_settlement_probability(default):
    with pytest.raises(ParamError, match=r"model\.target"):
        strategy_of(default, target="direction")


def test_wrong_type_and_unknown_key_are_rejected(default):
    with pytest.raises(ParamError, match=r"strategy\.min_edge: Input should be a valid number"):
        strategy_of(with_value(default, "strategy.min_edge", "big"))
    with pytest.raises(ParamError, match=r"unknown keys \['typo'\]"):
        strategy_of(with_value(default, "strategy.typo", 1))
    with pytest.raises(ParamError, match=r"strategy\._target_ kalshi_lab\.Nope cannot be imported"):
        strategy_of(with_value(default, "strategy._target_", "kalshi_lab.Nope"))
    with pytest.raises(ParamError, match=r"strategy\._target_ .* is not a kalshi_lab"):
        strategy_of(with_value(default, "strategy._target_", "collections.Counter"))


def test_strategy_config_keeps_its_target_apart_from_the_arguments(default):
    params = StrategyParams.from_config("strategy", default["strategy"])
    assert params.target == "kalshi_lab.execution.EdgeBasedStrategy"
    assert params.name == "EdgeBasedStrategy"
    assert "_target_" not in params.kwargs and params.kwargs["min_edge"] == 0.03
    assert params_from_dict(default).strategy == params
    with pytest.raises(ParamError, match=r"^strategy\._target_: Field required$"):
        StrategyParams.from_config("strategy", {"min_edge": 0.03})


def test_missing_params_file_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_params_file_names_the_file_and_the_key(default, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(default, "strategy.min_edge", "big")))
    params = load_params(path)  # the strategy checks its own arguments when it is built
    with pytest.raises(ParamError, match=r"^strategy\.min_edge: Input should be a valid number"):
        build_strategy(params.strategy, params.model.target)
    path.write_text(yaml.safe_dump(with_value(default, "risk.kill_switch", "no")))
    with pytest.raises(ParamError) as caught:
        load_params(path)
    assert str(caught.value) == (
        f"{path}: risk.kill_switch: Input should be a valid boolean, got 'no'"
    )


def test_default_params_are_valid(default):
    params = params_from_dict(default)
    assert 0 < params.strategy.kwargs["kelly_fraction"] <= 1
    assert (
        type(build_strategy(params.strategy, params.model.target)).__name__ == "EdgeBasedStrategy"
    )
