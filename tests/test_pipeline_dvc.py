"""End to end, as a user runs it: `dvc repro` and `dvc exp run -S ...` in a temporary git copy.

The copy gets a small simulator config (in conf/, because every `dvc exp run` recomposes
params.yaml from conf/), is committed, and then driven with the real `dvc` command line.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kalshi_lab.compose_params import compose_text

ROOT = Path(__file__).resolve().parents[1]
SMALL_SIMULATOR = {
    "n_markets": 80,
    "min_duration_days": 8,
    "max_duration_days": 25,
    "trades_per_day": 4,
}
SMALL_RANGE = {"start": "2025-01-01", "end": "2025-03-15"}
SMALL_MODEL = {"n_estimators": 60}

#: the README's `dvc exp show` for a 120-column terminal (the test runs it as written there)
EXP_SHOW = (
    "dvc exp show --no-pager --only-changed "
    "--drop 'Created|State|Executor|src/|data/|models/|model\\.params\\.'"
)

pytestmark = pytest.mark.slow


def project_files() -> list[str]:
    """Tracked plus untracked-but-not-ignored files: what a commit of this worktree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def shrink(copy: Path) -> None:
    """A small simulator and model so that each run takes seconds."""
    sim = copy / "conf" / "data" / "synthetic.yaml"
    cfg = yaml.safe_load(sim.read_text())
    cfg.update(SMALL_RANGE)
    cfg["synthetic"].update(SMALL_SIMULATOR)
    sim.write_text(yaml.safe_dump(cfg, sort_keys=False))
    lgbm = copy / "conf" / "model" / "lightgbm.yaml"
    cfg = yaml.safe_load(lgbm.read_text())
    cfg["params"].update(SMALL_MODEL)
    lgbm.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (copy / "params.yaml").write_text(compose_text([], copy / "conf"))


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """The project's tracked files, shrunk, in a git repository of their own."""
    copy = tmp_path_factory.mktemp("pipeline") / "repo"
    for rel in project_files():
        if rel.startswith(("reports/", "dvc.lock")):
            continue  # the copy produces its own
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    shrink(copy)
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "small pipeline")
    return copy


@pytest.fixture(scope="module")
def repo(project_copy) -> Path:
    """The copy with its pipeline reproduced and the results committed: the baseline every
    experiment below is compared with, whichever of the tests run."""
    dvc(project_copy, "repro")
    git(project_copy, "add", "-A")
    git(project_copy, "commit", "-q", "-m", "baseline results")
    return project_copy


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(copy / "src")  # the copy's code, not the installed checkout's
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


def git(copy: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=copy, env=env_for(copy), check=True, capture_output=True, text=True
    ).stdout


def dvc(copy: Path, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=copy,
        env={**env_for(copy), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if ok:
        assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def run_queue(copy: Path, jobs: int, timeout: float = 300.0) -> str:
    """`dvc queue start -j <jobs>`, then `dvc queue status` until nothing is queued or running."""
    dvc(copy, "queue", "start", "-j", str(jobs))
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(1)
        status = dvc(copy, "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, f"the queue is still busy:\n{status}"


def experiments(copy: Path) -> dict[str, dict]:
    """The experiments on HEAD by name: their params.yaml and metrics, from `dvc exp show --json`."""
    found = {}
    for baseline in json.loads(dvc(copy, "exp", "show", "--json").stdout):
        for exp in baseline.get("experiments") or []:
            data = exp["revs"][0].get("data") or {}
            found[exp["name"]] = {
                "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                "metrics": {f: m.get("data", {}) for f, m in data.get("metrics", {}).items()},
            }
    return found


def test_repro_then_nothing_to_do_then_experiments(repo):
    metrics = read_json(repo / "reports" / "metrics.json")
    backtest = read_json(repo / "reports" / "backtest.json")
    assert set(metrics) == {"skill_vs_recal", "p_no_skill"}
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
        read_json(repo / "reports" / "metrics.json")["skill_vs_recal"]
        != (metrics["skill_vs_recal"])
    )
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["name"] == "logreg"

    # the README's table fits a 120-column terminal: no line wider, no column cut to "…"
    assert f"uv run {EXP_SHOW}" in (ROOT / "README.md").read_text()
    table = dvc(repo, *shlex.split(EXP_SHOW)[1:], COLUMNS="120").stdout
    assert max(len(line) for line in table.splitlines()) <= 120, table
    assert "…" not in table, table
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert header == [
        "Experiment",
        "skill_vs_recal",
        "p_no_skill",
        "return",
        "p_loss",
        "model.name",
        "strategy.kelly_fraction",
    ], table
    for name in ("sweep-kf-1", "sweep-kf-2", "logreg-run"):
        assert name in table
    diff = dvc(repo, "metrics", "diff", "--md").stdout.splitlines()
    changed = {row.split("|")[2].strip() for row in diff if row.startswith("| reports/")}
    assert {"skill_vs_recal", "return"} <= changed


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


def test_direction_target_with_directional_strategy(repo):
    dvc(
        repo,
        "exp",
        "run",
        "-n",
        "direction",
        "-S",
        "model.target=direction",
        "-S",
        "strategy=directional",
    )
    metrics = read_json(repo / "reports" / "metrics.json")
    assert set(metrics) == {"skill_vs_persistence", "p_no_skill"}
    scored = read_json(repo / "reports" / "evaluation.json")["validation"]["scores"]
    assert set(scored) == {"model", "persistence", "base_rate"}


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


def test_kalshi_source_against_the_local_server(repo, tmp_path):
    """`dvc exp run -S data=kalshi` fetches from a Kalshi-compatible server and runs it all.

    The server serves a simulated dataset whose markets have all closed, so, as on real
    history, there is no book to trade against: the backtest must quote from candles.
    """
    from kalshi_lab.params import params_from_dict
    from kalshi_lab.server import LocalKalshiServer, ServerConfig
    from kalshi_lab.simulator import write_synthetic_raw

    # from conf/, as dvc exp run composes it: the workspace's params.yaml may hold a failed run's
    data = params_from_dict(yaml.safe_load(compose_text([], repo / "conf"))).data
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
        )
        served = srv.stats
    print(proc.stdout, proc.stderr)
    assert served.requests.get("historical_candlesticks", 0) > 0
    assert served.requests.get("candlesticks", 0) > 0
    backtest = read_json(repo / "reports" / "backtest_detail.json")["validation"]
    assert backtest["n_orders"] > 0
    assert backtest["n_fills_candle"] > 0 and backtest["n_fills_book"] == 0
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["source"] == "kalshi" and "synthetic" not in params["data"]
