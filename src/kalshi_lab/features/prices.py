"""Daily price, returns and trade-recency features of each market.

The daily price is the mean trade price of the daily candle. On a day without trades the
candle has no price; the last price is carried forward, so that day's return is exactly 0 and
it is flagged (``NO_TRADE``, ``DAYS_SINCE_TRADE``) instead of looking like a fall. Prices are
floored at ``min_price`` before the return, because a move from 0.001 to 0.01 is a tick, not
a 900 % return. A settlement 0/1 is never appended: the jump at settlement is not tradable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.features.grouped import Groups, lag, last_true_index, take_or_nan


@dataclass(frozen=True)
class DailyPrices:
    """Per panel row, all known at as_of."""

    price: np.ndarray  # last known daily mean trade price (dollars); NaN before the first trade
    traded: np.ndarray  # bool: the day ending at as_of had at least one trade
    ret: np.ndarray  # pct change of the floored price since the previous day
    days_since_trade: np.ndarray  # 0 on a trade day; NaN before the first trade


def daily_prices(price_mean: np.ndarray, groups: Groups, min_price: float) -> DailyPrices:
    """Forward-filled price and its returns from the daily candles' mean trade price.

    ``price_mean`` is NaN on grid days whose candle had no trade (or that had no candle).
    Rows are consecutive days, so a row difference is a day difference.
    """
    traded = ~np.isnan(price_mean)
    last = last_true_index(traded, groups)
    price = take_or_nan(price_mean, last)
    floored = np.maximum(price, min_price)  # NaN stays NaN
    with np.errstate(invalid="ignore"):
        ret = floored / lag(floored, 1, groups) - 1.0
    since = np.where(last >= 0, np.arange(len(last)) - last, np.nan).astype(np.float64)
    return DailyPrices(
        price=price,
        traded=traded,
        ret=ret,
        days_since_trade=since,
    )
