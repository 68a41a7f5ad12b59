"""The model registry and the market-offset LightGBM: it starts from the market's log-odds,
learns what the price misses, and behaves like every other model to the stages."""

import os
import subprocess
import sys
from pathlib import Path

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import clone

from kalshi_lab.errors import ParamError
from kalshi_lab.evaluation.metrics import brier_per_row
from kalshi_lab.models import build_model, check_model_params, fit_model
from kalshi_lab.models.market_offset import (
    OFFSET_FEATURE,
    MarketOffsetLGBMClassifier,
    fit_level,
    sigmoid,
)
from kalshi_lab.params import MODEL_NAMES, ModelParams

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
#: n_jobs=1: two test workers share two cores
QUIET = {"deterministic": True, "force_col_wise": True, "n_jobs": 1, "verbose": -1}


def conf_params(name: str) -> ModelParams:
    """``conf/model/<name>.yaml`` as the stages see it."""
    return ModelParams(**yaml.safe_load((CONF / f"{name}.yaml").read_text()))


def markets(n: int, seed: int, edge: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Market log-odds, a signal worth ``edge`` log-odds per unit that the price misses, a
    noise column; outcomes drawn from the price plus that edge, shifted by a common -0.5 (a
    level the price misses on these rows only)."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 1.5, n)
    signal = rng.normal(0.0, 1.0, n)
    X = pd.DataFrame({OFFSET_FEATURE: market, "SIGNAL": signal, "NOISE": rng.normal(size=n)})
    y = (rng.uniform(size=n) < sigmoid(market + edge * signal - 0.5)).astype(int)
    return X, y


def offset_model(**params) -> MarketOffsetLGBMClassifier:
    return MarketOffsetLGBMClassifier(random_state=0, **QUIET, **params)


def test_with_no_split_the_model_is_the_market_exactly():
    X, y = markets(500, 0)
    model = offset_model(n_estimators=5, min_child_samples=10_000).fit(X, y)
    assert model.level_ < -0.2  # the rows' level is off the price ...
    # ... and predictions leave it out: the market's probability, to the last bit
    assert np.array_equal(model.predict_proba(X)[:, 1], sigmoid(X[OFFSET_FEATURE].to_numpy()))
    assert model.predict_proba(X)[:, 0] == pytest.approx(1 - sigmoid(X[OFFSET_FEATURE]))


def test_predictions_are_the_sigmoid_of_market_plus_trees_fit_from_market_plus_level():
    X, y = markets(2_000, 1, edge=1.0)
    params = {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 50, "learning_rate": 0.1}
    model = offset_model(**params).fit(X, y)
    # the same boosting run through LightGBM's own API, from init_score = market + level
    start = X[OFFSET_FEATURE].to_numpy() + fit_level(X[OFFSET_FEATURE].to_numpy(), y)
    booster = lightgbm.train(
        {"objective": "binary", "seed": 0, **QUIET, **params} | {"num_iterations": 20},
        lightgbm.Dataset(X, y, init_score=start),
    )
    trees = booster.predict(X, raw_score=True)
    assert np.abs(trees).max() > 0.1  # the trees do correct the market
    expected = sigmoid(X[OFFSET_FEATURE].to_numpy() + trees)
    assert model.predict_proba(X)[:, 1] == pytest.approx(expected, abs=1e-12)
    assert np.array_equal(model.predict(X), (expected > 0.5).astype(int))


def test_the_level_is_the_maximum_likelihood_shift_of_the_offset():
    X, y = markets(3_000, 2)
    offset = X[OFFSET_FEATURE].to_numpy()
    level = fit_level(offset, y)
    assert np.sum(y - sigmoid(offset + level)) == pytest.approx(0.0, abs=1e-8)
    assert level == pytest.approx(-0.5, abs=0.15)  # the shift markets() draws outcomes with


def test_a_row_without_a_market_price_starts_from_the_training_base_rate():
    X, y = markets(500, 3)
    model = offset_model(n_estimators=5, min_child_samples=10_000).fit(X, y)
    unpriced = X.head(3).assign(**{OFFSET_FEATURE: np.nan})
    assert model.predict_proba(unpriced)[:, 1] == pytest.approx([y.mean()] * 3, abs=1e-12)
    # NaN prices in training: the level is fit on the prior there, and the fit still works
    gappy = X.assign(**{OFFSET_FEATURE: X[OFFSET_FEATURE].where(np.arange(500) % 5 > 0)})
    fitted = offset_model(n_estimators=5, min_child_samples=20).fit(gappy, y)
    assert np.isfinite(fitted.predict_proba(gappy)).all()


def test_fit_is_deterministic_and_survives_a_joblib_round_trip(tmp_path):
    X, y = markets(2_000, 4, edge=1.0)
    params = {"n_estimators": 30, "subsample": 0.7, "subsample_freq": 1, "colsample_bytree": 0.7}
    first = offset_model(extra_trees=True, **params).fit(X, y)
    again = offset_model(extra_trees=True, **params).fit(X, y)
    assert np.array_equal(first.predict_proba(X), again.predict_proba(X))
    joblib.dump(first, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert np.array_equal(loaded.predict_proba(X), first.predict_proba(X))


def test_clone_keeps_the_hyper_parameters():
    model = offset_model(n_estimators=7, reg_lambda=300.0, extra_trees=True)
    copy = clone(model)
    assert (copy.n_estimators, copy.reg_lambda, copy.get_params()["extra_trees"]) == (7, 300, True)


def test_the_offset_comes_from_the_frame_only():
    X, y = markets(200, 5)
    with pytest.raises(TypeError, match="init_score"):
        offset_model().fit(X, y, init_score=np.zeros(len(y)))
    with pytest.raises(ValueError, match=OFFSET_FEATURE):
        offset_model().fit(X.drop(columns=OFFSET_FEATURE), y)
    with pytest.raises(ValueError, match=OFFSET_FEATURE):
        offset_model().fit(X.to_numpy(), y)


def brier_skill_vs_market(params: ModelParams, edge: float) -> float:
    """The configured model fit on one sample and scored on another: 1 - Brier / market's."""
    X, y = markets(6_000, 6, edge)
    X_new, y_new = markets(6_000, 7, edge)
    model = fit_model(params, X, y, np.arange(len(y)), "the test")
    brier = brier_per_row(y_new, model.predict_proba(X_new)[:, 1]).mean()
    return 1.0 - brier / brier_per_row(y_new, sigmoid(X_new[OFFSET_FEATURE])).mean()


def test_the_default_regularisation_learns_an_edge_and_stays_near_the_market_without_one():
    params = conf_params("lightgbm_offset")
    assert brier_skill_vs_market(params, edge=1.0) > 0.04
    assert abs(brier_skill_vs_market(params, edge=0.0)) < 0.005


def test_every_model_config_builds_and_the_offset_config_builds_the_offset_model():
    for name in MODEL_NAMES:
        assert hasattr(build_model(conf_params(name)), "predict_proba")
    params = conf_params("lightgbm_offset")
    model = build_model(params)
    assert type(model) is MarketOffsetLGBMClassifier
    assert {k: model.get_params()[k] for k in params.params} == params.params


def test_lightgbm_takes_extra_trees_and_refuses_unknown_keys():
    for name in ("lightgbm", "lightgbm_offset"):
        params = ModelParams(name, "settlement", 0, {"extra_trees": True})
        assert build_model(params).get_params()["extra_trees"] is True
        with pytest.raises(ParamError, match=r"\['extra_tress'\]"):
            build_model(ModelParams(name, "settlement", 0, {"extra_tress": True}))
    with pytest.raises(ParamError, match="extra_trees"):
        build_model(ModelParams("logreg", "settlement", 0, {"extra_trees": True}))


def test_the_check_blames_the_key_at_fault_not_one_that_needs_company():
    """LightGBM's random forest needs bagging: with the config's bagging it is valid, and a bad
    num_leaves beside it is the fault; without bagging, boosting_type is; of two bad keys, the
    first is named."""
    bagged = {"boosting_type": "rf", **conf_params("lightgbm").params}
    check_model_params(ModelParams("lightgbm", "settlement", 0, bagged))
    with pytest.raises(ParamError, match=r"^model\.params\.num_leaves: -3 is refused by lightgbm"):
        check_model_params(ModelParams("lightgbm", "settlement", 0, bagged | {"num_leaves": -3}))
    with pytest.raises(
        ParamError,
        match=r"^model\.params\.boosting_type: 'rf' is refused by lightgbm \(LightGBM: Check "
        r"failed: \(config->bagging_freq > 0",
    ):
        check_model_params(ModelParams("lightgbm", "settlement", 0, {"boosting_type": "rf"}))
    two_bad = {"num_leaves": -3, "learning_rate": -1.0}
    with pytest.raises(ParamError, match=r"^model\.params\.num_leaves: -3 .* must be > 1\)$"):
        check_model_params(ModelParams("lightgbm", "settlement", 0, two_bad))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lightgbm", {"subsample": 0.001, "subsample_freq": 1}),  # bags 2 of the check's rows
        ("hist_gb", {"early_stopping": True, "validation_fraction": 0.001}),
        ("lightgbm", {"n_estimators": 100_000}),  # fitted in one round, not 100 000
    ],
)
def test_the_check_passes_values_that_are_valid_on_the_train_stage_s_rows(name, params):
    """A share of the check's few rows must not be refused when the same share of the
    thousands of rows the train stage fits is fine."""
    check_model_params(ModelParams(name, "settlement", 0, params))


