"""The validate stage refuses a bad value in every section of params.yaml, the model's
hyper-parameters included, with one ``error:`` line naming it and no output; every model
config passes it as shipped.

The stage runs in this process (its ``main`` through ``run_stage``, as ``python -m`` runs it)
in a directory holding only the params.yaml that ``dvc exp run -S <override>`` would compose,
so a case costs a Hydra compose and the check, not a Python start; the end-to-end run of the
same through DVC is in test_pipeline_dvc_experiments.py.
"""

import re
from pathlib import Path

import pytest
import yaml

from kalshi_lab import paths
from kalshi_lab.params import MODEL_NAMES
from kalshi_lab.stages import validate
from kalshi_lab.stages.runner import run_stage
from stage_support import ROOT, write_composed_params

#: one bad value per section of params.yaml at least: (the overrides, as `dvc exp run -S`
#: takes them, the key the error must name, what it says about it)
SECTIONS = [
    (["data.synthetic.n_markets=0"], "data.synthetic.n_markets", "greater than or equal to 1"),
    (["data.start=someday"], "data.start", "Input should be a valid date"),
    (["features.n_lags=0"], "features.n_lags", "greater than or equal to 1"),
    (["features.leak_check.cutoffs=abc"], "features.leak_check.cutoffs", "valid integer"),
    (["split.train_size=1.0"], "split.train_size", "Input should be less than 1"),
    (["split.embargo_days=-1"], "split.embargo_days", "greater than or equal to 0"),
    (
        ["evaluation.reliability_bins=0"],
        "evaluation.reliability_bins",
        "greater than or equal to 2",
    ),
    (["evaluation.bootstrap_samples=abc"], "evaluation.bootstrap_samples", "valid integer"),
    (["evaluation.bootstrap_seed=0.5"], "evaluation.bootstrap_seed", "valid integer"),
    (["model.name=xgboost"], "model.name", "Input should be 'lightgbm'"),
    (["model=lightgbm_offset", "model.target=direction"], "model.target", "must be settlement"),
    (["strategy.kelly_fraction=1.5"], "strategy.kelly_fraction", "must be in (0, 1]"),
    (["risk.max_position_frac=0"], "risk.max_position_frac", "greater than 0"),
    (["risk.kill_switch=maybe"], "risk.kill_switch", "valid boolean"),
    (["backtest.executor=instant"], "backtest.executor", "Input should be 'simple' or 'nested'"),
    (["backtest.latency_hours=[6,-1]"], "backtest.latency_hours[1]", "greater than 0"),
    (["compute.workers=0"], "compute.workers", "greater than or equal to 1"),
    (["compute.address=tcp://127.0.0.1:8786"], "compute.address", "set compute=dask"),
]

