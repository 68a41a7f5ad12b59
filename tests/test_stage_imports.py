"""A stage imports the heavy libraries its default run uses, and no other.

Every stage is a new process, and the fetch, parquet and features stages start a fork server
that imports the stage's module again: a library imported for nothing costs its import time
once or twice per stage (LightGBM and scikit-learn's unused estimators, matplotlib before
anything is drawn, Hydra without user features: tenths of a second each). Each case imports
stage modules, and does what their default run does with the model, in a fresh interpreter,
then lists the forbidden modules it finds loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: LightGBM is the lightgbm models', matplotlib the figures' (drawn after a stage's work): the
#: default configuration (the anchored logit) needs neither before then
NO_LIGHTGBM_NO_PLOTS = ["lightgbm", "matplotlib"]
#: scikit-learn beyond its core: the other models' estimators (the evaluate stage's metrics,
#: recalibrated market and permutation importance import some of them, and need them)
ESTIMATORS = [
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
]
#: the validate stage's check of the default model: it builds and fits the estimator, as train
CHECK_DEFAULT_MODEL = (
    "import yaml\n"
    "from kalshi_lab.models import check_model_params\n"
    "from kalshi_lab.params import ModelParams\n"
    "check_model_params(ModelParams(**yaml.safe_load(open('conf/model/anchored_logit.yaml'))))\n"
)

CASES = {
    "validate, train, checking the default model": (
        ["validate", "train"],
        CHECK_DEFAULT_MODEL,
        [*NO_LIGHTGBM_NO_PLOTS, *ESTIMATORS],
    ),
    "evaluate": (["evaluate"], "", NO_LIGHTGBM_NO_PLOTS),
    # the model's libraries, and Hydra (a strategy's or a user feature's lookup)
    "fetch, parquet, features": (
        ["fetch", "parquet", "features"],
        "",
        [*NO_LIGHTGBM_NO_PLOTS, "sklearn", "scipy", "hydra", "omegaconf"],
    ),
    "backtest": (["backtest"], "", [*NO_LIGHTGBM_NO_PLOTS, "sklearn", "scipy"]),
}


def loaded(stages: list[str], then: str, forbidden: list[str]) -> list[str]:
    """The ``forbidden`` modules loaded after importing ``stages``' modules and running ``then``."""
    code = (
        "import json, sys\n"
        + "".join(f"import kalshi_lab.stages.{stage}\n" for stage in stages)
        + then
        + f"print(json.dumps([m for m in {forbidden!r} if m in sys.modules]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout.splitlines()[-1])


def test_the_default_model_is_the_one_checked():
    """The cases hold for the default configuration: its model is the anchored logit."""
    defaults = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["defaults"]
    assert {"model": "anchored_logit"} in defaults


@pytest.mark.parametrize("case", list(CASES))
def test_stages_leave_unneeded_libraries_unimported(case):
    stages, then, forbidden = CASES[case]
    assert loaded(stages, then, forbidden) == [], f"{case}: imported for nothing"


def test_the_check_sees_an_import():
    """The subprocess reports a library that is imported (the cases' empty lists mean it)."""
    assert loaded(["fetch"], "import matplotlib\n", ["matplotlib", "lightgbm"]) == ["matplotlib"]
