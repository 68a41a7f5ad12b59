"""Orders, fills and trade decisions: the value objects passed between the layers.

Time semantics: an order is *decided* at ``decided_at`` (a prediction's as_of) and *filled*
against the quote known when it is sent (``Fill.ts``): the fresher of the orderbook snapshot at
or before then and the latest candle that ended at or before then (``Fill.quote_ts``), never a
later one.
Prices are integer cents and counts integer contracts at this boundary; the data tables' dollar
floats are converted once, in the exchange.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
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
#: an upper bound of the taker fee per contract, in cents (0.07 x 0.5 x 0.5 = 1.75 cents)
FEE_BOUND_CENTS = 2
#: ioc: immediate-or-cancel, what the quote allows when sent; gtc: the rest rests on the book
#: as a limit order until it fills (as maker) or is cancelled (by the executor's time-to-live)
TIME_IN_FORCE = ("ioc", "gtc")
#: taker: crossed a displayed price when sent; maker: rested and the market traded through it
LIQUIDITY = ("taker", "maker")


def _check_side_action(side: str, action: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")


def _check_utc(name: str, ts: pd.Timestamp) -> None:
    if not isinstance(ts, pd.Timestamp) or ts.tzinfo is None:
        raise ValueError(f"{name} must be a tz-aware pandas Timestamp (UTC), got {ts!r}")


#: Kalshi's rule for a client order id (ClOrdID in https://docs.kalshi.com/fix/order-entry; the
#: REST API's ``client_order_id`` is the same key): at most 64 characters, each a letter, a digit
#: or one of ``-_:+=/``. ASCII: Kalshi's ``\w`` is not Unicode's.
CLIENT_ORDER_ID_MAX = 64
CLIENT_ORDER_ID_PATTERN = re.compile(r"[\-\w:+=/]*", re.ASCII)
#: Fixed for good: an id is uuid5 of this namespace and the decision's key, so a changed namespace
#: would give a restarted bot new ids for orders it already sent (and Kalshi would place them
#: again instead of answering 409).
ORDER_ID_NAMESPACE = uuid.UUID("85cf5e62-f9d1-4a66-9944-5f49c3046909")


def client_order_id(decided_ns: int, ticker: str, action: str, side: str) -> str:
    """The id of the order a decision at ``decided_ns`` (ns since the epoch) makes for
    ``action``/``side`` in ``ticker``: the same key always gives the same id.

    A UUID (36 characters, what Kalshi prefers) whatever the ticker's length or characters
    (real tickers hold dots, ``KXU3-25JUN-B4.15``, which Kalshi refuses in an id). The hashed
    text puts the ticker last, behind fields that hold no ``/``, so two different keys never
    hash the same text (the 122 bits of the hash make a collision negligible).
    """
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{decided_ns}/{action}/{side}/{ticker}"))


def child_order_id(parent_id: str, step: int) -> str:
    """The id of the child a parent order sends at ``step`` (a nested executor's slice).

    ``{parent_id}-{step}`` while that fits Kalshi's 64 characters, so a child names its parent
    (every parent this package makes: a UUID); else a UUID derived from the same text.
    """
    child = f"{parent_id}-{step}"
    if len(child) <= CLIENT_ORDER_ID_MAX:
        return child
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, child))


def check_client_order_id(value: str) -> None:
    """Raise ValueError unless Kalshi would accept ``value`` as a client order id."""
    if len(value) > CLIENT_ORDER_ID_MAX or not CLIENT_ORDER_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"client_order_id must be at most {CLIENT_ORDER_ID_MAX} characters, each a letter, a "
            f"digit or one of -_:+=/ (Kalshi's rule), got {value!r}"
        )


class _DerivedOrderId:
    """The ``client_order_id`` field: as given (checked against Kalshi's rule), else derived
    from the order's decision by :func:`client_order_id` when first read.

    Derived lazily because most orders a strategy decides never need one: the risk limits
    refuse them before anything is sent (a year of 10,000 simulated markets decides about
    16,000 orders and sends about 2,000), and a UUID costs microseconds each.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._key = f"_{name}"

    def __get__(self, order: ContractOrder | None, owner: type | None = None) -> str:
        if order is None:
            return ""  # the dataclass default: derive
        oid: str = order.__dict__.get(self._key, "")
        if not oid:
            oid = client_order_id(order.decided_at.value, order.ticker, order.action, order.side)
            order.__dict__[self._key] = oid
        return oid

    def __set__(self, order: ContractOrder, value: str) -> None:
        if value:
            check_client_order_id(value)
        order.__dict__[self._key] = value


@dataclass(frozen=True)
class Fill:
    """One order's execution against one quote: possibly several price levels, one fee."""

    ts: pd.Timestamp  # when it happened: the send (taker), or the quote that traded through (maker)
    quote_ts: pd.Timestamp  # the snapshot, or the END of the candle, it was filled against (<= ts)
    ticker: str
    side: str
    action: str
    count: int  # contracts
    cost_cents: int  # sum over levels of contracts x price: paid (buy) or received (sell)
    fee_cents: int  # fee of the whole execution (taker, or maker where the series charges one)
    source: str  # book | candle: what quoted the fill (SOURCES)
    order_id: str = ""  # the client_order_id of the order filled
    liquidity: str = "taker"  # LIQUIDITY

    def __post_init__(self) -> None:
        _check_side_action(self.side, self.action)
        if self.count <= 0 or self.cost_cents < 0 or self.fee_cents < 0:
            raise ValueError(f"fill needs count > 0 and non-negative cost and fee: {self}")
        if self.quote_ts > self.ts:
            raise ValueError(f"fill uses a quote from after it was sent: {self}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.liquidity not in LIQUIDITY:
            raise ValueError(f"liquidity must be one of {LIQUIDITY}, got {self.liquidity!r}")

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
    """A limit order, decided by a strategy and worked by an executor.

    Compared by identity: an order is a thing being worked, not a value. ``client_order_id``
    is derived from the decision (market, side, action, time; :func:`client_order_id`) unless
    given: the same decision sent twice is the same order to Kalshi, which refuses the second
    (409), so a retried or restarted send never places a second order; and a backtest stays
    deterministic. A given id must be one Kalshi accepts (:func:`check_client_order_id`).
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
    time_in_force: str = "ioc"  # TIME_IN_FORCE
    client_order_id: _DerivedOrderId = _DerivedOrderId()  # a str; "" derives it
    note: str = ""  # why the strategy decided it, for the bot's log (empty: a model's edge)
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
        if self.time_in_force not in TIME_IN_FORCE:
            raise ValueError(
                f"time_in_force must be one of {TIME_IN_FORCE}, got {self.time_in_force!r}"
            )

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

    def unworked(self, count: int, max_cost_cents: int | None) -> ContractOrder:
        """The same order (same client_order_id) for ``count`` contracts and that budget, with
        nothing filled yet: what one send or one rest on the book works."""
        return dataclasses.replace(
            self,
            count=count,
            max_cost_cents=max_cost_cents,
            filled=0,
            cost_cents=0,
            fee_cents=0,
            status="new",
            fills=[],
        )

    @property
    def cost_bound_cents(self) -> int:
        """The most the remaining part of a buy can cost, fees included (0 for a sell).

        Its remaining budget when it has one, else its limit plus FEE_BOUND_CENTS a contract.
        """
        if self.action != "buy":
            return 0
        by_limit = self.remaining * (self.limit_cents + FEE_BOUND_CENTS)
        budget = self.remaining_budget_cents
        return by_limit if budget is None else min(by_limit, budget)

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


@dataclass
class PredictionMarketDecision:
    """The orders a strategy decided at one time (Qlib's ``TradeDecisionWO``).

    Start empty and :meth:`add` orders, or pass them at once. ``decided_at`` is taken from the
    first order when not given; every order must carry the same time, and a decision holds at
    most one order per market (an order per market is what risk limits and executors reason on).
    """

    orders: list[ContractOrder] = field(default_factory=list)
    decided_at: pd.Timestamp | None = None
    _tickers: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.decided_at is not None:
            _check_utc("decided_at", self.decided_at)
        orders, self.orders = list(self.orders), []
        for order in orders:
            self.add(order)

    def add(self, order: ContractOrder) -> None:
        """Append one order; raises if it is for a market already in the decision or another time."""
        if self.decided_at is None:
            self.decided_at = order.decided_at
        if order.decided_at != self.decided_at:
            raise ValueError(
                f"order {order.ticker} decided at {order.decided_at}, not {self.decided_at}"
            )
        if len(self._tickers) != len(self.orders):  # the list was changed directly
            self._tickers = {o.ticker for o in self.orders}
        if order.ticker in self._tickers:
            raise ValueError(f"a decision holds at most one order per market: {order.ticker} twice")
        self.orders.append(order)
        self._tickers.add(order.ticker)

    def __iter__(self) -> Iterator[ContractOrder]:
        return iter(self.orders)

    def __len__(self) -> int:
        return len(self.orders)
