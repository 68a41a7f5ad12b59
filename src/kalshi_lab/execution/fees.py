"""Kalshi trading fees, exact to the cent.

``fee = ceil_to_cent(rate * multiplier * C * P * (1 - P))`` for C contracts at P dollars
(API.md section 4). The product is computed on integers (prices in cents) and the rate as a
``Decimal``, so the ceiling is exact: 10 lots at 50 cents is ceil(17.5) = 18 cents, 100 lots
is exactly 175 cents, never 176 from a float that came out at 175.00000000000003.

An order that walks several price levels pays one fee on the sum of its levels' ``C * P * (1-P)``,
not one ceiling per level: Kalshi's per-order fee accumulator refunds the rounding overpayment of
split fills (https://docs.kalshi.com/getting_started/fee_rounding), so the whole order costs what
one equivalent fill would: 10 @ 3c + 10 @ 4c is ceil(0.07 x (10 x .03 x .97 + 10 x .04 x .96)
x 100) = ceil(4.725) = 5 cents, not ceil(2.037) + ceil(2.688) = 6. Where the fills of one
execution are listed one per price level (the local server's ``GET /portfolio/fills``), each
shows what the accumulator charged when it came (:meth:`FeeSchedule.level_fees_cents`), and
the listed fees add up to that one fee.

Counts and prices are integers (whole contracts, cents) in the backtest; the local server passes
``Decimal`` ones for fractional contracts and sub-penny prices, and the arithmetic stays exact.

Orders that cross a displayed price pay the taker rate; a resting limit order that the market
later trades through pays the maker rate, which is 0.0175 on series whose ``fee_type`` is
``quadratic_with_maker_fees`` and nothing on the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TypeVar

import numpy as np

logger = logging.getLogger(__name__)

#: Kalshi's taker rate; params carry the value actually used (``backtest.taker_fee_rate``)
TAKER_FEE_RATE = 0.07
#: Kalshi's maker rate, charged only by series with fee_type quadratic_with_maker_fees
MAKER_FEE_RATE = 0.0175
FEE_TYPES = ("quadratic", "quadratic_with_maker_fees", "flat")


#: a count or a price in cents: int in the backtest, Decimal for fractional or sub-penny markets
Number = int | Decimal
N = TypeVar("N", int, Decimal)


def quadratic_units(count: N, price_cents: N) -> N:
    """``C * P * (1 - P)`` of one fill in cent-squared units: ``C * p * (100 - p)``, exact."""
    if not 0 <= price_cents <= 100:
        raise ValueError(f"price must be in [0, 100] cents, got {price_cents}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return count * price_cents * (100 - price_cents)


def _to_decimal(x: float) -> Decimal:
    # str() gives the shortest repr (0.07 -> "0.07"), so the rate is the decimal the user wrote
    return Decimal(str(x))


@dataclass(frozen=True)
class FeeSchedule:
    """The taker and maker rates of one series, the series' ``fee_multiplier`` already applied."""

    taker_rate: Decimal
    maker_rate: Decimal = Decimal(0)

    @classmethod
    def for_series(
        cls, fee_type: str, fee_multiplier: float, taker_fee_rate: float = TAKER_FEE_RATE
    ) -> FeeSchedule:
        """The rate from the SERIES table's ``fee_type`` and ``fee_multiplier``.

        ``flat`` series follow Kalshi's "Specific Trading Fees Table", which the API does not
        publish; they are charged the quadratic taker fee, the usual peak schedule.
        """
        if fee_type not in FEE_TYPES:
            raise ValueError(f"fee_type must be one of {FEE_TYPES}, got {fee_type!r}")
        if fee_multiplier < 0:
            raise ValueError(f"fee_multiplier must be >= 0, got {fee_multiplier}")
        if fee_type == "flat":
            logger.warning("fee_type flat is charged the quadratic taker fee")
        multiplier = _to_decimal(fee_multiplier)
        maker = (
            _to_decimal(MAKER_FEE_RATE) if fee_type == "quadratic_with_maker_fees" else Decimal(0)
        )
        return cls(
            taker_rate=_to_decimal(taker_fee_rate) * multiplier, maker_rate=maker * multiplier
        )

    def taker_fee_cents(self, units: Number) -> int:
        """Taker fee in cents of an order whose fills sum to ``units`` (see quadratic_units)."""
        return _ceil_cents(self.taker_rate, units)

    def maker_fee_cents(self, units: Number) -> int:
        """Maker fee in cents of a resting order's fill (0 unless the series charges makers)."""
        return _ceil_cents(self.maker_rate, units)

    def level_fees_cents(self, level_units: Iterable[Number], *, maker: bool = False) -> list[int]:
        """The fee each price level of ONE execution is listed with: what Kalshi's per-order
        accumulator has charged after the level minus what it had charged before it, so the
        levels add up to the one fee of the whole execution (see the module docstring)."""
        fee = self.maker_fee_cents if maker else self.taker_fee_cents
        out, units, charged = [], 0, 0
        for u in level_units:
            units += u
            total = fee(units)
            out.append(total - charged)
            charged = total
        return out

    @property
    def taker_rate_float(self) -> float:
        """The taker rate as a float, for vectorised edge estimates (not for charging)."""
        return float(self.taker_rate)


def _ceil_cents(rate: Decimal, units: Number) -> int:
    # units are cent^2 (p * (100 - p)); one factor of 100 converts them to cents
    return int((rate * units / 100).to_integral_value(rounding=ROUND_CEILING))


def fee_per_contract(price: np.ndarray | float, rate: np.ndarray | float) -> np.ndarray:
    """Fee in dollars per contract at ``price`` dollars, before the cent ceiling.

    The large-order limit of the charged fee: a 1-lot pays up to one cent more after rounding.
    Strategies use it to compare edges across all markets at once.
    """
    p = np.asarray(price, dtype=float)
    return np.asarray(rate, dtype=float) * p * (1.0 - p)
