"""Orders, fills and trade decisions: the value objects passed between the layers.

Time semantics: an order is *decided* at ``decided_at`` (a prediction's as_of) and *filled*
against the quote known when it is sent (``Fill.ts``): the orderbook snapshot at or before then,
or without one the latest candle that ended at or before then (``Fill.quote_ts``), never a later
one.
Prices are integer cents and counts integer contracts at this boundary; the data tables' dollar
floats are converted once, in the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

SIDES = ("yes", "no")
#: where a fill's price and size came from: an orderbook snapshot, or a candle when the market
#: has no snapshot at or before the send time (recorded history has no books)
SOURCES = ("book", "candle")
ACTIONS = ("buy", "sell")
#: new: not sent yet; open: being worked (TWAP children remain); filled: all contracts;
#: partial: done with some contracts; unfilled: done with none (no depth within the limit,
#: market closed, no quote)
STATUSES = ("new", "open", "filled", "partial", "unfilled")
DONE = ("filled", "partial", "unfilled")


def _check_side_action(side: str, action: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")


def _check_utc(name: str, ts: pd.Timestamp) -> None:
    if not isinstance(ts, pd.Timestamp) or ts.tzinfo is None:
        raise ValueError(f"{name} must be a tz-aware pandas Timestamp (UTC), got {ts!r}")


@dataclass(frozen=True)
class Fill:
    """One order's execution against one quote: possibly several price levels, one fee."""

    ts: pd.Timestamp  # when the order was sent
    quote_ts: pd.Timestamp  # the snapshot, or the END of the candle, it was filled against (<= ts)
    ticker: str
    side: str
    action: str
    count: int  # contracts
    cost_cents: int  # sum over levels of contracts x price: paid (buy) or received (sell)
    fee_cents: int  # taker fee of the whole execution
    source: str  # book | candle: what quoted the fill (SOURCES)

    def __post_init__(self) -> None:
        _check_side_action(self.side, self.action)
        if self.count <= 0 or self.cost_cents < 0 or self.fee_cents < 0:
            raise ValueError(f"fill needs count > 0 and non-negative cost and fee: {self}")
        if self.quote_ts > self.ts:
            raise ValueError(f"fill uses a quote from after it was sent: {self}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    @property
    def avg_price_cents(self) -> float:
        """Volume-weighted price per contract in cents."""
        return self.cost_cents / self.count

    @property
    def cash_delta_cents(self) -> int:
        """Cash change of the account: buys pay cost + fee, sells receive cost - fee."""
        if self.action == "buy":
            return -(self.cost_cents + self.fee_cents)
        return self.cost_cents - self.fee_cents


@dataclass(eq=False)
class ContractOrder:
    """A limit order, decided by a strategy and worked by an executor (IOC per send).

    Compared by identity: an order is a thing being worked, not a value.
    """

    # --- set by the strategy
    ticker: str
    event_ticker: str
    side: str  # yes | no: the contract bought or sold
    action: str  # buy | sell
    count: int  # contracts wanted
    limit_cents: int  # worst price: highest ask a buy pays, lowest bid a sell accepts
    decided_at: pd.Timestamp
    max_cost_cents: int | None = None  # buys: cap on cost + fees (Kalshi's buy_max_cost)
    # --- filled in by the executor
    filled: int = 0
    cost_cents: int = 0
    fee_cents: int = 0
    status: str = "new"
    fills: list[Fill] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_side_action(self.side, self.action)
        _check_utc("decided_at", self.decided_at)
        if self.count <= 0:
            raise ValueError(f"count must be > 0, got {self.count}")
        if not 1 <= self.limit_cents <= 99:
            raise ValueError(f"limit_cents must be in [1, 99], got {self.limit_cents}")
        if self.max_cost_cents is not None:
            if self.action != "buy":
                raise ValueError("max_cost_cents applies to buys only")
            if self.max_cost_cents < 0:
                raise ValueError(f"max_cost_cents must be >= 0, got {self.max_cost_cents}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def remaining(self) -> int:
        """Contracts still wanted."""
        return self.count - self.filled

    @property
    def remaining_budget_cents(self) -> int | None:
        """What a buy may still spend on cost + fees, or None without a cap."""
        if self.max_cost_cents is None:
            return None
        return self.max_cost_cents - self.cost_cents - self.fee_cents

    @property
    def done(self) -> bool:
        """True once the executor has finished with the order."""
        return self.status in DONE

    def record(self, fill: Fill) -> None:
        """Add one fill to the system-filled fields."""
        if fill.ticker != self.ticker or fill.side != self.side or fill.action != self.action:
            raise ValueError(f"fill {fill} does not belong to order {self.ticker}")
        if fill.count > self.remaining:
            raise ValueError(f"fill of {fill.count} exceeds the {self.remaining} remaining")
        self.filled += fill.count
        self.cost_cents += fill.cost_cents
        self.fee_cents += fill.fee_cents
        self.fills.append(fill)
        self.status = "filled" if self.remaining == 0 else "open"

    def finish(self) -> None:
        """Close the order: whatever is not filled now is cancelled."""
        if self.remaining == 0:
            self.status = "filled"
        else:
            self.status = "partial" if self.filled else "unfilled"


@dataclass(frozen=True)
class PredictionMarketDecision:
    """The orders a strategy decided at one time."""

    decided_at: pd.Timestamp
    orders: tuple[ContractOrder, ...] = ()

    def __post_init__(self) -> None:
        _check_utc("decided_at", self.decided_at)
        for order in self.orders:
            if order.decided_at != self.decided_at:
                raise ValueError(f"order {order.ticker} decided at {order.decided_at}, not here")
        tickers = [o.ticker for o in self.orders]
        if len(set(tickers)) != len(tickers):
            raise ValueError("a decision holds at most one order per market")
