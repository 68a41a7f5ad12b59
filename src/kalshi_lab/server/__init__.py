"""A local Kalshi-compatible HTTP server over a raw dataset (``kalshi-lab serve``).

It serves recorded (or simulated) API documents through the Trade API v2's paths, query
parameters, cursor pagination and JSON, splits them into live and ``/historical/*`` by a
cutoff, enforces the rate limit per key, checks request signatures on the portfolio endpoints,
matches orders against the recorded books at its clock by the backtest's venue rules (taker
and maker fills, fees, settlement: :mod:`kalshi_lab.execution.fills`), and injects seeded
faults, so that a client can be tested against everything Kalshi does to it without a network
or a key. On a second loopback port it speaks Kalshi's WebSocket protocol from the same data
and clock (``stream``).

Modules, from the data up: ``units`` (exact formats), ``dataset`` (the indexed raw data),
``clock``, ``books``, ``tapes``, ``historical`` (the cutoff), ``paging``, ``query``,
``routes``, ``lifecycle`` and ``market_data`` (public endpoints), ``orders``, ``positions``,
``records``, ``portfolio``, ``portfolio_api`` (signed endpoints), ``auth``, ``limits``,
``faults``, ``stats``, ``app`` (one request's decisions), ``handler`` (the socket),
``stream_messages`` and ``stream`` (the WebSocket endpoint), ``config`` and ``local`` (the
server).
"""

from kalshi_lab.server.config import ServerConfig
from kalshi_lab.server.dataset import Dataset
from kalshi_lab.server.errors import ServerSetupError
from kalshi_lab.server.faults import Fault, FaultConfig
from kalshi_lab.server.local import LocalKalshiServer
from kalshi_lab.server.stats import StatsSnapshot

__all__ = [
    "Dataset",
    "Fault",
    "FaultConfig",
    "LocalKalshiServer",
    "ServerConfig",
    "ServerSetupError",
    "StatsSnapshot",
]
