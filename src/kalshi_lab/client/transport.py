"""HTTP for the Kalshi client: one ``requests.Session``, paced, retried, signed when asked.

What happens to one call, in order:

1. it takes a token from the read or write bucket (GET reads; POST and DELETE write), shared by
   every thread using this transport;
2. ``requests`` sends it with a (connect, read) timeout; urllib3's ``Retry`` (mounted through
   an ``HTTPAdapter``) retries 429, 500, 502, 503, 504, connection resets and timeouts with
   exponential backoff and jitter, honouring ``Retry-After`` when the server sends one (Kalshi
   usually does not), and each retry takes a token too;
3. a body that arrives truncated or is not JSON is retried here, as urllib3 has handed the
   response over by the time its body is read;
4. an HTTP error that outlasted its retries becomes a typed :mod:`~kalshi_lab.client.errors`.

POST is retried like GET because every POST this client sends is idempotent: an order carries
its ``client_order_id``, and the client resolves the 409 a repeated one gets.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import (
    AuthError,
    ConflictError,
    KalshiAPIError,
    NotFoundError,
    PaginationError,
    RateLimitedError,
    TransportError,
)
from kalshi_lab.client.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "DELETE", "PUT"})
#: failures of the body itself, after urllib3 returned the response
_BODY_ERRORS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


@dataclass(frozen=True)
class ApiResponse:
    """One answered request, as the raw store records it."""

    method: str
    path: str  # relative to the API prefix, e.g. "/markets" (no query string)
    params: dict[str, Any]
    received_at: dt.datetime  # UTC, when the body had been read
    status: int
    body: dict[str, Any]


@dataclass
class TransportStats:
    """What a transport did, for a fetch's summary line; updated from every thread."""

    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    throttled: int = 0  # 429 answers seen (each one retried or raised)
    waited_s: float = 0.0  # seconds spent waiting for rate-limit tokens
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, value in amounts.items():
                setattr(self, name, getattr(self, name) + value)


