"""HTTP for the Kalshi client: one ``requests.Session``, paced, retried, signed when asked.

What happens to one call, in order:

1. each attempt takes a token from the read or write bucket (GET reads; POST and DELETE
   write), shared by every thread using this transport;
2. a signed call is signed for THIS attempt: the signature covers the request's timestamp
   (``KALSHI-ACCESS-TIMESTAMP``, https://docs.kalshi.com/getting_started/api_keys), which Kalshi
   refuses once it is about a minute old, so a retry sent with the first attempt's headers after
   a slow answer and a few backoffs would be refused as unauthenticated.
   That is why the retries run here, one ``requests`` call (a fresh prepared request) per
   attempt, and not inside urllib3, which resends the headers it was given;
3. ``requests`` sends it with a (connect, read) timeout; what to retry and how long to wait is
   urllib3's ``Retry``, used as the policy: 429, 500, 502, 503, 504, failed connections, resets
   and timeouts, with exponential backoff and jitter, honouring ``Retry-After`` when the server
   sends one (Kalshi usually does not); a body that arrives truncated or is not JSON counts as
   a failed read;
4. a failure that outlasted its retries becomes a typed :mod:`~kalshi_lab.client.errors` error:
   an HTTP error by status, a network one by what happened (DNS, refused, timed out).

POST is retried like GET because every POST this client sends is idempotent: an order carries
its ``client_order_id``, and the client resolves the 409 a repeated one gets.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import (
    AuthError,
    ConflictError,
    ConnectRefusedError,
    HostNotFoundError,
    KalshiAPIError,
    NotFoundError,
    PaginationError,
    RateLimitedError,
    RequestTimedOutError,
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


class Transport:
    """Paced, retried JSON requests to one API base URL (e.g. ``.../trade-api/v2``).

    ``clock`` (Unix seconds) stamps responses; ``sleep`` waits between attempts (a test passes
    one that moves a fake clock instead of waiting out Kalshi's timestamp tolerance).
    """

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.prefix = parts.path  # signed paths include it
        #: the host as errors name it: name and port, never a user or password of the URL
        self.host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.signer = signer
        self.clock = clock
        self.sleep = sleep
        self.stats = TransportStats()
        # one token of burst: a steady pace never trips a server whose bucket refills as fast
        self._buckets = {
            "read": TokenBucket(reads_per_s, capacity=1.0),
            "write": TokenBucket(writes_per_s, capacity=1.0),
        }
        #: the retry policy; immutable: each request counts down its own copy (``increment``)
        self.retry = Retry(
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
            respect_retry_after_header=True,
        )
        # urllib3 itself retries nothing: every attempt comes back here to be signed again
        adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=max(concurrency, 1))
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "kalshi-lab"})

    def close(self) -> None:
        self.session.close()

    def _pace(self, method: str) -> None:
        bucket = self._buckets["write" if method.upper() in WRITE_METHODS else "read"]
        self.stats.add(requests=1, waited_s=bucket.acquire())

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
        url = self.base_url + path
        if signed and self.signer is None:
            raise AuthError(what, 401, "", "no API key configured for an authenticated endpoint")
        data = None if json_body is None else orjson.dumps(dict(json_body))
        retry = self.retry
        while True:
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if signed:
                assert self.signer is not None
                headers.update(self.signer.headers(method, self.prefix + path))
            self._pace(method)
            response: requests.Response | None = None
            try:
                response = self.session.request(
                    method, url, params=query, data=data, headers=headers, timeout=self.timeout_s
                )
                content = response.content
            except _BODY_ERRORS as exc:
                failure: Exception = ProtocolError(f"body cut short ({type(exc).__name__})")
            except requests.exceptions.RequestException as exc:
                failure = _urllib3_cause(exc)
                try:
                    retry = retry.increment(method, url, error=failure)
                except Urllib3Error:  # out of retries, or an error never retried
                    raise self._network_error(what, failure, len(retry.history)) from None
                self._wait(what, retry, None, type(failure).__name__)
                continue
            else:
                status = response.status_code
                if status == 429:
                    self.stats.add(throttled=1)
                if status >= 400:
                    if retry.is_retry(method, status, "Retry-After" in response.headers):
                        try:
                            retry = retry.increment(method, url, response=response.raw)
                        except MaxRetryError:
                            raise _api_error(what, status, content, signed) from None
                        self._wait(what, retry, response, f"HTTP {status}")
                        continue
                    raise _api_error(what, status, content, signed)
                body = _json_object(content)
                if body is not None:
                    received = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
                    return ApiResponse(method, path, query, received, status, body)
                failure = ProtocolError("body is not a JSON object")
            # an unreadable body: the server answered, the answer was lost (a failed read)
            try:
                retry = retry.increment(method, url, error=failure)
            except Urllib3Error:
                raise TransportError(
                    f"{what}: the answer from {self.host} was unreadable ({failure}; "
                    f"{_after(len(retry.history))})",
                    self.host,
                ) from None
            self._wait(what, retry, response, str(failure))

    def _network_error(self, what: str, error: Exception, retries: int) -> TransportError:
        """The typed error of a request the network failed: the host and what happened, in
        words (never the exception's own text, which may quote headers or the full URL)."""
        after = _after(retries)
        host = self.host
        if isinstance(error, NameResolutionError):
            return HostNotFoundError(
                f"{what}: host {host} not found (its name does not resolve: DNS lookup failed; "
                f"{after})",
                host,
            )
        if isinstance(error, NewConnectionError):  # before ConnectTimeoutError: a subclass
            if isinstance(error.__cause__, ConnectionRefusedError):
                return ConnectRefusedError(
                    f"{what}: {host} refused the connection (nothing listens there; {after})",
                    host,
                )
            reason = getattr(error.__cause__, "strerror", None) or type(error.__cause__).__name__
            return TransportError(f"{what}: cannot connect to {host} ({reason}; {after})", host)
        if isinstance(error, ConnectTimeoutError):
            return RequestTimedOutError(
                f"{what}: no connection to {host} within {self.timeout_s:g} s (timed out; {after})",
                host,
            )
        if isinstance(error, ReadTimeoutError):
            return RequestTimedOutError(
                f"{what}: {host} sent no answer within {self.timeout_s:g} s (timed out; {after})",
                host,
            )
        if isinstance(error, ProtocolError):
            return TransportError(
                f"{what}: the connection to {host} was lost before the answer ({after})", host
            )
        return TransportError(f"{what}: {type(error).__name__} talking to {host} ({after})", host)

    def _wait(
        self, what: str, retry: Retry, response: requests.Response | None, reason: str
    ) -> None:
        """Wait before a retry: ``Retry-After`` when the answer has one, else the policy's backoff
        with jitter (what urllib3's ``Retry.sleep`` waits, through this transport's ``sleep``)."""
        delay = None
        if response is not None and retry.respect_retry_after_header:
            try:
                delay = retry.get_retry_after(response.raw)
            except InvalidHeader:
                delay = None
        if not delay:
            delay = retry.get_backoff_time()
        logger.debug("%s: %s; retry %d in %.2f s", what, reason, len(retry.history), delay)
        self.stats.add(retries=1)
        if delay > 0:
            self.sleep(delay)

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


def _urllib3_cause(exc: requests.exceptions.RequestException) -> Exception:
    """The urllib3 error under a ``requests`` one (what the Retry policy classifies): requests
    wraps it, directly or inside the MaxRetryError of an adapter that retries nothing."""
    cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        return cause.reason
    return cause


def _after(retries: int) -> str:
    return {0: "not retried", 1: "after 1 retry"}.get(retries, f"after {retries} retries")


def _json_object(content: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, None when it is not one."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


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
