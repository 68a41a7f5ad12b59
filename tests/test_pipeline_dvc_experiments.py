"""End to end, as a user runs it: the experiments issue 6 asks for (`dvc exp run -S ...` of a
strategy, a stop, the nested executor and a user's own strategy class), the README's own
feature, a bad override, and `data=kalshi` against the local server, in a temporary git copy
(tests/dvc_copy.py)."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from dvc_copy import (
    ROOT,
    dvc,
    experiment_row,
    experiments_table,
    git,
    headline_cells,
    read_json,
    reproduced_copy,
    summary,
)
from kalshi_lab import paths
from kalshi_lab.compose_params import compose_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return reproduced_copy(tmp_path_factory)


USER_STRATEGY = """
import pandas as pd

from kalshi_lab.execution import BaseMarketStrategy, ContractOrder, PredictionMarketDecision


class BuyCheapYes(BaseMarketStrategy):
    \"\"\"The design's extension example: one decision, built up order by order.\"\"\"

    def __init__(self, gap: float, contracts: int) -> None:
        super().__init__()
        self.gap, self.contracts = gap, contracts

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        decision = PredictionMarketDecision()
        cheap = signals[(signals["prob"] - signals["yes_ask"] > self.gap)]
        for ticker, row in cheap.iterrows():
            if ticker not in current_positions and available_capital > 1.0:
                decision.add(
                    ContractOrder(ticker, row["event_ticker"], "yes", "buy", self.contracts,
                                  int(round(row["yes_ask"] * 100)), current_time)
                )
        return decision
"""


def test_every_issue_six_override_and_a_users_own_strategy_change_the_backtest(repo):
    """Each override re-runs only the backtest and moves its metrics (strategy.kelly_fraction is
    swept in the first test); so does a class of the user's own, in a file outside the package,
    chosen by a config group's _target_."""
    baseline = json.loads(git(repo, "show", "HEAD:reports/backtest.json"))
    for name, override in [
        ("edge", "strategy.min_edge=0.1"),
        ("stop", "strategy.stop_loss=0.2"),
        ("nested", "backtest.executor=nested"),
    ]:
        dvc(repo, "exp", "run", "-n", name, "-S", override)
        changed = read_json(repo / "reports" / "backtest.json")
        assert changed != baseline, override
        assert changed["return"] != baseline["return"], override

    (repo / "user_strategies.py").write_text(USER_STRATEGY)
    (repo / "conf" / "strategy" / "cheap_yes.yaml").write_text(
        "_target_: user_strategies.BuyCheapYes\ngap: 0.1\ncontracts: 7\n"
    )
    dvc(repo, "exp", "run", "-n", "mine", "-S", "strategy=cheap_yes")
    mine = read_json(repo / "reports" / "backtest_detail.json")["validation"]
    assert 0 < mine["n_contracts"] <= 7 * mine["n_orders"]
    assert yaml.safe_load((repo / "params.yaml").read_text())["strategy"]["_target_"] == (
        "user_strategies.BuyCheapYes"
    )


