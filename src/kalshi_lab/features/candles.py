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
    """Build the grid from the daily candles of known markets and place their values on it.

    Only the used columns of the used rows are read: filtering the whole candles frame would
    copy every column of millions of rows.
    """
    used: np.ndarray | None = None  # positions of the candles used; None = all of them
    is_daily = (candles["period_minutes"] == DAILY_MINUTES).to_numpy()
    if not is_daily.all():
        used = np.flatnonzero(is_daily)

    def column(name: str) -> pd.Series:  # reads ``used`` as it is at the call
        return candles[name] if used is None else candles[name].iloc[used]

    market = locate_tickers(tickers, column("ticker"))
    known = market >= 0
    if not known.all():
        log.warning(
            "%d daily candles of tickers missing from markets; ignored", int((~known).sum())
        )
        used = np.flatnonzero(known) if used is None else used[known]
        market = market[known]
    day = day_ending_at_or_after(utc_ns(column("end_period_ts"), "candles.end_period_ts"))
    panel = build_panel(market, day, len(tickers))
    rows = panel.rows(market, day)
    per_row = np.bincount(rows, minlength=panel.n_rows)
    if (per_row > 1).any():
        dup = per_row[rows] > 1
        raise DataError(
            f"{int(dup.sum())} daily candles share a (ticker, UTC day), e.g. "
            f"{column('ticker').iloc[np.argmax(dup)]} at {column('end_period_ts').iloc[np.argmax(dup)]}: "
            "de-duplicate the candles table"
        )

    def placed(name: str) -> np.ndarray:
        out = np.full(panel.n_rows, np.nan)
        out[rows] = column(name).to_numpy(dtype=np.float64)
        return out

    has_candle = per_row > 0
    latest = last_true_index(has_candle, panel.groups)
    return panel, DailyCandles(
        price_mean=placed("price_mean"),
        yes_bid=take_or_nan(placed("yes_bid_close"), latest),
        yes_ask=take_or_nan(placed("yes_ask_close"), latest),
        open_interest=take_or_nan(placed("open_interest"), latest),
    )
