"""Typed errors of the Kalshi client; none of them ever carries a credential."""

from __future__ import annotations

from kalshi_lab.errors import KalshiLabError


class KalshiError(KalshiLabError):
    """Anything the API, the network or the credentials stopped; the message says what."""


class CredentialsError(KalshiError):
    """A key id or private key is missing or unusable. Names the variable, never its value."""


class KalshiAPIError(KalshiError):
    """An HTTP error answer, after retries where retrying made sense.

    ``status`` is the HTTP status, ``code`` and ``api_message`` the ErrorResponse fields when
    the body had them; ``what`` names the request (method and path, no query secrets: the
    query of a public request holds none, and credentials travel in headers only).
    """

    def __init__(self, what: str, status: int, code: str = "", api_message: str = "") -> None:
        self.what, self.status, self.code, self.api_message = what, status, code, api_message
        detail = " ".join(p for p in (code, api_message) if p)
        super().__init__(f"{what}: HTTP {status}" + (f" ({detail})" if detail else ""))


class NotFoundError(KalshiAPIError):
    """404: the series, event, market or order named in the request does not exist."""


class AuthError(KalshiAPIError):
    """401/403: the request was not signed, or the signature or key was refused."""


class RateLimitedError(KalshiAPIError):
    """429 that outlasted every retry."""


class ConflictError(KalshiAPIError):
    """409: e.g. an order with this client_order_id already exists."""


class TransportError(KalshiError):
    """No usable answer after every retry: the network failed, or the body was unreadable.

    ``host`` is the API's host (name and port, never a user or password of the URL). The
    subclasses tell apart what a user fixes differently; a reset connection, a TLS failure or
    an unreadable body is a TransportError itself.
    """

    def __init__(self, message: str, host: str = "") -> None:
        super().__init__(message)
        self.host = host


class HostNotFoundError(TransportError):
    """The host name does not resolve (DNS): a typo in the base URL, or no network or DNS."""


class ConnectRefusedError(TransportError):
    """The host refused the connection: nothing listens on that port (a local server not
    started, a wrong port, a firewall that rejects)."""


class RequestTimedOutError(TransportError):
    """No connection, or no answer, within the timeout: the host or the network is slow or
    down. A write that timed out may have been applied (an order's retry resolves that by its
    client_order_id)."""


class PaginationError(KalshiError):
    """The API returned a cursor it had already returned: following it would loop forever."""
