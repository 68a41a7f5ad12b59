"""Fit the configured classifier on the labelled training rows of one split."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.models.registry import build_model
from kalshi_lab.params import ModelParams


def fit_model(
    params: ModelParams, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, what: str
) -> Any:
    """``params``' estimator fit on the inputs ``X`` (every column a model input), labels ``y``
    and each row's event ``groups``; ``what`` names the split in the error raised when the rows
    hold a single class (nothing to learn)."""
    if len(np.unique(y)) < 2:
        raise DataError(
            f"the training rows of {what} for target {params.target} hold a single class "
            f"({len(y)} rows)"
        )
    return fit_estimator(build_model(params), X, y, groups)


def fit_estimator(model: Any, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray) -> Any:
    """``model`` (built by :func:`build_model`) fit on ``X`` and labels ``y``; ``groups``
    (each row's event) goes to a model that counts evidence in events, not rows
    (MarketAnchoredLogit). ``X`` is the caller's frame of inputs, not a selection made here:
    a copy of the training matrix fewer."""
    if "groups" in inspect.signature(model.fit).parameters:
        model.fit(X, y, groups=groups)
    else:
        model.fit(X, y)
    return model
