"""Taking strategies that know only the quote: on a market as hard as Kalshi, they lose.

The test of the simulator's calibration (docs/simulator_calibration.md): a model that sees only
the mid, even one that has learnt the market's favourite-longshot bias from past settlements,
must lose money when it buys at the ask on its signals and pays Kalshi's taker fee (computed to
the cent by :mod:`kalshi_lab.execution.fees`). Decisions are made once a day at 00:00 UTC, as the
daily pipeline makes them, on events the model was not fit on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from kalshi_lab.execution.fees import FeeSchedule, fee_per_contract, quadratic_units
from kalshi_lab.simulator.calibration import HOURS_PER_DAY, days_to_close, mid
from kalshi_lab.simulator.simulate import Simulation
from kalshi_lab.simulator.universe import SERIES


def daily_decisions(sim: Simulation) -> np.ndarray:
    """Grid elements at 00:00 UTC: one decision per market and day, as the daily pipeline makes."""
    return np.flatnonzero(sim.grid.hour % HOURS_PER_DAY == 0)


def fee_schedules(sim: Simulation) -> list[FeeSchedule]:
    """Per market, the taker fee schedule of its series."""
    by_series = [FeeSchedule.for_series("quadratic", s.fee_multiplier) for s in SERIES]
    u = sim.universe
    return [by_series[s] for s in u.event_series[u.market_event]]


def taker_pnl_cents(
    sim: Simulation, elem: np.ndarray, buy_yes: np.ndarray, contracts: int
) -> tuple[np.ndarray, np.ndarray]:
    """(expected, realised) P&L in cents of taking ``contracts`` at ``elem``, after the fee.

    A YES buy pays the ask, a NO buy pays 100 - bid; the fee is Kalshi's, to the cent, from
    :mod:`kalshi_lab.execution.fees`. Expected uses the latent probability, realised the result.
    """
    q, market = sim.quotes, sim.grid.market[elem]
    paid = np.where(buy_yes, q.ask[elem], 100 - q.bid[elem])
    schedules = fee_schedules(sim)
    fee = np.array(
        [
            schedules[m].taker_fee_cents(quadratic_units(contracts, int(p)))
            for m, p in zip(market.tolist(), paid.tolist(), strict=True)
        ],
        dtype=float,
    )
    latent = sim.latent.prob[elem]
    win_prob = np.where(buy_yes, latent, 1 - latent)
    won = np.where(buy_yes, sim.yes[market], ~sim.yes[market])
    cost = contracts * paid + fee
    return contracts * 100 * win_prob - cost, contracts * 100 * won - cost


@dataclass(frozen=True)
class TakerResult:
    """A taking strategy's orders on held-out markets and its P&L per contract, after fees."""

    n_orders: int
    expected_per_contract: float  # cents, from the latent probability
    realised_per_contract: float  # cents, from the settlements


def _result(expected: np.ndarray, realised: np.ndarray, contracts: int) -> TakerResult:
    n = len(expected)
    if not n:
        return TakerResult(0, float("nan"), float("nan"))
    return TakerResult(
        n, float(expected.sum() / (n * contracts)), float(realised.sum() / (n * contracts))
    )


def _mid_features(sim: Simulation, elem: np.ndarray) -> np.ndarray:
    """What a model that knows only the quote sees: logit(mid) and how it bends with horizon."""
    m = np.clip(mid(sim)[elem], 0.005, 0.995)
    logit = np.log(m) - np.log1p(-m)
    horizon = np.log1p(days_to_close(sim)[elem])
    return np.column_stack([logit, logit * horizon, horizon])


def held_out_split(sim: Simulation, elem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decisions on even events (fit) and on odd events (trade): no event on both sides."""
    event = sim.universe.market_event[sim.grid.market[elem]]
    return elem[event % 2 == 0], elem[event % 2 == 1]


def recalibrated_mid_taker(
    sim: Simulation, contracts: int = 10, paid_cents: tuple[int, int] = (3, 97)
) -> TakerResult:
    """The best a mid-only model can do: the market recalibrated, then take every edge.

    A logistic regression on logit(mid) and days to close, fit on the settlements of half the
    events, learns the favourite-longshot bias and its horizon; on the other half it buys YES at
    the ask when its probability beats ask + fee, NO at 1 - bid when 1 - probability beats
    that, if the price paid is within ``paid_cents``. On Kalshi this loses after fees, so it
    must here too. Near-settled contracts (a favourite bought at 98-99 cents) are left out: there
    the 1-cent tick floor, not a mispricing, decides, and real ones earn a sliver too (1-cent
    YES contracts lose 41 %, so 99-cent NO ones earn about +0.4 cent; Becker 2026).
    """
    fit_elem, trade_elem = held_out_split(sim, daily_decisions(sim))
    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(_mid_features(sim, fit_elem), sim.yes[sim.grid.market[fit_elem]])
    prob = model.predict_proba(_mid_features(sim, trade_elem))[:, 1]
    q = sim.quotes
    rates = np.array([s.taker_rate_float for s in fee_schedules(sim)])[sim.grid.market[trade_elem]]
    ask, no_ask = q.ask[trade_elem] / 100.0, 1 - q.bid[trade_elem] / 100.0
    yes_edge = prob - ask - fee_per_contract(ask, rates)
    no_edge = (1 - prob) - no_ask - fee_per_contract(no_ask, rates)
    paid = np.where(yes_edge > no_edge, q.ask[trade_elem], 100 - q.bid[trade_elem])
    take = ((yes_edge > 0) | (no_edge > 0)) & (paid >= paid_cents[0]) & (paid <= paid_cents[1])
    expected, realised = taker_pnl_cents(
        sim, trade_elem[take], (yes_edge > no_edge)[take], contracts
    )
    return _result(expected, realised, contracts)


def always_yes_taker(sim: Simulation, contracts: int = 10) -> TakerResult:
    """Buy YES at the ask at every daily decision of the held-out events: the spread and fee."""
    _, trade_elem = held_out_split(sim, daily_decisions(sim))
    expected, realised = taker_pnl_cents(
        sim, trade_elem, np.ones(len(trade_elem), dtype=bool), contracts
    )
    return _result(expected, realised, contracts)
