"""When a period is too thin to score: the reasons a period is skipped instead of reported.

On little data (real Kalshi history of a few macro series holds few events) a period can train
on two events, hold one class, or fit a constant (a LightGBM whose ``min_child_samples``
exceeds what it has splits nowhere); its recalibrated market, fit on the same few events, can
be far worse than the raw price. Scores of such a period are artifacts, not evidence: a
"skill" of a constant against a bar that is no bar. So a period is skipped, with its reason in
``reports/evaluation.json``, and left out of every pooled figure, when

* fewer than ``split.min_train_events`` events have a labelled training row,
* its training rows hold one class (for ``settlement``, also its priced ones, on which the
  recalibrated market is fit),
* fewer than ``split.min_scored_events`` events have a scored row (labelled and, for
  ``settlement``, priced: the market baselines need a price),
* its scored rows hold one class (AUC and the baselines' comparison say nothing), or
* its fitted model is constant (the same probability for every training row).

The pipeline fails only when every period is skipped: one error naming the counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.features import TARGET_COLUMNS
from kalshi_lab.params import SplitParams
from kalshi_lab.split import Split

#: the columns of the features frame the guards read, besides the target's
GUARD_COLUMNS: tuple[str, ...] = ("event_ticker", "settlement_ts", "market_prob")
#: a model whose probabilities on its training rows spread less than this is constant
CONSTANT_SPREAD = 1e-9


def scorable(rows: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labelled, priced)`` masks over ``rows``: a row is scored only if both hold (every
    row counts as priced for ``direction``, whose baselines need no price)."""
    labelled = rows[TARGET_COLUMNS[target]].notna().to_numpy()
    if target != "settlement":
        return labelled, np.ones(len(rows), dtype=bool)
    return labelled, rows["market_prob"].notna().to_numpy()


def _one_class(labels: pd.Series) -> str | None:
    """``"all 1"`` when ``labels`` hold a single class, else None."""
    values = labels.unique()
    return f"all {int(values[0])}" if len(values) == 1 else None


def skip_reason(
    features: pd.DataFrame, split: Split, target: str, params: SplitParams
) -> str | None:
    """Why the period of ``split`` cannot be scored before anything is fit, or None."""
    labelled, priced = scorable(features, target)
    label = features[TARGET_COLUMNS[target]]
    events = features["event_ticker"]
    train = split.train & labelled
    n_train = events[train].nunique()
    if n_train < params.min_train_events:
        return (
            f"{n_train} events with a labelled training row, fewer than "
            f"split.min_train_events={params.min_train_events}"
        )
    if (one := _one_class(label[train])) is not None:
        return f"its training labels hold one class ({one})"
    if target == "settlement" and (one := _one_class(label[train & priced])) is not None:
        return f"its priced training rows (the recalibrated market's) hold one class ({one})"
    scored = split.valid & labelled & priced
    n_scored = events[scored].nunique()
    if n_scored < params.min_scored_events:
        return (
            f"{n_scored} events with a scored row, fewer than "
            f"split.min_scored_events={params.min_scored_events}"
        )
    if (one := _one_class(label[scored])) is not None:
        return f"its scored labels hold one class ({one})"
    return None


def constant_model_reason(train_prob: np.ndarray) -> str | None:
    """Why a model whose probabilities on its training rows are ``train_prob`` is unusable
    (it is constant), or None."""
    if np.ptp(train_prob) > CONSTANT_SPREAD:
        return None
    return (
        f"the fitted model is constant: it predicts {float(train_prob[0]):.4f} for every "
        "training row (e.g. a LightGBM that found no split)"
    )


def nothing_scorable(
    features: pd.DataFrame, skipped: dict[str, str], params: SplitParams
) -> DataError:
    """The error when every period is skipped: the data's events, what a period needs, and
    each period's reason."""
    events = features["event_ticker"]
    settled = features["settlement_ts"].notna().groupby(events, observed=True).all()
    return DataError(
        f"no period can be scored: the data holds {events.nunique()} events "
        f"({int(settled.sum())} fully settled); a period needs at least "
        f"split.min_train_events={params.min_train_events} events trained on and "
        f"split.min_scored_events={params.min_scored_events} events scored, both classes and "
        "a model that is not constant; "
        + "; ".join(f"{key}: {reason}" for key, reason in skipped.items())
    )
