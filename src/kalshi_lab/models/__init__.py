"""Classifiers selected by the ``model`` config group."""

from kalshi_lab.models.anchored_logit import MarketAnchoredLogit
from kalshi_lab.models.fit import fit_model
from kalshi_lab.models.hyperparams import check_model_params
from kalshi_lab.models.market_offset import MarketOffsetLGBMClassifier
from kalshi_lab.models.registry import MODEL_BUILDERS, build_model

__all__ = [
    "MODEL_BUILDERS",
    "MarketAnchoredLogit",
    "MarketOffsetLGBMClassifier",
    "build_model",
    "check_model_params",
    "fit_model",
]
