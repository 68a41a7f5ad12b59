"""Everything a :class:`~kalshi_lab.server.local.LocalKalshiServer` can be told, validated.

The server binds to loopback only: it accepts orders signed by whoever holds the configured key
and serves a dataset that may be private, and it is a test fixture, not a service.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.server.errors import ServerSetupError
from kalshi_lab.server.faults import FaultConfig

LOOPBACK = "127.0.0.1"
#: host names accepted, all meaning LOOPBACK
LOOPBACK_NAMES = (LOOPBACK, "localhost")
DEFAULT_PORT = 8765
#: $1,000
DEFAULT_BALANCE_CENTS = 100_000
#: a client's pool holds ~10 connections; a few clients at once fit
DEFAULT_MAX_CONNECTIONS = 64
#: an idle keep-alive connection is closed after this long (load balancers use 60 s)
DEFAULT_READ_TIMEOUT_S = 30.0


def _unix(value: dt.datetime | None, name: str) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ServerSetupError(f"{name} must be timezone-aware (UTC), got {value.isoformat()}")
    return int(value.timestamp())


@dataclass(frozen=True)
class ServerConfig:
    """Server options; ``None`` times take their defaults from the data (see LocalKalshiServer)."""

    host: str = LOOPBACK
    port: int = 0  # 0: any free port
    #: the WebSocket stream's port (a second listener; 0: any free port)
    ws_port: int = 0
    #: the historical cutoff (default: the median settlement time of the served markets)
    cutoff: dt.datetime | None = None
    #: where the server's clock starts, for market statuses, orderbooks and orders (default:
    #: when the data was recorded, its latest received_at)
    now: dt.datetime | None = None
    #: server seconds per wall-clock second: 0 stops the clock, 1 is real time
    clock_speed: float = 0.0
    rate_limit: bool = True
    reads_per_s: float = 20.0
    writes_per_s: float = 10.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: the API key whose signatures the portfolio endpoints accept (both or neither)
    public_key: rsa.RSAPublicKey | None = None
    key_id: str | None = None
    starting_balance_cents: int = DEFAULT_BALANCE_CENTS
    #: connections (one thread each) served at once, and how long any read may wait
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_NAMES:
            raise ServerSetupError(
                f"host {self.host!r} refused: the local server binds to loopback only "
                f"({LOOPBACK} or localhost)"
            )
        if not 0 <= self.port <= 65535:
            raise ServerSetupError(f"port must be 0..65535, got {self.port}")
        if not 0 <= self.ws_port <= 65535:
            raise ServerSetupError(f"ws_port must be 0..65535, got {self.ws_port}")
        if (self.public_key is None) != (self.key_id is None):
            raise ServerSetupError(
                "the public key and the key id go together: give both or neither"
            )
        if self.starting_balance_cents < 0:
            raise ServerSetupError(
                f"the starting balance must be >= 0 cents, got {self.starting_balance_cents}"
            )
        if not (self.clock_speed >= 0 and math.isfinite(self.clock_speed)):
            raise ServerSetupError(f"the clock speed must be >= 0, got {self.clock_speed}")
        if self.max_connections < 1:
            raise ServerSetupError(f"max_connections must be >= 1, got {self.max_connections}")
        if not (self.read_timeout_s > 0 and math.isfinite(self.read_timeout_s)):
            raise ServerSetupError(f"read_timeout_s must be > 0, got {self.read_timeout_s}")
        _unix(self.cutoff, "cutoff")
        _unix(self.now, "now")

    @property
    def cutoff_ts(self) -> int | None:
        return _unix(self.cutoff, "cutoff")

    @property
    def now_ts(self) -> int | None:
        return _unix(self.now, "now")
