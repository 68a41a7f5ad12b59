"""Probability scores: accuracy, ROC AUC, Brier score, log loss; ROC and reliability curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

EPS = 1e-6


def score(y: np.ndarray, prob: np.ndarray, hard: np.ndarray | None = None) -> dict[str, float]:
    """Scores of probabilities ``prob`` for labels ``y``; ``hard`` overrides the 0.5 threshold.

    ROC AUC is undefined with one class and reported as 0.5 (no ranking information).
    """
    y = np.asarray(y, dtype=int)
    prob = np.clip(np.asarray(prob, dtype=float), EPS, 1 - EPS)
    predicted = (prob > 0.5).astype(int) if hard is None else np.asarray(hard, dtype=int)
    two_classes = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, prob)) if two_classes else 0.5,
        "brier": float(brier_score_loss(y, prob)),
        "log_loss": float(log_loss(y, prob, labels=[0, 1])),
    }


def roc_points(y: np.ndarray, prob: np.ndarray, max_points: int = 200) -> pd.DataFrame:
    """ROC curve thinned to at most ``max_points`` rows (plot files stay small in git)."""
    fpr, tpr, _ = roc_curve(np.asarray(y, dtype=int), np.asarray(prob, dtype=float))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    return pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})


def reliability(y: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability curve on equal-width probability bins: mean prediction vs observed frequency."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(prob, dtype=float)})
    frame["bin"] = np.minimum((frame["p"] * n_bins).astype(int), n_bins - 1)
    grouped = frame.groupby("bin", sort=True)
    return pd.DataFrame(
        {
            "mean_predicted": grouped["p"].mean(),
            "fraction_positive": grouped["y"].mean(),
            "count": grouped["y"].size(),
        }
    ).reset_index(drop=True)
