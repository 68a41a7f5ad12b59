"""``CreateOrderRequest`` validation, as the spec (v3.13) and Kalshi's rules have it.

Checked here, before anything changes: the required fields and their enums; exactly one price
(``yes_price``/``no_price`` in cents 1..99, or ``yes_price_dollars``/``no_price_dollars``);
``count`` and/or ``count_fp`` (equal when both); the market's tick grid and fractional-trading
flag (:func:`check_market_rules`). Fields the spec defines and the local server cannot honour
(order groups, subaccounts other than 0) are refused rather than ignored. Unknown fields are
ignored, as the API ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson

from kalshi_lab.server.errors import bad_request
from kalshi_lab.server.units import ONE, PRICE_PRECISION, ZERO, decimal_of

Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]
TIME_IN_FORCE = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
STP_TYPES = ("taker_at_cross", "maker")
PRICE_FIELDS = ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars")
#: the last second an RFC 3339 time can show (9999-12-31T23:59:59Z)
MAX_TS = 253_402_300_799
_COUNT_FP = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")  # ASCII digits, as the API writes them
#: the most contracts one order may ask for: the local server's bound, which keeps every
#: count and cost it writes within Decimal's 28 digits
MAX_COUNT = 10**9
#: tick grids of the price level structures, for markets whose document has no price_ranges
STRUCTURES = {
    "linear_cent": (("0", "1", "0.01"),),
    "deci_cent": (("0", "1", "0.001"),),
    "tapered_deci_cent": (("0", "0.1", "0.001"), ("0.1", "0.9", "0.01"), ("0.9", "1", "0.001")),
}


@dataclass(frozen=True)
class OrderRequest:
    """A valid order, prices in dollars of the order's own side."""

    ticker: str
    side: Side
    action: Action
    count: Decimal
    price: Decimal
    client_order_id: str
    time_in_force: str
    expiration_ts: int | None
    buy_max_cost_cents: int | None
    post_only: bool
    reduce_only: bool
    self_trade_prevention_type: str | None
    cancel_order_on_pause: bool

    @property
    def up(self) -> bool:
        """Moves the position towards YES: buy YES or sell NO."""
        return (self.side == "yes") == (self.action == "buy")

    @property
    def yes_limit(self) -> Decimal:
        return self.price if self.side == "yes" else ONE - self.price

    @property
    def rests(self) -> bool:
        """What is not filled at once stays on the book (good till canceled or until expiry)."""
        return self.time_in_force == "good_till_canceled"


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false")
    return value


