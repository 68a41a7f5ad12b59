"""What the server did, counted for tests and for the log: requests per route kind, answers
per status, faults per kind, requests refused by the rate limiter, and stream data messages
published per type (what a stream client's receipts are held to)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the counters at one moment."""

    requests: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    published: dict[str, int] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class ServerStats:
    """Thread-safe counters, updated by the request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()
        self._rate_limited = 0
        self._published: Counter[str] = Counter()

    def request(self, kind: str) -> None:
        with self._lock:
            self._requests[kind] += 1

    def status(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def rate_limit(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def publish(self, kind: str) -> None:
        with self._lock:
            self._published[kind] += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                dict(self._requests),
                dict(self._statuses),
                dict(self._faults),
                self._rate_limited,
                dict(self._published),
            )
