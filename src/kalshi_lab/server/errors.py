"""The two kinds of failure the server knows: an API error it answers, a setup error it refuses.

:class:`ApiError` is raised anywhere inside request handling and becomes one HTTP answer with
the spec's ErrorResponse body (``code``, ``message``, ``details``, ``service``), so handlers
never build error responses by hand. :class:`ServerSetupError` is the user's mistake before
any request (a non-loopback host, an unreadable key, a raw directory without markets); the
CLI turns it into one ``error: serve: ...`` line and exit code 2.
"""

from __future__ import annotations

from typing import Any

from kalshi_lab.errors import KalshiLabError

#: ``ErrorResponse.service``: says plainly which server produced the error
SERVICE = "local-kalshi-server"


class ServerSetupError(KalshiLabError):
    """A server option or input the server cannot start with; the message names it."""


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the ErrorResponse ``code``/``message``/``details``."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "service": SERVICE,
        }


def bad_request(message: str, code: str = "invalid_parameters") -> ApiError:
    return ApiError(400, code, message)


def not_found(what: str) -> ApiError:
    """404 naming the missing thing, e.g. ``not_found("market KX-1")``."""
    return ApiError(404, "not_found", f"{what} not found")