#: in a fresh interpreter, as a stage starts: the wait policy libgomp is loaded with, then the
#: lightgbm config fit (the registry's settings) at each n_jobs in argv, a hash of each's
#: predictions
FIT_IN_A_CHILD = """
import hashlib, os, sys
import kalshi_lab
import numpy as np
from kalshi_lab.models import build_model
from kalshi_lab.params import ModelParams
print(os.environ.get("OMP_WAIT_POLICY"))
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 6))
x[rng.random(x.shape) < 0.1] = np.nan
y = (np.nan_to_num(x[:, 0]) + rng.normal(size=3000) > 0).astype(int)
params = {"n_estimators": 30, "num_leaves": 15, "subsample": 0.8, "subsample_freq": 1}
for jobs in sys.argv[1:]:
    model = build_model(ModelParams("lightgbm", "settlement", 0, params)).set_params(n_jobs=int(jobs))
    print(hashlib.sha256(model.fit(x, y).predict_proba(x).tobytes()).hexdigest())
"""


def _fit_in_a_child(env: dict[str, str], *jobs: str) -> list[str]:
    cmd = [sys.executable, "-c", FIT_IN_A_CHILD, *jobs]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()


def test_openmp_threads_sleep_unless_the_user_says_and_n_jobs_changes_no_prediction():
    """Waiting OpenMP threads sleep (a busy machine's LightGBM fits were 2-7x slower with them
    spinning) unless the user set the policy; n_jobs changes no prediction (the policy cannot:
    benchmarks/bench_lightgbm_threads.py compares all four on a large fit)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    policy, *predictions = _fit_in_a_child(env, "1", "2")
    assert policy == "PASSIVE"
    assert len(predictions) == 2 and predictions[0] == predictions[1]
    theirs = [sys.executable, "-c", "import os, kalshi_lab; print(os.environ['OMP_WAIT_POLICY'])"]
    proc = subprocess.run(theirs, env=env | {"OMP_WAIT_POLICY": "active"}, capture_output=True)
    assert proc.stdout == b"active\n"


def test_the_offset_model_predicts_settlement_only():
    with pytest.raises(ParamError, match=r"^model\.target: must be settlement"):
        ModelParams("lightgbm_offset", "direction", 0)
    assert ModelParams("lightgbm", "direction", 0).target == "direction"
