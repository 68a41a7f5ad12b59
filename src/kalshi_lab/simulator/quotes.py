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

On a threshold ladder the strikes are driven by one underlying, so their latent probabilities
are ordered (P(above 4.1) <= P(above 4.0)) at every hour, and the lag and the bias map, the same
increasing maps for every strike of the event, keep that order. Most of a ladder's noise is
therefore common to the event (the same log-odds shift for all its strikes at an hour, a share
``LADDER_COMMON_VARIANCE`` of the variance) and only a little is the strike's own: enough for
the occasional executable crossing (the bid of a higher strike above the ask of a lower one)
seen on thin real ladders, not for a ladder whose prices contradict themselves. Finally
:func:`cap_ladder` guarantees, on the whole cents quoted, that no strike's mid exceeds the mid
of the strike below it by more than the wider of their two spreads. Brackets and binaries keep
independent noise per market: a bracket's mids sum to about 1 plus an overround.

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
from kalshi_lab.simulator.segments import linear_recurrence, positions, starts_of
from kalshi_lab.simulator.universe import Universe

#: log-sd of the per-market liquidity factor (lognormal, mean 1): a few deep markets, many thin
LIQUIDITY_SIGMA = 0.8
#: half-life of the quote noise: mispricings persist for about a day
NOISE_HALF_LIFE_H = 24.0
#: share of a ladder strike's noise variance common to its event (the rest is its own): high,
#: so that a ladder's quotes move together, as one underlying's do; not 1, so that a thin
#: strike can still be mispriced against its neighbours (docs/simulator_calibration.md)
LADDER_COMMON_VARIANCE = 0.85
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


def _unit_ar1(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) of unit variance (half-life ``NOISE_HALF_LIFE_H``) per segment."""
    phi = 0.5 ** (1.0 / NOISE_HALF_LIFE_H)
    shocks = rng.standard_normal(int(lengths.sum()))
    first = positions(lengths) == 0
    scaled = np.where(first, shocks, shocks * np.sqrt(1 - phi**2))
    return linear_recurrence(np.full(len(shocks), phi), scaled, lengths)


def unit_noise(
    grid: MarketGrid,
    universe: Universe,
    own_rng: np.random.Generator,
    common_rng: np.random.Generator,
) -> np.ndarray:
    """Unit-variance log-odds noise per grid element: the market's own AR(1) for brackets and
    binaries; for a ladder strike, ``sqrt(c)`` times its event's AR(1) (one value per event-hour,
    shared by its strikes) plus ``sqrt(1 - c)`` times its own, ``c = LADDER_COMMON_VARIANCE``.

    Every market's noise is thus the same unit AR(1) in distribution, whatever its structure:
    the calibration of a single market does not depend on it.
    """
    own = _unit_ar1(grid.lengths, own_rng)
    ladder_hours = np.where(universe.ladder, universe.life_h, 0)
    common = _unit_ar1(ladder_hours, common_rng)
    on_ladder = universe.pays_above[grid.market]
    # the event-hour of each ladder element: its event's first hour plus its position
    event = universe.market_event[grid.market[on_ladder]]
    shared = common[starts_of(ladder_hours)[event] + grid.pos[on_ladder]]
    own[on_ladder] = (
        np.sqrt(LADDER_COMMON_VARIANCE) * shared
        + np.sqrt(1 - LADDER_COMMON_VARIANCE) * own[on_ladder]
    )
    return own


def quoted_mid(
    latent: np.ndarray, grid: MarketGrid, syn: SyntheticParams, noise: np.ndarray
) -> np.ndarray:
    """The unrounded mid probability per grid element (lagged, noisy, distorted latent)."""
    first = grid.pos == 0
    lag = 0.5 ** (1.0 / syn.price_lag_hours)
    lagged = linear_recurrence(
        np.full(grid.size, lag), np.where(first, latent, (1 - lag) * latent), grid.lengths
    )
    w = far_weight(grid, syn.accuracy_horizon_days)
    bias = syn.longshot_bias_close + (syn.longshot_bias - syn.longshot_bias_close) * w
    scale = syn.price_noise_close + (syn.price_noise - syn.price_noise_close) * w
    return 1.0 / (1.0 + np.exp(-(bias * _logit(lagged) + scale * noise)))


def cap_ladder(
    bid: np.ndarray, ask: np.ndarray, grid: MarketGrid, strike: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shift a ladder strike's quote down, spread kept, wherever its mid exceeds the mid of the
    strike below it by more than the wider of their two spreads; returns the new (bid, ask).

    ``strike`` is each market's position on its ladder (-1 off ladders). Strikes are visited
    from the lowest up, each against the final quote of the one below, so that one pass
    guarantees the bound for every adjacent pair at every event-hour; the loop runs over strike
    positions, each step vectorised over all ladders and hours. The strikes of an event are
    consecutive markets of equal life, so the same hour of the strike below is ``lengths``
    elements back. Mids are compared in half cents (``bid + ask``) to stay exact. A shift never
    takes the bid below 1 cent (the lower strike's mid is at least 1 cent plus half its
    spread) and only lowers the ask.
    """
    bid, ask = bid.copy(), ask.copy()
    for j in range(1, int(strike.max(initial=0)) + 1):
        markets = np.flatnonzero(strike == j)
        hi = grid.elements(markets)
        lo = hi - np.repeat(grid.lengths[markets], grid.lengths[markets])
        wider = np.maximum(ask[hi] - bid[hi], ask[lo] - bid[lo])
        excess = (bid[hi] + ask[hi]) - (bid[lo] + ask[lo]) - 2 * wider  # in half cents
        shift = np.maximum(excess + 1, 0) // 2  # whole cents, rounded up
        bid[hi] -= shift
        ask[hi] -= shift
    return bid, ask


def draw_liquidity(n_markets: int, rng: np.random.Generator) -> np.ndarray:
    """The liquidity factor of every market (lognormal, mean 1), drawn first, all at once."""
    return np.exp(LIQUIDITY_SIGMA * rng.standard_normal(n_markets) - LIQUIDITY_SIGMA**2 / 2)


@dataclass(frozen=True)
class QuoteDraws:
    """Where the quotes' draws come from: the markets' liquidity, and a generator per draw."""

    liquidity: np.ndarray  # per market
    own: np.random.Generator  # each market's own noise
    common: np.random.Generator  # each ladder's common noise
    spread: np.random.Generator  # the spreads


def simulate_quotes(
    latent: np.ndarray,
    grid: MarketGrid,
    universe: Universe,
    syn: SyntheticParams,
    draws: QuoteDraws,
) -> Quotes:
    liquidity = draws.liquidity
    noise = unit_noise(grid, universe, draws.own, draws.common)
    mid = quoted_mid(latent, grid, syn, noise)
    # half-spread ~ liquidity^-1/2, scaled so that its mean over markets is half_spread_cents
    # for a contract at 50 cents; sqrt(4 m (1 - m)) narrows it on near-settled contracts
    thinness = liquidity**-0.5 / np.exp(3 * LIQUIDITY_SIGMA**2 / 8)
    uncertainty = np.sqrt(4 * mid * (1 - mid))
    extra = np.maximum(2 * syn.half_spread_cents * thinness[grid.market] * uncertainty - 1, 0)
    spread = 1 + draws.spread.poisson(extra)
    bid = np.clip(np.floor(100 * mid - spread / 2 + 0.5), 1, 98).astype(np.int64)
    ask = np.minimum(bid + spread, 99)
    bid, ask = cap_ladder(bid, ask, grid, universe.ladder_strike)
    return Quotes(liquidity=liquidity, bid=bid, ask=ask)
