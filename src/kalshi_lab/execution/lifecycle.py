"""An order's life at the venue, from the send until the venue says it is done.

The executor is done with an immediate-or-cancel order as soon as the send returns, but the
venue may not be: Kalshi can count contracts as filled (the POST's ``fill_count``) before
``GET /portfolio/fills`` lists them, the POST's answer can be lost while the order landed
(a timeout, then 409 on the retry: docs.kalshi.com/getting_started/quick_start_create_order
uses ``client_order_id`` for exactly that), and a resting order can fill after its
time-to-live cancel was sent. So each order the venue was asked to place is a
:class:`VenueOrder`, kept by its ``client_order_id`` until it is **resolved**: its outcome is
known in full. As NautilusTrader's live execution engine does with its "in-flight" and open
orders (https://nautilustrader.io/docs/latest/concepts/live, "Execution reconciliation":
an order awaiting acknowledgement is queried again, ``inflight_check_retries`` times), an
unresolved order is asked about again at every decision step, for a bounded number of steps.

States (``VenueOrder.state``):

* ``intent``: about to be POSTed; journaled first, so a crash during the send leaves a trace;
* ``placed``: the venue answered with its order (its ``order_id``, status, fill count);
* ``refused``: the venue refused it (400, 404): nothing was placed;
* ``unknown``: the POST's answer was lost and the lookup by ``client_order_id`` failed: it may
  rest, or have filled; its market takes no new order until it is resolved;
* ``absent``: the lookup found no order with its ``client_order_id``: the POST never landed;
* ``not_sent``: the exchange did not send it (dry run, a budget below one contract);
* ``conflict``: the venue holds another order (ticker, side, action, count or price differ)
  under its ``client_order_id``: never booked as ours, and trading stops.

What stops trading (each a :class:`LifecycleError`, hence a ReconciliationError: the bot exits
with code 1): a fill of an order the bot did not place (:class:`UnknownFillError`), a 409 whose
order is not the one sent (:class:`OrderMismatchError`), fills the venue counts but does not
list after ``max_listing_lag`` steps (:class:`ListingLagError`), and orders still unresolved
when the session ends (:class:`UnresolvedOrdersError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SettledMarket
from kalshi_lab.execution.reconcile import ReconciliationError

if TYPE_CHECKING:  # the backtest's stages never load the HTTP client
    from kalshi_lab.client.records import Order

INTENT, PLACED, REFUSED, UNKNOWN, ABSENT, NOT_SENT, CONFLICT = (
    "intent",
    "placed",
    "refused",
    "unknown",
    "absent",
    "not_sent",
    "conflict",
)
STATES = (INTENT, PLACED, REFUSED, UNKNOWN, ABSENT, NOT_SENT, CONFLICT)
#: Kalshi's Order.status values after which nothing more fills
VENUE_DONE = frozenset({"canceled", "executed"})
_HUNDRED = Decimal(100)


class LifecycleError(ReconciliationError):
    """An order's life at the venue contradicts the bot's books: trading stops."""


class UnknownFillError(LifecycleError):
    """The venue reported a fill of an order this bot did not place."""

    def __init__(self, fills: list[Fill]) -> None:
        described = "; ".join(
            f"{f.action} {f.count} {f.side.upper()} {f.ticker} (order {f.order_id})" for f in fills
        )
        super().__init__(
            f"{len(fills)} fill(s) of orders the bot did not place: {described}; "
            "someone else trades on this account"
        )
        self.fills = fills


class OrderMismatchError(LifecycleError):
    """A 409 named an order that is not the one sent under that client_order_id."""


class ListingLagError(LifecycleError):
    """The venue counts fills it still does not list after the tolerated number of steps."""


class UnresolvedOrdersError(LifecycleError):
    """Orders whose outcome the venue has not told in full when the session ends."""


@dataclass
class VenueOrder:
    """One order the venue was asked to place, by ``client_order_id`` (see the module
    docstring). Counts are whole contracts, prices integer cents."""

    client_order_id: str
    ticker: str
    event_ticker: str
    side: str
    action: str
    count: int  # contracts sent (or meant to be)
    limit_cents: int
    time_in_force: str
    decided_at: pd.Timestamp
    state: str = INTENT
    order_id: str | None = None  # the venue's
    venue_status: str | None = None  # Kalshi's Order.status: resting | canceled | executed
    venue_filled: int = 0  # contracts the venue counts as filled
    listed: int = 0  # contracts of the fills reported so far
    reason: str = ""  # why it filled nothing, or why its outcome is not known
    cancel_pending: bool = False  # a cancel was asked for and failed: asked again
    rounds: int = 0  # steps it has been unresolved since it was last answered

    @classmethod
    def of(cls, order: ContractOrder, count: int) -> VenueOrder:
        return cls(
            order.client_order_id,
            order.ticker,
            order.event_ticker,
            order.side,
            order.action,
            count,
            order.limit_cents,
            order.time_in_force,
            order.decided_at,
        )

    @property
    def lagging(self) -> bool:
        """Placed, and the venue counts more contracts filled than it has listed."""
        return self.state == PLACED and self.listed < self.venue_filled

    @property
    def resting(self) -> bool:
        return self.state == PLACED and self.venue_status == "resting"

    @property
    def resolved(self) -> bool:
        """Its outcome is known in full (a resting order is resolved: it is being worked)."""
        return self.state not in (INTENT, UNKNOWN) and not self.lagging and not self.cancel_pending

    @property
    def terminal(self) -> bool:
        """Nothing more can happen to it at the venue."""
        return self.resolved and not self.resting

    def mismatch(self, placed: Order) -> str | None:
        """How the venue's ``placed`` differs from what was sent (None: it is this order)."""
        price = Decimal(self.limit_cents) / _HUNDRED
        theirs = placed.yes_price if self.side == "yes" else placed.no_price
        if theirs is None and self.side == "no" and placed.yes_price is not None:
            theirs = 1 - placed.yes_price  # a YES bid at p is a NO price of 1 - p
        differences = [
            f"{name} {ours} vs {venue}"
            for name, ours, venue in (
                ("ticker", self.ticker, placed.ticker),
                ("side", self.side, placed.side),
                ("action", self.action, placed.action),
                ("price", price, theirs),
            )
            if ours != venue
        ]
        if placed.initial_count is not None and placed.initial_count != self.count:
            differences.append(f"count {self.count} vs {placed.initial_count}")
        elif placed.initial_count is None and placed.fill_count > self.count:
            differences.append(f"count {self.count} vs {placed.fill_count} filled")
        return "; ".join(differences) or None

    def describe(self) -> str:
        return (
            f"{self.action} {self.count} {self.side.upper()} {self.ticker} @ "
            f"{self.limit_cents}c ({self.client_order_id})"
        )


class OrderJournal(Protocol):
    """Where the exchange writes each order's life as it happens (the bot's durable journal:
    :mod:`kalshi_lab.bot.journal`). Each call returns once the record is durable."""

    def record_order(self, order: VenueOrder) -> None:
        """The order's current state (written before the POST, and after every answer)."""

    def record_not_sent(self, client_order_id: str, reason: str) -> None:
        """The exchange did not send the order just decided under this id (dry run, ...)."""

    def record_fill(
        self, fill_id: str | None, trade_id: str | None, fill: Fill, source: str
    ) -> None:
        """A fill of one of the journal's orders, by its ids (written once), and the source
        that told it first (``stream`` or ``rest``)."""

    def name_fill(self, trade_id: str, fill_id: str) -> None:
        """A fill written by its ``trade_id`` alone is listed under ``fill_id``."""

    def record_settlement(self, settled: SettledMarket) -> None:
        """A settlement of a market held on the account."""
