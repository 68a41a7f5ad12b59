"""Feature importance of the trained model: what a reviewer checks for a leak or a fluke.

LightGBM reports its own split gains (the total loss reduction of the splits on each feature),
read from the fitted booster for free. Other models have no comparable native measure, so they
get permutation importance on the scored rows: how much the Brier score rises when one column
is shuffled (seeded, a few repeats).

scikit-learn's ``permutation_importance`` computes it, with two shortcuts that leave every
value as it was (tests/test_metrics_sklearn.py holds them equal to
``permutation_importance(..., scoring="neg_brier_score")``):

* the score is :func:`neg_brier_score`, the arithmetic of ``brier_score_loss`` without its
  checks of the labels on each of the (columns x repeats) calls;
* only the columns the model reads are shuffled (:func:`columns_read`): the anchored logit
  reads the market's log-odds and the few features it selected, and a column it never reads
  leaves every prediction, so every score, unchanged: an importance of exactly 0. Each
  column's shuffles are drawn from a generator of its own, seeded alike for every column, so
  leaving columns out changes no other column's shuffles.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from kalshi_lab.models.anchored_logit import MarketAnchoredLogit
from kalshi_lab.models.offset import OFFSET_FEATURE

PERMUTATION_REPEATS = 3


def feature_importance(
    model: Any, rows: pd.DataFrame, y: np.ndarray, columns: list[str], seed: int
) -> tuple[pd.DataFrame, str]:
    """(feature, importance) rows sorted descending, and what the importance measures."""
    if _is_lightgbm(model):
        gain = model.booster_.feature_importance(importance_type="gain")
        values, kind = gain / max(gain.sum(), 1e-12), "share of LightGBM split gain"
    else:
        values = _permutation_importance(model, rows[columns], y, seed)
        kind = "Brier increase when the feature is permuted"
    frame = pd.DataFrame({"feature": columns, "importance": values})
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(
        drop=True
    ), kind


def neg_brier_score(y: np.ndarray, prob: np.ndarray) -> float:
    """Minus the Brier score of probabilities ``prob`` of label 1 for labels ``y`` (0 or 1):
    the bits of scikit-learn's ``neg_brier_score`` scorer, which computes
    ``brier_score_loss`` on the two columns (label 0, label 1) and halves it."""
    yes = np.asarray(y == 1, dtype=np.int64)
    labels = np.stack((1 - yes, yes), axis=1).astype(float)
    proba = np.stack((1 - prob, prob), axis=1)
    brier = np.mean(np.sum((labels - proba) ** 2, axis=1))
    return -float(brier * 0.5)


def columns_read(model: Any, columns: list[str]) -> list[str]:
    """The columns of ``columns`` that ``model``'s predictions depend on, in their order: for
    the anchored logit the market's log-odds and its selected features (all its
    ``decision_function`` reads), for any other model every one."""
    if isinstance(model, MarketAnchoredLogit):
        read = {OFFSET_FEATURE, *model.selected_features_}
        return [c for c in columns if c in read]
    return list(columns)


def _permutation_importance(model: Any, X: pd.DataFrame, y: np.ndarray, seed: int) -> np.ndarray:
    """The mean Brier increase of each column of ``X`` permuted, as
    ``permutation_importance(model, X, y, scoring="neg_brier_score",
    n_repeats=PERMUTATION_REPEATS, random_state=seed)`` reports it."""
    columns = list(X.columns)
    read = columns_read(model, columns)
    unread = X.drop(columns=read)

    def scorer(estimator: Any, permuted: pd.DataFrame, labels: np.ndarray) -> float:
        # the model is handed every column again, the unread ones as they are (sklearn keeps
        # the index of X on the permuted frame: the rows join one to one)
        full = pd.concat([permuted, unread], axis=1) if len(unread.columns) else permuted
        return neg_brier_score(labels, estimator.predict_proba(full)[:, 1])

    result = permutation_importance(
        model,
        X[read],
        y,
        scoring=scorer,
        n_repeats=PERMUTATION_REPEATS,
        random_state=seed,
    )
    values = np.zeros(len(columns))
    values[[columns.index(c) for c in read]] = result.importances_mean
    return values


def _is_lightgbm(model: Any) -> bool:
    """Whether ``model`` is a LightGBM classifier: read from ``sys.modules``, not imported, so
    that scoring another model (the default) does not import LightGBM. A LightGBM model, built
    or unpickled, has imported it."""
    lightgbm = sys.modules.get("lightgbm")
    return lightgbm is not None and isinstance(model, lightgbm.LGBMClassifier)
