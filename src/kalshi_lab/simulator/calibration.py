"""How hard the simulated market is, measured against the published Kalshi figures it targets.

Every number is computed from a :class:`Simulation` (no constants), so that the calibration
table in docs/simulator_calibration.md and the tests of tests/test_simulator_calibration.py
read the same measurements. Where a figure is a win rate or an expected P&L, it is given twice:
*expected*, from the latent probability (the simulator's ground truth, exactly calibrated, so
its mean is the win rate without the noise of a few hundred correlated outcomes), and
*realised*, from the settlements, as a study of real trades would measure it.

Targets (see the doc for sources): takers' excess return -1.12 % per contract (Becker 2026);
contracts bought at 5 cents win 4.18 % (Becker 2026), a bias that grows with time to expiry
(Page & Clemen 2013); prices more accurate toward close (Bürgi, Deng & Whelan 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.execution.fees import TAKER_FEE_RATE, fee_per_contract
from kalshi_lab.simulator.simulate import Simulation
from kalshi_lab.simulator.universe import SERIES

HOURS_PER_DAY = 24
#: the far and near horizons (days to close) of the bias-by-horizon comparison
FAR_DAYS = 14.0
NEAR_DAYS = 2.0


@dataclass(frozen=True)
class WinRate:
    """Contracts in one price bucket: how many, what they cost, how often they win."""

    n: int
    price: float  # mean price paid or quoted (dollars)
    expected: float  # mean latent probability of the contract (its true win rate)
    realised: float  # share that settled YES for its holder

    @property
    def ratio(self) -> float:
        """Expected win rate over price: 1 = fair, < 1 = over-priced."""
        return self.expected / self.price if self.price else float("nan")


def days_to_close(sim: Simulation) -> np.ndarray:
    """Per grid element (market-hour): days from the start of that hour to the market's close."""
    g = sim.grid
    return (g.lengths[g.market] - g.pos) / HOURS_PER_DAY


def mid(sim: Simulation) -> np.ndarray:
    """Per grid element: the quoted mid in dollars."""
    return (sim.quotes.bid + sim.quotes.ask) / 200.0


def _taker_contract(sim: Simulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per simulated trade: price the taker paid (cents), its contract's latent and settlement."""
    t = sim.trades
    paid = np.where(t.taker_yes, t.yes_price, 100 - t.yes_price)
    latent = sim.latent.prob[t.elem]
    yes = sim.yes[t.market]
    return paid, np.where(t.taker_yes, latent, 1 - latent), np.where(t.taker_yes, yes, ~yes)


def bought_at(
    sim: Simulation, price_cents: int, days: tuple[float, float] = (0.0, np.inf)
) -> WinRate:
    """Contracts takers bought (YES or NO) at exactly ``price_cents``, ``days`` before close.

    Becker's measure: the win rate of contracts by the price they traded at. A taker pays the
    ask, so this includes half the spread, as on the exchange.
    """
    paid, expected, won = _taker_contract(sim)
    left = days_to_close(sim)[sim.trades.elem]
    sel = (paid == price_cents) & (left >= days[0]) & (left < days[1])
    return _win_rate(paid[sel] / 100.0, expected[sel], won[sel])


def quoted_at(
    sim: Simulation, lo: float, hi: float, days: tuple[float, float] = (0.0, np.inf)
) -> WinRate:
    """Market-hours whose YES mid is in ``[lo, hi]`` dollars, ``days`` before close.

    The quote, not a trade: no spread in the price, so the gap is the distortion alone.
    """
    m, left = mid(sim), days_to_close(sim)
    sel = (m >= lo) & (m <= hi) & (left >= days[0]) & (left < days[1])
    yes = sim.yes[sim.grid.market[sel]]
    return _win_rate(m[sel], sim.latent.prob[sel], yes)


def _win_rate(price: np.ndarray, expected: np.ndarray, won: np.ndarray) -> WinRate:
    if not len(price):
        return WinRate(0, float("nan"), float("nan"), float("nan"))
    return WinRate(len(price), float(price.mean()), float(expected.mean()), float(won.mean()))


@dataclass(frozen=True)
class TakerReturn:
    """Takers' mean P&L per contract (dollars; = excess return on a $1 contract), all trades."""

    expected: float  # from the latent probability, before fees
    realised: float  # from the settlements, before fees
    realised_after_fees: float  # the same less the taker fee (large-order limit, no cent ceiling)


def taker_return(sim: Simulation) -> TakerReturn:
    """Contract-weighted mean of (payoff - price paid) over every simulated taker trade."""
    paid, expected, won = _taker_contract(sim)
    price = paid / 100.0
    weight = sim.trades.count
    multiplier = np.array([s.fee_multiplier for s in SERIES])
    series = sim.universe.event_series[sim.universe.market_event[sim.trades.market]]
    fee = fee_per_contract(price, TAKER_FEE_RATE * multiplier[series])
    return TakerReturn(
        expected=float(np.average(expected - price, weights=weight)),
        realised=float(np.average(won - price, weights=weight)),
        realised_after_fees=float(np.average(won - price - fee, weights=weight)),
    )


def brier_by_horizon(sim: Simulation, edges: tuple[float, ...]) -> list[tuple[float, float]]:
    """Per days-to-close bucket ``[edges[i], edges[i+1])``: Brier of the mid and of the latent."""
    m, left, latent = mid(sim), days_to_close(sim), sim.latent.prob
    yes = sim.yes[sim.grid.market].astype(float)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (left >= lo) & (left < hi)
        out.append(
            (
                float(np.mean((m[sel] - yes[sel]) ** 2)),
                float(np.mean((latent[sel] - yes[sel]) ** 2)),
            )
        )
    return out


def log_odds_error(sim: Simulation, days: tuple[float, float]) -> float:
    """Mean |logit(mid) - logit(latent)| over market-hours ``days`` before close, mid 10-90 c.

    How far the price is from the truth where the 1-cent tick does not dominate the error: the
    noise and the bias together, which both shrink toward close.
    """
    m, left, latent = mid(sim), days_to_close(sim), sim.latent.prob
    sel = (m >= 0.1) & (m <= 0.9) & (left >= days[0]) & (left < days[1])
    p = np.clip(latent[sel], 1e-6, 1 - 1e-6)
    gap = np.log(m[sel] / (1 - m[sel])) - np.log(p / (1 - p))
    return float(np.mean(np.abs(gap)))


@dataclass(frozen=True)
class Microstructure:
    mean_spread_cents: float  # over all market-hours
    median_spread_cents: float
    spread_near_50_cents: float  # mean over market-hours with a mid in [0.4, 0.6]
    spread_below_10_cents: float  # mean over market-hours with a mid below 0.10
    median_touch_depth: float  # contracts at the best bid of the /markets snapshot


def microstructure(sim: Simulation) -> Microstructure:
    spread = (sim.quotes.ask - sim.quotes.bid).astype(float)
    m = mid(sim)
    return Microstructure(
        mean_spread_cents=float(spread.mean()),
        median_spread_cents=float(np.median(spread)),
        spread_near_50_cents=float(spread[(m >= 0.4) & (m <= 0.6)].mean()),
        spread_below_10_cents=float(spread[m < 0.10].mean()),
        median_touch_depth=float(np.median(sim.stats.bid_size)),
    )
