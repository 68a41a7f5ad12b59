"""Labels. A label is NaN whenever the data cannot honestly say what happened.

The reference code filled missing labels with 0 (``fillna(0)``), so every market's last day
and every quiet day became a "down" example; here they are NaN and the model stage drops them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kalshi_lab.features.grouped import Groups, lead


def settlement_target(result: pd.Series) -> np.ndarray:
    """1.0 for result "yes", 0.0 for "no", NaN otherwise (unresolved, void, scalar)."""
    return result.map({"yes": 1.0, "no": 0.0}).to_numpy(dtype=np.float64, na_value=np.nan)


def direction_target(
    ret: np.ndarray, traded: np.ndarray, next_day_tradable: np.ndarray, groups: Groups
) -> np.ndarray:
    """1.0 if the next day's return is > 0, 0.0 if <= 0, NaN if it is not a real observation.

    NaN when the row is its market's last, when the next day had no trade (its 0 return is a
    forward fill, not a flat market), when the next day starts at or after the close (no
    trading, only the settlement jump), or when there is no price yet to compare with.
    """
    next_ret = lead(ret, 1, groups)
    next_traded = lead(traded.astype(np.float64), 1, groups) == 1.0
    valid = next_traded & next_day_tradable & ~np.isnan(next_ret)
    return np.where(valid, (next_ret > 0).astype(np.float64), np.nan)
