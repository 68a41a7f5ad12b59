"""Features of the quoted book at as_of: spread, price level, log-odds, open-interest change."""

from __future__ import annotations

import numpy as np

from kalshi_lab.features.candles import DailyCandles
from kalshi_lab.features.grouped import Groups, lag


def mid_quote(candles: DailyCandles) -> np.ndarray:
    """(yes_bid + yes_ask) / 2: the market's probability at as_of, NaN if a side is missing."""
    return (candles.yes_bid + candles.yes_ask) / 2.0


def quote_features(
    candles: DailyCandles, mid: np.ndarray, groups: Groups, min_price: float
) -> dict[str, np.ndarray]:
    """SPREAD, MID, MID_DIST, LOGIT_MID and OI_CHANGE per panel row.

    The log-odds clip at ``min_price`` keeps a quote of 0 or 1 finite; it is the same floor
    as for returns, the smallest price we treat as distinct from zero.
    """
    p = np.clip(mid, min_price, 1.0 - min_price)
    return {
        "SPREAD": candles.yes_ask - candles.yes_bid,
        "MID": mid,
        "MID_DIST": np.abs(mid - 0.5),
        "LOGIT_MID": np.log(p / (1.0 - p)),
        "OI_CHANGE": candles.open_interest - lag(candles.open_interest, 1, groups),
    }
