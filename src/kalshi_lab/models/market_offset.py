"""LightGBM that starts from the market's own log-odds and learns only what the price misses.

The market price is the strongest signal there is, and trees grown from a constant learn it
badly from a few hundred events: every split spent re-deriving the price is a split not spent
on an edge, and each one is noisy. Here the boosting's initial score is the market's log-odds
(``init_score`` = ``LOGIT_MID``, the clipped log-odds of the mid at ``as_of``), so with no tree
the model *is* the market, and each tree adds a correction to it:

    P(YES) = sigmoid(LOGIT_MID + sum of the trees' raw scores)

``LOGIT_MID`` stays a feature as well, so a tree can still bend the price where it is biased
(the favourite-longshot bias, which changes with time to close).

**The level.** Over one training period the outcomes of at most a few hundred events, many
of them strikes of one underlying that settle together, sit above or below their prices by a
common shock that does not carry over to the next period (on the default simulator, the
log-odds shift that best fits the training rows is -0.11, -0.34, +0.19 and +0.14 for the two
early walk-forward folds, validation and test; on the rows each then scores, +0.38, +0.04,
-0.25 and 0.00). Trees fitted from the price would learn that shift first and lose it on every
later period. So the shift is fitted apart, as one constant ``level_`` added to the initial
score, the trees are fitted on top of it, and predictions leave it out: the trees learn how
the misses vary between rows; the overall level stays the market's. The price of this choice:
a miss that does persist (a market that overprices YES on average, year after year) is not
learned.

**No price.** A row without a quote (``LOGIT_MID`` NaN) starts from the training rows' log-odds
of YES (``prior_logit_``, learned at fit from training labels only), and the trees see the NaN
like any other missing feature. LightGBM's ``boost_from_average`` does not apply when an
``init_score`` is given, so nothing else moves the start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

# defined apart, for the models that do not import LightGBM; still importable from here
from kalshi_lab.models.offset import OFFSET_FEATURE, sigmoid

#: Newton steps of the level fit: a one-parameter convex problem, converged long before
LEVEL_STEPS = 25


def fit_level(offset: np.ndarray, y: np.ndarray) -> float:
    """The constant c maximising the Bernoulli likelihood of ``y`` under sigmoid(offset + c)."""
    c = 0.0
    for _ in range(LEVEL_STEPS):
        p = sigmoid(offset + c)
        c += float(np.sum(y - p) / max(np.sum(p * (1.0 - p)), 1e-12))
    return c


class MarketOffsetLGBMClassifier(LGBMClassifier):
    """An ``LGBMClassifier`` boosted from the market's log-odds (column :data:`OFFSET_FEATURE`).

    Takes the same feature frame as every model (a DataFrame holding ``LOGIT_MID``), has
    ``LGBMClassifier``'s hyper-parameters, and pickles like it. Binary targets only.
    """

    def fit(self, X: pd.DataFrame, y: Any, **fit_params: Any) -> MarketOffsetLGBMClassifier:
        """Fit the level, then the trees to the residual of the market's log-odds plus it;
        ``init_score`` is not accepted (the offset is read from ``X``)."""
        if "init_score" in fit_params:
            raise TypeError("the init_score is the market's log-odds, read from X")
        labels = np.asarray(y)
        if len(np.unique(labels)) != 2:
            raise ValueError("MarketOffsetLGBMClassifier needs a binary target")
        yes = (labels == np.max(labels)).astype(float)
        rate = float(np.mean(yes))
        self.prior_logit_ = float(np.log(rate / (1.0 - rate)))
        offset = self._offset(X)
        self.level_ = fit_level(offset, yes)
        return super().fit(X, y, init_score=offset + self.level_, **fit_params)

    def _offset(self, X: pd.DataFrame) -> np.ndarray:
        """The market's log-odds per row; the training prior where the market has no price."""
        if not isinstance(X, pd.DataFrame) or OFFSET_FEATURE not in X.columns:
            raise ValueError(f"the features must be a DataFrame with a {OFFSET_FEATURE} column")
        market = X[OFFSET_FEATURE].to_numpy(dtype=float)
        return np.where(np.isnan(market), self.prior_logit_, market)

    def predict_proba(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        """``[P(class 0), P(class 1)]`` per row: sigmoid of the offset plus the trees."""
        yes = sigmoid(self._offset(X) + self.booster_.predict(X, raw_score=True, **kwargs))
        return np.column_stack([1.0 - yes, yes])

    def predict(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        """The more probable class per row (LightGBM's own ``predict`` omits the offset)."""
        return self.classes_[(self.predict_proba(X, **kwargs)[:, 1] > 0.5).astype(int)]
