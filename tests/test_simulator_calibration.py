"""The DEFAULT simulator (conf/data/synthetic.yaml) is as hard as real Kalshi markets.

Targets and sources: docs/simulator_calibration.md. Measurements come from
:mod:`kalshi_lab.simulator.calibration`; win rates and P&L are checked on their *expected*
values (from the simulator's latent probability, which is exactly calibrated), because realised
outcomes of a few thousand correlated contracts are too noisy to pin a 1-point bias. Tolerances
are wide enough for another seed, tight enough that the old defaults (longshot_bias 0.85, no
shrinking toward close) or a stronger bias fail.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.params import params_from_dict
from kalshi_lab.simulator import Simulation, simulate
from kalshi_lab.simulator import calibration as cal
from kalshi_lab.simulator import mid_takers as takers

ROOT = Path(__file__).resolve().parents[1]
#: a modest size: the default config except for its number of markets
N_MARKETS = 2000


def default_sim(**synthetic: float) -> Simulation:
    data = params_from_dict(compose([f"data.synthetic.n_markets={N_MARKETS}"], ROOT / "conf")).data
    assert data.synthetic is not None
    if synthetic:
        data = dataclasses.replace(data, synthetic=dataclasses.replace(data.synthetic, **synthetic))
    return simulate(data)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return default_sim()


def test_a_taker_who_buys_at_the_ask_on_every_signal_of_a_mid_only_model_loses(sim):
    recalibrated = takers.recalibrated_mid_taker(sim)
    assert recalibrated.n_orders > 1000
    # the market's own calibration curve is not an edge once the spread and fee are paid
    assert recalibrated.expected_per_contract < -0.3
    every_day = takers.always_yes_taker(sim)
    assert every_day.expected_per_contract < -1.0
    assert every_day.realised_per_contract < 0


def test_takers_lose_a_little_on_average_as_on_kalshi(sim):
    taker = cal.taker_return(sim)
    # Becker 2026: -1.12 % per contract across 72.1 M trades
    assert -0.016 < taker.expected < -0.007


def test_five_cent_contracts_win_about_four_percent(sim):
    five = cal.bought_at(sim, 5)
    assert five.n > 1000
    # Becker 2026: 4.18 %; a fair market would give about 4.4 % here (half the spread)
    assert 0.037 < five.expected < 0.045
    quoted = cal.quoted_at(sim, 0.03, 0.07)
    assert 0.85 < quoted.ratio < 0.95  # over-priced, modestly


def test_the_longshot_bias_shrinks_toward_close(sim):
    far = cal.quoted_at(sim, 0.03, 0.07, (cal.FAR_DAYS, math.inf))
    near = cal.quoted_at(sim, 0.03, 0.07, (0.0, cal.NEAR_DAYS))
    assert near.n > 300
    assert far.ratio < 0.93
    assert near.ratio > far.ratio + 0.015


def test_prices_get_more_accurate_toward_close(sim):
    brier = [mid for mid, _ in cal.brier_by_horizon(sim, (0.0, 1.0, 3.0, 7.0, 14.0, math.inf))]
    assert brier == sorted(brier)  # nearest bucket first: the smallest error
    assert brier[0] < 0.01 < 0.05 < brier[-1]
    # not only because outcomes settle: the price's own error shrinks (noise and bias)
    near = cal.log_odds_error(sim, (0.0, cal.NEAR_DAYS))
    far = cal.log_odds_error(sim, (cal.FAR_DAYS, math.inf))
    assert near < 0.8 * far


def test_the_old_defaults_fail_these_tests():
    """The calibration is what makes them pass: the pre-calibration price model does not."""
    old = default_sim(
        longshot_bias=0.85, longshot_bias_close=0.85, informed_share=0.3, longshot_taker_share=0.5
    )
    assert cal.bought_at(old, 5).expected < 0.037
    far = cal.quoted_at(old, 0.03, 0.07, (cal.FAR_DAYS, math.inf))
    near = cal.quoted_at(old, 0.03, 0.07, (0.0, cal.NEAR_DAYS))
    assert not near.ratio > far.ratio + 0.015
    assert cal.taker_return(old).expected > -0.007
    assert takers.recalibrated_mid_taker(old).expected_per_contract > -0.3
