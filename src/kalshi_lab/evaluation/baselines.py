"""Baselines every model is reported beside, computed on the same rows at the same as-of time.

* ``majority``: the training set's majority class; its probability is the training base rate.
* ``market`` (settlement): the market's own price at as-of (``market_prob``, the quote mid) read
  as the probability of YES. Beating it is what an edge means.
* ``persistence`` (direction): the last move repeats (``RET_1 > 0`` -> up). Its probabilities
  are the training frequencies of "up" after an up move and after a flat or down move, so that
  its Brier score and log loss are those of a calibrated version of the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Baseline = tuple[np.ndarray, np.ndarray]  # (probability of class 1, hard prediction)


def majority(y_train: np.ndarray, n: int) -> Baseline:
    rate = float(np.mean(y_train))
    return np.full(n, rate), np.full(n, int(rate > 0.5))


def market(valid: pd.DataFrame) -> Baseline:
    prob = valid["market_prob"].clip(0.01, 0.99).to_numpy(dtype=float)
    return prob, (prob > 0.5).astype(int)


def persistence(train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame) -> Baseline:
    went_up_train = train["RET_1"].to_numpy(dtype=float) > 0
    went_up_valid = valid["RET_1"].to_numpy(dtype=float) > 0
    p_after_up = float(np.mean(y_train[went_up_train])) if went_up_train.any() else 0.5
    p_after_other = float(np.mean(y_train[~went_up_train])) if (~went_up_train).any() else 0.5
    prob = np.where(went_up_valid, p_after_up, p_after_other)
    return prob, went_up_valid.astype(int)


def baselines(
    target: str, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame
) -> dict[str, Baseline]:
    """The baselines that apply to ``target``, the reference one (plotted beside the model) first."""
    out = (
        {"market": market(valid)}
        if target == "settlement"
        else {"persistence": persistence(train, y_train, valid)}
    )
    out["majority"] = majority(y_train, len(valid))
    return out
