"""One market's netted position on the local server, as Kalshi keeps it (API.md section 3).

Positions are netted per market: buying YES while holding NO first closes NO contracts (each
closed pair returns $1, so closing receives 1 - P), selling YES without YES opens NO at 1 - P.
Closed contracts leave the position FIFO, which makes the realized P&L exact. Counts and
prices are ``Decimal`` (fractional markets, sub-penny prices); the cash a fill moves is
floored to the cent by the portfolio (a debit rounds up, a credit down).

The backtest's account never nets (its strategies never hold both sides and its venue refuses
such a buy); the server must, because Kalshi does and any client may send such an order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

from kalshi_lab.server.units import HUNDRED, ONE, ZERO, cents_text, count_text, dollars_text, iso

Side = Literal["yes", "no"]


def floor_cents(dollars: Decimal) -> int:
    """A cash change in whole cents, floored: debits round up, credits round down."""
    return int((dollars * HUNDRED).to_integral_value(ROUND_FLOOR))


@dataclass
class Lot:
    count: Decimal
    price: Decimal  # paid per contract, on the position's own side


@dataclass
class Position:
    """One market's netted position: YES or NO contracts (never both), FIFO lots."""

    ticker: str
    event_ticker: str
    side: Side | None = None
    lots: list[Lot] = field(default_factory=list)
    realized: Decimal = ZERO
    traded: Decimal = ZERO
    fees_cents: int = 0
    updated_ts: int = 0

    @property
    def size(self) -> Decimal:
        return sum((lot.count for lot in self.lots), ZERO)

    @property
    def signed(self) -> Decimal:
        """Kalshi's ``position``: > 0 YES contracts, < 0 NO contracts (never a negative zero)."""
        return -self.size if self.side == "no" else self.size

    @property
    def exposure(self) -> Decimal:
        """What the contracts held cost, in dollars."""
        return sum((lot.count * lot.price for lot in self.lots), ZERO)

    def copy(self) -> Position:
        return Position(
            self.ticker,
            self.event_ticker,
            self.side,
            [Lot(lot.count, lot.price) for lot in self.lots],
            self.realized,
            self.traded,
            self.fees_cents,
            self.updated_ts,
        )

    def reducible(self, up: bool) -> Decimal:
        """Contracts an order moving ``up`` (towards YES) can close."""
        return self.size if self.side == ("no" if up else "yes") else ZERO

    def trade(self, up: bool, count: Decimal, yes_price: Decimal) -> Decimal:
        """Apply a fill; returns the cash it moves in dollars (> 0 received, < 0 paid)."""
        cash = ZERO
        close = min(count, self.reducible(up))
        if close > 0:
            receive = ONE - yes_price if up else yes_price
            cost = self._pop(close)
            self.realized += close * receive - cost
            cash += close * receive
            if not self.lots:
                self.side = None
        opened = count - close
        if opened > 0:
            price = yes_price if up else ONE - yes_price
            self.side = "yes" if up else "no"
            self.lots.append(Lot(opened, price))
            cash -= opened * price
        return cash

    def settle(self, revenue_cents: int, ts: int) -> None:
        """Close every contract at settlement for ``revenue_cents`` (settling is free)."""
        self.realized += Decimal(revenue_cents) / HUNDRED - self.exposure
        self.lots = []
        self.side = None
        self.updated_ts = ts

    def _pop(self, count: Decimal) -> Decimal:
        """Remove ``count`` contracts oldest first; returns what they cost."""
        cost = ZERO
        while count > 0:
            lot = self.lots[0]
            n = min(lot.count, count)
            cost += n * lot.price
            lot.count -= n
            count -= n
            if lot.count == 0:
                self.lots.pop(0)
        return cost

    def doc(self, resting_orders: int) -> dict[str, Any]:
        """``MarketPosition``."""
        return {
            "ticker": self.ticker,
            "total_traded_dollars": dollars_text(self.traded),
            "position_fp": count_text(self.signed),
            "market_exposure_dollars": dollars_text(self.exposure),
            "realized_pnl_dollars": dollars_text(self.realized),
            "resting_orders_count": resting_orders,
            "fees_paid_dollars": cents_text(self.fees_cents),
            "last_updated_ts": iso(self.updated_ts),
        }


def event_positions(positions: list[Position]) -> list[dict[str, Any]]:
    """``EventPosition`` per event of ``positions``, by event ticker."""
    by_event: dict[str, list[Position]] = {}
    for p in positions:
        by_event.setdefault(p.event_ticker, []).append(p)
    out = []
    for event, group in sorted(by_event.items()):
        exposure = sum((p.exposure for p in group), ZERO)
        out.append(
            {
                "event_ticker": event,
                "total_cost_dollars": dollars_text(sum((p.traded for p in group), ZERO)),
                "total_cost_shares_fp": count_text(sum((p.size for p in group), ZERO)),
                "event_exposure_dollars": dollars_text(exposure),
                "realized_pnl_dollars": dollars_text(sum((p.realized for p in group), ZERO)),
                "fees_paid_dollars": cents_text(sum(p.fees_cents for p in group)),
            }
        )
    return out
