"""Name -> estimator builders; ``conf/model/<name>.yaml`` mirrors one entry each.

Every builder returns an unfitted scikit-learn compatible classifier, seeded by
``model.seed``, that accepts NaN in its inputs (lag features are NaN before a market has
enough history): the tree models handle NaN natively, logistic regression imputes first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightgbm import LGBMClassifier
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from kalshi_lab.errors import ParamError
from kalshi_lab.params import MODEL_NAMES, ModelParams


def _lightgbm(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return LGBMClassifier(
        random_state=seed, deterministic=True, force_col_wise=True, n_jobs=2, verbose=-1, **params
    )


def _logreg(params: dict[str, Any], seed: int) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(random_state=seed, **params),
    )


def _hist_gb(params: dict[str, Any], seed: int) -> ClassifierMixin:
    return HistGradientBoostingClassifier(random_state=seed, **params)


MODEL_BUILDERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    "lightgbm": _lightgbm,
    "logreg": _logreg,
    "hist_gb": _hist_gb,
}
assert tuple(MODEL_BUILDERS) == MODEL_NAMES, "params.MODEL_NAMES and the registry must agree"

_ESTIMATOR_CLASSES = {
    "lightgbm": LGBMClassifier,
    "logreg": LogisticRegression,
    "hist_gb": HistGradientBoostingClassifier,
}


def build_model(params: ModelParams) -> Any:
    """The unfitted estimator for ``params``; an unknown hyper-parameter is a ParamError."""
    known = set(_ESTIMATOR_CLASSES[params.name]().get_params())
    unknown = sorted(set(params.params) - known)
    if unknown:
        raise ParamError(f"model.params has keys {unknown} that {params.name} does not take")
    try:
        return MODEL_BUILDERS[params.name](dict(params.params), params.seed)
    except (TypeError, ValueError) as exc:
        raise ParamError(f"model.params invalid for {params.name}: {exc}") from None