class _PacedRetry(Retry):
    """urllib3's Retry whose every retry first takes a rate-limit token (``pace(method)``)."""

    def __init__(self, *args: Any, pace: Callable[[str], None] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pace = pace
        self.method = "GET"

    def new(self, **kw: Any) -> _PacedRetry:
        kw.setdefault("pace", self.pace)
        return super().new(**kw)

    def increment(self, method: str | None = None, *args: Any, **kw: Any) -> _PacedRetry:
        new = super().increment(method, *args, **kw)
        new.method = (method or "GET").upper()
        return new

    def sleep(self, response: Any = None) -> None:
        super().sleep(response)
        if self.pace is not None:
            self.pace(self.method)


class Transport:
    """Paced, retried JSON requests to one API base URL (e.g. ``.../trade-api/v2``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 6,
        reads_per_s: float = 20.0,
        writes_per_s: float = 10.0,
        concurrency: int = 4,
        backoff_factor: float = 0.5,
        backoff_max_s: float = 30.0,
        signer: KalshiSigner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = urlsplit(self.base_url).path  # signed paths include it
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.backoff_max_s = backoff_max_s
        self.signer = signer
        self.clock = clock
        self.stats = TransportStats()
        # one token of burst: a steady pace never trips a server whose bucket refills as fast
        self._buckets = {
            "read": TokenBucket(reads_per_s, capacity=1.0),
            "write": TokenBucket(writes_per_s, capacity=1.0),
        }
        retry = _PacedRetry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET", "POST", "DELETE"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max_s,
            backoff_jitter=backoff_factor,
            raise_on_status=False,  # hand back the last answer: it becomes a typed error here
            respect_retry_after_header=True,
            pace=self._pace_retry,
        )
        adapter = HTTPAdapter(
            max_retries=retry, pool_connections=1, pool_maxsize=max(concurrency, 1)
        )
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "kalshi-lab"})

    def close(self) -> None:
        self.session.close()

    # --- pacing ------------------------------------------------------------------------------

    def _pace(self, method: str) -> None:
        bucket = self._buckets["write" if method.upper() in WRITE_METHODS else "read"]
        self.stats.add(requests=1, waited_s=bucket.acquire())

    def _pace_retry(self, method: str) -> None:
        self.stats.add(retries=1)
        self._pace(method)

    def _backoff(self, attempt: int) -> None:
        delay = min(self.backoff_max_s, self.backoff_factor * 2**attempt)
        time.sleep(delay + random.uniform(0, self.backoff_factor))

    # --- requests ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        json_body: Mapping[str, Any] | None = None,
        signed: bool = False,
    ) -> ApiResponse:
        """One call, retried as the module says; raises a typed error on a final failure."""
        method = method.upper()
        query = {k: v for k, v in (params or {}).items() if v is not None}
        what = f"{method} {self.prefix}{path}"
        if signed and self.signer is None:
            raise AuthError(what, 401, "", "no API key configured for an authenticated endpoint")
        data = None if json_body is None else orjson.dumps(dict(json_body))
        for attempt in range(self.max_retries + 1):
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if signed:
                assert self.signer is not None
                headers.update(self.signer.headers(method, self.prefix + path))
            self._pace(method)
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    params=query,
                    data=data,
                    headers=headers,
                    timeout=self.timeout_s,
                )
                content = response.content
            except _BODY_ERRORS as exc:
                self._retry_body(what, attempt, f"body cut short ({type(exc).__name__})")
                continue
            except requests.exceptions.RequestException as exc:
                raise TransportError(f"{what}: {_reason(exc)} after retries") from None
            history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
            throttled = sum(h.status == 429 for h in history) + (response.status_code == 429)
            if throttled:
                self.stats.add(throttled=throttled)
            if response.status_code >= 400:
                raise _api_error(what, response.status_code, content, signed)
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                self._retry_body(what, attempt, "body is not JSON")
                continue
            if not isinstance(body, dict):
                self._retry_body(what, attempt, "body is not a JSON object")
                continue
            received = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
            return ApiResponse(method, path, query, received, response.status_code, body)
        raise TransportError(f"{what}: unreadable body after {self.max_retries} retries")

    def _retry_body(self, what: str, attempt: int, reason: str) -> None:
        logger.debug("%s: %s; retrying", what, reason)
        if attempt < self.max_retries:
            self.stats.add(retries=1)
            self._backoff(attempt)

    def get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> ApiResponse:
        return self.request("GET", path, params, **kw)

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, **kw: Any
    ) -> Iterator[ApiResponse]:
        """Every cursor page of a listing, in order; a repeated cursor is a PaginationError."""
        seen: set[str] = set()
        query = dict(params or {})
        while True:
            page = self.get(path, query, **kw)
            yield page
            cursor = page.body.get("cursor") or ""
            if not cursor:
                return
            if cursor in seen:
                raise PaginationError(
                    f"GET {self.prefix}{path}: the API repeated cursor {cursor[:16]}...; "
                    f"stopping instead of looping"
                )
            seen.add(cursor)
            query = {**query, "cursor": cursor}


def _reason(exc: requests.exceptions.RequestException) -> str:
    """What failed, in words; urllib3 wraps a last timeout in a connection error."""
    cause = exc.args[0] if exc.args else None
    if isinstance(exc, requests.exceptions.Timeout) or isinstance(
        getattr(cause, "reason", None), TimeoutError | urllib3.exceptions.TimeoutError
    ):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _api_error(what: str, status: int, content: bytes, signed: bool) -> KalshiAPIError:
    """The typed error of an HTTP error answer (ErrorResponse fields when the body has them)."""
    code = message = ""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # the live API wraps the ErrorResponse in {"error": {...}}
    if isinstance(body, dict):
        code = str(body.get("code") or "")
        message = str(body.get("message") or body.get("error") or "")
    if status == 404:
        return NotFoundError(what, status, code, message or "not found")
    if status in (401, 403):
        hint = (
            "the API key id or signature was refused"
            if signed
            else "this endpoint needs an API key (KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH)"
        )
        return AuthError(what, status, code, f"{message}; {hint}" if message else hint)
    if status == 409:
        return ConflictError(what, status, code, message)
    if status == 429:
        return RateLimitedError(what, status, code, message or "too many requests")
    return KalshiAPIError(what, status, code, message)
