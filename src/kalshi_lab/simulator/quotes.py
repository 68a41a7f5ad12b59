"""The quoted market: a lagging, noisy, favourite-longshot-distorted view of the latent.

Per market and hour: ``lagged`` = EMA of the latent probability (half-life
``price_lag_hours``: prices react to news late); ``noise`` = AR(1) log-odds noise of stationary
scale ``price_noise`` (persistent mispricing, not white noise a model could average away); the
mid is ``sigmoid(longshot_bias * (logit(lagged) + noise))``, which over-prices longshots and
under-prices favourites. Bid and ask are whole cents around the mid, at least one cent apart,
wider in thin markets. Together this leaves some, but not much, predictable edge after the
spread, as on the real exchange.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.params import SyntheticParams
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.segments import linear_recurrence

#: log-sd of the per-market liquidity factor (lognormal, mean 1): a few deep markets, many thin
LIQUIDITY_SIGMA = 0.8
#: half-life of the quote noise: mispricings persist for about a day
NOISE_HALF_LIFE_H = 24.0
EPS = 1e-9


@dataclass(frozen=True)
class Quotes:
    liquidity: np.ndarray  # per market, mean 1: scales depth and trade arrival
    bid: np.ndarray  # per grid element: best YES bid in cents, 1..98
    ask: np.ndarray  # per grid element: best YES ask in cents, bid+1..99


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def quoted_mid(
    latent: np.ndarray, grid: MarketGrid, syn: SyntheticParams, rng: np.random.Generator
) -> np.ndarray:
    """The unrounded mid probability per grid element (lagged, noisy, distorted latent)."""
    first = grid.pos == 0
    lag = 0.5 ** (1.0 / syn.price_lag_hours)
    lagged = linear_recurrence(
        np.full(grid.size, lag), np.where(first, latent, (1 - lag) * latent), grid.lengths
    )
    phi = 0.5 ** (1.0 / NOISE_HALF_LIFE_H)
    shocks = rng.standard_normal(grid.size) * syn.price_noise
    noise = linear_recurrence(
        np.full(grid.size, phi), np.where(first, shocks, shocks * np.sqrt(1 - phi**2)), grid.lengths
    )
    return 1.0 / (1.0 + np.exp(-syn.longshot_bias * (_logit(lagged) + noise)))


def simulate_quotes(
    latent: np.ndarray, grid: MarketGrid, syn: SyntheticParams, rng: np.random.Generator
) -> Quotes:
    n_markets = len(grid.lengths)
    liquidity = np.exp(LIQUIDITY_SIGMA * rng.standard_normal(n_markets) - LIQUIDITY_SIGMA**2 / 2)
    mid = quoted_mid(latent, grid, syn, rng)
    # half-spread ~ liquidity^-1/2, scaled so that its mean over markets is half_spread_cents
    thinness = liquidity**-0.5 / np.exp(3 * LIQUIDITY_SIGMA**2 / 8)
    extra = np.maximum(2 * syn.half_spread_cents * thinness - 1, 0)
    spread = 1 + rng.poisson(extra[grid.market])
    bid = np.clip(np.floor(100 * mid - spread / 2 + 0.5), 1, 98).astype(np.int64)
    ask = np.minimum(bid + spread, 99)
    return Quotes(liquidity=liquidity, bid=bid, ask=ask)
