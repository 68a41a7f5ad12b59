"""The socket side: a ``ThreadingHTTPServer`` whose handler reads a request, asks
:class:`~kalshi_lab.server.app.KalshiApp` how to answer, and writes the answer, acting out the
faults that need the socket (a late answer, a body cut short, a reset).

HTTP/1.1 with keep-alive, as Kalshi's API behind its load balancer: every answer carries a
Content-Length, so a client's connection pool reuses connections. The ``Date`` header tells the
server's clock (``clock``), as a real server's tells its own: a client that runs on the venue's
time (the trading bot) reads it there.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kalshi_lab.server.app import KalshiApp, error_reply
from kalshi_lab.server.errors import ApiError, bad_request
from kalshi_lab.server.faults import Fault
from kalshi_lab.server.routes import Reply

logger = logging.getLogger(__name__)

#: request bodies larger than this are refused (an order is a few hundred bytes)
MAX_BODY_BYTES = 1 << 20


class KalshiHTTPServer(ThreadingHTTPServer):
    """One thread per connection; remembers open connections so that stopping closes them."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: KalshiApp,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.app = app
        self.clock = clock  # Unix seconds shown in the Date header (None: the system clock)
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, KalshiRequestHandler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on a kept-alive connection."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)


class KalshiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kalshi-lab-local"
    server: KalshiHTTPServer
    _reset = False

    def setup(self) -> None:
        super().setup()
        # answers are written whole; without this, Nagle's algorithm and the client's delayed
        # ACK hold every keep-alive answer back by ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
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

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise bad_request("chunked request bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit() or int(raw) > MAX_BODY_BYTES:
            raise bad_request(f"Content-Length must be 0..{MAX_BODY_BYTES}")
        return self.rfile.read(int(raw))

    def _handle(self) -> None:
        app = self.server.app
        try:
            body = self._body()
        except ApiError as error:
            self.close_connection = True  # the body was not read: the stream is out of step
            self._write(error_reply(error))
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
            self.end_headers()
            self.wfile.write(body)
            if truncate:
                self.close_connection = True
        except OSError:
            self.close_connection = True  # the client gave up (e.g. timed out on a slow answer)