#: per model of conf/model/: a value out of range, a string for a number, a name the estimator
#: does not take; each refused by the library's own rules, as quoted
MODEL_PARAMS = {
    "lightgbm": [
        ("num_leaves=-3", "-3 is refused by lightgbm (LightGBM: num_leaves must be > 1)"),
        ("learning_rate=abc", "'abc' is refused by lightgbm (LGBMClassifier takes learning_rate"),
        ("+model.params.num_leafs=8", "lightgbm takes no such parameter (did you mean num_leaves"),
        ("subsample=1.5", "(LightGBM: bagging_fraction must be <= 1.0)"),
        ("n_estimators=0", "(LightGBM: Number of boosting rounds must be greater than 0"),
    ],
    "lightgbm_offset": [
        ("num_leaves=-3", "-3 is refused by lightgbm_offset (LightGBM: num_leaves must be > 1)"),
        ("learning_rate=abc", "'abc' is refused by lightgbm_offset (MarketOffsetLGBMClassifier"),
        ("+model.params.extra_tress=true", "takes no such parameter (did you mean extra_trees?)"),
        # outside LGBMClassifier's signature: LightGBM's own parser judges it
        ("extra_trees=abc", "'abc' is refused by lightgbm_offset (LightGBM: Parameter extra_trees"),
    ],
    "hist_gb": [
        ("max_leaf_nodes=1", "1 is refused by hist_gb (scikit-learn: The 'max_leaf_nodes' param"),
        ("learning_rate=abc", "(scikit-learn: The 'learning_rate' parameter of HistGradientBoo"),
        ("+model.params.n_estimators=5", "hist_gb takes no such parameter"),
    ],
    "logreg": [
        ("C=-1", "-1 is refused by logreg (scikit-learn: The 'C' parameter of LogisticRegression"),
        ("max_iter=abc", "'abc' is refused by logreg (scikit-learn: The 'max_iter' parameter"),
        ("+model.params.c=1", "logreg takes no such parameter (did you mean C?)"),
        # a rule between two parameters, checked when LogisticRegression fits
        ("+model.params.penalty=l1", "(scikit-learn: Solver lbfgs supports only 'l2' or None"),
        ("+model.params.random_state=3", "set by kalshi_lab.models.registry for logreg"),
    ],
    "anchored_logit": [
        ("alpha=2", "2 is refused by anchored_logit (scikit-learn: The 'alpha' parameter of Ma"),
        ("ridge=abc", "'abc' is refused by anchored_logit (MarketAnchoredLogit takes ridge"),
        ("max_features=-1", "(scikit-learn: The 'max_features' parameter of MarketAnchoredLogit"),
        ("+model.params.beta=1", "anchored_logit takes no such parameter"),
    ],
}


def model_case(name: str, override: str, says: str) -> tuple[list[str], str, str]:
    setting = override if override.startswith("+") else f"model.params.{override}"
    key = setting.lstrip("+").split("=")[0]
    return [f"model={name}", setting], key, says


CASES = SECTIONS + [
    model_case(name, *case) for name, cases in MODEL_PARAMS.items() for case in cases
]


def run_validate(workdir: Path, overrides: list[str]) -> int:
    """The stage on ``overrides`` composed into ``workdir/params.yaml``: its exit code."""
    write_composed_params(workdir, overrides)
    try:
        run_stage("validate", validate.main, argv=[])
    except SystemExit as exc:
        return int(exc.code)
    return 0


def test_every_section_and_every_model_has_a_bad_value_case():
    sections = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert {overrides[0].split(".")[0] for overrides, _, _ in SECTIONS} >= sections
    conf = {p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")}
    assert set(MODEL_PARAMS) == conf == set(MODEL_NAMES)


@pytest.mark.parametrize(("overrides", "key", "says"), CASES, ids=lambda v: str(v))
def test_a_bad_value_stops_validate_with_one_line_naming_it(
    tmp_path, monkeypatch, capfd, overrides, key, says
):
    monkeypatch.chdir(tmp_path)
    assert run_validate(tmp_path, overrides) == 2
    out, err = capfd.readouterr()
    # one line, at the file descriptors: nothing LightGBM's C++ code printed got through
    assert err.splitlines() == [err.strip()] and out == ""
    assert err.startswith("error: validate: ")
    assert re.search(rf"{re.escape(key)}(?![\w.\[])", err) and says in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_config_passes_as_shipped(tmp_path, monkeypatch, capfd, name):
    monkeypatch.chdir(tmp_path)
    assert run_validate(tmp_path, [f"model={name}"]) == 0
    assert "error" not in capfd.readouterr().err
    assert (tmp_path / paths.PARAMS_VALID).read_text() == validate.VALID


def test_the_readme_s_example_is_what_validate_prints(tmp_path, monkeypatch, capfd):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## When a stage fails: your last results")[1].split("\n## ")[0]
    for section_name in yaml.safe_load((ROOT / "params.yaml").read_text()):
        assert f"`{section_name}`" in section, section_name
    shown = re.search(r"```text\n(error: validate: .*)\n```", section).group(1)
    monkeypatch.chdir(tmp_path)
    assert run_validate(tmp_path, ["model=lightgbm", "model.params.num_leaves=-3"]) == 2
    assert capfd.readouterr().err == shown + "\n"
