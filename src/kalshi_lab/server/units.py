"""The API's value formats, exact: dollar strings, fixed-point counts, RFC 3339 times.

Money never passes through a float: prices and counts are ``Decimal`` from the moment they are
read (current ``*_dollars``/``*_fp`` strings or legacy integer cents and counts) until they are
written back as strings.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

ONE = Decimal(1)
ZERO = Decimal(0)
HUNDRED = Decimal(100)
#: responses show prices with 4 decimals (more only when a price really has them) ...
_DOLLAR_PLACES = Decimal("0.0001")
#: ... and counts with 2
_COUNT_PLACES = Decimal("0.01")
#: the finest price Kalshi keeps internally (6 decimals)
PRICE_PRECISION = Decimal("0.000001")


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time (``Z`` or an offset, any fraction of a second) as an aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return value.astimezone(dt.UTC)


def unix_s(text: str) -> int:
    """Unix seconds (floored) of an RFC 3339 time."""
    return int(parse_time(text).timestamp() // 1)


def unix_us(text: str) -> int:
    """Unix microseconds of an RFC 3339 time, exact (no float on the way)."""
    delta = parse_time(text) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(unix_seconds: int) -> str:
    """``2025-03-14T17:00:00Z``: how the API writes a time."""
    return dt.datetime.fromtimestamp(unix_seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dollars_text(value: Decimal) -> str:
    """``Decimal("0.43")`` -> ``"0.4300"``; sub-penny digits beyond 4 places are kept."""
    shown = value.quantize(_DOLLAR_PLACES) if value == value.quantize(_DOLLAR_PLACES) else value
    return f"{shown:f}"


def cents_text(cents: int) -> str:
    """Integer cents as a dollar string: ``-5`` -> ``"-0.0500"``."""
    return dollars_text(Decimal(cents) / HUNDRED)


def count_text(value: Decimal) -> str:
    """``Decimal(12)`` -> ``"12.00"`` (counts have 0.01-contract granularity)."""
    return f"{value.quantize(_COUNT_PLACES):f}"


def decimal_of(value: Any) -> Decimal:
    """A JSON number or numeric string as a Decimal; ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a number")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not out.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return out


def price_of(value: Any) -> Decimal:
    """A price level's price in dollars: a dollar string (current) or integer cents (legacy)."""
    if isinstance(value, str):
        return decimal_of(value)
    return decimal_of(value) / HUNDRED


def legacy_cents_text(value: Any) -> str | None:
    """A legacy integer-cents field as a dollar string; None stays None."""
    return None if value is None else dollars_text(decimal_of(value) / HUNDRED)
