"""A market document as the API would show it at the server's clock ``now``.

A recorded document describes its market when it was received. At ``now`` the server shows:

* a document received at or before ``now`` as recorded, its status moved on by the clock along
  the market's life (``initialized`` -> ``active`` at ``open_time`` -> ``closed`` at
  ``close_time`` -> ``finalized`` at ``settlement_ts``), never back: what was observed stays
  observed (a market seen ``finalized`` stays so, whatever its times say);
* a document received AFTER ``now`` comes from the server's future (a dataset recorded once
  every market had settled, served with a clock inside its history). Until ``now`` reaches its
  settlement its status follows its times (``initialized`` before ``open_time``, ``active``
  until ``close_time``, then ``closed``), the outcome is withheld (``result`` ``""``, no
  settlement time, value or expiration value) and its quotes are the book the server shows at
  ``now`` (no bid and no ask once the market is not trading); from its settlement on it is
  served as recorded.

Statuses use the response vocabulary (``active``, ``closed``, ``finalized``, ...); ``phase`` is
their place in a market's life, which the ``/markets`` ``status`` filter (``unopened``,
``open``, ``closed``, ``settled``) reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kalshi_lab.server.books import Book
from kalshi_lab.server.dataset import QUERY_STATUS, MarketEntry
from kalshi_lab.server.units import HUNDRED, ONE, ZERO, count_text, dollars_text

#: a market's life, in order
UNOPENED, OPEN, CLOSED, SETTLED = range(4)
#: query vocabulary -> phase (``paused`` is open: the market resumes)
PHASE = {"unopened": UNOPENED, "open": OPEN, "paused": OPEN, "closed": CLOSED, "settled": SETTLED}
#: the status shown for a phase the document did not record
STATUS = {UNOPENED: "initialized", OPEN: "active", CLOSED: "closed", SETTLED: "finalized"}
#: what a document from before the settlement cannot know, and its value then
UNKNOWN_OUTCOME: dict[str, Any] = {
    "result": "",
    "settlement_ts": None,
    "settlement_value_dollars": None,
    "settlement_value": None,
    "expiration_value": "",
}


def phase_by_times(market: MarketEntry, now: int) -> int:
    """Where the market's times put it at ``now``."""
    if now < market.open_ts:
        return UNOPENED
    if now < market.close_ts:
        return OPEN
    if market.settled_ts is not None and market.settled_ts <= now:
        return SETTLED
    return CLOSED


@dataclass(frozen=True)
class MarketAtNow:
    """How one market is served at ``now``."""

    status: str  # response vocabulary
    query_status: str  # the /markets ``status`` filter's vocabulary
    from_future: bool  # received after now and not settled by now: outcome and quotes withheld


def market_at(market: MarketEntry, now: int) -> MarketAtNow:
    """The status the market shows at ``now`` (see the module docstring)."""
    recorded = str(market.doc.get("status"))
    by_times = phase_by_times(market, now)
    if market.received_ts <= now:
        phase = max(PHASE[market.status], by_times)
        status = recorded if phase == PHASE[market.status] else STATUS[phase]
        return MarketAtNow(status, QUERY_STATUS[status], False)
    if by_times == SETTLED:
        return MarketAtNow(recorded, market.status, False)
    status = STATUS[by_times]
    return MarketAtNow(status, QUERY_STATUS[status], True)


def _best(levels: tuple[tuple[Decimal, Decimal], ...]) -> tuple[Decimal, Decimal]:
    """(price, contracts) of the best bid, (0, 0) without one: the last level is the best."""
    return levels[-1] if levels else (ZERO, ZERO)


def quote_fields(doc: dict[str, Any], book: Book) -> dict[str, Any]:
    """The document's quote fields from ``book``, in the format(s) the document uses.

    The YES ask is 1 - the best NO bid and the NO ask 1 - the best YES bid; a side without
    bids shows a bid of 0 and leaves the other side's ask at 1.
    """
    (yes_bid, yes_size), (no_bid, no_size) = _best(book.yes), _best(book.no)
    prices = {
        "yes_bid": yes_bid,
        "yes_ask": ONE - no_bid,
        "no_bid": no_bid,
        "no_ask": ONE - yes_bid,
    }
    out: dict[str, Any] = {}
    legacy = "yes_bid" in doc and "yes_bid_dollars" not in doc
    for name, price in prices.items():
        if legacy:
            out[name] = int(price * HUNDRED)
        else:
            out[f"{name}_dollars"] = dollars_text(price)
    if not legacy:
        out["yes_bid_size_fp"] = count_text(yes_size)
        out["yes_ask_size_fp"] = count_text(no_size)
    return out


def served_doc(market: MarketEntry, at_now: MarketAtNow, book: Book | None) -> dict[str, Any]:
    """The document ``GET /markets`` shows at ``now``; ``book`` is the served book of a market
    from the future (None otherwise)."""
    if not at_now.from_future:
        if at_now.status == market.doc.get("status"):
            return market.doc
        return {**market.doc, "status": at_now.status}
    doc = {**market.doc, "status": at_now.status}
    for name, unknown in UNKNOWN_OUTCOME.items():
        if name in doc:
            doc[name] = unknown
    if book is not None:
        doc.update(quote_fields(doc, book))
    return doc