def _int(
    body: dict[str, Any], name: str, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise bad_request(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise bad_request(f"{name} must be <= {maximum}, got {value}")
    return value


def _enum(
    body: dict[str, Any], name: str, options: tuple[str, ...], *, required: bool
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if value not in options:
        raise bad_request(f"{name} must be one of {', '.join(options)}")
    return str(value)


def _count(body: dict[str, Any]) -> Decimal:
    count = _int(body, "count", minimum=1, maximum=MAX_COUNT)
    text = body.get("count_fp")
    if text is not None and (not isinstance(text, str) or not _COUNT_FP.fullmatch(text)):
        raise bad_request('count_fp must be a string with at most 2 decimals, e.g. "10.00"')
    fp = None if text is None else Decimal(text)
    if count is None and fp is None:
        raise bad_request("one of count or count_fp is required", code="missing_parameters")
    if count is not None and fp is not None and Decimal(count) != fp:
        raise bad_request(f"count {count} and count_fp {text} do not match")
    value = fp if fp is not None else Decimal(count or 0)
    if not ZERO < value <= MAX_COUNT:
        raise bad_request(f"the order count must be in (0, {MAX_COUNT}]")
    return value


def _price(body: dict[str, Any], side: Side) -> Decimal:
    """The limit in dollars of the order's side, from the one price field given."""
    given = [name for name in PRICE_FIELDS if body.get(name) is not None]
    if len(given) != 1:
        raise bad_request(
            f"exactly one of {', '.join(PRICE_FIELDS)} is required, got {len(given)}",
            code="invalid_price",
        )
    name = given[0]
    raw = body[name]
    if name.endswith("_dollars"):
        if not isinstance(raw, str):
            raise bad_request(
                f'{name} must be a dollar string such as "0.5600"', code="invalid_price"
            )
        try:
            price = decimal_of(raw)
        except ValueError:
            raise bad_request(f"{name} is not a number", code="invalid_price") from None
        if not ZERO < price < ONE:  # first: quantizing 0.5e99999999 would overflow
            raise bad_request(
                f"{name} must be strictly between 0 and 1 dollar", code="invalid_price"
            )
        if price != price.quantize(PRICE_PRECISION):
            raise bad_request(f"{name} has more than 6 decimals", code="invalid_price")
    else:
        cents = _int(body, name)
        assert cents is not None
        if not 1 <= cents <= 99:
            raise bad_request(f"{name} must be 1..99 cents, got {cents}", code="invalid_price")
        price = Decimal(cents) / 100
    if not ZERO < price < ONE:
        raise bad_request(f"{name} must be strictly between 0 and 1 dollar", code="invalid_price")
    of_yes = name.startswith("yes")
    return price if of_yes == (side == "yes") else ONE - price


def parse_order_request(raw: bytes) -> OrderRequest:
    """A valid :class:`OrderRequest` from a request body, or a 400 naming the field."""
    try:
        body = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object (CreateOrderRequest)")
    ticker = body.get("ticker")
    if not isinstance(ticker, str) or not ticker:
        raise bad_request("ticker is required", code="missing_parameters")
    side: Side = "yes" if _enum(body, "side", ("yes", "no"), required=True) == "yes" else "no"
    buy = _enum(body, "action", ("buy", "sell"), required=True) == "buy"
    action: Action = "buy" if buy else "sell"
    client_order_id = body.get("client_order_id") or ""
    if not isinstance(client_order_id, str):
        raise bad_request("client_order_id must be a string")
    tif = _enum(body, "time_in_force", TIME_IN_FORCE, required=False) or "good_till_canceled"
    buy_max_cost = _int(body, "buy_max_cost", minimum=1)
    if buy_max_cost is not None:
        if action != "buy":
            raise bad_request("buy_max_cost applies to buy orders only")
        tif = "fill_or_kill"  # the spec: buy_max_cost implies fill-or-kill
    post_only = _bool(body, "post_only")
    if post_only and tif != "good_till_canceled":
        raise bad_request(f"post_only cannot be combined with time_in_force {tif}")
    floor = _int(body, "sell_position_floor")
    if floor not in (None, 0):
        raise bad_request("sell_position_floor only accepts 0 (deprecated: use reduce_only)")
    if body.get("order_group_id") is not None:
        raise bad_request("order_group_id: the local server has no order groups")
    subaccount = _int(body, "subaccount", minimum=0)
    if subaccount not in (None, 0):
        raise bad_request(f"subaccount {subaccount} does not exist (only the primary account, 0)")
    return OrderRequest(
        ticker=ticker,
        side=side,
        action=action,
        count=_count(body),
        price=_price(body, side),
        client_order_id=client_order_id,
        time_in_force=tif,
        expiration_ts=_int(body, "expiration_ts", minimum=0, maximum=MAX_TS),
        buy_max_cost_cents=buy_max_cost,
        post_only=post_only,
        reduce_only=_bool(body, "reduce_only") or (floor == 0 and action == "sell"),
        self_trade_prevention_type=_enum(
            body, "self_trade_prevention_type", STP_TYPES, required=False
        ),
        cancel_order_on_pause=_bool(body, "cancel_order_on_pause"),
    )


def _grid(market: dict[str, Any]) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(start, end, step) of each price range the market quotes in."""
    ranges = market.get("price_ranges")
    if ranges:
        rows = [(r["start"], r["end"], r["step"]) for r in ranges]
    else:
        structure = market.get("price_level_structure") or "linear_cent"
        rows = list(STRUCTURES.get(structure, STRUCTURES["linear_cent"]))
    return [(decimal_of(a), decimal_of(b), decimal_of(c)) for a, b, c in rows]


def check_market_rules(order: OrderRequest, market: dict[str, Any]) -> None:
    """The market's own rules: its tick grid, and whole contracts unless it trades fractions."""
    if order.count != order.count.to_integral_value() and not market.get(
        "fractional_trading_enabled"
    ):
        raise bad_request(f"market {order.ticker} trades whole contracts only, got {order.count}")
    price = order.price
    if not any(lo <= price <= hi and (price - lo) % step == 0 for lo, hi, step in _grid(market)):
        raise bad_request(
            f"price {price} is not on the tick grid of market {order.ticker} "
            f"({market.get('price_level_structure', 'linear_cent')})",
            code="invalid_price",
        )
