"""The orderbooks the server shows and trades against: the latest recorded snapshot at or
before the server's clock, minus the depth the portfolio's orders already took from it (taken
depth stays taken until the next snapshot, which is fresh, as in the backtest).

Only bids exist (API.md section 2): a YES bid at p is a NO ask at 1 - p. Levels are kept as
the API lists them, ascending by price, so the best bid is the LAST level. A market that is not
trading at ``now`` (not yet open, closed or settled) shows empty sides.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from kalshi_lab.errors import DataError
from kalshi_lab.server.dataset import BookHistory, MarketEntry
from kalshi_lab.server.units import ZERO, count_text, decimal_of, dollars_text, price_of

BookSide = Literal["yes", "no"]
Level = tuple[Decimal, Decimal]  # (price in dollars, contracts)


@dataclass(frozen=True)
class Book:
    """Both sides' bids, ascending (best last), and the snapshot they come from."""

    yes: tuple[Level, ...]
    no: tuple[Level, ...]
    snapshot_ts: int | None

    def side(self, side: BookSide) -> tuple[Level, ...]:
        return self.yes if side == "yes" else self.no

    def doc(self, depth: int = 0) -> dict[str, Any]:
        """``GetMarketOrderbookResponse`` in the current format; ``depth`` > 0 keeps the best N."""

        def levels(side: tuple[Level, ...]) -> list[list[str]]:
            kept = side[-depth:] if depth > 0 else side
            return [[dollars_text(p), count_text(n)] for p, n in kept]

        return {"orderbook_fp": {"yes_dollars": levels(self.yes), "no_dollars": levels(self.no)}}


EMPTY = Book((), (), None)


def parse_levels(doc: Mapping[str, Any], side: BookSide) -> tuple[Level, ...]:
    """One side of a recorded orderbook answer, current or legacy format, ascending.

    Current: ``orderbook_fp.{side}_dollars`` = [[dollar string, count string], ...]. Legacy:
    ``orderbook.{side}`` = [[cents, count], ...] (or the transitional ``{side}_dollars`` inside
    ``orderbook``). A missing or null side is an empty side.
    """
    current = doc.get("orderbook_fp")
    if isinstance(current, Mapping):
        raw = current.get(f"{side}_dollars")
    else:
        legacy = doc.get("orderbook") or {}
        raw = legacy.get(f"{side}_dollars")
        if raw is None:
            raw = legacy.get(side)
    out: dict[Decimal, Decimal] = {}
    for level in raw or []:
        try:
            price, count = price_of(level[0]), decimal_of(level[1])
        except (IndexError, TypeError, ValueError):
            raise DataError(f"orderbook level {level!r} is not [price, count]") from None
        if count > 0:
            out[price] = out.get(price, ZERO) + count
    return tuple(sorted(out.items()))


class BookStore:
    """Snapshots of every market, and the depth taken from them (thread-safe)."""

    def __init__(self, books: Mapping[str, BookHistory]) -> None:
        self._books = books
        self._parsed: dict[tuple[str, int], Book] = {}
        self._taken: dict[tuple[str, int, BookSide, Decimal], Decimal] = {}
        self._lock = threading.Lock()
        #: bumped whenever depth is taken: a book shown before may have changed
        self.version = 0

    def change_key(self, market: MarketEntry, now: int) -> tuple[bool, int | None, int]:
        """What :meth:`book` depends on at ``now``: equal keys, equal books (a stream polls
        this cheaply instead of rebuilding every book on every tick)."""
        history = self._books.get(market.ticker)
        i = -1 if history is None else bisect_right(history.times, now) - 1
        ts = None if history is None or i < 0 else history.times[i]
        return market.trading_at(now), ts, self.version

    def book(self, market: MarketEntry, now: int) -> Book:
        """What ``GET /markets/{ticker}/orderbook`` shows at ``now``."""
        if not market.trading_at(now):
            return EMPTY
        history = self._books.get(market.ticker)
        i = -1 if history is None else bisect_right(history.times, now) - 1
        if history is None or i < 0:
            return EMPTY
        ts = history.times[i]
        with self._lock:
            recorded = self._parsed.get((market.ticker, ts))
            if recorded is None:
                doc = history.docs[i]
                recorded = Book(parse_levels(doc, "yes"), parse_levels(doc, "no"), ts)
                self._parsed[(market.ticker, ts)] = recorded
            return Book(
                self._remaining(market.ticker, ts, "yes", recorded.yes),
                self._remaining(market.ticker, ts, "no", recorded.no),
                ts,
            )

    def times_between(self, ticker: str, after: int, until: int) -> list[int]:
        """Snapshot times of a market in ``(after, until]``: when its book changes."""
        history = self._books.get(ticker)
        if history is None:
            return []
        return history.times[
            bisect_right(history.times, after) : bisect_right(history.times, until)
        ]

    def _remaining(
        self, ticker: str, ts: int, side: BookSide, levels: Iterable[Level]
    ) -> tuple[Level, ...]:
        out = []
        for price, count in levels:
            left = count - self._taken.get((ticker, ts, side, price), ZERO)
            if left > 0:
                out.append((price, left))
        return tuple(out)

    def take(
        self, ticker: str, snapshot_ts: int, side: BookSide, price: Decimal, count: Decimal
    ) -> None:
        """Remove ``count`` contracts at ``price`` from a snapshot: taken depth stays taken."""
        with self._lock:
            key = (ticker, snapshot_ts, side, price)
            self._taken[key] = self._taken.get(key, ZERO) + count
            self.version += 1
