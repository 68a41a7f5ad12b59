"""Typed records of the API's JSON, read from either of Kalshi's formats into one shape.

Kalshi answers in three dialects (API.md section 0): the current one (``*_dollars`` price
strings, ``*_fp`` count strings), the legacy one (integer cents and integer counts, removed
from responses on 2026-03-12 but present in anything recorded before), and the historical
candlesticks' (dollar STRINGS under unsuffixed names, ``"close": "0.0700"``). Every record
here reads all three; which one a value is in is told by its JSON type and suffix, never
guessed from its magnitude:

* ``<name>_dollars`` -> dollars; ``<name>`` as a string -> dollars; ``<name>`` as an integer ->
  legacy cents;
* ``<name>_fp`` or ``<name>`` -> contracts (strings or legacy integers alike).

Money is ``Decimal`` parsed from the text the API sent (legacy cents divided exactly), never
through a float.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

CENT = Decimal("0.01")


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{what} must be a decimal string or an integer, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"{what} is not a finite number: {value!r}")
    return out


def price(doc: Mapping[str, Any], name: str) -> Decimal | None:
    """Dollars per contract of field ``name`` in whichever dialect ``doc`` uses; None if absent."""
    current = doc.get(f"{name}_dollars")
    if current is not None:
        return _decimal(current, f"{name}_dollars")
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, str):  # historical candlesticks: dollar strings, unsuffixed
        return _decimal(value, name)
    return _decimal(value, name) * CENT  # legacy integer cents


def count(doc: Mapping[str, Any], name: str) -> Decimal | None:
    """Contracts of field ``name`` (``<name>_fp`` string or legacy/unsuffixed ``<name>``)."""
    value = doc.get(f"{name}_fp")
    if value is None:
        value = doc.get(name)
    return None if value is None else _decimal(value, name)


def _normalise(doc: Any, prices: tuple[str, ...], counts: tuple[str, ...]) -> Any:
    """``doc`` with each listed price/count under its plain name, as a Decimal."""
    if not isinstance(doc, Mapping):
        return doc
    out = dict(doc)
    for name in prices:
        out[name] = price(doc, name)
    for name in counts:
        out[name] = count(doc, name)
    return out


class Record(BaseModel):
    """Base of every record: immutable, unknown API fields ignored (the API adds fields)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Series(Record):
    ticker: str
    title: str | None = None
    category: str | None = None
    frequency: str | None = None
    fee_type: str = "quadratic"
    fee_multiplier: Decimal = Decimal(1)


class Event(Record):
    event_ticker: str
    series_ticker: str
    title: str | None = None
    sub_title: str | None = None
    mutually_exclusive: bool = False


_MARKET_PRICES = ("yes_bid", "yes_ask", "no_bid", "no_ask", "last_price", "settlement_value")
_MARKET_COUNTS = ("volume", "volume_24h", "open_interest")


class Market(Record):
    """A market as ``GET /markets``, ``/markets/{t}`` or ``/historical/markets`` describe it."""

    ticker: str
    event_ticker: str
    status: str  # response vocabulary: active, closed, determined, finalized, ...
    market_type: str = "binary"
    yes_sub_title: str | None = None
    open_time: dt.datetime
    close_time: dt.datetime
    latest_expiration_time: dt.datetime | None = None
    settlement_ts: dt.datetime | None = None
    can_close_early: bool = False
    result: str | None = None  # yes | no | scalar | void; None while unresolved
    # what YES pays on: greater / greater_or_equal (above floor_strike), less / less_or_equal
    # (below cap_strike), between (both, inclusive), custom, functional, structured
    strike_type: str | None = None
    floor_strike: float | None = None
    cap_strike: float | None = None
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None
    no_bid: Decimal | None = None
    no_ask: Decimal | None = None
    last_price: Decimal | None = None
    settlement_value: Decimal | None = None
    volume: Decimal | None = None
    volume_24h: Decimal | None = None
    open_interest: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(doc, _MARKET_PRICES, _MARKET_COUNTS)
        if isinstance(out, dict) and not out.get("result"):
            out["result"] = None  # the API sends "" while a market is unresolved
        return out

    @property
    def is_settled(self) -> bool:
        """Finalized (or, in legacy data, settled): nothing about it can change any more."""
        return self.status in ("finalized", "settled")


class Trade(Record):
    """One public trade; ``taker_side`` yes means the taker bought YES at ``yes_price``."""

    trade_id: str
    ticker: str
    count: Decimal
    yes_price: Decimal
    no_price: Decimal
    taker_side: Literal["yes", "no"]
    created_time: dt.datetime

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(doc, ("yes_price", "no_price"), ("count",))
        if isinstance(out, dict) and out.get("no_price") is None and out.get("yes_price"):
            out["no_price"] = 1 - out["yes_price"]
        return out


class Quote(Record):
    """Open, low, high and close of one price within a candle; None where nothing traded."""

    open: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    close: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        return _normalise(doc, ("open", "low", "high", "close"), ())


