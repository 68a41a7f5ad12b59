"""End to end, as a user runs it: `dvc repro`, a queued sweep, `dvc exp show` and `dvc metrics
diff`, and another target, in a temporary git copy of the project (tests/dvc_copy.py).

The experiments of issue 6 are in test_pipeline_dvc_experiments.py: a file each, so that two
xdist workers run them side by side, each on a copy of its own.
"""

from pathlib import Path

import pytest
import yaml

from dvc_copy import (
    ROOT,
    dvc,
    experiment_row,
    experiments,
    experiments_table,
    headline_cells,
    read_json,
    reproduced_copy,
    run_queue,
    summary,
)

#: the README's experiments table (the tests run it after the README's experiments)
EXPERIMENTS = "kalshi-lab experiments"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return reproduced_copy(tmp_path_factory)


def test_repro_then_nothing_to_do_then_experiments(repo):
    metrics = read_json(repo / "reports" / "metrics.json")
    backtest = read_json(repo / "reports" / "backtest.json")
    assert set(metrics) == {"skill_vs_best", "p_no_skill"}
    assert set(backtest) == {"return", "p_loss"}
    evaluation = read_json(repo / "reports" / "evaluation.json")
    assert {"validation", "test", "walk_forward"} <= set(evaluation)
    detail = read_json(repo / "reports" / "backtest_detail.json")
    assert {"final_equity", "return_ci_low", "max_drawdown", "n_trades"} <= set(
        detail["validation"]
    )
    for figure in ("roc.png", "calibration.png", "importance.png", "equity.png"):
        assert (repo / "reports" / "figures" / figure).stat().st_size > 0

    again = dvc(repo, "repro")
    assert "Data and pipelines are up to date" in again.stdout

    # the README's sweep: one queued experiment per value, run by two queue workers.
    # Names of 10 characters, as long as DVC's generated ones, for the width check below.
    dvc(repo, "exp", "run", "--queue", "-n", "sweep-kf", "-S", "strategy.kelly_fraction=0.1,0.25")
    status = run_queue(repo, jobs=2)
    assert status.count("Success") == 2, status
    swept = {k: v for k, v in experiments(repo).items() if k.startswith("sweep-kf-")}
    assert sorted(e["params"]["strategy"]["kelly_fraction"] for e in swept.values()) == [0.1, 0.25]
    for exp in swept.values():
        assert exp["metrics"]["reports/metrics.json"] == metrics  # only the backtest re-ran
    returns = {e["metrics"]["reports/backtest.json"]["return"] for e in swept.values()}
    assert len(returns) == 2 and backtest["return"] not in returns
    assert read_json(repo / "reports" / "backtest.json") == backtest  # queued: workspace untouched

    dvc(repo, "exp", "run", "-n", "logreg-run", "-S", "model=logreg")
    assert (
        read_json(repo / "reports" / "metrics.json")["skill_vs_best"] != (metrics["skill_vs_best"])
    )
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["name"] == "logreg"

    # the README's experiments table fits a 120-column terminal, each run's -S overrides shown
    assert f"uv run {EXPERIMENTS}" in (ROOT / "README.md").read_text()
    table = experiments_table(repo)
    for name, override in [
        ("sweep-kf-1", "strategy.kelly_fraction="),
        ("sweep-kf-2", "strategy.kelly_fraction="),
        ("logreg-run", "model=logreg"),
    ]:
        row = experiment_row(table, name)
        assert override in row, table
        assert len(row.split()) >= 8, table  # name, rev, four metrics, the overrides
    assert experiment_row(table, "logreg-run").split()[3:7] == headline_cells(repo)
    diff = dvc(repo, "metrics", "diff", "--md").stdout.splitlines()
    changed = {row.split("|")[2].strip() for row in diff if row.startswith("| reports/")}
    assert {"skill_vs_best", "return"} <= changed


def test_direction_target_with_directional_strategy(repo):
    dvc(
        repo,
        "exp",
        "run",
        "-n",
        "direction",
        "-S",
        "model=lightgbm",
        "-S",
        "model.target=direction",
        "-S",
        "strategy=directional",
    )
    metrics = read_json(repo / "reports" / "metrics.json")
    assert set(metrics) == {"skill_vs_best", "p_no_skill"}
    validation = read_json(repo / "reports" / "evaluation.json")["validation"]
    assert set(validation["scores"]) == {"model", "persistence", "base_rate"}
    # the best of its references: persistence, its only one
    assert validation["best_baseline"] == "persistence"
    assert metrics["skill_vs_best"] == validation["brier_skill"]["vs_persistence"]
    # the summary reads a direction run too, against the committed baseline: the params and
    # metrics that changed come first
    proc = summary(repo, "--ref", "HEAD")
    assert proc.returncode == 0, proc.stderr
    text = (repo / "reports" / "summary.md").read_text()
    changed = text[text.index("## What changed") : text.index("## Headline")]
    assert "model.target" in changed and "skill_vs_best" in changed
    assert "against the best baseline (persistence)" in text
    # the experiments table after a run that swaps two groups: still the metrics as columns,
    # the run's own three overrides, no more
    row = experiment_row(experiments_table(repo), "direction")
    assert row.split()[3:7] == headline_cells(repo), row
    assert row.endswith("strategy=directional model.target=direction"), row
