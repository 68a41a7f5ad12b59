"""The API's value formats: dollar strings with 4 decimals, count strings with 2, RFC 3339 times.

Since 2026-03-12 Kalshi returns only these fixed-point strings (``"0.4300"``, ``"12.00"``); the
legacy integer cents and counts are gone, so the simulator never writes them. Money stays in
integer cents until it is formatted here, so no float rounding reaches a price.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

_DOLLARS = tuple(f"{c // 100}.{c % 100:02d}00" for c in range(101))


def dollars(cents: int) -> str:
    """``43`` -> ``"0.4300"``."""
    return _DOLLARS[cents]


def dollar_strings(cents: np.ndarray) -> np.ndarray:
    """Element-wise :func:`dollars` of an integer array (an object array of str)."""
    return np.asarray(_DOLLARS, dtype=object)[cents]


def dollars_of(value: float) -> str:
    """A dollar amount that may be sub-cent (a mean price) -> 4 decimals."""
    return f"{value:.4f}"


#: :func:`count_fp` as a %-format, for templates that render many counts at once
COUNT_FP = "%d.00"


def count_fp(contracts: int) -> str:
    """``12`` -> ``"12.00"``."""
    return COUNT_FP % contracts


def timestamp(unix_s: int) -> str:
    """RFC 3339, UTC, whole seconds: ``2025-03-14T17:00:00Z``."""
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamps_us(unix_us: np.ndarray) -> list[str]:
    """RFC 3339 with microseconds, as trades carry them: ``2025-07-19T14:22:42.193311Z``."""
    text = np.datetime_as_string(unix_us.astype("datetime64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]


#: where the 32 hex digits of a UUID go in its 36-character text (the rest are hyphens)
_UUID_DIGITS = np.r_[0:8, 9:13, 14:18, 19:23, 24:36]


def uuids(raw: np.ndarray) -> list[str]:
    """(n, 16) bytes -> canonical UUID strings, laid out as characters in one array."""
    hexed = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype=np.uint8)
    text = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = hexed.reshape(len(raw), 32)
    return text.view("S36").ravel().astype("U36").tolist()
