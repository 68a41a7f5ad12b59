"""Running a stage as DVC runs it (`python -m kalshi_lab.stages.<name>` in a working directory
with its own params.yaml): what test_stages.py and test_small_data.py share.

A stage process spends a second or more importing pandas, scikit-learn, LightGBM, SciPy and
matplotlib before it reads anything, and these tests start about sixty of them: each runs in
a fork of one process that has imported those libraries once (tests/forked_module.py), as do
the other ``python -m kalshi_lab...`` commands the end-to-end tests run (``python_m``).
"""

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

from forked_module import ForkedModules
from kalshi_lab.compose_params import compose

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["validate", "fetch", "parquet", "features", "train", "evaluate", "backtest"]
#: what the stages import from other packages (not kalshi_lab: each run imports it afresh)
_STAGE_LIBRARIES = ForkedModules(
    [
        "numpy",
        "pandas",
        "pyarrow.compute",
        "pyarrow.json",
        "pyarrow.parquet",
        "scipy.optimize",
        "scipy.stats",
        "sklearn.ensemble",
        "sklearn.impute",
        "sklearn.inspection",
        "sklearn.linear_model",
        "sklearn.metrics",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "lightgbm",
        "matplotlib.pyplot",
        "hydra.utils",
        "omegaconf",
        "pydantic",
        "joblib",
        "requests",
        "cryptography.hazmat.primitives.asymmetric.rsa",
        "orjson",
        "yaml",
    ]
)


def run_stage(workdir: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m kalshi_lab.stages.<name> *args`` in ``workdir``, on this checkout's code."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return python_m(f"kalshi_lab.stages.{name}", args, workdir, env, timeout=300)


def python_m(
    module: str, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout=120
) -> subprocess.CompletedProcess:
    """``python -m module *args`` in ``cwd`` (``env``: the environment, else this process's),
    for a module of kalshi_lab: a fork of the process that has its libraries imported."""
    return _STAGE_LIBRARIES.run(
        module, args, cwd, dict(os.environ) if env is None else env, timeout
    )


def write_composed_params(workdir: Path, overrides: list[str]) -> None:
    """``workdir/params.yaml``: conf/ composed with ``overrides``, as compose_params writes it."""
    (workdir / "params.yaml").write_text(
        yaml.safe_dump(compose(overrides, ROOT / "conf"), sort_keys=False)
    )
