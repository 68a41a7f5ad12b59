"""Kalshi Trade API v2 client: ``KalshiClient`` over one paced, retried ``requests.Session``.

Modules: ``auth`` (RSA-PSS request signing, keys from the environment), ``ratelimit`` (token
bucket), ``transport`` (session, retries, typed errors, cursor pages), ``records`` (typed,
format-agnostic records of the API's JSON), ``client`` (the endpoints), ``errors``; the
WebSocket streams: ``ws`` (:class:`~kalshi_lab.client.ws.KalshiStream`), ``ws_sequence`` (seq
gaps and duplicates), ``ws_books`` (live books from snapshots and deltas).
"""

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.client import DEMO_URL, PRODUCTION_URL, KalshiClient, candle_windows
from kalshi_lab.client.errors import (
    AuthError,
    ConflictError,
    ConnectRefusedError,
    CredentialsError,
    HostNotFoundError,
    KalshiAPIError,
    KalshiError,
    NotFoundError,
    PaginationError,
    RateLimitedError,
    RequestTimedOutError,
    TransportError,
)
from kalshi_lab.client.transport import ApiResponse

__all__ = [
    "DEMO_URL",
    "PRODUCTION_URL",
    "ApiResponse",
    "AuthError",
    "ConflictError",
    "ConnectRefusedError",
    "CredentialsError",
    "KalshiAPIError",
    "KalshiClient",
    "KalshiError",
    "KalshiSigner",
    "HostNotFoundError",
    "NotFoundError",
    "PaginationError",
    "RateLimitedError",
    "RequestTimedOutError",
    "TransportError",
    "candle_windows",
]
