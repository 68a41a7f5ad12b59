"""conf/ composes, every group combination validates, and params.yaml is its default composition."""

import itertools
from pathlib import Path

import pytest
import yaml

from kalshi_lab.compose_params import compose, compose_text
from kalshi_lab.execution import BaseMarketStrategy, build_strategy
from kalshi_lab.params import MODEL_NAMES, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_committed_params_yaml_is_the_default_composition():
    assert (ROOT / "params.yaml").read_text(encoding="utf-8") == compose_text([], CONF), (
        "params.yaml is stale: run `uv run python -m kalshi_lab.compose_params`"
    )


def test_config_groups_mirror_the_registries():
    assert group_options("model") == sorted(MODEL_NAMES)
    for name in group_options("model"):
        assert yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text())["name"] == name


GROUPS = ["data", "features", "split", "model", "strategy", "risk", "backtest"]
COMBINATIONS = list(itertools.product(*(group_options(g) for g in GROUPS)))


@pytest.mark.parametrize("choice", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def test_every_group_combination_composes_and_validates(choice):
    overrides = [f"{group}={option}" for group, option in zip(GROUPS, choice, strict=True)]
    params = params_from_dict(compose(overrides, CONF))
    assert params.model.name == choice[GROUPS.index("model")]
    assert isinstance(build_strategy(params.strategy, params.model.target), BaseMarketStrategy)


def test_direction_target_with_directional_strategy_composes():
    params = params_from_dict(
        compose(["model=lightgbm", "model.target=direction", "strategy=directional"], CONF)
    )
    assert (params.model.target, params.strategy.name) == ("direction", "DirectionalStrategy")
    assert build_strategy(params.strategy, "direction").target == "direction"  # ${model.target}


def test_override_reaches_the_composition():
    params = params_from_dict(compose(["strategy.kelly_fraction=0.25", "model=logreg"], CONF))
    assert params.strategy.kwargs["kelly_fraction"] == 0.25
    assert build_strategy(params.strategy, "settlement").sizer.kelly_fraction == 0.25
    assert params.model.name == "logreg"
