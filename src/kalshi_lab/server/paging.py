"""Cursor pagination as the API does it: opaque cursors, ``""`` after the last page.

A cursor names the sort key of the last item a page returned, bound to the query it came from
(endpoint and filters) by a keyed hash, so that

* a client following cursors sees every item exactly once, also while orders and fills are
  being added (the next page starts after a key, not at an offset that new items would shift);
* a cursor the server did not issue, or one replayed against other filters, is a 400 rather
  than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from kalshi_lab.server.errors import bad_request

T = TypeVar("T")
Key = int | str
_MAC_BYTES = 12


class CursorCodec:
    """Issues and checks cursors; ``secret`` defaults to a fresh random key per server."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(16)

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\0" + payload
        return hmac.digest(self._secret, message, hashlib.blake2b)[:_MAC_BYTES]

    def encode(self, scope: str, last_key: Key) -> str:
        payload = orjson.dumps(last_key)
        token = payload + self._mac(scope, payload)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, token: str, scope: str) -> Key:
        """The key a cursor names; 400 for a cursor this server did not issue for ``scope``."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise bad_request(
                "cursor is not one this server returned for this query (same endpoint and filters)",
                code="invalid_cursor",
            )
        key = orjson.loads(payload)
        assert isinstance(key, int | str)
        return key


def page(
    items: Sequence[T],
    key: Callable[[T], Key],
    limit: int,
    after: Key | None,
) -> tuple[list[T], Key | None]:
    """The page of ``items`` (sorted ascending by ``key``) after ``after``, and the key of its
    last item when more items follow (None when this page is the last)."""
    keys = [key(item) for item in items]
    start = 0 if after is None else bisect_right(keys, after)  # type: ignore[arg-type]
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return chunk, (keys[start + limit - 1] if more else None)
