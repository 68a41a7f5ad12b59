"""Event-level features: the strikes of one event are mutually exclusive outcomes.

Their mids should add up to about 1; the excess is the overround, and a strike's mid divided
by the sum is its probability with the overround removed. Treating strikes as independent was
one of the reference code's mistakes. Sums run over the event's markets with a row (so still
before close) on the same as_of: every input is known at as_of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def event_features(event: np.ndarray, day: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    """EVENT_MID_SUM, EVENT_N_MARKETS and MID_SHARE per row.

    ``event`` is an integer event id per row, ``day`` its as_of day number. A row with a NaN
    mid does not count and gets NaN features.
    """
    if not len(day):
        return {name: np.empty(0) for name in ("EVENT_MID_SUM", "EVENT_N_MARKETS", "MID_SHARE")}
    counted = ~np.isnan(mid)
    span = int(day.max() - day.min()) + 1
    group = event * span + (day - day.min())  # one id per (event, day)
    if int(event.max() + 1) * span > 4 * len(group):
        group, _ = pd.factorize(group)  # sparse ids: compact them before bincount
    total = np.bincount(group, weights=np.where(counted, mid, 0.0))[group]
    n = np.bincount(group, weights=counted.astype(np.float64))[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = mid / total
    total[~counted] = np.nan
    n[~counted] = np.nan
    share[~counted | (total <= 0)] = np.nan
    return {"EVENT_MID_SUM": total, "EVENT_N_MARKETS": n, "MID_SHARE": share}
