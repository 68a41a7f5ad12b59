"""Classifiers selected by the ``model`` config group.

``MarketOffsetLGBMClassifier`` is imported when first asked for: it imports LightGBM, which
the default model (the anchored logit) and the stages that fit, check or load it never use.
"""

from kalshi_lab.models.anchored_logit import MarketAnchoredLogit
from kalshi_lab.models.fit import fit_model
from kalshi_lab.models.hyperparams import check_model_params
from kalshi_lab.models.registry import MODEL_BUILDERS, build_model


def __getattr__(name: str) -> object:
    """``MarketOffsetLGBMClassifier`` on first use (PEP 562)."""
    if name == "MarketOffsetLGBMClassifier":
        from kalshi_lab.models.market_offset import MarketOffsetLGBMClassifier

        return MarketOffsetLGBMClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MODEL_BUILDERS",
    "MarketAnchoredLogit",
    "MarketOffsetLGBMClassifier",
    "build_model",
    "check_model_params",
    "fit_model",
]
