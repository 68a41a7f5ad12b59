"""Name -> estimator builders; ``conf/model/<name>.yaml`` mirrors one entry each.

Every builder returns an unfitted scikit-learn compatible classifier, seeded by
``model.seed``, that accepts NaN in its inputs (lag features are NaN before a market has
enough history): the tree models handle NaN natively, logistic regression imputes first.
``lightgbm_offset`` is LightGBM boosted from the market's log-odds
(:mod:`kalshi_lab.models.market_offset`); ``anchored_logit`` the market's log-odds plus the
features a clustered score test selects (:mod:`kalshi_lab.models.anchored_logit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kalshi_lab.errors import ParamError
from kalshi_lab.models.anchored_logit import MarketAnchoredLogit
from kalshi_lab.params import MODEL_NAMES, ModelParams

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin
    from sklearn.pipeline import Pipeline

#: LightGBM's settings that make a fit repeatable on a 2-core machine and quiet. Two threads,
#: which wait by sleeping (kalshi_lab sets OMP_WAIT_POLICY): a third slower than spinning on
#: idle cores, 6x faster with another process on them (benchmarks/bench_lightgbm_threads.py);
#: the predictions do not depend on either
LIGHTGBM_FIXED = {"deterministic": True, "force_col_wise": True, "n_jobs": 2, "verbose": -1}


def estimator_class(name: str) -> type:
    """The class model ``name`` builds (for logreg, the pipeline's last step): whose parameters
    ``model.params`` sets.

    Each library is imported here, when its model is asked for, not with this module: a
    stage that checks, fits or loads the default model (the anchored logit) does not import
    LightGBM, nor scikit-learn's estimators for it (about 0.1 s each).
    """
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression
    if name == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier
    if name == "lightgbm_offset":
        from kalshi_lab.models.market_offset import MarketOffsetLGBMClassifier

        return MarketOffsetLGBMClassifier
    if name == "anchored_logit":
        return MarketAnchoredLogit
    raise KeyError(name)


def _lightgbm(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return estimator_class("lightgbm")(random_state=seed, **LIGHTGBM_FIXED, **params)


def _lightgbm_offset(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return estimator_class("lightgbm_offset")(random_state=seed, **LIGHTGBM_FIXED, **params)


def _logreg(params: dict[str, Any], seed: int) -> Pipeline:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        estimator_class("logreg")(random_state=seed, **params),
    )


def _hist_gb(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return estimator_class("hist_gb")(random_state=seed, **params)


def _anchored_logit(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return MarketAnchoredLogit(**params)  # deterministic: no seed to take


MODEL_BUILDERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    "lightgbm": _lightgbm,
    "logreg": _logreg,
    "hist_gb": _hist_gb,
    "lightgbm_offset": _lightgbm_offset,
    "anchored_logit": _anchored_logit,
}
assert tuple(MODEL_BUILDERS) == MODEL_NAMES, "params.MODEL_NAMES and the registry must agree"

#: LightGBM parameters outside LGBMClassifier's signature that a config may set (LightGBM
#: would take any key and, quiet at verbose=-1, ignore a misspelt one): split thresholds drawn
#: at random, which curbs the optimism of searching every threshold of every feature
LIGHTGBM_EXTRA = frozenset({"extra_trees"})
_EXTRA_PARAMS = {"lightgbm": LIGHTGBM_EXTRA, "lightgbm_offset": LIGHTGBM_EXTRA}
_LIGHTGBM_SET = frozenset({"random_state", *LIGHTGBM_FIXED})
#: what each builder sets itself, so model.params may not: the seed (model.seed) and
#: LightGBM's repeatability settings
SET_BY_BUILDER: dict[str, frozenset[str]] = {
    "lightgbm": _LIGHTGBM_SET,
    "logreg": frozenset({"random_state"}),
    "hist_gb": frozenset({"random_state"}),
    "lightgbm_offset": _LIGHTGBM_SET,
    "anchored_logit": frozenset(),
}


def settable_params(name: str) -> frozenset[str]:
    """The hyper-parameters ``model.params`` may set for model ``name``."""
    known = set(estimator_class(name)().get_params()) | _EXTRA_PARAMS.get(name, frozenset())
    return frozenset(known - SET_BY_BUILDER[name])


def build_model(params: ModelParams) -> Any:
    """The unfitted estimator for ``params``; an unknown hyper-parameter is a ParamError.

    Values are not checked here (the estimators check them when they fit):
    :func:`kalshi_lab.models.hyperparams.check_model_params` does, before any stage fits.
    """
    unknown = sorted(set(params.params) - settable_params(params.name))
    if unknown:
        raise ParamError(f"model.params has keys {unknown} that {params.name} does not take")
    try:
        return MODEL_BUILDERS[params.name](dict(params.params), params.seed)
    except (TypeError, ValueError) as exc:
        raise ParamError(f"model.params invalid for {params.name}: {exc}") from None