class PriceQuote(Quote):
    mean: Decimal | None = None
    previous: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        return _normalise(doc, ("open", "low", "high", "close", "mean", "previous"), ())


class Candlestick(Record):
    """One period; ``end_period_ts`` is its inclusive END, from which it is known."""

    end_period_ts: dt.datetime
    yes_bid: Quote
    yes_ask: Quote
    price: PriceQuote
    volume: Decimal
    open_interest: Decimal

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(doc, (), ("volume", "open_interest"))
        if isinstance(out, dict):
            out["price"] = out.get("price") or {}  # null when no trade in the period
        return out


class Orderbook(Record):
    """Bids of each side as (price, contracts), ascending: the BEST bid is the LAST level.

    The API returns bids only; a YES ask is 1 minus the best NO bid and vice versa.
    """

    yes: tuple[tuple[Decimal, Decimal], ...] = ()
    no: tuple[tuple[Decimal, Decimal], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, body: Any) -> Any:
        if not isinstance(body, Mapping):
            return body
        book = body.get("orderbook_fp") or body.get("orderbook") or {}
        out = {}
        for side in ("yes", "no"):
            levels, scale = book.get(f"{side}_dollars"), Decimal(1)
            if levels is None:
                levels, scale = book.get(side), CENT  # legacy [cents, count]
            out[side] = [
                (_decimal(p, f"{side} price") * scale, _decimal(n, f"{side} count"))
                for p, n in (levels or [])
            ]
        return out

    @property
    def best_yes_bid(self) -> Decimal | None:
        return self.yes[-1][0] if self.yes else None

    @property
    def best_no_bid(self) -> Decimal | None:
        return self.no[-1][0] if self.no else None

    @property
    def yes_ask(self) -> Decimal | None:
        return None if self.best_no_bid is None else 1 - self.best_no_bid

    @property
    def no_ask(self) -> Decimal | None:
        return None if self.best_yes_bid is None else 1 - self.best_yes_bid


class HistoricalCutoff(Record):
    """Before these times, markets (and their candles) and trades live under ``/historical``."""

    market_settled_ts: dt.datetime
    trades_created_ts: dt.datetime
    orders_updated_ts: dt.datetime


class Balance(Record):
    """Available cash and portfolio value, in integer cents as the API sends them."""

    balance: int
    portfolio_value: int = 0
    updated_ts: int | None = None


class MarketPosition(Record):
    """``position`` is signed: > 0 holds YES contracts, < 0 holds NO contracts."""

    ticker: str
    position: Decimal
    market_exposure: Decimal | None = None
    realized_pnl: Decimal | None = None
    fees_paid: Decimal | None = None
    total_traded: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        return _normalise(
            doc, ("market_exposure", "realized_pnl", "fees_paid", "total_traded"), ("position",)
        )


_ORDER_PRICES = (
    "yes_price",
    "no_price",
    "taker_fill_cost",
    "maker_fill_cost",
    "taker_fees",
    "maker_fees",
)
_ORDER_COUNTS = ("fill_count", "remaining_count", "initial_count")


class Order(Record):
    order_id: str
    client_order_id: str | None = None
    ticker: str
    side: Literal["yes", "no"]
    action: Literal["buy", "sell"]
    status: str  # resting | canceled | executed
    yes_price: Decimal | None = None
    no_price: Decimal | None = None
    fill_count: Decimal = Decimal(0)
    remaining_count: Decimal = Decimal(0)
    initial_count: Decimal | None = None
    taker_fill_cost: Decimal | None = None
    maker_fill_cost: Decimal | None = None
    taker_fees: Decimal | None = None
    maker_fees: Decimal | None = None
    created_time: dt.datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(doc, _ORDER_PRICES, _ORDER_COUNTS)
        if isinstance(out, dict):
            out = {k: v for k, v in out.items() if v is not None}
        return out


class Fill(Record):
    """One fill, from ``GET /portfolio/fills`` (``fill_id`` and ``trade_id``, ``created_time``)
    or from the WebSocket ``fill`` channel (AsyncAPI ``fillPayload``: ``trade_id`` only,
    "what you use to differentiate fills", ``market_ticker`` and ``ts_ms``): one record for
    both, so a fill reads the same whichever source told it first."""

    fill_id: str | None = None
    trade_id: str | None = None
    order_id: str
    client_order_id: str | None = None
    ticker: str
    side: Literal["yes", "no"]
    action: Literal["buy", "sell"]
    count: Decimal
    yes_price: Decimal
    no_price: Decimal | None = None
    is_taker: bool | None = None
    fee_cost: Decimal | None = None  # dollars
    created_time: dt.datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, doc: Any) -> Any:
        out = _normalise(doc, ("yes_price", "no_price", "fee_cost"), ("count",))
        if isinstance(out, dict):
            out["ticker"] = doc.get("ticker") or doc.get("market_ticker")
            ts_ms = doc.get("ts_ms")
            if out.get("created_time") is None and isinstance(ts_ms, int):  # a stream message
                out["created_time"] = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
        return out
