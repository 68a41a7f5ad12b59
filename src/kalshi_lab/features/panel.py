"""The daily grid: one row per market and UTC day, from its first to its last daily candle.

A day is identified by the END of its daily candle, ``as_of`` (00:00 UTC after the day), as
an integer day number (days since 1970-01-01). Candles and trades are placed on the grid by
arithmetic on those numbers (row = first row of the market + days since its first candle), so
building the grid and aligning data need no per-market loop and no merge. Days without a
candle still get a row: re-indexing onto days that happened to have data silently dropped
rows in the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.features.grouped import Groups

DAY_NS = 86_400 * 10**9


def utc_ns(ts: pd.Series, name: str) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of a timestamp column; NaT is a DataError."""
    ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
    if len(ns) and (ns == np.iinfo(np.int64).min).any():
        raise DataError(f"{name} has null timestamps")
    return ns


def day_ending_at_or_after(ns: np.ndarray) -> np.ndarray:
    """Day number of the first 00:00 UTC at or after each time.

    A daily candle covers ``(as_of - 1 day, as_of]``: the API's ``end_period_ts`` is the
    inclusive END of the period. So a trade at 23:59 on day d belongs to as_of = d + 1 00:00,
    together with the candle ending then, and a candle ending at midnight keeps that midnight.
    """
    day = np.negative(ns)
    day //= DAY_NS
    return np.negative(day, out=day)


def locate_tickers(index: pd.Index, tickers: pd.Series) -> np.ndarray:
    """Position of each ticker in ``index``, -1 if absent; categorical input is mapped once."""
    if isinstance(tickers.dtype, pd.CategoricalDtype):
        by_code = index.get_indexer(tickers.cat.categories.astype(str))
        codes = tickers.cat.codes.to_numpy()
        return np.where(codes >= 0, by_code[np.maximum(codes, 0)], -1)
    return index.get_indexer(tickers)


@dataclass(frozen=True)
class Panel:
    """Row layout of the daily grid; rows are grouped by market, days ascending within each."""

    market: np.ndarray  # per row: position of its market in the ticker-sorted markets table
    day: np.ndarray  # per row: day number of as_of
    groups: Groups
    first_day: np.ndarray  # per market: day number of its first row (0 without rows)
    offset: np.ndarray  # per market: index of its first row
    n_days: np.ndarray  # per market: number of rows (0 for a market without daily candles)

    @property
    def n_rows(self) -> int:
        return len(self.day)

    def rows(self, market: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Row of each (market, day) pair; -1 where the market is unknown or the day off its grid."""
        m = np.maximum(market, 0)
        rel = day - self.first_day[m]
        outside = (market < 0) | (rel < 0) | (rel >= self.n_days[m])
        rel += self.offset[m]
        rel[outside] = -1
        return rel


def build_panel(market: np.ndarray, day: np.ndarray, n_markets: int) -> Panel:
    """Grid spanning, for each market, the days of its candles (``market`` >= 0 only)."""
    first = np.full(n_markets, np.iinfo(np.int64).max)
    last = np.full(n_markets, np.iinfo(np.int64).min)
    np.minimum.at(first, market, day)
    np.maximum.at(last, market, day)
    n_days = np.where(last >= first, last - first + 1, 0)
    offset = np.cumsum(n_days) - n_days
    groups = Groups.from_sizes(n_days)
    row_market = np.repeat(np.arange(n_markets, dtype=np.int64), n_days)
    first = np.where(n_days > 0, first, 0)
    return Panel(
        market=row_market,
        day=first[row_market] + groups.pos,
        groups=groups,
        first_day=first,
        offset=offset,
        n_days=n_days,
    )
