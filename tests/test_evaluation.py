"""Scores and baselines behave as their definitions say."""

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.evaluation.baselines import baselines
from kalshi_lab.evaluation.metrics import reliability, roc_points, score


def test_perfect_and_uninformative_scores():
    y = np.array([0, 1, 0, 1])
    perfect = score(y, np.array([0.0, 1.0, 0.0, 1.0]))
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0 and perfect["brier"] < 1e-9
    coin = score(y, np.full(4, 0.5))
    assert coin["brier"] == pytest.approx(0.25) and coin["log_loss"] == pytest.approx(np.log(2))
    assert score(np.array([1, 1]), np.array([0.9, 0.8]))["roc_auc"] == 0.5


def test_market_baseline_reads_the_price_as_probability():
    train = pd.DataFrame({"RET_1": [0.1, -0.1]})
    valid = pd.DataFrame({"market_prob": [0.2, 0.9], "RET_1": [0.0, 0.1]})
    out = baselines("settlement", train, np.array([0, 1]), valid)
    assert list(out) == ["market", "majority"]
    assert out["market"][0].tolist() == pytest.approx([0.2, 0.9])


def test_persistence_baseline_uses_training_frequencies():
    train = pd.DataFrame({"RET_1": [0.1, 0.2, -0.1, 0.0]})
    y_train = np.array([1, 0, 0, 0])
    valid = pd.DataFrame({"RET_1": [0.3, -0.3, np.nan]})
    out = baselines("direction", train, y_train, valid)
    prob, hard = out["persistence"]
    assert prob.tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert hard.tolist() == [1, 0, 0]
    assert out["majority"][1].tolist() == [0, 0, 0]


def test_reliability_bins_and_roc_endpoints():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p).astype(int)
    curve = reliability(y, p)
    assert len(curve) == 10 and curve["count"].sum() == 5000
    assert np.abs(curve["mean_predicted"] - curve["fraction_positive"]).max() < 0.05
    roc = roc_points(y, p, max_points=50)
    assert (
        len(roc) <= 50
        and roc.iloc[0].tolist() == [0.0, 0.0]
        and roc.iloc[-1].tolist() == [1.0, 1.0]
    )
