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
    params: ModelParams,
    rows: pd.DataFrame,
    y: np.ndarray,
    columns: list[str],
    what: str,
    n_jobs: int | None = None,
) -> Any:
    """``params``' estimator fit on ``rows[columns]`` and labels ``y``; ``what`` names the split
    in the error raised when the rows hold a single class (nothing to learn).

    ``n_jobs``, when given, is the threads of a model that takes them (LightGBM's) for this fit
    only: a fit in a worker process beside others takes one. The fitted model keeps the
    registry's setting, for its predictions; a thread count changes no prediction.
    """
    if len(np.unique(y)) < 2:
        raise DataError(
            f"the training rows of {what} for target {params.target} hold a single class "
            f"({len(y)} rows)"
        )
    model = build_model(params)
    if n_jobs is None or "n_jobs" not in model.get_params():
        return fit_estimator(model, rows, y, columns)
    configured = model.get_params()["n_jobs"]
    fit_estimator(model.set_params(n_jobs=n_jobs), rows, y, columns)
    return model.set_params(n_jobs=configured)


def fit_estimator(model: Any, rows: pd.DataFrame, y: np.ndarray, columns: list[str]) -> Any:
    """``model`` (built by :func:`build_model`) fit on ``rows[columns]`` and labels ``y``."""
    if "groups" in inspect.signature(model.fit).parameters:
        # a model that counts evidence in events, not rows (MarketAnchoredLogit)
        model.fit(rows[columns], y, groups=rows["event_ticker"].to_numpy())
    else:
        model.fit(rows[columns], y)
    return model
