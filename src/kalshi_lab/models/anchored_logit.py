"""The market, unless the training events say otherwise: a logistic model anchored at the price.

    logit P(YES) = LOGIT_MID + sum over the selected features of w_j z_j

where ``LOGIT_MID`` is the market's log-odds at ``as_of`` (the offset, never estimated) and
``z_j`` a feature standardised on the training rows. With no feature selected the model *is*
the market price. A feature enters only when the training data, counted in events, not rows,
show that the market misses what it carries:

1. Forward selection by a **score test with events as clusters**. At the current fit, a
   feature's score is ``S_j = sum_rows z_j (y - p)``: the slope of the log-likelihood in its
   coefficient at 0. The rows of one event share one outcome (its days, its strikes on one
   underlying), so S_j's variance is taken over events, ``V_j = sum_events (sum of its rows'
   z_j (y - p))^2`` (the cluster-robust, sandwich variance): a hundred days of one market
   count as one observation, not a hundred. The feature with the largest ``|S_j| / sqrt(V_j)``
   enters if that exceeds the two-sided ``alpha`` quantile, Bonferroni-corrected for the
   number of features; the others are tested again against the new fit, until none passes or
   ``max_features`` are in.
2. The coefficients of the selected features are fitted by maximum likelihood (a ridge of
   ``ridge`` per row keeps a separable fit finite), with the offset and **no intercept**: over
   one training period, a few hundred events' outcomes sit above or below their prices by a
   common shock that does not carry over to the next period; an intercept would learn it and
   lose it on every later period. The market's overall level is trusted.

Why not trees: on the default simulator, a LightGBM grown from a constant scores 26 % worse
than the market price on validation, and one boosted from the price's log-odds still 6 % worse:
every split fitted to a few hundred correlated events adds noise to the price. This model adds
none unless a feature is significant across events, and then adds it at full strength (the
selection shrinks nothing, unlike an L1 penalty). Measured in ``benchmarks/model_vs_market.py``.

A row without a quote starts from the training rows' log-odds of YES (``prior_logit_``);
a missing feature value takes the training median, as in ``logreg``. Pass ``groups`` (the event of each training row) to :meth:`fit`; without it every row is its
own cluster, which over-counts evidence (``kalshi_lab.models.fit_model`` passes events).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin

# scikit-learn's own parameter checks, as its estimators declare them: the validate stage reads
# them through _validate_params for every model alike (kalshi_lab.models.hyperparams)
from sklearn.utils._param_validation import Interval

from kalshi_lab.models.offset import OFFSET_FEATURE, sigmoid


def _membership(cluster: np.ndarray, n_clusters: int) -> sparse.csr_matrix:
    """The clusters' rows as a sparse matrix (a row per cluster, a column per row, ones), each
    cluster's rows in row order: its product with a vector of the rows sums each cluster's
    entries one after the other in row order (scipy's ``csr_matvec``), the bits of
    ``np.bincount(cluster, weights=...)``, in a sixth of its time (bincount's every addition
    waits for the previous one to the same cluster, through memory: 1.1 ms against 0.18 ms
    for 277,000 training rows)."""
    rows = np.argsort(cluster, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(cluster, minlength=n_clusters))])
    return sparse.csr_matrix(
        (np.ones(len(cluster)), rows, starts), shape=(n_clusters, len(cluster))
    )


def _cluster_sums(weights: Iterable[np.ndarray], members: sparse.csr_matrix) -> np.ndarray:
    """Per cluster (row) and feature (column), the sum over the cluster's rows of the feature's
    ``weights`` (``z_j * residual``; each consumed before the next is made, so they may share
    one buffer), added row by row in row order, as ``np.add.at`` and ``np.bincount`` add (the
    same bits); ``members``: :func:`_membership`."""
    return np.column_stack([members @ w for w in weights])


class MarketAnchoredLogit(ClassifierMixin, BaseEstimator):
    """P(YES) = sigmoid(market log-odds + the features the events show it misses)."""

    _parameter_constraints: dict[str, list[Any]] = {
        "alpha": [Interval(Real, 0.0, 1.0, closed="neither")],
        "max_features": [Interval(Integral, 0, None, closed="left")],
        "ridge": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(self, alpha: float = 0.01, max_features: int = 8, ridge: float = 1e-6) -> None:
        self.alpha = alpha
        self.max_features = max_features
        self.ridge = ridge

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> MarketAnchoredLogit:
        """Select features by the clustered score test (``groups``: each row's event), then fit
        their coefficients; see the module docstring."""
        self._validate_params()  # _parameter_constraints
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError("MarketAnchoredLogit needs a binary target")
        yes = (labels == self.classes_[1]).astype(float)
        rate = float(np.mean(yes))
        self.prior_logit_ = float(np.log(rate / (1.0 - rate)))
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        # column by column, and no standardised matrix beside X: each pass of the selection
        # standardises one column at a time (:meth:`_standard_into`), the same bits as a matrix
        # standardised in place, at a column's memory instead of the training rows' inputs
        # again (a gigabyte for the live model at 100k markets)
        median, mean, scale, complete = [], [], [], []
        for j in range(self.n_features_in_):
            values = self._column(X, j)
            finite = np.isfinite(values)
            # over axis 0 of a one-column matrix, as over the whole matrix: under 600 rows
            # NumPy takes another path than for one vector
            missing = np.where(finite, values, np.nan)[:, np.newaxis]
            median.append(np.nan_to_num(np.nanmedian(missing, axis=0))[0])
            filled = np.where(finite, values, median[-1])
            mean.append(filled.mean())
            scale.append(filled.std())
            complete.append(bool(finite.all()))
        self.median_ = np.array(median)
        self.mean_ = np.array(mean)
        self.scale_ = np.where(np.array(scale) > 0, scale, 1.0)
        offset = self._offset(X)
        cluster = np.arange(len(yes)) if groups is None else pd.factorize(np.asarray(groups))[0]
        self.selected_, self.coef_, self.z_scores_ = self._select(X, complete, offset, yes, cluster)
        return self

    @staticmethod
    def _column(X: pd.DataFrame, j: int) -> np.ndarray:
        """Column ``j`` of ``X`` as floats: a view of a frame of one float block."""
        return X.iloc[:, j].to_numpy(dtype=float)

    def _standard_into(
        self, X: pd.DataFrame, j: int, out: np.ndarray, complete: bool
    ) -> np.ndarray:
        """Feature column ``j`` of ``X`` standardised as the training rows were (the bits of
        :meth:`_standard`), written into ``out``: one buffer serves every column and pass, not
        a new array of the training rows each time; ``complete``: the column has no missing
        value (nothing to fill, no pass to look for one)."""
        values = self._column(X, j)
        if complete:
            np.subtract(values, self.mean_[j], out=out)
        else:
            np.copyto(out, values)
            np.copyto(out, self.median_[j], where=~np.isfinite(values))
            out -= self.mean_[j]
        out /= self.scale_[j]
        return out

    def _standard_matrix(
        self, X: pd.DataFrame, which: list[int], complete: list[bool]
    ) -> np.ndarray:
        """The feature columns ``which`` of ``X`` standardised, as one column-major matrix: the
        layout whose matrix-vector products (the fit's and :meth:`decision_function`'s) give
        the same bits."""
        out = np.empty((len(X), len(which)), order="F")
        for k, j in enumerate(which):
            self._standard_into(X, j, out[:, k], complete[j])
        return out

    def _filled(self, values: np.ndarray, which: Any = slice(None)) -> np.ndarray:
        """``values`` of the feature columns ``which`` (all by default), a missing one the
        training median."""
        return np.where(np.isfinite(values), values, self.median_[which])

    def _standard(self, values: np.ndarray, which: Any = slice(None)) -> np.ndarray:
        """``values`` of the feature columns ``which`` standardised as the training rows were."""
        return (self._filled(values, which) - self.mean_[which]) / self.scale_[which]

    def _offset(self, X: pd.DataFrame) -> np.ndarray:
        """The market's log-odds per row; the training prior where the market has no price."""
        if not isinstance(X, pd.DataFrame) or OFFSET_FEATURE not in X.columns:
            raise ValueError(f"the features must be a DataFrame with a {OFFSET_FEATURE} column")
        market = X[OFFSET_FEATURE].to_numpy(dtype=float)
        return np.where(np.isnan(market), self.prior_logit_, market)

    def _select(
        self,
        X: pd.DataFrame,
        complete: list[bool],
        offset: np.ndarray,
        yes: np.ndarray,
        cluster: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(selected feature indices, their coefficients, each one's z-score when it entered);
        ``complete``: per feature, whether it has no missing value."""
        n_features = self.n_features_in_
        critical = float(norm.isf(self.alpha / (2 * max(n_features, 1))))
        n_clusters = int(cluster.max()) + 1 if len(cluster) else 0
        members = _membership(cluster, n_clusters)
        chosen: list[int] = []
        entered: list[float] = []
        coef = np.zeros(0)
        z_chosen = np.empty((len(yes), 0), order="F")
        buffer = np.empty(len(yes))

        def weights(residual: np.ndarray) -> Iterator[np.ndarray]:
            for j in range(n_features):
                z = self._standard_into(X, j, buffer, complete[j])
                yield np.multiply(z, residual, out=z)

        while len(chosen) < min(self.max_features, n_features):
            residual = yes - sigmoid(offset + z_chosen @ coef)
            per_cluster = _cluster_sums(weights(residual), members)
            score = per_cluster.sum(axis=0)
            spread = np.sqrt((per_cluster**2).sum(axis=0))
            with np.errstate(invalid="ignore", divide="ignore"):
                stat = np.where(spread > 0, score / spread, 0.0)
            stat[chosen] = 0.0
            best = int(np.argmax(np.abs(stat)))
            if abs(stat[best]) <= critical:
                break
            chosen.append(best)
            entered.append(float(stat[best]))
            z_chosen = self._standard_matrix(X, chosen, complete)
            coef = self._coefficients(z_chosen, offset, yes)
        return np.array(chosen, dtype=np.int64), coef, np.array(entered)

    def _coefficients(self, z: np.ndarray, offset: np.ndarray, yes: np.ndarray) -> np.ndarray:
        """Maximum likelihood with the offset, no intercept and a per-row ridge of ``ridge``."""
        n = len(yes)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            eta = offset + z @ w
            value = np.sum(np.logaddexp(0.0, eta) - yes * eta) / n + self.ridge * (w @ w)
            gradient = z.T @ (sigmoid(eta) - yes) / n + 2.0 * self.ridge * w
            return float(value), gradient

        return minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The log-odds of YES per row: the market's, plus the selected features' terms.

        Only the selected columns are read and standardised (``X`` must still hold every
        training column): permutation importance calls this once per feature and repeat.
        """
        missing = [name for name in self.feature_names_in_ if name not in X.columns]
        if missing:
            raise ValueError(f"the features lack the training columns {missing}")
        names = list(self.feature_names_in_[self.selected_])
        # column-major, as the columns taken from the full standardised matrix were: the same
        # matrix-vector product, the same bits
        z = np.asfortranarray(self._standard(X[names].to_numpy(dtype=float), self.selected_))
        return self._offset(X) + z @ self.coef_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        yes = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - yes, yes])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    @property
    def selected_features_(self) -> list[str]:
        """The features the model departs from the market on, in the order they entered."""
        return [str(self.feature_names_in_[j]) for j in self.selected_]
