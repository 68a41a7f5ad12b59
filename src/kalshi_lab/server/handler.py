"""The socket side: a threaded HTTP server whose handler reads a request, asks
:class:`~kalshi_lab.server.app.KalshiApp` how to answer, and writes the answer, acting out the
faults that need the socket (a late answer, a body cut short, a reset).

HTTP/1.1 with keep-alive, as Kalshi's API behind its load balancer: every answer carries a
Content-Length, so a client's connection pool reuses connections. The ``Date`` header tells the
server's clock (``clock``), as a real server's tells its own: a client that runs on the venue's
time (the trading bot) reads it there.

What a client cannot do to it:

* hold threads: there is one thread per connection and at most ``max_connections`` of them.
  When they are all taken, a new connection closes the one that has waited longest for its
  next request (an idle keep-alive connection, which any client must expect to lose, and
  whose pool reconnects), or, when every one is busy answering, is itself answered 503;
* stall a thread: every read waits at most ``read_timeout_s`` (an idle connection is closed
  then), and a request body must arrive whole within that time (else 408);
* crash the answer: a malformed request line, header or Content-Length is a 400 (414, 431 for
  oversized ones) with Kalshi's error JSON ``{"code", "message", "details", "service"}``,
  never a 500 nor a dropped connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from kalshi_lab.server.app import KalshiApp, error_reply
from kalshi_lab.server.errors import ApiError, bad_request
from kalshi_lab.server.faults import Fault
from kalshi_lab.server.routes import Reply

logger = logging.getLogger(__name__)

#: request bodies larger than this are refused (an order is a few hundred bytes)
MAX_BODY_BYTES = 1 << 20
_MAX_LENGTH_DIGITS = len(str(MAX_BODY_BYTES))
#: error messages written back are cut to this length (they may quote the request line)
_MAX_MESSAGE = 200


@dataclass
class _Connection:
    """A connection's state, as the admission of new ones sees it."""

    sock: socket.socket
    busy: bool = False  # reading a body, running a handler or writing an answer
    idle_since: float = 0.0  # when it last started waiting for a request
    evicted: bool = False  # closed to make room: it must not start another request


class KalshiHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` (see the module docstring)."""

    daemon_threads = True
    request_queue_size = 1024  # a burst of connections waits to be accepted, not dropped

    def __init__(
        self,
        address: tuple[str, int],
        app: KalshiApp,
        clock: Callable[[], float] | None = None,
        *,
        max_connections: int = 64,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.app = app
        self.clock = clock  # Unix seconds shown in the Date header (None: the system clock)
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self.stopping = threading.Event()
        self._connections: dict[socket.socket, _Connection] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, KalshiRequestHandler)

    # --- admission: runs in the accepting thread ----------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._admit(request):
            super().process_request(request, client_address)
            return
        self.app.stats.status(503)
        _refuse(request)
        self.shutdown_request(request)

    def _admit(self, sock: socket.socket) -> bool:
        """Register a new connection, making room by closing the longest-idle one; False
        when every connection is busy."""
        with self._connections_lock:
            if len(self._connections) >= self.max_connections:
                idle = [c for c in self._connections.values() if not c.busy]
                if not idle:
                    return False
                oldest = min(idle, key=lambda c: c.idle_since)
                oldest.evicted = True
                del self._connections[oldest.sock]
                with contextlib.suppress(OSError):  # wakes its thread: it reads EOF and ends
                    oldest.sock.shutdown(socket.SHUT_RDWR)
            self._connections[sock] = _Connection(sock, idle_since=time.monotonic())
            return True

    def shutdown_request(self, request: Any) -> None:
        """Called when a connection's thread is done with it (or it was refused)."""
        with self._connections_lock:
            connection = self._connections.get(request)
            if connection is not None and connection.sock is request:
                del self._connections[request]
        super().shutdown_request(request)

    # --- what the handler threads report ------------------------------------------------------

    def begin(self, sock: socket.socket) -> bool:
        """A request's head was read: mark the connection busy; False if it was evicted."""
        with self._connections_lock:
            connection = self._connections.get(sock)
            if connection is None or connection.evicted:
                return False
            connection.busy = True
            return True

    def end(self, sock: socket.socket) -> None:
        """The answer is written: the connection waits for its next request."""
        with self._connections_lock:
            connection = self._connections.get(sock)
            if connection is not None:
                connection.busy = False
                connection.idle_since = time.monotonic()

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on a kept-alive connection."""
        self.stopping.set()
        with self._connections_lock:
            sockets = list(self._connections)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its client
                sock.shutdown(socket.SHUT_RDWR)


def _refuse(sock: socket.socket) -> None:
    """Answer a connection there is no thread for: 503 with an ErrorResponse, then close."""
    body = orjson.dumps(
        ApiError(503, "service_unavailable", "the local server is busy: retry").body()
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):  # the client is gone: nothing to tell
        sock.settimeout(1.0)
        sock.sendall(head.encode() + body)


class KalshiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kalshi-lab-local"
    server: KalshiHTTPServer
    _reset = False

    def setup(self) -> None:
        self.timeout = self.server.read_timeout_s  # every read of the connection
        super().setup()
        # answers are written whole; without this, Nagle's algorithm and the client's delayed
        # ACK hold every keep-alive answer back by ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        if self._reset:
            # SO_LINGER 0: close() sends RST instead of FIN, and nothing was answered
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            super().finish()  # closes the reader and writer, which hold the socket open
            self.connection.close()
            return
        with contextlib.suppress(OSError):  # the client went away first
            super().finish()

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the server's clock, not the machine's."""
        if timestamp is None and self.server.clock is not None:
            timestamp = self.server.clock()
        return super().date_time_string(timestamp)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        logger.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server answers itself (a malformed request line or header, an oversized
        one, an unknown method), as Kalshi's error JSON rather than an HTML page."""
        status = HTTPStatus(code)
        text = (message or status.phrase)[:_MAX_MESSAGE]
        self.request_version = self.protocol_version  # a status line even to a garbled request
        name = "invalid_parameters" if code == 400 else status.phrase.lower().replace(" ", "_")
        self.close_connection = True
        self._write(error_reply(ApiError(code, name, text)))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def _content_length(self) -> int:
        values = self.headers.get_all("Content-Length") or ["0"]
        if len(set(values)) > 1:
            raise bad_request("Content-Length is given more than once, with different values")
        raw = values[0].strip()
        valid = raw.isascii() and raw.isdigit() and len(raw) <= _MAX_LENGTH_DIGITS
        if not valid or int(raw) > MAX_BODY_BYTES:
            raise bad_request(f"Content-Length must be 0..{MAX_BODY_BYTES}")
        return int(raw)

    def _body(self) -> bytes:
        """The request body, whole within ``read_timeout_s`` (not per read: a client
        trickling a byte at a time cannot hold the thread)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise bad_request("chunked request bodies are not supported; send Content-Length")
        left = self._content_length()
        deadline = time.monotonic() + self.server.read_timeout_s
        parts = []
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the request body did not arrive in time")
            self.connection.settimeout(remaining)
            chunk = self.rfile.read1(left)
            if not chunk:
                raise bad_request("the request body is shorter than its Content-Length")
            parts.append(chunk)
            left -= len(chunk)
        self.connection.settimeout(self.server.read_timeout_s)
        return b"".join(parts)

    def _handle(self) -> None:
        if not self.server.begin(self.connection):
            self.close_connection = True  # evicted while its request came in: never started
            return
        try:
            self._answer()
        finally:
            self.server.end(self.connection)

    def _answer(self) -> None:
        app = self.server.app
        try:
            body = self._body()
        except ApiError as error:
            self.close_connection = True  # the body was not read: the stream is out of step
            self._write(error_reply(error))
            return
        except TimeoutError:
            self.close_connection = True
            message = f"the request body did not arrive within {self.server.read_timeout_s:g} s"
            self._write(error_reply(ApiError(408, "request_timeout", message)))
            return
        headers = {k.upper(): v for k, v in self.headers.items()}
        decision = app.decide(self.command, self.path, headers, body)
        if decision.fault is Fault.RESET:
            self._reset = True
            self.close_connection = True
            return
        assert decision.reply is not None
        if decision.delay_s:
            self.server.stopping.wait(decision.delay_s)
        self._write(decision.reply, truncate=decision.fault is Fault.TRUNCATED)

    def _write(self, reply: Reply, *, truncate: bool = False) -> None:
        payload = reply.payload()
        self.server.app.stats.status(reply.status)
        body = payload[: len(payload) // 2] if truncate else payload
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))  # the full length, always
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            if truncate:
                self.close_connection = True
        except OSError:
            self.close_connection = True  # the client gave up (e.g. timed out on a slow answer)
