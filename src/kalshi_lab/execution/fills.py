"""The fill rules of one venue model, shared by the backtest's exchange and the local server.

Both venues see the side of a book an order trades against as levels, best first: (price of
the order's own side in cents, contracts still available there). A buy of YES takes the NO bids
(a NO bid at b is a YES ask at 100 - b), a sell of YES hits the YES bids; NO alike. On them:

* a **taker** (an order that crosses when it is sent) takes levels best first while their
  price is within its limit (at or below it for a buy, at or above it for a sell), up to its
  count and, with a budget, as far as the cost plus ONE fee of the whole execution allows
  (:func:`take`; the fee of an execution: :mod:`kalshi_lab.execution.fees`);
* a **resting** order fills as maker when a later quote trades THROUGH it, i.e. shows its side
  strictly better than its limit (someone traded at its price first): at its limit, as many
  contracts as those better levels show (:func:`room_through`), consuming them best first
  (:func:`spread`), paying the maker fee of that one execution.

Prices and counts are int cents and contracts in the backtest, ``Decimal`` in the local server
(fractional and sub-penny markets): these functions only add, compare and multiply them, so
both get exact answers from the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

from kalshi_lab.execution.fees import FeeSchedule, Number, quadratic_units

N = TypeVar("N", int, Decimal)
#: (price of the order's side in cents, contracts available there), best first
Level = tuple[Number, Number]


def within_limit(price: Number, limit: Number, buy: bool) -> bool:
    """A taker may trade at ``price``: a buy at or below its limit, a sell at or above it."""
    return price <= limit if buy else price >= limit


def trades_through(price: Number, limit: Number, buy: bool) -> bool:
    """A quote at ``price`` fills a resting order at ``limit``: strictly better than it."""
    return price < limit if buy else price > limit


def take(
    levels: Iterable[Level],
    buy: bool,
    limit: Number,
    want: Number,
    budget: int | None = None,
    fees: FeeSchedule | None = None,
) -> list[Number]:
    """Contracts a taker takes at each level it reaches, best first (an entry may be 0).

    The list has one entry per level within the limit that was reached: the walk stops at the
    first level beyond the limit, once ``want`` contracts are taken, or (with a ``budget`` in
    cents for cost plus the execution's one taker fee) at the level the budget cut short.
    """
    if budget is not None and fees is None:
        raise ValueError("a budget needs the fee schedule")
    out: list[Number] = []
    count: Number = 0
    cost: Number = 0
    units: Number = 0
    for price, available in levels:
        if not within_limit(price, limit, buy):
            break
        n = min(available, want - count)
        if budget is not None:
            assert fees is not None
            n = affordable(int(n), int(price), int(cost), int(units), budget, fees)
        out.append(n)
        if n > 0:
            count += n
            cost += n * price
            units += quadratic_units(n, price)
        if count == want or (budget is not None and n < available):
            break
    return out


def affordable(
    n: int, price: int, cost: int, units: int, budget: int, fees: FeeSchedule, maker: bool = False
) -> int:
    """Largest m <= n such that an execution so far at ``cost`` and ``units`` plus m more at
    ``price`` costs at most ``budget`` cents, its one fee included."""
    fee = fees.maker_fee_cents if maker else fees.taker_fee_cents

    def total(m: int) -> int:
        return cost + m * price + fee(units + quadratic_units(m, price))

    lo, hi = 0, max(n, 0)
    while lo < hi:  # total() grows with m: binary search for the last affordable m
        mid = (lo + hi + 1) // 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def room_through(levels: Iterable[Level], buy: bool, limit: Number) -> Number:
    """Contracts a resting order at ``limit`` can fill against one quote: what the levels that
    trade through it still show, best first until the first that does not."""
    room: Number = 0
    for price, available in levels:
        if not trades_through(price, limit, buy):
            break
        room += max(available, 0)
    return room


def spread(n: N, available: Sequence[N]) -> list[N]:
    """``n`` contracts taken from levels best first: how many from each (a prefix)."""
    out: list[N] = []
    left = n
    for a in available:
        if not left:
            break
        out.append(min(left, max(a, 0)))
        left -= out[-1]
    return out
