"""Orderbook snapshots: resting bids on both sides, consistent with the quotes at that instant.

Snapshots are taken ``orderbook_snapshots_per_day`` times a day at equal UTC intervals from
00:00, for every snapshot time while the market is open. The best YES bid is the quoted bid;
the best NO bid is 1 - the quoted YES ask (a NO bid at x is a YES offer at 1 - x). Each side
lists up to ``book_levels`` one-cent levels, with depth scaled by the market's liquidity and
non-increasing away from the touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.params import SyntheticParams
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.quotes import Quotes

#: gamma shape of the touch-depth noise (mean 1)
DEPTH_SHAPE = 3.0
#: each level further from the touch keeps this share (uniform range) of the previous depth
DECAY_RANGE = (0.5, 0.95)


@dataclass(frozen=True)
class Books:
    """One row per snapshot; level j is j cents away from the touch. Price 0 = no level."""

    market: np.ndarray
    ts: np.ndarray  # Unix seconds of the snapshot
    yes_price: np.ndarray  # (n, levels) cents
    yes_size: np.ndarray  # (n, levels) contracts
    no_price: np.ndarray
    no_size: np.ndarray


def touch_depth(
    liquidity: np.ndarray, depth_contracts: float, rng: np.random.Generator
) -> np.ndarray:
    """Contracts resting at the best level, one draw per entry of ``liquidity``."""
    return depth_contracts * liquidity * rng.gamma(DEPTH_SHAPE, 1 / DEPTH_SHAPE, liquidity.shape)


@dataclass(frozen=True)
class BookDraws:
    """A generator per draw of the books, in the order they are made: each side's decay of
    depth away from the touch, then its depth at the touch."""

    yes_decay: np.random.Generator
    yes_depth: np.random.Generator
    no_decay: np.random.Generator
    no_depth: np.random.Generator


def snapshot_hours(snapshots_per_day: int) -> int:
    """Hours between two order-book snapshots (taken at whole multiples of it)."""
    return 24 // snapshots_per_day


def _sizes(
    liquidity: np.ndarray,
    levels: int,
    depth_contracts: float,
    decay_rng: np.random.Generator,
    depth_rng: np.random.Generator,
) -> np.ndarray:
    decay = decay_rng.uniform(*DECAY_RANGE, (len(liquidity), levels))
    decay[:, 0] = 1.0
    depth = touch_depth(liquidity, depth_contracts, depth_rng)[:, None] * np.cumprod(decay, axis=1)
    return np.maximum(np.round(depth), 1).astype(np.int64)


def build_books(
    grid: MarketGrid,
    quotes: Quotes,
    t0: int,
    snapshots_per_day: int,
    syn: SyntheticParams,
    draws: BookDraws,
) -> Books:
    elem = np.flatnonzero(grid.hour % snapshot_hours(snapshots_per_day) == 0)
    away = np.arange(syn.book_levels)
    yes_price = quotes.bid[elem][:, None] - away
    no_price = (100 - quotes.ask[elem])[:, None] - away
    liquidity = quotes.liquidity[grid.market[elem]]
    levels, depth = syn.book_levels, syn.depth_contracts
    return Books(
        market=grid.market[elem],
        ts=t0 + 3600 * grid.hour[elem],
        yes_price=np.maximum(yes_price, 0),
        yes_size=_sizes(liquidity, levels, depth, draws.yes_decay, draws.yes_depth),
        no_price=np.maximum(no_price, 0),
        no_size=_sizes(liquidity, levels, depth, draws.no_decay, draws.no_depth),
    )
