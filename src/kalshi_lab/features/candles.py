"""Daily candles placed on the daily grid.

Only ``period_minutes == 1440`` candles are used. A candle is known from its
``end_period_ts`` on, which is its row's as_of. Quotes and open interest are states: on a
grid day without a candle they are carried forward from the latest earlier candle (still data
stamped before as_of). The mean trade price is a flow of the day and is left NaN there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.features.grouped import last_true_index, take_or_nan
from kalshi_lab.features.panel import (
    Panel,
    build_panel,
    day_ending_at_or_after,
    locate_tickers,
    utc_ns,
)

log = logging.getLogger(__name__)

DAILY_MINUTES = 1440


@dataclass(frozen=True)
class DailyCandles:
    """Per panel row, from the daily candle ending at as_of (or the latest one before it)."""

    price_mean: np.ndarray  # mean trade price of the day; NaN without trades or without candle
    yes_bid: np.ndarray  # close of the best YES bid (dollars)
    yes_ask: np.ndarray  # close of the best YES ask (dollars)
    open_interest: np.ndarray  # contracts outstanding at as_of


def daily_candles(candles: pd.DataFrame, tickers: pd.Index) -> tuple[Panel, DailyCandles]:
    """Build the grid from the daily candles of known markets and place their values on it."""
    daily = candles[candles["period_minutes"] == DAILY_MINUTES]
    market = locate_tickers(tickers, daily["ticker"])
    known = market >= 0
    if not known.all():
        log.warning("%d daily candles of tickers missing from markets; ignored", int((~known).sum()))
        daily, market = daily[known], market[known]
    day = day_ending_at_or_after(utc_ns(daily["end_period_ts"], "candles.end_period_ts"))
    panel = build_panel(market, day, len(tickers))
    rows = panel.rows(market, day)
    if len(rows) and np.bincount(rows).max() > 1:
        dup = np.bincount(rows)[rows] > 1
        first = daily[dup].iloc[0]
        raise DataError(
            f"{int(dup.sum())} daily candles share a (ticker, UTC day), e.g. {first['ticker']} "
            f"at {first['end_period_ts']}: de-duplicate the candles table"
        )

    def placed(column: str) -> np.ndarray:
        out = np.full(panel.n_rows, np.nan)
        out[rows] = daily[column].to_numpy(dtype=np.float64)
        return out

    has_candle = np.zeros(panel.n_rows, dtype=bool)
    has_candle[rows] = True
    latest = last_true_index(has_candle, panel.groups)
    return panel, DailyCandles(
        price_mean=placed("price_mean"),
        yes_bid=take_or_nan(placed("yes_bid_close"), latest),
        yes_ask=take_or_nan(placed("yes_ask_close"), latest),
        open_interest=take_or_nan(placed("open_interest"), latest),
    )
