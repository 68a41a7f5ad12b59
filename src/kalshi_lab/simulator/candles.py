"""Candlesticks: quotes and trades aggregated per market and period, as the API reports them.

A candle covers one UTC period (an hour or a day) of one market's open life and is keyed by the
period's END (``end_period_ts``), the first instant its close is known. Quote OHLC are over the
quotes standing in the period through its end: a quote on the hourly grid is the market's state
at the start of its hour, so the close is the quote of the hour that starts at the END, the
state at that instant, as the API's close is the last quote before the end (the grid's last
hour of the period would be an hour stale, a price a book snapshot taken at the end has already
moved past). The market's last period closes on its last quote. Trade-price OHLC, mean and
volume are over the period's trades, and only defined when it has a trade (the API then returns
null prices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.quotes import Quotes
from kalshi_lab.simulator.segments import group_bounds
from kalshi_lab.simulator.trades import Trades


@dataclass(frozen=True)
class Candles:
    """One row per (market, period), sorted by market then time. Prices in cents."""

    period_minutes: int
    market: np.ndarray
    end_ts: np.ndarray  # Unix seconds: inclusive end of the period
    bid: np.ndarray  # (n, 4): open, low, high, close
    ask: np.ndarray  # (n, 4)
    n_trades: np.ndarray
    price: np.ndarray  # (n, 4) open, low, high, close of trades; meaningless where n_trades == 0
    mean_price: np.ndarray  # volume-weighted, dollars; NaN without trades
    previous: np.ndarray  # last trade price before the period; -1 when there was none
    volume: np.ndarray
    open_interest: np.ndarray  # at the end of the period


def _ohlc(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    ends = np.append(bounds[1:], len(values)) - 1
    return np.stack(
        [
            values[bounds],
            np.minimum.reduceat(values, bounds),
            np.maximum.reduceat(values, bounds),
            values[ends],
        ],
        axis=1,
    )


def _carry(values: np.ndarray, has: np.ndarray, first_of_market: np.ndarray) -> np.ndarray:
    """Last ``values[j]`` with ``has[j]`` at or before each row, within its market; -1 if none."""
    idx = np.maximum.accumulate(np.where(has, np.arange(len(has)), -1))
    ok = idx >= first_of_market
    return np.where(ok, values[np.maximum(idx, 0)], -1)


def _through_end(
    values: np.ndarray, ohlc: np.ndarray, bounds: np.ndarray, grid: MarketGrid
) -> np.ndarray:
    """``ohlc`` with the close moved to the quote standing at each period's end (the element
    after the period, when it is the same market's) and the low and high widened to it."""
    after = np.append(bounds[1:], grid.size)  # the element after each period
    same = after < grid.size
    same[same] = grid.market[after[same]] == grid.market[bounds[same]]
    close = np.where(same, values[np.minimum(after, grid.size - 1)], ohlc[:, 3])
    out = ohlc.copy()
    out[:, 3] = close
    out[:, 1] = np.minimum(out[:, 1], close)
    out[:, 2] = np.maximum(out[:, 2], close)
    return out


def build_candles(
    grid: MarketGrid, quotes: Quotes, trades: Trades, t0: int, period_hours: int
) -> Candles:
    period = grid.hour // period_hours
    bounds = group_bounds(grid.market * (int(period.max(initial=0)) + 1) + period)
    n = len(bounds)
    group_of = np.repeat(np.arange(n), np.diff(np.append(bounds, grid.size)))
    market = grid.market[bounds]
    first_of_market = np.searchsorted(market, market, side="left")

    tg = group_of[trades.elem]
    n_trades = np.bincount(tg, minlength=n)
    volume = np.bincount(tg, weights=trades.count, minlength=n).astype(np.int64)
    value = np.bincount(tg, weights=trades.count * trades.yes_price, minlength=n)
    price = np.zeros((n, 4), dtype=np.int64)
    last_oi = np.zeros(n, dtype=np.int64)
    if trades.size:
        tb = group_bounds(tg)
        price[tg[tb]] = _ohlc(trades.yes_price, tb)
        last_oi[tg[tb]] = trades.open_interest[np.append(tb[1:], trades.size) - 1]
    has = n_trades > 0
    close = _carry(price[:, 3], has, first_of_market)
    previous = np.where(np.arange(n) > first_of_market, np.roll(close, 1), -1)
    mean_price = np.where(has, value / np.maximum(volume, 1) / 100, np.nan)
    return Candles(
        period_minutes=60 * period_hours,
        market=market,
        end_ts=t0 + 3600 * period_hours * (period[bounds] + 1),
        bid=_through_end(quotes.bid, _ohlc(quotes.bid, bounds), bounds, grid),
        ask=_through_end(quotes.ask, _ohlc(quotes.ask, bounds), bounds, grid),
        n_trades=n_trades,
        price=price,
        mean_price=mean_price,
        previous=previous,
        volume=volume,
        open_interest=np.maximum(_carry(last_oi, has, first_of_market), 0),
    )
