"""Daily traded value and order flow per market, from the trade tape.

A trade's value is what its taker paid, in dollars: ``count * yes_price`` for a YES taker,
``count * no_price`` for a NO taker (the reference code mixed cent-contracts and dollars). A
trade belongs to the daily candle whose period contains it, the row whose as_of is the first
00:00 UTC at or after ``created_time``, so volume and price of a row describe the same day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.features.panel import Panel, day_ending_at_or_after, locate_tickers, utc_ns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DailyFlow:
    """Per panel row: the trades of the day ending at as_of."""

    yes_value: np.ndarray  # dollars paid by YES takers
    no_value: np.ndarray  # dollars paid by NO takers
    n_trades: np.ndarray  # number of trades

    @property
    def imbalance(self) -> np.ndarray:
        """(YES - NO) / (YES + NO) traded value; NaN on a day without traded value."""
        total = self.yes_value + self.no_value
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (self.yes_value - self.no_value) / total, np.nan)


def daily_flow(trades: pd.DataFrame, tickers: pd.Index, panel: Panel) -> DailyFlow:
    """Sum the trades onto the panel rows; trades off the grid are counted and logged."""
    market = locate_tickers(tickers, trades["ticker"])
    day = day_ending_at_or_after(utc_ns(trades["created_time"], "trades.created_time"))
    rows = panel.rows(market, day)
    on_grid = rows >= 0
    if not on_grid.all():
        log.warning(
            "%d of %d trades fall outside their market's daily candles (or on unknown tickers); ignored",
            int((~on_grid).sum()),
            len(rows),
        )
    rows = rows[on_grid]
    count = trades["count"].to_numpy(dtype=np.float64)[on_grid]
    side = trades["taker_side"]
    yes_taker = (side == "yes").to_numpy()[on_grid]
    no_taker = (side == "no").to_numpy()[on_grid]
    yes_value = np.where(yes_taker, count * trades["yes_price"].to_numpy(dtype=np.float64)[on_grid], 0.0)
    no_value = np.where(no_taker, count * trades["no_price"].to_numpy(dtype=np.float64)[on_grid], 0.0)
    n = panel.n_rows
    return DailyFlow(
        yes_value=np.bincount(rows, weights=yes_value, minlength=n),
        no_value=np.bincount(rows, weights=no_value, minlength=n),
        n_trades=np.bincount(rows, minlength=n).astype(np.float64),
    )
