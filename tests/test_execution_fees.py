"""Kalshi taker fees: exact cent ceilings, series multiplier, one ceiling per order."""

import numpy as np
import pytest

from kalshi_lab.execution.fees import FeeSchedule, fee_per_contract, quadratic_units

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


@pytest.mark.parametrize(("multiplier", "tenths_of_a_cent_rate"), [(1.0, 70), (0.5, 35)])
def test_the_fee_is_the_exact_integer_formula_over_the_whole_grid(
    multiplier, tenths_of_a_cent_rate
):
    """Every count 1..2,999 at every price 1..99 cents (296,901 pairs): a float product is a
    cent off in 1,495 of them at the full rate (e.g. 4 contracts at 50 cents: 7.000000000000001
    cents, ceiled to 8), so only exact arithmetic passes."""
    schedule = FeeSchedule.for_series("quadratic", multiplier)
    counts = np.arange(1, 3000, dtype=np.int64)
    for price in range(1, 100):
        # rate x C x p x (100 - p) / 100 cents, with the rate in thousandths: integers only
        numerator = tenths_of_a_cent_rate * counts * price * (100 - price)
        expected = -(-numerator // 100_000)
        got = [schedule.taker_fee_cents(quadratic_units(int(c), price)) for c in counts]
        np.testing.assert_array_equal(got, expected, err_msg=f"price {price} cents")
    assert schedule.taker_fee_cents(quadratic_units(4, 50)) == (7 if multiplier == 1 else 4)
