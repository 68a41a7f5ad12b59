"""Baselines every model is reported beside, computed on the same rows at the same as-of time.

* ``base_rate``: the training rows' frequency of class 1, for every row.
* ``market`` (settlement): the market's own price at as-of (``market_prob``, the quote mid) read
  as the probability of YES. Beating it is what an edge means.
* ``recal`` (settlement): the recalibrated market, a logistic regression of the outcome on
  logit(price), log(1 + days to close) and their product, fit on the training rows only. It
  captures the favourite-longshot bias and how it changes with time to expiry, which anyone can
  exploit from past data without a model; it is the real bar for an edge.
* ``persistence`` (direction): the last move repeats (``RET_1 > 0`` -> up). Its probabilities
  are the training frequencies of "up" after an up move and after a flat or down move, so that
  its Brier score and log loss are those of a calibrated version of the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

Baseline = tuple[np.ndarray, np.ndarray]  # (probability of class 1, hard prediction)

#: per target, the baselines an edge is measured against (skill and bootstrap intervals),
#: the strongest last; ``base_rate`` is reported beside them
REFERENCES: dict[str, tuple[str, ...]] = {
    "settlement": ("market", "recal"),
    "direction": ("persistence",),
}
#: the columns of the rows the baselines read (persistence's RET_1 is always a feature)
BASELINE_COLUMNS: tuple[str, ...] = ("market_prob", "DAYS_TO_CLOSE", "RET_1")
#: prices are clipped here before logit: a 0 or 1 quote would be an infinite log-odds
PRICE_CLIP = 0.01


def base_rate(y_train: np.ndarray, n: int) -> Baseline:
    rate = float(np.mean(y_train))
    return np.full(n, rate), np.full(n, int(rate > 0.5))


def market(rows: pd.DataFrame) -> Baseline:
    prob = rows["market_prob"].clip(PRICE_CLIP, 1 - PRICE_CLIP).to_numpy(dtype=float)
    return prob, (prob > 0.5).astype(int)


def _recal_inputs(rows: pd.DataFrame) -> np.ndarray:
    """logit(price), log(1 + days to close) and their product: the bias may grow with time."""
    price = rows["market_prob"].clip(PRICE_CLIP, 1 - PRICE_CLIP).to_numpy(dtype=float)
    logit = np.log(price / (1 - price))
    horizon = np.log1p(rows["DAYS_TO_CLOSE"].clip(lower=0).to_numpy(dtype=float))
    return np.column_stack([logit, horizon, logit * horizon])


def recalibrated_market(train: pd.DataFrame, y_train: np.ndarray, rows: pd.DataFrame) -> Baseline:
    """The market recalibrated on ``train`` (rows with a price and a label), applied to ``rows``.

    Never fit on the rows it scores: the caller passes the training rows of the same fold.
    """
    priced = train["market_prob"].notna().to_numpy()
    fit = LogisticRegression(C=1e4, max_iter=1000)
    fit.fit(_recal_inputs(train[priced]), y_train[priced])
    prob = fit.predict_proba(_recal_inputs(rows))[:, 1]
    return prob, (prob > 0.5).astype(int)


def persistence(train: pd.DataFrame, y_train: np.ndarray, rows: pd.DataFrame) -> Baseline:
    went_up_train = train["RET_1"].to_numpy(dtype=float) > 0
    went_up = rows["RET_1"].to_numpy(dtype=float) > 0
    p_after_up = float(np.mean(y_train[went_up_train])) if went_up_train.any() else 0.5
    p_after_other = float(np.mean(y_train[~went_up_train])) if (~went_up_train).any() else 0.5
    prob = np.where(went_up, p_after_up, p_after_other)
    return prob, went_up.astype(int)


def baselines(
    target: str, train: pd.DataFrame, y_train: np.ndarray, rows: pd.DataFrame
) -> dict[str, Baseline]:
    """``REFERENCES[target]`` then ``base_rate``, fit on ``train`` and evaluated on ``rows``."""
    if target == "settlement":
        out = {"market": market(rows), "recal": recalibrated_market(train, y_train, rows)}
    else:
        out = {"persistence": persistence(train, y_train, rows)}
    out["base_rate"] = base_rate(y_train, len(rows))
    return out
