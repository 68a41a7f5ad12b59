"""Bad parameter values stop with one message that names the parameter."""

import copy

import pytest
import yaml

from kalshi_lab.errors import ParamError
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
        ("strategy.kelly_fraction", 0.0),
        ("strategy.kelly_fraction", 1.5),
        ("strategy.kelly_fraction", -0.1),
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


def test_edge_kelly_needs_a_settlement_probability(default):
    with pytest.raises(ParamError, match=r"model\.target"):
        params_from_dict(with_value(default, "model.target", "direction"))


def test_wrong_type_and_unknown_key_are_rejected(default):
    with pytest.raises(ParamError, match=r"strategy\.min_edge must be a number"):
        params_from_dict(with_value(default, "strategy.min_edge", "big"))
    with pytest.raises(ParamError, match=r"unknown keys \['typo'\]"):
        params_from_dict(with_value(default, "strategy.typo", 1))


def test_missing_params_file_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_default_params_are_valid(default):
    params = params_from_dict(default)
    assert 0 < params.strategy.kelly_fraction <= 1
