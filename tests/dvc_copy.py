"""A temporary git copy of the project, driven with the real `dvc` command line: what the
end-to-end tests (test_pipeline_dvc*.py) share; their fixtures are in conftest.py.

The copy gets a small simulator config (in conf/, because every `dvc exp run` recomposes
params.yaml from conf/) and is committed.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from kalshi_lab.compose_params import compose_text
from stage_support import python_m

ROOT = Path(__file__).resolve().parents[1]
SMALL_SIMULATOR = {
    "n_markets": 80,
    "min_duration_days": 8,
    "max_duration_days": 25,
    "trades_per_day": 4,
}
SMALL_RANGE = {"start": "2025-01-01", "end": "2025-03-15"}
SMALL_MODEL = {"n_estimators": 60}
#: the small copy holds about 30 events (validation scores 4 of them for model.target=direction):
#: the guards' defaults would skip validation
SMALL_SPLIT = {"min_train_events": 10, "min_scored_events": 3}


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
    """A small simulator and model so that each run takes seconds, and guards for its few
    events. The copy's default model is LightGBM: the project's default, anchored_logit, is
    the market itself on data without an edge and places no order, and these tests are about
    how experiments change a backtest."""
    config = copy / "conf" / "config.yaml"
    text = config.read_text()
    assert "  - model: anchored_logit" in text, "conf/config.yaml's default model moved"
    config.write_text(text.replace("  - model: anchored_logit", "  - model: lightgbm"))
    sim = copy / "conf" / "data" / "synthetic.yaml"
    cfg = yaml.safe_load(sim.read_text())
    cfg.update(SMALL_RANGE)
    cfg["synthetic"].update(SMALL_SIMULATOR)
    sim.write_text(yaml.safe_dump(cfg, sort_keys=False))
    lgbm = copy / "conf" / "model" / "lightgbm.yaml"
    cfg = yaml.safe_load(lgbm.read_text())
    cfg["params"].update(SMALL_MODEL)
    lgbm.write_text(yaml.safe_dump(cfg, sort_keys=False))
    split = copy / "conf" / "split" / "chronological.yaml"
    cfg = yaml.safe_load(split.read_text())
    cfg.update(SMALL_SPLIT)
    split.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (copy / "params.yaml").write_text(compose_text([], copy / "conf"))


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


def summary(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """``kalshi-lab summary`` in the copy, on its code."""
    return python_m("kalshi_lab.cli", ["summary", *args], copy, env_for(copy))


def experiments_table(copy: Path, columns: int = 120) -> str:
    """The README's experiments table (``kalshi-lab experiments``) in the copy, as a terminal of
    ``columns`` characters shows it; checked as a user reads it: no wider, the headline metrics
    as columns."""
    proc = python_m(
        "kalshi_lab.cli", ["experiments"], copy, {**env_for(copy), "COLUMNS": str(columns)}
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    assert max(len(line) for line in table.splitlines()) <= columns, table
    header = table.splitlines()[1].split()
    assert header[:5] == ["Experiment", "skill_vs_best", "p_no_skill", "return", "p_loss"], table
    return table


def experiment_row(table: str, name: str) -> str:
    """An experiment's line and the overrides wrapped under it, as one line."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if f"[{name}]" in line)
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return " ".join(line.strip() for line in lines[start:end])


def headline_cells(copy: Path) -> list[str]:
    """The workspace's four headline metrics as the table prints them ("-": none)."""
    values = {**read_json(copy / "reports" / "metrics.json")}
    values.update(read_json(copy / "reports" / "backtest.json"))
    return [
        "-" if values.get(k) is None else format(values[k], ".5g")
        for k in ("skill_vs_best", "p_no_skill", "return", "p_loss")
    ]


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


def reproduced_copy(tmp_path_factory) -> Path:
    """The project's tracked files, shrunk, in a git repository of their own, its pipeline
    reproduced and the results committed: the baseline the experiments are compared with.

    A copy of its own for each caller, of one reproduced once per test session: building it is
    a whole `dvc repro` (half a minute), and a copy of the result is the same repository."""
    copy = tmp_path_factory.mktemp("pipeline") / "repo"
    shutil.copytree(_reproduced_template(tmp_path_factory), copy, symlinks=True)
    return copy


def _reproduced_template(tmp_path_factory) -> Path:
    """The session's reproduced copy, built by whichever xdist worker asks first while the
    others wait on a lock file: in the directory every worker's temporary directory is in
    (under xdist), else in the session's own."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    template = root / "reproduced-template" / "repo"
    with open(root / "reproduced-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not template.exists():
            building = root / "reproduced-building" / "repo"
            shutil.rmtree(building.parent, ignore_errors=True)  # a failed build's leftovers
            _reproduce(building)
            building.parent.rename(template.parent)  # whole or not at all
    return template


def _reproduce(copy: Path) -> None:
    """The project's files, shrunk, in a new git repository at ``copy``, reproduced and
    committed."""
    for rel in project_files():
        if rel.startswith(("reports/", "dvc.lock")):
            continue  # the copy produces its own
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    shrink(copy)
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "small pipeline")
    dvc(copy, "repro")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "baseline results")
