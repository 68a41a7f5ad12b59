"""The experiments table (`kalshi-lab experiments`): each row's overrides compose back to its
params.yaml, and the table fits the width with every metric and every override visible.

The rows are built from conf/ as `dvc exp run -S` composes it, in the shape of
`dvc exp show --json`; tests/test_pipeline_dvc*.py run the command on real experiments."""

import functools
import hashlib
import re

import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.experiments import Overrides, experiments_from_json, flatten, render

#: the README's experiments, and a few more a user types
README_RUNS = [
    [],
    ["strategy.kelly_fraction=0.25"],
    ["model=logreg"],
    ["model=lightgbm", "model.target=direction", "strategy=directional"],
    [
        "data=kalshi",
        "data.base_url=http://127.0.0.1:8765/trade-api/v2",
        "data.series=[KXSIMA,KXSIMB]",
        "data.start=2025-01-01",
        "data.end=2025-05-31",
    ],
    ["model=lightgbm", "model.params.num_leaves=31", "backtest.executor=nested"],
    ["strategy=ladder_arb", "risk.max_event_frac=0.05", "features.n_lags=3"],
    # the README's own feature: a list of mappings, as typed in the README
    ["features.extra=[{_target_:my_features.mean_mid,columns:[MEAN_MID],days:3}]"],
]


@functools.cache
def composed(run: tuple[str, ...]) -> dict:
    """params.yaml for these overrides, as `dvc exp run -S` writes it (composed once)."""
    return compose(list(run))


def params_of(run: list[str]) -> dict:
    return flatten(composed(tuple(run)))


@pytest.fixture(scope="module")
def overrides() -> Overrides:
    return Overrides()


def exp_show_json(runs: list[list[str]]) -> list[dict]:
    """`dvc exp show --json` for a commit composed with no override and one experiment per run."""

    def rev(name: str, params: dict, metrics: dict) -> dict:
        return {
            "rev": hashlib.sha1(name.encode()).hexdigest(),
            "name": name,
            "data": {
                "params": {"params.yaml": {"data": params}},
                "metrics": {
                    "reports/metrics.json": {"data": metrics},
                    "reports/backtest.json": {"data": {"return": -0.05, "p_loss": 0.9}},
                },
            },
        }

    base = rev("main", composed(()), {"skill_vs_best": 0.0, "p_no_skill": 1.0})
    base["experiments"] = [
        {
            "name": f"exp-{i}",
            "revs": [
                rev(
                    f"exp-{i}",
                    composed(tuple(run)),
                    {"skill_vs_best": -0.1 * i, "p_no_skill": None},
                )
            ],
        }
        for i, run in enumerate(runs)
    ]
    return [base]


@pytest.mark.parametrize("run", README_RUNS, ids=lambda r: " ".join(r) or "defaults")
def test_a_rows_overrides_compose_back_to_its_params(overrides, run):
    params = params_of(run)
    found = overrides.of(params)
    assert params_of(found) == params
    # what the user typed, less what conf/ already says (the kalshi config's own start and end)
    typed = [o for o in run if o not in ("data.start=2025-01-01", "data.end=2025-05-31")]
    assert sorted(found) == sorted(typed)


def test_a_value_that_follows_an_interpolation_is_not_listed(overrides):
    """strategy=directional reads ${model.target}: model.target=direction sets both."""
    found = overrides.of(params_of(["strategy=directional", "model.target=direction"]))
    assert "model.target=direction" in found
    assert not [o for o in found if o.startswith("strategy.target")]


def test_a_string_hydra_would_read_as_another_type_is_quoted(overrides):
    for text in ("true", "0.5", "null", "two words", "a,b"):
        params = params_of([])
        params["backtest.executor"] = text
        (found,) = overrides.of(params)
        assert found.startswith("backtest.executor='"), found
        assert params_of([found]) == params


def test_a_key_the_row_lacks_is_deleted_and_a_default_row_has_no_override(overrides):
    params = params_of(["strategy=directional"])
    assert overrides.of(params) == ["strategy=directional"]
    del params["strategy.holding_days"]
    assert overrides.of(params) == ["strategy=directional", "~strategy.holding_days"]
    assert overrides.of(params_of([])) == []


@pytest.mark.parametrize("width", [72, 80, 100, 120, 160])
def test_the_table_fits_the_width_and_shows_every_metric_and_override(overrides, width):
    rows = list(experiments_from_json(exp_show_json(README_RUNS)))
    table = render(rows, overrides, width)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= width, table
    header = lines[1].split()
    assert header[:5] == ["Experiment", "skill_vs_best", "p_no_skill", "return", "p_loss"]
    text = " ".join(lines)
    for i, run in enumerate(README_RUNS):
        row = next(line for line in lines if f"[exp-{i}]" in line)
        assert row.split()[3:7] == [format(-0.1 * i, ".5g"), "-", "-0.05", "0.9"]
        for override in overrides.of(params_of(run)):
            if len(override) < width - 72:  # the longest fits unbroken beside the metrics
                assert override in text, (override, table)
    last = [line for line in lines if line.startswith("└── ")]
    assert len(last) == 1 and f"[exp-{len(README_RUNS) - 1}]" in last[0]


def test_the_tree_marks_the_last_experiment_and_a_failed_one_says_so(overrides):
    data = exp_show_json([["model=logreg"], ["strategy.kelly_fraction=0.25"]])
    data[0]["experiments"][0]["executor"] = {"state": "failed"}
    lines = render(list(experiments_from_json(data)), overrides, 120).splitlines()
    assert re.match(r"├── \w{7} \[exp-0\] \(failed\)", lines[4]), lines
    assert lines[5].startswith("└── ") and "[exp-1]" in lines[5]
    assert lines[3].startswith("main ")
