"""Query-string parsing with the API's rules: a bad value is a 400 that names the parameter.

Values arrive as strings; an empty value means "not given", as the API treats ``cursor=``.
Integers follow the spec's validations (``limit`` 0 means the default, as Kalshi's
``omitempty`` validators do); booleans accept what Go's ``strconv.ParseBool`` accepts.
Parameters the spec does not define are ignored, as the real API ignores them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import orjson

from kalshi_lab.server.errors import bad_request

#: what an int64 query parameter can be: ASCII digits, at most 19 of them (Go's strconv)
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class Query:
    """The query parameters of one request (the first value of a repeated parameter wins)."""

    def __init__(self, params: Mapping[str, list[str]]) -> None:
        self._params = {k: v[0] for k, v in params.items() if v and v[0] != ""}

    def text(self, name: str) -> str | None:
        return self._params.get(name)

    def has(self, name: str) -> bool:
        return name in self._params

    def integer(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        raw = self._params.get(name)
        if raw is None:
            return None
        if not _INTEGER.fullmatch(raw):
            raise bad_request(f"{name} must be an integer, got {raw[:40]!r}")
        value = int(raw)
        if minimum is not None and value < minimum:
            raise bad_request(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise bad_request(f"{name} must be <= {maximum}, got {value}")
        return value

    def required_integer(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise bad_request(f"{name} is required", code="missing_parameters")
        return value

    def boolean(self, name: str) -> bool:
        raw = self._params.get(name)
        if raw is None or raw in _FALSE:
            return False
        if raw in _TRUE:
            return True
        raise bad_request(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, options: Iterable[str]) -> str | None:
        raw = self._params.get(name)
        allowed = tuple(options)
        if raw is not None and raw not in allowed:
            raise bad_request(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw

    def limit(self, default: int, maximum: int) -> int:
        """``limit``: 0 or absent is the default, negative or above ``maximum`` a 400."""
        value = self.integer("limit", minimum=0, maximum=maximum)
        return value or default

    def names(self, name: str, *, most: int | None = None) -> list[str] | None:
        """A comma-separated list (``tickers=A,B``); None when absent."""
        raw = self._params.get(name)
        if raw is None:
            return None
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if most is not None and len(values) > most:
            raise bad_request(f"{name} takes at most {most} values, got {len(values)}")
        return values

    def single(self, name: str) -> str | None:
        """A parameter that takes exactly one value (``event_ticker`` on /markets)."""
        raw = self._params.get(name)
        if raw is not None and "," in raw:
            raise bad_request(f"{name} takes a single value, got {raw!r}")
        return raw

    def scope(self, endpoint: str, *names: str) -> str:
        """What a cursor is bound to: the endpoint and the filters given (not limit/cursor)."""
        given = {n: self._params[n] for n in sorted(names) if n in self._params}
        return endpoint + "?" + orjson.dumps(given).decode()
