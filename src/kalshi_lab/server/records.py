"""What the local server's account records, and the API documents it shows them as: ``Order``,
``Fill`` and ``Settlement`` (shapes from Kalshi's OpenAPI spec v3.13, API.md section 3).

Every record carries ``seq``, one counter across kinds: listings page newest first by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kalshi_lab.server.orders import OrderRequest, Side
from kalshi_lab.server.units import ONE, ZERO, cents_text, count_text, dollars_text, iso

USER_ID = "local-user"
#: ``Order.status``: the three the spec lists (a GTD order that expires is ``canceled``)
RESTING, CANCELED, EXECUTED = "resting", "canceled", "executed"


@dataclass
class OrderState:
    """One order and what happened to it; costs are dollars of the order's side."""

    seq: int
    order_id: str
    request: OrderRequest
    event_ticker: str
    status: str
    filled: Decimal
    remaining: Decimal
    reserved_cents: int  # what a resting order holds of the balance
    created_ts: int
    updated_ts: int
    #: quotes after this server time may still trade through the resting rest
    since_ts: int
    taker_cost: Decimal = ZERO
    maker_cost: Decimal = ZERO
    taker_fees_cents: int = 0
    maker_fees_cents: int = 0

    @property
    def resting(self) -> bool:
        return self.status == RESTING

    def close(self, status: str, ts: int) -> Decimal:
        """End the order (``canceled`` or ``executed``) at ``ts``; returns what it still
        had resting, now zero."""
        reduced = self.remaining
        self.status = status
        self.remaining = ZERO
        self.reserved_cents = 0
        self.updated_ts = ts
        return reduced

    def doc(self) -> dict[str, Any]:
        """``Order`` in the current fixed-point format."""
        r = self.request
        yes = r.price if r.side == "yes" else ONE - r.price
        return {
            "order_id": self.order_id,
            "user_id": USER_ID,
            "client_order_id": r.client_order_id,
            "ticker": r.ticker,
            "side": r.side,
            "action": r.action,
            "type": "limit",
            "status": self.status,
            "yes_price_dollars": dollars_text(yes),
            "no_price_dollars": dollars_text(ONE - yes),
            "fill_count_fp": count_text(self.filled),
            "remaining_count_fp": count_text(self.remaining),
            "initial_count_fp": count_text(r.count),
            "taker_fill_cost_dollars": dollars_text(self.taker_cost),
            "maker_fill_cost_dollars": dollars_text(self.maker_cost),
            "taker_fees_dollars": cents_text(self.taker_fees_cents),
            "maker_fees_dollars": cents_text(self.maker_fees_cents),
            "expiration_time": None if r.expiration_ts is None else iso(r.expiration_ts),
            "created_time": iso(self.created_ts),
            "last_update_time": iso(self.updated_ts),
            "self_trade_prevention_type": r.self_trade_prevention_type,
            "order_group_id": None,
            "cancel_order_on_pause": r.cancel_order_on_pause,
            "subaccount_number": 0,
        }


@dataclass(frozen=True)
class FillState:
    """One fill: a price level of a taker execution, or a maker execution at its limit."""

    seq: int
    fill_id: str
    order_id: str
    client_order_id: str
    ticker: str
    side: Side
    action: str
    count: Decimal
    yes_price: Decimal
    fee_cents: int
    is_taker: bool
    ts: int  # server time it happened
    listed_at: float  # wall-clock (monotonic) second from which GET /portfolio/fills shows it

    def doc(self) -> dict[str, Any]:
        """``Fill``."""
        return {
            "fill_id": self.fill_id,
            "trade_id": self.fill_id,  # the spec: "legacy field name, same as fill_id"
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "ticker": self.ticker,
            "market_ticker": self.ticker,
            "side": self.side,
            "action": self.action,
            "count_fp": count_text(self.count),
            "yes_price_dollars": dollars_text(self.yes_price),
            "no_price_dollars": dollars_text(ONE - self.yes_price),
            "is_taker": self.is_taker,
            "fee_cost": cents_text(self.fee_cents),
            "created_time": iso(self.ts),
            "ts": self.ts,
            "subaccount_number": 0,
        }


@dataclass(frozen=True)
class SettlementState:
    """A held position paid out when its market settled."""

    seq: int
    ticker: str
    event_ticker: str
    result: str  # yes | no | scalar | void
    side: Side
    count: Decimal
    cost: Decimal  # dollars paid for the contracts settled
    revenue_cents: int
    fee_cents: int  # fees paid in the market
    value_cents: int | None  # what one YES contract paid (None: void)
    ts: int

    def doc(self) -> dict[str, Any]:
        """``Settlement``: the counts and costs of the side held, zero for the other."""
        yes = self.side == "yes"
        return {
            "ticker": self.ticker,
            "event_ticker": self.event_ticker,
            "market_result": self.result,
            "yes_count_fp": count_text(self.count if yes else ZERO),
            "yes_total_cost_dollars": dollars_text(self.cost if yes else ZERO),
            "no_count_fp": count_text(ZERO if yes else self.count),
            "no_total_cost_dollars": dollars_text(ZERO if yes else self.cost),
            "revenue": self.revenue_cents,
            "settled_time": iso(self.ts),
            "fee_cost": cents_text(self.fee_cents),
            "value": self.value_cents,
        }
