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
"""

from __future__ import annotations

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

    def __post_init__(self) -> None:
        for fault in Fault:
            p = getattr(self, fault.value)
            if not 0.0 <= p <= 1.0:
                raise ServerSetupError(
                    f"fault probability {fault.value} must be in [0, 1], got {p}"
                )
        if sum(self.probabilities().values()) > 1.0 + 1e-12:
            raise ServerSetupError("fault probabilities must add up to at most 1")
        if not self.slow_delay_s > 0:
            raise ServerSetupError(f"slow_delay_s must be > 0, got {self.slow_delay_s}")
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
