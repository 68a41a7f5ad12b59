"""Running a stage as DVC runs it (`python -m kalshi_lab.stages.<name>` in a working directory
with its own params.yaml): what test_stages.py and test_small_data.py share."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from kalshi_lab.compose_params import compose

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["validate", "fetch", "parquet", "features", "train", "evaluate", "backtest"]


def run_stage(workdir: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", f"kalshi_lab.stages.{name}", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_composed_params(workdir: Path, overrides: list[str]) -> None:
    """``workdir/params.yaml``: conf/ composed with ``overrides``, as compose_params writes it."""
    (workdir / "params.yaml").write_text(
        yaml.safe_dump(compose(overrides, ROOT / "conf"), sort_keys=False)
    )
