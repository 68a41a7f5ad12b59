"""Trade tapes: ``GET /markets/trades`` (and ``/historical/trades``) without scanning them.

Trades are held newest first, as the API pages them, once for all markets and once per
ticker; a ``[min_ts, max_ts]`` window is a contiguous run found by bisection, and a cursor is
the position of the last trade returned in that run. Real tapes hold millions of trades: a page
costs its own size, not the tape's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

from kalshi_lab.server.dataset import TradeEntry

_US = 1_000_000


class _Run:
    """Trades newest first, with their negated times ascending for bisection."""

    def __init__(self, trades: list[TradeEntry]) -> None:
        self.trades = trades
        self.neg_us = [-t.us for t in trades]

    def window(self, min_ts: int | None, max_ts: int | None) -> tuple[int, int]:
        """Positions ``[lo, hi)`` of the trades created in seconds ``[min_ts, max_ts]``."""
        lo = 0 if max_ts is None else bisect_left(self.neg_us, -(max_ts * _US + _US - 1))
        hi = len(self.trades) if min_ts is None else bisect_right(self.neg_us, -(min_ts * _US))
        return lo, max(lo, hi)


class TradeTape:
    """One tape (the live or the historical trades) with a per-ticker index."""

    def __init__(self, trades: Iterable[TradeEntry]) -> None:
        everything = list(trades)
        self._all = _Run(everything)
        by_ticker: dict[str, list[TradeEntry]] = {}
        for t in everything:
            by_ticker.setdefault(t.ticker, []).append(t)
        self._by_ticker = {k: _Run(v) for k, v in by_ticker.items()}

    def __len__(self) -> int:
        return len(self._all.trades)

    def page(
        self,
        ticker: str | None,
        min_ts: int | None,
        max_ts: int | None,
        limit: int,
        after: int | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Trade documents of one page, and the cursor key when more follow."""
        run = self._all if ticker is None else self._by_ticker.get(ticker)
        if run is None:
            return [], None
        lo, hi = run.window(min_ts, max_ts)
        start = lo if after is None else max(lo, after + 1)
        stop = min(hi, start + limit)
        docs = [t.doc for t in run.trades[start:stop]]
        return docs, (stop - 1 if stop < hi else None)
