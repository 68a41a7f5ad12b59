"""The evaluation's own arithmetic gives scikit-learn's bits: the scores (accuracy, ROC AUC),
the permutation importance's Brier scorer, and the importance computed on the columns the
model reads only (kalshi_lab.evaluation.metrics, kalshi_lab.evaluation.importance)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, get_scorer, roc_auc_score

from kalshi_lab.evaluation.importance import (
    PERMUTATION_REPEATS,
    columns_read,
    feature_importance,
    neg_brier_score,
)
from kalshi_lab.evaluation.metrics import EPS, brier, brier_per_row, score
from kalshi_lab.models import MarketAnchoredLogit
from kalshi_lab.models.market_offset import OFFSET_FEATURE, sigmoid


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Labels and probabilities: random, rounded to many ties, constant, at 0 and 1, one
    class, two rows."""
    rng = np.random.default_rng(7)
    out = []
    for n in (2, 3, 17, 1000, 20_001):
        y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
        y[:2] = [0, 1]
        p = rng.random(n)
        out += [(y, p), (y, np.round(p, 1)), (y, np.full(n, 0.37)), (y, (p > 0.5) * 1.0)]
        out += [(y, np.clip(p * 1.4 - 0.2, 0, 1)), (np.ones(n, int), p), (np.zeros(n, int), p)]
    return out


@pytest.mark.parametrize("case", range(len(_cases())))
def test_scores_are_sklearns_bits(case):
    y, p = _cases()[case]
    clipped = np.clip(p, EPS, 1 - EPS)
    hard = (np.random.default_rng(case).random(len(y)) < 0.5).astype(int)
    for got, predicted in ((score(y, p), clipped > 0.5), (score(y, p, hard), hard)):
        assert got["accuracy"] == accuracy_score(y, predicted.astype(int))
        if len(np.unique(y)) == 2:
            assert got["roc_auc"] == roc_auc_score(y, clipped)
        else:
            assert got["roc_auc"] == 0.5
        assert got["brier"] == brier(y, p) == brier_per_row(y, clipped).mean()


def test_no_rows_are_refused_as_sklearn_refuses_them():
    with pytest.raises(ValueError):
        accuracy_score(np.zeros(0, int), np.zeros(0, int))
    with pytest.raises(ValueError, match="no rows"):
        score(np.zeros(0, int), np.zeros(0))


@pytest.mark.parametrize("case", range(len(_cases())))
def test_the_brier_scorer_is_sklearns_bits(case):
    y, p = _cases()[case]
    assert neg_brier_score(y, p) == -brier_score_loss(y, p)
    if len(np.unique(y)) == 2:  # the scorer, on a classifier predicting p
        model = LogisticRegression().fit(np.c_[p], y)
        sklearn = get_scorer("neg_brier_score")(model, np.c_[p], y)
        assert neg_brier_score(y, model.predict_proba(np.c_[p])[:, 1]) == sklearn


def _anchored(seed: int) -> tuple[MarketAnchoredLogit, pd.DataFrame, np.ndarray]:
    """An anchored logit that selects some of its columns and not others, and fresh rows
    (with a non-default index) to permute."""
    rng = np.random.default_rng(seed)

    def rows(n_events: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        market, a, b = (
            rng.normal(0, 1.5, n_events),
            rng.normal(size=n_events),
            rng.normal(size=n_events),
        )
        y = rng.uniform(size=n_events) < sigmoid(market + a - 0.7 * b)
        event = np.repeat(np.arange(n_events), 6)
        frame = pd.DataFrame(
            {
                "NOISE_1": rng.normal(size=len(event)),
                "A": a[event] + rng.normal(0, 0.1, len(event)),
                OFFSET_FEATURE: market[event] + rng.normal(0, 0.05, len(event)),
                "NOISE_2": rng.normal(size=len(event)),
                "B": b[event],
                "NOISE_3": rng.normal(size=len(event)),
            }
        )
        return frame, y[event].astype(int), event

    X, y, event = rows(500)
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    fresh, y_fresh, _ = rows(300)
    fresh.index = np.arange(len(fresh))[::-1] // 2  # reversed, each label twice
    return model, fresh, y_fresh


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permutation_importance_is_sklearns_on_every_column(seed):
    model, X, y = _anchored(seed)
    columns = list(X.columns)
    assert sorted(model.selected_features_) == ["A", "B"]
    assert columns_read(model, columns) == ["A", OFFSET_FEATURE, "B"]
    expected = permutation_importance(
        model,
        X,
        y,
        scoring="neg_brier_score",
        n_repeats=PERMUTATION_REPEATS,
        random_state=seed,
    ).importances_mean
    frame, _ = feature_importance(model, X, y, columns, seed)
    got = frame.set_index("feature")["importance"].reindex(columns).to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert (got[[0, 3, 5]] == 0).all() and (got[[1, 2, 4]] > 0).all()


def test_a_model_other_than_the_anchored_logit_has_every_column_permuted():
    model, X, y = _anchored(0)
    logreg = LogisticRegression().fit(X, y)
    assert columns_read(logreg, list(X.columns)) == list(X.columns)
    expected = permutation_importance(
        logreg, X, y, scoring="neg_brier_score", n_repeats=PERMUTATION_REPEATS, random_state=3
    ).importances_mean
    frame, _ = feature_importance(logreg, X, y, list(X.columns), 3)
    got = frame.set_index("feature")["importance"].reindex(X.columns).to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert (got != 0).all()
