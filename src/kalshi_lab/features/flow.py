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

#: trades processed at a time: enough for numpy to run at full speed, few enough that the
#: per-trade temporaries (8 MB each) are recycled by the allocator instead of ~1 GB of fresh
#: memory for ten million trades, which on a VM costs more than the arithmetic
CHUNK_TRADES = 1_000_000


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


def equals(column: pd.Series, value: str) -> np.ndarray:
    """``column == value`` as a bool array; nulls are False.

    Object columns (what ``read_parquet`` gives for strings) are compared in numpy, twice as
    fast as through pandas on millions of trades.
    """
    if column.dtype == object:
        return np.asarray(column.to_numpy() == value, dtype=bool)
    return (column == value).to_numpy(dtype=bool, na_value=False)


def _taker_value(trades: pd.DataFrame, side: str) -> np.ndarray:
    """Dollars paid per trade by takers of ``side`` (``count * {side}_price``), 0 for others."""
    out = np.zeros(len(trades))
    np.multiply(
        trades["count"].to_numpy(dtype=np.float64),
        trades[f"{side}_price"].to_numpy(dtype=np.float64),
        out=out,
        where=equals(trades["taker_side"], side),
    )
    return out


def daily_flow(trades: pd.DataFrame, tickers: pd.Index, panel: Panel) -> DailyFlow:
    """Sum the trades onto the panel rows; trades off the grid are counted and logged.

    Off-grid trades go to one extra bin that is dropped, so no array is filtered.
    """
    n = panel.n_rows
    yes_value, no_value, n_trades = (np.zeros(n + 1) for _ in range(3))
    n_off = 0
    for start in range(0, len(trades), CHUNK_TRADES):
        chunk = trades.iloc[start : start + CHUNK_TRADES]
        market = locate_tickers(tickers, chunk["ticker"])
        day = day_ending_at_or_after(utc_ns(chunk["created_time"], "trades.created_time"))
        rows = panel.rows(market, day)
        off_grid = rows < 0
        n_off += int(np.count_nonzero(off_grid))
        rows[off_grid] = n
        yes_value += np.bincount(rows, weights=_taker_value(chunk, "yes"), minlength=n + 1)
        no_value += np.bincount(rows, weights=_taker_value(chunk, "no"), minlength=n + 1)
        n_trades += np.bincount(rows, minlength=n + 1)
    if n_off:
        log.warning(
            "%d of %d trades fall outside their market's daily candles (or on unknown tickers); ignored",
            n_off,
            len(trades),
        )
    return DailyFlow(yes_value=yes_value[:n], no_value=no_value[:n], n_trades=n_trades[:n])
