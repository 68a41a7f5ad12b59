"""Event-level features: the strikes of one event are mutually exclusive outcomes.

Their mids should add up to about 1; the excess is the overround, and a strike's mid divided
by the sum is its probability with the overround removed. Treating strikes as independent was
one of the reference code's mistakes. Sums run over the event's markets on the same as_of,
among rows still before close, so every input is known at as_of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def event_features(
    event: np.ndarray, day: np.ndarray, mid: np.ndarray, active: np.ndarray
) -> dict[str, np.ndarray]:
    """EVENT_MID_SUM, EVENT_N_MARKETS and MID_SHARE per panel row.

    ``event`` is an integer event id per row, ``active`` the rows that are still trading;
    rows with a NaN mid or inactive do not contribute and get NaN features.
    """
    counted = active & ~np.isnan(mid)
    span = int(day.max() - day.min() + 1) if len(day) else 1
    group, _ = pd.factorize(event * span + (day - (day.min() if len(day) else 0)))
    total = np.bincount(group, weights=np.where(counted, mid, 0.0))[group]
    n = np.bincount(group, weights=counted.astype(np.float64))[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = mid / total
    return {
        "EVENT_MID_SUM": np.where(counted, total, np.nan),
        "EVENT_N_MARKETS": np.where(counted, n, np.nan),
        "MID_SHARE": np.where(counted & (total > 0), share, np.nan),
    }
