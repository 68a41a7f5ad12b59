"""Requests, replies and the table that maps ``METHOD path`` to a handler.

Each route has a ``kind`` (``markets``, ``orderbook``, ``create_order``, ...): the name the
server counts requests under, and the unit a test asserts on. A route is a ``write`` when it
changes state (Kalshi's write bucket: order create and cancel) and ``signed`` when it needs the
KALSHI-ACCESS-* headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from kalshi_lab.data.raw_store import API_PREFIX
from kalshi_lab.server.errors import ApiError, not_found
from kalshi_lab.server.query import Query


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # the full URL path, API prefix included, query excluded: what is signed
    params: Mapping[str, str]  # path parameters, URL-decoded
    query: Query
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """An answer: a JSON object, or (for an injected 502) an HTML page."""

    status: int
    body: Mapping[str, Any] | str

    @property
    def content_type(self) -> str:
        return "text/html" if isinstance(self.body, str) else "application/json"

    def payload(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else orjson.dumps(self.body)


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: Handler
    signed: bool = False

    @property
    def write(self) -> bool:
        return self.method != "GET"


def ok(body: Mapping[str, Any], status: int = 200) -> Reply:
    return Reply(status, body)


class Router:
    """Routes in the order added: put ``/markets/trades`` before ``/markets/{ticker}``."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(
        self, method: str, template: str, kind: str, handler: Handler, *, signed: bool = False
    ) -> None:
        """``template`` is relative to the API prefix, e.g. ``/markets/{ticker}/orderbook``."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        pattern = re.compile("^" + re.escape(API_PREFIX) + regex + "$")
        self._routes.append(Route(method, pattern, kind, handler, signed))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route of a request and its path parameters; 404 or 405 when there is none."""
        allowed = []
        for route in self._routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405, "method_not_allowed", f"{method} is not allowed on {path}; use {allowed}"
            )
        raise not_found(f"endpoint {method} {path}")
