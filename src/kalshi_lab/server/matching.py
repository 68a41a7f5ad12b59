"""Taker matching of one limit order against the displayed bids (pure: nothing is changed).

Every order moves the position one way in YES terms: buying YES and selling NO go *up*,
selling YES and buying NO go *down*. Going up takes the NO bids (a NO bid at b is a YES ask at
1 - b); going down hits the YES bids. Levels are taken best first (the LAST level of the API's
ascending arrays) while they are within the order's limit, up to its count.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kalshi_lab.server.books import Book, BookSide
from kalshi_lab.server.units import ONE, ZERO


@dataclass(frozen=True)
class Take:
    """Contracts taken from one price level."""

    book_side: BookSide  # whose bids were taken
    book_price: Decimal  # that level's price (on its own side)
    count: Decimal
    yes_price: Decimal  # the execution price in YES terms


def match(book: Book, up: bool, yes_limit: Decimal, count: Decimal) -> list[Take]:
    """The levels an order for ``count`` contracts with YES-terms limit ``yes_limit`` takes."""
    side: BookSide = "no" if up else "yes"
    takes: list[Take] = []
    left = count
    for price, size in reversed(book.side(side)):
        yes_price = ONE - price if up else price
        within = yes_price <= yes_limit if up else yes_price >= yes_limit
        if left <= ZERO or not within:
            break
        n = min(size, left)
        takes.append(Take(side, price, n, yes_price))
        left -= n
    return takes
