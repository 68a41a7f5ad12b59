"""Kalshi taker fees: exact cent ceilings, series multiplier, one ceiling per order."""

import numpy as np
import pytest

from kalshi_lab.backtest.fees import FeeSchedule, fee_per_contract, quadratic_units

TAKER = FeeSchedule.for_series("quadratic", 1.0)


@pytest.mark.parametrize(
    ("count", "price", "cents"),
    [
        (1, 50, 2),  # 0.0175 -> 2 cents
        (10, 50, 18),  # 0.175 -> 18 cents
        (100, 50, 175),  # exactly 1.75: a float product would give 175.00000000000003 -> 176
        (1, 1, 1),  # 0.000693 -> 1 cent
        (1000, 99, 70),  # 0.07 * 1000 * 0.99 * 0.01 = 0.693 -> 70 cents
    ],
)
def test_taker_fee_is_the_cent_ceiling_of_the_quadratic(count, price, cents):
    assert TAKER.taker_fee_cents(quadratic_units(count, price)) == cents


def test_series_multiplier_scales_the_fee():
    half = FeeSchedule.for_series("quadratic", 0.5)
    assert half.taker_fee_cents(quadratic_units(100, 50)) == 88  # 87.5 -> 88
    assert half.taker_fee_cents(quadratic_units(10, 50)) == 9  # 8.75 -> 9
    assert half.taker_rate_float == pytest.approx(0.035)


def test_taker_rate_comes_from_params():
    assert FeeSchedule.for_series("quadratic", 1.0, 0.0).taker_fee_cents(10_000) == 0


def test_series_with_maker_fees_charge_takers_the_same():
    units = quadratic_units(100, 50)
    maker = FeeSchedule.for_series("quadratic_with_maker_fees", 1.0)
    assert maker.taker_fee_cents(units) == TAKER.taker_fee_cents(units) == 175


def test_one_ceiling_per_order_not_per_level():
    # five 1-lots at 10 cents: 5 x ceil(0.63) = 5 cents as separate orders, ceil(3.15) = 4 as one
    assert 5 * TAKER.taker_fee_cents(quadratic_units(1, 10)) == 5
    assert TAKER.taker_fee_cents(5 * quadratic_units(1, 10)) == 4


def test_fee_per_contract_is_vectorised_and_unrounded():
    out = fee_per_contract(np.array([0.5, 0.1]), np.array([0.07, 0.035]))
    np.testing.assert_allclose(out, [0.0175, 0.00315])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="fee_type"):
        FeeSchedule.for_series("tiered", 1.0)
    with pytest.raises(ValueError, match="price"):
        quadratic_units(1, 101)
