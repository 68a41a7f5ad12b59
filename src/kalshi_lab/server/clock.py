"""The server's clock: the venue time at which markets are shown and orders are matched.

It starts at ``start`` (Unix seconds: ``--now``, by default when the data was recorded) and
runs at ``speed`` server seconds per wall-clock second: 0 keeps it still (the default: every
answer describes one moment, which is what most tests want), 1 runs it in real time, 60 plays
an hour of recorded books in a minute. :meth:`ServerClock.advance` moves it on at once, for a
test or a paper-trading driver that wants a settlement now. It never goes back: what the
venue did (fills, cancels at close, settlements) stays done.

Times are whole seconds, as the API's timestamps are.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from kalshi_lab.server.errors import ServerSetupError


class ServerClock:
    """``start + speed x (wall seconds since creation) + what advance() added``, floored."""

    def __init__(
        self, start: int, speed: float = 0.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if not (speed >= 0 and math.isfinite(speed)):
            raise ServerSetupError(f"the clock speed must be a finite number >= 0, got {speed}")
        self.speed = speed
        self._wall = wall
        self._wall0 = wall()
        self._base = start
        self._lock = threading.Lock()

    def now(self) -> int:
        """The server's time in Unix seconds."""
        with self._lock:
            return self._base + math.floor((self._wall() - self._wall0) * self.speed)

    def advance(self, seconds: int) -> int:
        """Move the clock ``seconds`` (>= 0) on at once; returns the new time."""
        if seconds < 0:
            raise ValueError(f"the server's clock never goes back (asked {seconds} s)")
        with self._lock:
            self._base += seconds
        return self.now()
