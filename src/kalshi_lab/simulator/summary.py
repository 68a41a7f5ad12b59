"""Per-market figures of the /markets snapshot taken at the end of ``data.end``.

The snapshot is what a fetcher sees after every market has closed and settled: the last trade,
total volume and open interest, the volume of the last 24 hours, and "a day ago" values
(``previous_*``) taken 24 hours before the snapshot or, for markets closed earlier, at close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.simulator.books import touch_depth
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.quotes import Quotes
from kalshi_lab.simulator.trades import Trades
from kalshi_lab.simulator.universe import Universe

DAY_S = 86400


@dataclass(frozen=True)
class MarketStats:
    """Prices in cents (0 where no trade ever happened), counts in contracts."""

    last_price: np.ndarray
    previous_price: np.ndarray
    volume: np.ndarray
    volume_24h: np.ndarray
    open_interest: np.ndarray
    bid: np.ndarray  # quote in the last open hour
    ask: np.ndarray
    previous_bid: np.ndarray
    previous_ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray


def _last_per_market(values: np.ndarray, market: np.ndarray, n_markets: int) -> np.ndarray:
    """Last value of each market's run in a market-sorted array; 0 for markets without one."""
    out = np.zeros(n_markets, dtype=np.int64)
    if market.size:
        last = np.append(market[1:] != market[:-1], True)
        out[market[last]] = values[last]
    return out


def touch_depths(
    liquidity: np.ndarray, depth_contracts: float, rng: np.random.Generator
) -> np.ndarray:
    """(bid, ask) contracts at the touch of every market at the snapshot, drawn all at once."""
    return touch_depth(np.repeat(liquidity, 2), depth_contracts, rng).reshape(len(liquidity), 2)


def market_stats(
    universe: Universe,
    grid: MarketGrid,
    quotes: Quotes,
    trades: Trades,
    depth: np.ndarray,
) -> MarketStats:
    """The snapshot's figures of every market; ``depth`` is its (bid, ask) touch depth
    (:func:`touch_depths`)."""
    n = len(grid.lengths)
    day_ago_us = (universe.snapshot - DAY_S) * 10**6
    before = trades.time_us <= day_ago_us
    snapshot_h = (universe.snapshot - universe.t0) // 3600
    open_h = universe.open_h[universe.market_event]
    close_h = universe.close_h[universe.market_event]
    # the hour 24 h before the snapshot, or the last open hour for markets closed by then
    day_ago = grid.starts + np.clip(snapshot_h - 24, open_h, close_h - 1) - open_h
    return MarketStats(
        last_price=_last_per_market(trades.yes_price, trades.market, n),
        previous_price=_last_per_market(trades.yes_price[before], trades.market[before], n),
        volume=np.bincount(trades.market, weights=trades.count, minlength=n).astype(np.int64),
        volume_24h=np.bincount(
            trades.market[~before], weights=trades.count[~before], minlength=n
        ).astype(np.int64),
        open_interest=_last_per_market(trades.open_interest, trades.market, n),
        bid=quotes.bid[grid.last],
        ask=quotes.ask[grid.last],
        previous_bid=quotes.bid[day_ago],
        previous_ask=quotes.ask[day_ago],
        bid_size=np.maximum(np.round(depth[:, 0]), 1).astype(np.int64),
        ask_size=np.maximum(np.round(depth[:, 1]), 1).astype(np.int64),
    )
