"""The live/historical split (API.md section 1): one cutoff time decides which endpoints serve
a market, its candles and a trade.

* a market that settled before the cutoff, and its candles, exist only under
  ``/historical/markets``; the live endpoints answer 404 for them;
* a trade created before the cutoff exists only under ``/historical/trades``.

Historical candles use another schema (``MarketCandlestickHistorical``): unsuffixed dollar
strings ``open/low/high/close/mean/previous`` and fixed-point strings ``volume`` and
``open_interest``; :func:`historical_candle` converts a recorded candle of either API format.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kalshi_lab.server.dataset import Dataset, MarketEntry, TradeEntry
from kalshi_lab.server.units import count_text, decimal_of, iso, legacy_cents_text

QUOTE_FIELDS = ("open", "low", "high", "close")
PRICE_FIELDS = (*QUOTE_FIELDS, "mean", "previous")


@dataclass(frozen=True)
class Cutoff:
    """The one boundary used for markets, trades and orders, in Unix seconds."""

    ts: int

    def doc(self) -> dict[str, str]:
        """``GetHistoricalCutoffResponse``."""
        text = iso(self.ts)
        return {"market_settled_ts": text, "trades_created_ts": text, "orders_updated_ts": text}

    def archived(self, market: MarketEntry) -> bool:
        return market.settled_ts is not None and market.settled_ts < self.ts

    def trade_archived(self, trade: TradeEntry) -> bool:
        return trade.us < self.ts * 1_000_000


def default_cutoff(dataset: Dataset) -> int:
    """The (lower) median settlement time of the served markets, so that both the live and the
    historical endpoints have markets to serve; without settled markets, a time before every
    market was created (nothing is archived)."""
    settled = [m.settled_ts for m in dataset.markets.values() if m.settled_ts is not None]
    if settled:
        return int(statistics.median_low(settled))
    created = [m.created_ts for m in dataset.markets.values()]
    return min(created, default=dataset.last_received_ts)


def _dollars(group: Mapping[str, Any], name: str) -> str | None:
    current = group.get(f"{name}_dollars")
    if current is not None:
        return str(current)
    legacy = group.get(name)
    if legacy is None or isinstance(legacy, str):  # a string is already a historical dollar value
        return legacy
    return legacy_cents_text(legacy)


def _count(doc: Mapping[str, Any], name: str) -> str | None:
    current = doc.get(f"{name}_fp")
    if current is not None:
        return str(current)
    legacy = doc.get(name)
    if legacy is None or isinstance(legacy, str):
        return legacy
    return count_text(decimal_of(legacy))


def historical_candle(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded candle (current ``*_dollars``/``*_fp``, legacy integer cents and counts, or
    already historical) in the ``MarketCandlestickHistorical`` schema; recorded strings are
    kept as they are."""
    return {
        "end_period_ts": doc["end_period_ts"],
        "yes_bid": {f: _dollars(doc.get("yes_bid") or {}, f) for f in QUOTE_FIELDS},
        "yes_ask": {f: _dollars(doc.get("yes_ask") or {}, f) for f in QUOTE_FIELDS},
        "price": {f: _dollars(doc.get("price") or {}, f) for f in PRICE_FIELDS},
        "volume": _count(doc, "volume"),
        "open_interest": _count(doc, "open_interest"),
    }
