"""Kalshi's rate limit as the server enforces it: one token bucket for reads and one for
writes (order create and cancel), each holding one second of budget; a request that finds its
bucket empty is answered 429 ``{"error": "too many requests"}`` without a Retry-After header,
as the real API does (API.md section 1)."""

from __future__ import annotations

from kalshi_lab.client.ratelimit import TokenBucket
from kalshi_lab.server.errors import ServerSetupError

TOO_MANY_REQUESTS = {"error": "too many requests"}


class RequestLimiter:
    """``reads_per_s``/``writes_per_s`` with a 1 s burst; ``enabled=False`` lets all through."""

    def __init__(self, reads_per_s: float, writes_per_s: float, *, enabled: bool = True) -> None:
        for name, rate in (("reads_per_s", reads_per_s), ("writes_per_s", writes_per_s)):
            if not rate > 0:
                raise ServerSetupError(f"{name} must be > 0, got {rate}")
        self.enabled = enabled
        self._reads = TokenBucket(reads_per_s, capacity=max(1.0, reads_per_s))
        self._writes = TokenBucket(writes_per_s, capacity=max(1.0, writes_per_s))

    def allow(self, write: bool) -> bool:
        """Take one token from the request's bucket if there is one now (never waits)."""
        if not self.enabled:
            return True
        return (self._writes if write else self._reads).try_acquire()
