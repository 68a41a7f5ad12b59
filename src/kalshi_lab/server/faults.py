"""Seeded fault injection: the failures a Kalshi client must survive, on demand.

Each request (optionally only those under a path prefix) draws at most one fault, each with
its own probability:

* ``rate_limited``: 429 ``{"error": "too many requests"}``, as Kalshi answers, no Retry-After;
* ``server_error``: 500 with an ErrorResponse body;
* ``bad_gateway``: 502 with an HTML page, as a proxy in front of the API answers;
* ``slow``: the request IS processed, then answered after ``slow_delay_s`` (longer than the
  client's timeout): the client gives up on an order that was placed, and its retry must be
  idempotent;
* ``truncated``: valid headers with the full Content-Length, half the body, connection closed;
* ``reset``: the connection is reset (SO_LINGER 0) without any answer.

Only ``slow`` lets a request change state: every other fault answers instead of the handler,
so a faulted POST is never half-applied (a truncated GET body is the real answer, cut).

One fault is drawn per fill rather than per request: ``late_fill``, the probability that a fill
shows in ``GET /portfolio/fills`` only ``late_fill_delay_s`` (wall-clock) seconds after it
happened. Kalshi's fills listing lags its matching engine: the order (and the answer to the
create) counts the fill at once, the listing catches up later, and a client that books fills
from the listing must take them when they come (:mod:`kalshi_lab.server.portfolio`). It has
its own seeded stream, so late fills do not shift the per-request draws.

The WebSocket stream (:mod:`kalshi_lab.server.stream`) draws its own faults per data message,
from a third seeded stream: ``stream_drop`` closes the connection instead of sending it,
``stream_gap`` skips it (its ``seq`` is used up: the client sees the gap), ``stream_duplicate``
sends it twice (same ``seq``). Messages without ``seq`` (fills, orders, tickers) are never
skipped: the client could not tell.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from enum import StrEnum

from kalshi_lab.data.raw_store import API_PREFIX
from kalshi_lab.server.errors import ServerSetupError


class Fault(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    BAD_GATEWAY = "bad_gateway"
    SLOW = "slow"
    TRUNCATED = "truncated"
    RESET = "reset"


class StreamFault(StrEnum):
    DROP = "stream_drop"
    GAP = "stream_gap"
    DUPLICATE = "stream_duplicate"


@dataclass(frozen=True)
class FaultConfig:
    """Per-request probabilities of each fault (their sum at most 1), and where they apply."""

    rate_limited: float = 0.0
    server_error: float = 0.0
    bad_gateway: float = 0.0
    slow: float = 0.0
    truncated: float = 0.0
    reset: float = 0.0
    #: how late a ``slow`` answer comes: make it longer than the client's timeout
    slow_delay_s: float = 3.0
    #: only paths under this prefix (relative to /trade-api/v2, e.g. "/portfolio") draw faults
    path_prefix: str | None = None
    seed: int = 0
    #: probability that a fill is listed late, and how late (seconds of wall-clock time)
    late_fill: float = 0.0
    late_fill_delay_s: float = 2.0
    #: per stream data message: probability of dropping the connection, skipping a seq,
    #: sending the message twice
    stream_drop: float = 0.0
    stream_gap: float = 0.0
    stream_duplicate: float = 0.0

    def __post_init__(self) -> None:
        for fault in Fault:
            p = getattr(self, fault.value)
            if not 0.0 <= p <= 1.0:
                raise ServerSetupError(
                    f"fault probability {fault.value} must be in [0, 1], got {p}"
                )
        if sum(self.probabilities().values()) > 1.0 + 1e-12:
            raise ServerSetupError("fault probabilities must add up to at most 1")
        for fault in StreamFault:
            p = getattr(self, fault.value)
            if not 0.0 <= p <= 1.0:
                raise ServerSetupError(
                    f"fault probability {fault.value} must be in [0, 1], got {p}"
                )
        if sum(getattr(self, fault.value) for fault in StreamFault) > 1.0 + 1e-12:
            raise ServerSetupError("stream fault probabilities must add up to at most 1")
        if not 0.0 <= self.late_fill <= 1.0:
            raise ServerSetupError(f"late_fill must be in [0, 1], got {self.late_fill}")
        for name in ("slow_delay_s", "late_fill_delay_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ServerSetupError(f"{name} must be a finite number > 0, got {value}")
        if self.path_prefix is not None and not self.path_prefix.startswith("/"):
            raise ServerSetupError(
                f"fault path prefix must start with '/', got {self.path_prefix!r}"
            )

    def probabilities(self) -> dict[Fault, float]:
        return {fault: getattr(self, fault.value) for fault in Fault}

    def applies_to(self, path: str) -> bool:
        """``path`` is a full URL path; the prefix may be given with or without the API prefix."""
        if self.path_prefix is None:
            return True
        relative = path.removeprefix(API_PREFIX)
        return path.startswith(self.path_prefix) or relative.startswith(self.path_prefix)


class FaultInjector:
    """Draws faults from one seeded stream; :meth:`configure` swaps the config (and reseeds)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)
            self._fill_rng = random.Random(f"late fills {config.seed}")
            self._stream_rng = random.Random(f"stream {config.seed}")

    def draw_stream(self) -> StreamFault | None:
        """The fault one stream data message gets, if any."""
        with self._lock:
            u = self._stream_rng.random()
            total = 0.0
            for fault in StreamFault:
                total += getattr(self._config, fault.value)
                if u < total:
                    return fault
            return None

    def listing_delay(self) -> float:
        """Seconds until a new fill is listed: ``late_fill_delay_s`` with probability
        ``late_fill``, else 0."""
        with self._lock:
            config = self._config
            if config.late_fill and self._fill_rng.random() < config.late_fill:
                return config.late_fill_delay_s
            return 0.0

    def draw(self, path: str) -> Fault | None:
        """The fault this request gets, if any."""
        with self._lock:
            config = self._config
            if not config.applies_to(path):
                return None
            u = self._rng.random()
            total = 0.0
            for fault, p in config.probabilities().items():
                total += p
                if u < total:
                    return fault
            return None
