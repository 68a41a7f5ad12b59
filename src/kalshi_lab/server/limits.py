"""Kalshi's rate limit as the server enforces it: per API key, one token bucket for reads and
one for writes (order create and cancel), each holding one second of budget; a request that
finds its bucket empty is answered 429 ``{"error": "too many requests"}`` without a Retry-After
header, as the real API does (API.md section 1).

Kalshi budgets each member by usage tier (https://docs.kalshi.com/getting_started/rate_limits;
``GET /account/limits`` answers the member's own), so the bucket is chosen AFTER the signature
is checked: a request signed by the configured key draws
on that key's buckets; everything else (unsigned public reads, a signature that does not
verify) on the buckets of :data:`ANONYMOUS`. A flood of unsigned requests therefore exhausts
only its own budget and never starves a signed client. The principals are the one configured
key and ANONYMOUS: the number of buckets is bounded whatever clients send.
"""

from __future__ import annotations

import threading

from kalshi_lab.client.ratelimit import TokenBucket
from kalshi_lab.server.errors import ServerSetupError

TOO_MANY_REQUESTS = {"error": "too many requests"}
#: the principal of a request without a verified signature
ANONYMOUS = ""


class RequestLimiter:
    """``reads_per_s``/``writes_per_s`` per principal with a 1 s burst; ``enabled=False`` lets
    all through."""

    def __init__(self, reads_per_s: float, writes_per_s: float, *, enabled: bool = True) -> None:
        for name, rate in (("reads_per_s", reads_per_s), ("writes_per_s", writes_per_s)):
            if not rate > 0:
                raise ServerSetupError(f"{name} must be > 0, got {rate}")
        self.enabled = enabled
        self.reads_per_s = reads_per_s
        self.writes_per_s = writes_per_s
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}
        self._lock = threading.Lock()

    def _of(self, principal: str) -> tuple[TokenBucket, TokenBucket]:
        with self._lock:
            buckets = self._buckets.get(principal)
            if buckets is None:
                buckets = self._buckets[principal] = (
                    TokenBucket(self.reads_per_s, capacity=max(1.0, self.reads_per_s)),
                    TokenBucket(self.writes_per_s, capacity=max(1.0, self.writes_per_s)),
                )
            return buckets

    def allow(self, principal: str, write: bool) -> bool:
        """Take one token from the principal's bucket if there is one now (never waits)."""
        if not self.enabled:
            return True
        reads, writes = self._of(principal)
        return (writes if write else reads).try_acquire()
