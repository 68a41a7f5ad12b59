"""Probability scores: accuracy, ROC AUC, Brier score, log loss; ROC and reliability curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.metrics import auc, roc_curve

EPS = 1e-6
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def brier_per_row(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    return (np.asarray(prob, dtype=float) - np.asarray(y, dtype=float)) ** 2


def log_loss_per_row(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-row log loss, probabilities clipped to [EPS, 1 - EPS] so a sure miss stays finite."""
    p = np.clip(np.asarray(prob, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def score(y: np.ndarray, prob: np.ndarray, hard: np.ndarray | None = None) -> dict[str, float]:
    """Scores of probabilities ``prob`` for labels ``y`` (0 or 1); ``hard`` overrides the 0.5
    threshold.

    ROC AUC is undefined with one class and reported as 0.5 (no ranking information).

    The bits of scikit-learn's ``accuracy_score`` and ``roc_auc_score``, without their checks
    of the labels (several ``np.unique`` each) on every call: a period's report scores every
    baseline on every structure's rows (tests/test_metrics_sklearn.py holds them equal).
    Accuracy is the mean of the matches, as ``accuracy_score`` averages them; the AUC of two
    classes is the area under ``roc_curve``'s points, which ``roc_auc_score`` computes.
    """
    y = np.asarray(y, dtype=int)
    if not len(y):
        raise ValueError("no rows to score")  # as accuracy_score refuses them
    prob = np.clip(np.asarray(prob, dtype=float), EPS, 1 - EPS)
    predicted = (prob > 0.5).astype(int) if hard is None else np.asarray(hard, dtype=int)
    two_classes = bool(y.min() == 0 and y.max() == 1)
    return {
        "accuracy": float(np.mean(y == predicted)),
        "roc_auc": _roc_auc(y, prob) if two_classes else 0.5,
        "brier": float(brier_per_row(y, prob).mean()),
        "log_loss": float(log_loss_per_row(y, prob).mean()),
    }


def brier(y: np.ndarray, prob: np.ndarray) -> float:
    """The Brier score of :func:`score`: probabilities clipped to [EPS, 1 - EPS]."""
    return float(brier_per_row(y, np.clip(np.asarray(prob, dtype=float), EPS, 1 - EPS)).mean())


def _roc_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """``roc_auc_score(y, prob)`` of labels 0 and 1, both present: what it returns for them."""
    with config_context(skip_parameter_validation=True):
        fpr, tpr, _ = roc_curve(y, prob)
        return float(auc(fpr, tpr))


def roc_points(y: np.ndarray, prob: np.ndarray, max_points: int = 200) -> pd.DataFrame:
    """ROC curve thinned to at most ``max_points`` rows (plot files stay small in git)."""
    fpr, tpr, _ = roc_curve(np.asarray(y, dtype=int), np.asarray(prob, dtype=float))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    return pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})


def wilson(positives: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial share: unlike p +- z*se it stays inside [0, 1] and
    keeps its coverage for shares near 0 or 1, where most prediction-market prices sit."""
    n = np.asarray(n, dtype=float)
    share = np.asarray(positives, dtype=float) / n
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    # exact at the ends, where rounding would leave the bound a hair inside the share
    return np.where(share == 0, 0.0, centre - half), np.where(share == 1, 1.0, centre + half)


def reliability(y: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability curve on equal-count bins of the predicted probability.

    Bins are cut by rank, not by equal widths: prediction-market probabilities crowd near 0 and
    1, and equal-width bins put most rows in the first one. Each bin reports its mean prediction,
    observed frequency, row count and the Wilson 95 % interval of the frequency.
    """
    p = np.asarray(prob, dtype=float)
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=int)
    bins[order] = np.arange(len(p)) * n_bins // max(len(p), 1)
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": p, "bin": bins})
    grouped = frame.groupby("bin", sort=True)
    out = pd.DataFrame(
        {
            "mean_predicted": grouped["p"].mean(),
            "fraction_positive": grouped["y"].mean(),
            "count": grouped["y"].size(),
        }
    ).reset_index(drop=True)
    out["lower"], out["upper"] = wilson(grouped["y"].sum().to_numpy(), out["count"].to_numpy())
    return out
