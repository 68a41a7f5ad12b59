"""The quoted market: a slightly lagging, noisy, favourite-longshot-distorted view of the latent.

Per market and hour, with ``d`` the days left to close and ``w = 1 - exp(-d / H)`` its weight
(0 at close, near 1 far from it; ``H = accuracy_horizon_days``):

* ``lagged`` = EMA of the latent probability (half-life ``price_lag_hours``): news reaches the
  price late, by hours, not days;
* ``b = longshot_bias_close + (longshot_bias - longshot_bias_close) w``: the log-odds
  compression, strongest far from close. Real longshot over-pricing is modest and grows with time
  to expiry (Page & Clemen 2013; 5-cent Kalshi contracts win 4.18 %, Becker 2026);
* ``noise`` = a unit AR(1) in log-odds (half-life ``NOISE_HALF_LIFE_H``: persistent mispricing
  a model cannot average away) scaled by ``price_noise_close + (price_noise -
  price_noise_close) w``: prices get more accurate toward close (Bürgi, Deng & Whelan 2025);
* the mid is ``sigmoid(b logit(lagged) + noise)``.

Bid and ask are whole cents around the mid, at least one cent apart. The spread is wider in thin
markets and in uncertain ones (mid near 50 cents) than on near-settled contracts, which trade at
1-2 cents as on the real exchange; otherwise dead longshots would be offered at 5 cents and
above and every cheap contract would look far more over-priced than Kalshi's. Calibration
against the published figures: docs/simulator_calibration.md.
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
HOURS_PER_DAY = 24.0


@dataclass(frozen=True)
class Quotes:
    liquidity: np.ndarray  # per market, mean 1: scales depth and trade arrival
    bid: np.ndarray  # per grid element: best YES bid in cents, 1..98
    ask: np.ndarray  # per grid element: best YES ask in cents, bid+1..99


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def far_weight(grid: MarketGrid, horizon_days: float) -> np.ndarray:
    """``1 - exp(-days to close / horizon)`` per element: 0 at close, toward 1 far from it."""
    days_left = (grid.lengths[grid.market] - grid.pos) / HOURS_PER_DAY
    return -np.expm1(-days_left / horizon_days)


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
    shocks = rng.standard_normal(grid.size)
    unit_noise = linear_recurrence(
        np.full(grid.size, phi), np.where(first, shocks, shocks * np.sqrt(1 - phi**2)), grid.lengths
    )
    w = far_weight(grid, syn.accuracy_horizon_days)
    bias = syn.longshot_bias_close + (syn.longshot_bias - syn.longshot_bias_close) * w
    scale = syn.price_noise_close + (syn.price_noise - syn.price_noise_close) * w
    return 1.0 / (1.0 + np.exp(-(bias * _logit(lagged) + scale * unit_noise)))


def simulate_quotes(
    latent: np.ndarray, grid: MarketGrid, syn: SyntheticParams, rng: np.random.Generator
) -> Quotes:
    n_markets = len(grid.lengths)
    liquidity = np.exp(LIQUIDITY_SIGMA * rng.standard_normal(n_markets) - LIQUIDITY_SIGMA**2 / 2)
    mid = quoted_mid(latent, grid, syn, rng)
    # half-spread ~ liquidity^-1/2, scaled so that its mean over markets is half_spread_cents
    # for a contract at 50 cents; sqrt(4 m (1 - m)) narrows it on near-settled contracts
    thinness = liquidity**-0.5 / np.exp(3 * LIQUIDITY_SIGMA**2 / 8)
    uncertainty = np.sqrt(4 * mid * (1 - mid))
    extra = np.maximum(2 * syn.half_spread_cents * thinness[grid.market] * uncertainty - 1, 0)
    spread = 1 + rng.poisson(extra)
    bid = np.clip(np.floor(100 * mid - spread / 2 + 0.5), 1, 98).astype(np.int64)
    ask = np.minimum(bid + spread, 99)
    return Quotes(liquidity=liquidity, bid=bid, ask=ask)
