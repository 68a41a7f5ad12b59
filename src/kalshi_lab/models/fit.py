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
    params: ModelParams, rows: pd.DataFrame, y: np.ndarray, columns: list[str], what: str
) -> Any:
    """``params``' estimator fit on ``rows[columns]`` and labels ``y``; ``what`` names the split
    in the error raised when the rows hold a single class (nothing to learn)."""
    if len(np.unique(y)) < 2:
        raise DataError(
            f"the training rows of {what} for target {params.target} hold a single class "
            f"({len(y)} rows)"
        )
    return fit_estimator(build_model(params), rows, y, columns)


def fit_estimator(model: Any, rows: pd.DataFrame, y: np.ndarray, columns: list[str]) -> Any:
    """``model`` (built by :func:`build_model`) fit on ``rows[columns]`` and labels ``y``."""
    if "groups" in inspect.signature(model.fit).parameters:
        # a model that counts evidence in events, not rows (MarketAnchoredLogit)
        model.fit(rows[columns], y, groups=rows["event_ticker"].to_numpy())
    else:
        model.fit(rows[columns], y)
    return model