def test_the_readme_s_own_feature_is_checked_and_becomes_a_model_input(repo):
    """The README's my_features.py and its `dvc exp run -S 'features.extra=[...]'`, as written."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(
        r"```python\n(# my_features\.py, at the repository root\n.*?)```", readme, re.S
    )
    (repo / "my_features.py").write_text(code.group(1))
    command = re.search(r"^uv run (dvc exp run -S 'features\.extra=.*)$", readme, re.M).group(1)
    dvc(repo, *shlex.split(command)[1:])
    params = yaml.safe_load((repo / "params.yaml").read_text())["features"]
    assert params["extra"] == [
        {"_target_": "my_features.mean_mid", "columns": ["MEAN_MID"], "days": 3}
    ]
    record = read_json(repo / "reports" / "evaluation.json")["features"]
    assert record["leak_check"]["result"] == "passed" and len(record["leak_check"]["cutoffs"]) == 3
    assert read_json(repo / "models" / "model.json")["features"][-1] == "MEAN_MID"


def test_invalid_override_fails_clearly_and_keeps_the_last_results(repo):
    kept = [repo / "reports" / "backtest.json", repo / "data" / "backtest" / "fills.parquet"]
    before = [path.read_bytes() for path in kept]
    proc = dvc(repo, "exp", "run", "-S", "strategy.kelly_fraction=1.5", ok=False)
    assert proc.returncode != 0
    assert "error: validate: strategy.kelly_fraction must be in (0, 1]" in proc.stderr
    assert (proc.stdout + proc.stderr).count("error:") == 1
    # the validate stage failed before DVC deleted the backtest's outputs
    assert "Running stage 'backtest'" not in proc.stdout
    assert [path.read_bytes() for path in kept] == before


def stage_outputs(repo: Path) -> dict[str, bytes]:
    """Every file the stages after validate wrote, by path: validate's own marker aside, which
    DVC deletes before it runs the stage."""
    found = (p for top in ("data", "models", "reports") for p in (repo / top).rglob("*"))
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in found
        if p.is_file() and p.relative_to(repo) != paths.PARAMS_VALID
    }


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            "evaluation.reliability_bins=0",
            "params.yaml: evaluation.reliability_bins: Input should be greater than or equal to 2,"
            " got 0",
        ),
        (
            "model.params.num_leaves=-3",
            "model.params.num_leaves: -3 is refused by lightgbm (LightGBM: num_leaves must be > 1)",
        ),
    ],
)
def test_a_bad_evaluation_or_model_value_stops_at_validate_and_keeps_every_output(
    repo, override, says
):
    """The issue's cases: read only by evaluate or train, they used to stop there, after DVC
    had deleted the reports, figures, predictions and models."""
    before = stage_outputs(repo)
    for path in (
        paths.METRICS,
        paths.EVALUATION,
        paths.MODEL,
        paths.ROC_FIGURE,
        paths.PREDICTIONS,
        paths.BACKTEST_REPORT,
    ):
        assert str(path) in before, path
    proc = dvc(repo, "exp", "run", "-S", override, ok=False)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "error:" in line]
    assert errors == [f"error: validate: {says}"], proc.stderr
    assert "Running stage 'fetch'" not in proc.stdout
    assert stage_outputs(repo) == before


def test_kalshi_source_against_the_local_server(repo, tmp_path):
    """`dvc exp run -S data=kalshi` fetches from a Kalshi-compatible server and runs it all, on
    real-shaped history: a few dozen events over four years, all closed (no book to trade
    against, as on Kalshi's recorded history: the backtest must quote from candles), and the
    split's default guards, which skip the periods too thin to score, with their reasons.
    """
    from kalshi_lab.params import params_from_dict
    from kalshi_lab.server import LocalKalshiServer, ServerConfig
    from kalshi_lab.simulator import write_synthetic_raw

    span = ["data.start=2022-01-01", "data.end=2025-12-31", "data.synthetic.n_markets=110"]
    # from conf/, as dvc exp run composes it: the workspace's params.yaml may hold a failed run's
    data = params_from_dict(yaml.safe_load(compose_text(span, repo / "conf"))).data
    write_synthetic_raw(data, tmp_path / "served")
    with LocalKalshiServer(tmp_path / "served", ServerConfig(rate_limit=False)) as srv:
        proc = dvc(
            repo,
            "exp",
            "run",
            "-n",
            "kalshi",
            "-S",
            "data=kalshi",
            "-S",
            f"data.base_url={srv.base_url}",
            "-S",
            "data.series=[KXSIMA,KXSIMB,KXSIMC,KXSIMD,KXSIME]",
            "-S",
            f"data.start={data.start}",
            "-S",
            f"data.end={data.end}",
            "-S",
            "data.rate_limit.tier=prime",
            "-S",
            "split.min_train_events=20",
            "-S",
            "split.min_scored_events=10",
        )
        served = srv.stats
    print(proc.stdout, proc.stderr)
    assert served.requests.get("historical_candlesticks", 0) > 0
    assert served.requests.get("candlesticks", 0) > 0
    evaluation = read_json(repo / "reports" / "evaluation.json")
    periods = {**evaluation["walk_forward"], "test": evaluation["test"]}
    skipped = {name: p["skipped"] for name, p in periods.items() if p and p["skipped"]}
    assert skipped, "a few dozen events leave some period too thin to score"
    proc = summary(repo)
    assert proc.returncode == 0, proc.stderr
    text = (repo / "reports" / "summary.md").read_text()
    for reason in skipped.values():
        assert f"skipped: {reason}" in text or f"skipped, {reason}" in text
    backtest = read_json(repo / "reports" / "backtest_detail.json")
    for run in (backtest["validation"], backtest.get("test") or {}):
        if run.get("n_trades"):
            assert run["n_fills_candle"] > 0 and run["n_fills_book"] == 0
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["source"] == "kalshi" and "synthetic" not in params["data"]
    # the experiments table after a run that swaps the data group (twenty data.* values): the
    # metrics stay columns, the row says what was typed, every line fits 120 characters
    row = experiment_row(experiments_table(repo), "kalshi")
    assert row.split()[3:7] == headline_cells(repo), row
    for typed in (
        "data=kalshi",
        "data.series=[KXSIMA,KXSIMB,KXSIMC,KXSIMD,KXSIME]",
        f"data.start={data.start}",
        "split.min_train_events=20",
    ):
        assert typed in row, row
