"""What happens to one request, apart from the socket: route, signature, rate limit, fault,
handler. :mod:`kalshi_lab.server.handler` does the I/O and acts out the faults this decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs

from kalshi_lab.server.auth import KEY_HEADER, SignatureVerifier, unauthorized
from kalshi_lab.server.errors import ApiError
from kalshi_lab.server.faults import Fault, FaultInjector
from kalshi_lab.server.limits import ANONYMOUS, TOO_MANY_REQUESTS, RequestLimiter
from kalshi_lab.server.query import Query
from kalshi_lab.server.routes import Reply, Request, Route, Router
from kalshi_lab.server.stats import ServerStats

logger = logging.getLogger(__name__)

UNROUTED = "unrouted"


@dataclass(frozen=True)
class Decision:
    """How to answer: a reply, possibly under a fault (``reply`` is None for a reset), and how
    long to hold it back (a ``slow`` fault)."""

    reply: Reply | None
    fault: Fault | None = None
    delay_s: float = 0.0


def error_reply(error: ApiError) -> Reply:
    return Reply(error.status, error.body())


class KalshiApp:
    """The server's request pipeline, shared by all handler threads (each part is thread-safe)."""

    def __init__(
        self,
        router: Router,
        limiter: RequestLimiter,
        faults: FaultInjector,
        verifier: SignatureVerifier | None,
        stats: ServerStats,
    ) -> None:
        self.router = router
        self.limiter = limiter
        self.faults = faults
        self.verifier = verifier
        self.stats = stats

    def decide(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Decision:
        """The answer to ``method target`` (target = path and query string).

        The route is looked up first to count the request under its kind; then the signature
        is checked (signed routes, and any request that carries a key), which names the
        principal whose bucket the rate limiter draws on (a refused request costs no handler
        time); then come the fault draw, the answer to a failed signature, and the handler.
        Faults other than ``slow`` answer without running the handler, except that a truncated
        GET is the real answer cut short (reading changes nothing); a truncated write is a 500
        cut short, the write not applied.
        """
        path, _, query_string = target.partition("?")
        route: Route | None = None
        params: dict[str, str] = {}
        routing_error: ApiError | None = None
        try:
            route, params = self.router.match(method, path)
        except ApiError as error:
            routing_error = error
        self.stats.request(route.kind if route else UNROUTED)
        principal, auth_error = self.authenticate(route, method, path, headers)
        if not self.limiter.allow(principal, write=method != "GET"):
            self.stats.rate_limit()
            return Decision(Reply(429, TOO_MANY_REQUESTS))
        fault, delay_s = self.faults.draw(path), self.faults.config.slow_delay_s
        if fault is not None:
            self.stats.fault(fault.value)
        if fault in (Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.RESET):
            return Decision(_fault_reply(fault), fault)
        if fault is Fault.TRUNCATED and method != "GET":
            return Decision(_fault_reply(Fault.SERVER_ERROR), fault)
        if route is None:
            assert routing_error is not None
            return Decision(error_reply(routing_error), fault)
        if auth_error is not None:
            return Decision(error_reply(auth_error), fault)
        request = Request(
            method,
            path,
            params,
            Query(parse_qs(query_string, keep_blank_values=True)),
            headers,
            body,
        )
        return Decision(
            self.dispatch(route, request), fault, delay_s if fault is Fault.SLOW else 0.0
        )

    def authenticate(
        self, route: Route | None, method: str, path: str, headers: dict[str, str]
    ) -> tuple[str, ApiError | None]:
        """The request's principal (the key id if its signature verifies, else ANONYMOUS) and,
        for a signed route, why it is refused (None: it may go on).

        A public route is served whatever its headers say; a signature on it only decides the
        bucket it draws on.
        """
        signed = route is not None and route.signed
        if self.verifier is None:
            if not signed:
                return ANONYMOUS, None
            return ANONYMOUS, unauthorized(
                "portfolio endpoints are disabled: the server was started without a public key "
                "(--public-key, --key-id)"
            )
        if not signed and KEY_HEADER not in headers:
            return ANONYMOUS, None
        try:
            self.verifier.verify(method, path, headers)
        except ApiError as error:
            return ANONYMOUS, error if signed else None
        return self.verifier.key_id, None

    def dispatch(self, route: Route, request: Request) -> Reply:
        """Run a route's handler; errors become ErrorResponses."""
        try:
            return route.handler(request)
        except ApiError as error:
            return error_reply(error)
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            return error_reply(
                ApiError(500, "internal_server_error", "the local server failed on this request")
            )


BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def _fault_reply(fault: Fault) -> Reply | None:
    if fault is Fault.RATE_LIMITED:
        return Reply(429, TOO_MANY_REQUESTS)
    if fault is Fault.SERVER_ERROR:
        return error_reply(ApiError(500, "internal_server_error", "injected fault: server error"))
    if fault is Fault.BAD_GATEWAY:
        return Reply(502, BAD_GATEWAY_HTML)
    return None  # reset: no answer at all
