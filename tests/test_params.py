"""Bad parameter values stop with one message that names the parameter."""

import copy

import pytest
import yaml

from kalshi_lab.errors import ParamError
from kalshi_lab.execution import build_strategy
from kalshi_lab.params import load_params, params_from_dict


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


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("risk.max_position_frac", 0.0),
        ("risk.max_event_frac", 1.5),
        ("backtest.nested_slices", 0),
        ("backtest.executor", "twap"),
        ("split.train_size", 0.0),
        ("split.train_size", 1.0),
        ("model.name", "xgboost"),
        ("model.target", "price"),
        ("data.synthetic.n_markets", 0),
        ("data.end", "2024-01-01"),
        ("data.start", "not-a-date"),
        ("backtest.initial_cash", -5.0),
        ("features.n_lags", 0),
    ],
)
def test_invalid_value_names_the_parameter(default, key, value):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        params_from_dict(with_value(default, key, value))


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
    with pytest.raises(ParamError, match=r"strategy\._target_ must name a class"):
        params_from_dict(with_value(default, "strategy._target_", None))


def test_missing_params_file_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_default_params_are_valid(default):
    params = params_from_dict(default)
    assert 0 < params.strategy.kwargs["kelly_fraction"] <= 1
    assert (
        type(build_strategy(params.strategy, params.model.target)).__name__ == "EdgeBasedStrategy"
    )
