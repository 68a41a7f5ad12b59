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
    """Connection failures, timeouts and unreadable bodies that outlasted every retry."""


class PaginationError(KalshiError):
    """The API returned a cursor it had already returned: following it would loop forever."""
