"""The latent (true) probability of every outcome, hour by hour: exactly calibrated by design.

An event has K mutually exclusive outcomes. Its winner W is drawn from a prior p0 (a Dirichlet
with alpha < 1, so that some outcomes are longshots), and news arrives as independent signals
``X_k = mu tau 1[k = W] + B_k(tau)`` (B_k Brownian motions) on an information clock ``tau(t)``.
Then ``p_k = softmax_k(log p0_k + mu X_k)`` is the Bayes posterior of W given the signals: the
latent probability is calibrated at every hour, sums to 1 over the outcomes and drifts to the
winner. ``mu = information_rate`` (log-odds per sqrt(unit of the clock below)).

The clock runs ``tau(t) = log((T + f) / (T - t + f))`` over a life of T hours, ``f =
news_floor_hours``: news arrives at a rate inversely proportional to the time left, as for a
quantity observed at close (a temperature, an index level) whose uncertainty shrinks like a
Brownian motion's over the remaining time. The total by close, ``mu^2 log(1 + T / f)``, makes
the winner near-certain, while a contract a day or a week from close can still be open, as on
the real exchange (Bürgi, Deng & Whelan 2025: prices become more accurate toward close). The
earlier clock (``T (t/T)^3`` with ``mu^2 T`` in total) settled most outcomes days before close,
so that the last days, where real markets trade most, had nothing left to price.

A market pays on one bucket (bracket sets, binary events) or, on a threshold ladder, on every
bucket at and above its strike's: its latent probability is then the sum of those buckets'
posteriors, itself the calibrated posterior of "above the strike", and the strikes of one
ladder, all driven by the one W, resolve together and stay ordered at every hour.

Research on the simulated data thus has a known ground truth: a model can at best recover ``p``,
and the market price is ``p`` distorted (see :mod:`kalshi_lab.simulator.quotes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.params import SyntheticParams
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.segments import positions, segmented_cumsum, starts_of
from kalshi_lab.simulator.universe import Universe

#: Dirichlet concentration of the prior; < 1 puts mass near 0: favourites and longshots
DIRICHLET_ALPHA = 0.6
#: floor on a prior probability, so that log p0 stays finite
MIN_PRIOR = 1e-6


@dataclass(frozen=True)
class Latent:
    winner: np.ndarray  # per event: index of the outcome that happens
    prior: np.ndarray  # per market: p0 of what its YES pays on
    prob: np.ndarray  # per grid element: posterior probability that the market resolves YES


def information_clock(pos: np.ndarray, life_h: np.ndarray, floor_h: float) -> np.ndarray:
    """Information time tau after ``pos`` of ``life_h`` hours: log((T + f) / (T - pos + f))."""
    return np.log((life_h + floor_h) / (life_h - pos + floor_h))


def prior_and_winner(k: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per outcome row (the ``k`` buckets of each event, end to end) its Dirichlet prior p0; per
    event the outcome drawn from p0. Few values, drawn for every event at once, first."""
    row_event = np.repeat(np.arange(len(k)), k)
    gamma = np.maximum(rng.gamma(DIRICHLET_ALPHA, size=len(row_event)), MIN_PRIOR)
    prior = gamma / np.bincount(row_event, weights=gamma)[row_event]
    # the first outcome whose cumulative prior passes a uniform draw
    passed = segmented_cumsum(prior, k) < rng.random(len(k))[row_event]
    winner = np.bincount(row_event, weights=passed, minlength=len(k)).astype(np.int64)
    return prior, np.minimum(winner, k - 1)


def _log_posterior(
    prior: np.ndarray,
    wins: np.ndarray,
    row_len: np.ndarray,
    syn: SyntheticParams,
    rng: np.random.Generator,
    running: np.ndarray,
) -> np.ndarray:
    """Unnormalised ``log p0 + mu X`` per (outcome row, hour), rows end to end; ``running`` is
    the running sum of the signal increments before these rows (:func:`segmented_cumsum`)."""
    elem_row = np.repeat(np.arange(len(row_len)), row_len)
    pos = positions(row_len)
    clock = information_clock(pos, row_len[elem_row], syn.news_floor_hours)
    # information arriving during each hour; none before the first (X(0) = 0)
    elapsed = np.where(pos == 0, 0.0, clock - np.concatenate(([0.0], clock[:-1])))
    increments = rng.standard_normal(len(elem_row)) * np.sqrt(elapsed)
    signal = segmented_cumsum(increments, row_len, running)
    signal += syn.information_rate * clock * wins[elem_row]
    return np.log(prior)[elem_row] + syn.information_rate * signal


def _softmax(logit: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Softmax of ``logit`` within each group (the outcomes of one event at one hour)."""
    top = np.full(n_groups, -np.inf)
    np.maximum.at(top, group, logit)
    weight = np.exp(logit - top[group])
    return weight / np.bincount(group, weights=weight, minlength=n_groups)[group]


def _ladder_tails(values: np.ndarray, universe: Universe, grid: MarketGrid | None) -> None:
    """Turn, in place, each ladder strike's P(W = j) into P(W >= j) by adding the strikes
    above it, from the highest down (the highest strike's bucket is its ladder's last).

    ``values`` are per grid element (``grid`` given) or per market (``grid`` None). A loop over
    strike positions, each step one vectorised update of every ladder at every hour.
    """
    strike, above = universe.ladder_strike, universe.has_strike_above
    for s in range(int(strike.max(initial=0)) - 1, -1, -1):
        markets = np.flatnonzero((strike == s) & above)
        if grid is None:
            values[markets] += values[markets + 1]
        else:
            lengths = grid.lengths[markets]
            elems = grid.elements(markets)
            values[elems] += values[elems + np.repeat(lengths, lengths)]


def simulate_latent(
    universe: Universe,
    grid: MarketGrid,
    syn: SyntheticParams,
    prior: np.ndarray,
    winner: np.ndarray,
    rng: np.random.Generator,
    running: np.ndarray,
) -> Latent:
    """Draw the signal paths of every outcome (listed or not) of every event, given the events'
    ``prior`` per outcome row and ``winner`` (:func:`prior_and_winner`). ``running`` carries the
    sum of the signal increments drawn before, so that events simulated in chunks get the bits
    of one pass over all (:func:`segmented_cumsum`)."""
    k, life = universe.n_outcomes, universe.life_h
    row_event = np.repeat(np.arange(len(k)), k)
    row_len = life[row_event]
    wins = positions(k) == winner[row_event]
    logit = _log_posterior(prior, wins, row_len, syn, rng, running)
    # group = (event, hour of its life); outcome rows of one event share its hours
    group = np.repeat(starts_of(life)[row_event], row_len) + positions(row_len)
    prob_rows = _softmax(logit, group, int(life.sum()))
    # gather each listed market's outcome row onto the market grid; a ladder strike then takes
    # the sum of its bucket and the buckets above it
    row_of_market = starts_of(k)[universe.market_event] + universe.market_outcome
    elem_of_market = np.repeat(starts_of(row_len)[row_of_market], grid.lengths) + grid.pos
    prob = prob_rows[elem_of_market]
    market_prior = prior[row_of_market]
    _ladder_tails(prob, universe, grid)
    _ladder_tails(market_prior, universe, None)
    return Latent(winner=winner, prior=market_prior, prob=prob)
