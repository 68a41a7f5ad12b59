"""Kalshi's WebSocket streams (docs.kalshi.com/websockets, AsyncAPI spec ``asyncapi.yaml``):
one connection, signed at the handshake, carrying the subscribed channels' messages.

:class:`KalshiStream` is an iterator of data messages (``{"type", "sid", "seq", "msg"}`` as the
spec shapes them) for synchronous code. It is built on ``websockets.sync.client.reconnect``,
which reconnects with exponential backoff and answers the server's ``heartbeat`` pings; what
it adds is Kalshi's protocol:

* the handshake is signed like a REST request (RSA-PSS over timestamp + ``GET`` +
  ``/trade-api/ws/v2``, headers ``KALSHI-ACCESS-*``), afresh for every connection attempt: a
  signature is only accepted for a short while after its timestamp;
* on every connection it sends one ``subscribe`` command (``id``, ``cmd``, ``params.channels``,
  ``params.market_tickers``); the ``subscribed`` answers name each channel's ``sid``; an
  ``error`` answer to it is fatal (:class:`StreamError` with the spec's code), since retrying
  the same command gets the same answer;
* :mod:`kalshi_lab.client.ws_sequence` drops duplicates and, on a ``seq`` gap of the
  orderbook subscription, asks for fresh snapshots (``update_subscription`` /
  ``get_snapshot``): the next message passed on for each of its markets is a snapshot;
* a loss is only seen when a later message comes, so when the stream falls quiet for
  :data:`QUIET_S` it asks again for snapshots still missing, or else for one market's
  snapshot (round robin), whose ``seq`` shows whether the last messages were lost;
* without ``market_tickers`` the orderbook channel takes its markets from
  :meth:`KalshiStream.add_markets` (``subscribe``, then ``add_markets``), kept across
  reconnects.

Messages lost while disconnected are not replayed by Kalshi: after a reconnect the
``orderbook_delta`` subscription starts again with a snapshot of every market, but trades and
fills of the gap are only in the REST listings (``stats.reconnects`` tells a consumer when to
look there).

The key id and signature never reach a log: the websockets library logs handshake headers at
DEBUG, so its logger here is held at INFO.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.client import backoff
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, reconnect
from websockets.sync.utils import Deadline

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import AuthError, KalshiAPIError, KalshiError, NotFoundError
from kalshi_lab.client.ws_sequence import Sequencer, StreamStats

logger = logging.getLogger(__name__)
#: the websockets library's own logger: never below INFO (DEBUG dumps the signed headers)
_protocol_logger = logging.getLogger(f"{__name__}.protocol")
_protocol_logger.setLevel(logging.INFO)

WS_PATH = "/trade-api/ws/v2"
#: messages websockets buffers before it stops reading the socket. Kept large: a command sent
#: from the consuming thread while the server closes the connection waits for the reader, and
#: a reader stopped by a full buffer only gives up after CLOSE_TIMEOUT_S
MAX_QUEUE = 4096
CLOSE_TIMEOUT_S = 2.0
#: seconds without a message after which books still waiting for a snapshot ask again
QUIET_S = 1.0
#: answers to commands; everything else with a ``type`` is a data message
RESPONSE_TYPES = frozenset({"subscribed", "unsubscribed", "ok", "error", "list_subscriptions"})
#: channel errors after which "the user must resubscribe" (spec: Terminal Errors)
TERMINAL_CODES = frozenset({10, 25})
ORDERBOOK = "orderbook_delta"
CHANNELS = frozenset(
    {"orderbook_delta", "ticker", "trade", "fill", "user_orders", "market_positions",
     "market_lifecycle_v2"}
)  # fmt: skip


class StreamError(KalshiError):
    """The server refused a command (``code`` from the spec's error table) or sent what the
    protocol does not allow."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def ws_url_for(base_url: str) -> str:
    """The stream URL of a REST base URL: ``https://host/trade-api/v2`` ->
    ``wss://host/trade-api/ws/v2`` (http -> ws for a local server)."""
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"base URL {base_url!r} is not an http(s) URL")
    return urlunsplit((scheme, parts.netloc, WS_PATH, "", ""))


def _refused(url: str, exc: InvalidStatus) -> KalshiAPIError:
    """The typed error of a refused handshake, with the server's reason (it names the header
    at fault, never a value)."""
    status = exc.response.status_code
    body = exc.response.body or b""
    detail = body.decode("utf-8", "replace").strip()[:200]
    what = f"GET {urlsplit(url).path} (WebSocket handshake)"
    kind = {401: AuthError, 403: AuthError, 404: NotFoundError}.get(status, KalshiAPIError)
    return kind(what, status, api_message=detail)


class _Closed(Exception):
    """:meth:`KalshiStream.close` was called: ends websockets' reconnect loop (it raises what
    ``process_exception`` returns)."""


class _SignedReconnect(reconnect):
    """``reconnect`` that signs each handshake when it is made, not once for all of them, and
    that :meth:`abort` stops within a moment whatever it is doing.

    websockets sleeps out its backoff (up to 90 s) and only then looks again, so a stream whose
    server is gone would ignore a close for that long. Its own hooks end that: the
    ``reconnect_delays`` generator waits on the closing event instead (and lets websockets
    sleep 0 s, so its "reconnecting in" log line comes after the wait); the next attempt then
    raises :class:`_Closed`, which websockets' ``process_exception`` deems fatal; a handshake
    waiting for the server's answer is cut by shutting its socket down. Only the TCP connect
    itself is not cut (it ends by ``open_timeout``): websockets opens that socket where no
    hook reaches, so the handshake after it is not begun.
    """

    def __init__(
        self,
        uri: str,
        signer: KalshiSigner | None,
        closing: threading.Event,
        reconnect_delays: Callable[[], Generator[float]] = backoff,
        **kwargs: Any,
    ) -> None:
        self._closing = closing
        self._opening: socket.socket | None = None  # the socket of a handshake under way
        self._socket_lock = threading.RLock()  # abort() may run in a signal handler
        super().__init__(
            uri,
            reconnect_delays=lambda: self._waits(reconnect_delays()),
            **kwargs,
        )
        self._signer = signer
        self._path = urlsplit(uri).path or "/"

    def abort(self) -> None:
        """Stop reconnecting; safe from another thread and from a signal handler."""
        self._closing.set()
        with self._socket_lock:
            if self._opening is not None:
                with contextlib.suppress(OSError):  # already closed by the server
                    self._opening.shutdown(socket.SHUT_RDWR)

    def _waits(self, delays: Generator[float]) -> Generator[float]:
        for delay in delays:
            self._closing.wait(delay)
            yield 0.0

    def open_socket(self, deadline: Deadline) -> socket.socket:
        sock = super().open_socket(deadline)
        with self._socket_lock:
            if self._closing.is_set():  # abort() came during the TCP connect
                sock.close()
                raise _Closed()
            self._opening = sock
        return sock

    def connect(self) -> ClientConnection:
        if self._closing.is_set():
            raise _Closed()
        if self._signer is not None:
            self.additional_headers = self._signer.headers("GET", self._path)
        try:
            return super().connect()
        except Exception:
            # a handshake cut by abort() fails as whatever it was doing at the cut (reading
            # the answer: retried; sending the request: ConnectionClosedError, fatal to
            # websockets): either way the stream was closed, not lost
            if self._closing.is_set():
                raise _Closed() from None
            raise
        finally:
            with self._socket_lock:
                self._opening = None


class KalshiStream:
    """Subscribes to ``channels`` (for ``market_tickers``, or all markets where a channel
    allows it) and yields every data message in arrival order, reconnecting with backoff.

    Without ``market_tickers``, an ``orderbook_delta`` channel waits for :meth:`add_markets`
    (Kalshi refuses it without markets, error 14) while the other channels stream for every
    market: what a bot wants, which learns the markets it quotes as it goes and wants all of
    its fills.

    ``reconnect_delays`` (a generator factory of seconds) replaces websockets' backoff
    (random 0-5 s, then 3.1 s x 1.618... up to 90 s), e.g. for tests. :meth:`close` (from any
    thread) ends the iteration.
    """

    def __init__(
        self,
        url: str,
        *,
        channels: Sequence[str],
        market_tickers: Sequence[str] | None = None,
        auth: KalshiSigner | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        reconnect_delays: Callable[[], Generator[float]] | None = None,
    ) -> None:
        if not channels:
            raise ValueError("channels is empty: subscribe to at least one channel")
        unknown = sorted(set(channels) - CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}: known are {sorted(CHANNELS)}")
        if market_tickers is not None and not market_tickers:
            raise ValueError("market_tickers is empty: give None for all markets")
        self.url = url
        self.channels = list(channels)
        self.market_tickers = None if market_tickers is None else list(market_tickers)
        #: the orderbook channel waits for add_markets: no markets were given
        self._deferred = ORDERBOOK in self.channels and self.market_tickers is None
        self._book_tickers: list[str] = []
        self.stats = StreamStats()
        self._sequencer = Sequencer(self.stats)
        self._kwargs: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "logger": _protocol_logger,
            "compression": None,
            "max_queue": MAX_QUEUE,
            "close_timeout": CLOSE_TIMEOUT_S,
        }
        if reconnect_delays is not None:
            self._kwargs["reconnect_delays"] = reconnect_delays
        self._auth = auth
        self._ids = 0
        self._probes = 0
        self._subscribe_ids: set[int] = set()
        #: the deferred orderbook subscription of this connection: its command, the markets
        #: it asked for, its sid once answered
        self._book_command: int | None = None
        self._book_asked: list[str] = []
        self._book_sid: int | None = None
        self._ws: ClientConnection | None = None
        self._connector: _SignedReconnect | None = None
        self._closed = threading.Event()
        #: guards the connection, the command ids and the sequencer (add_markets runs in the
        #: caller's thread, the iteration in the consumer's)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"KalshiStream({self.url!r}, channels={self.channels})"

    @property
    def connected(self) -> bool:
        """A connection is up (it may still be subscribing)."""
        return self._ws is not None

    def stale_markets(self) -> frozenset[str]:
        """Markets whose book waits for a fresh snapshot after a gap."""
        with self._lock:
            return self._sequencer.stale_markets()

    def close(self) -> None:
        """End the iteration within a moment, whether it reads, waits to reconnect or is
        connecting (the current connection is closed); safe from another thread and from a
        signal handler."""
        self._closed.set()
        with self._lock:
            ws, connector = self._ws, self._connector
        if connector is not None:
            connector.abort()
        if ws is not None:
            ws.close()

    def add_markets(self, tickers: Sequence[str]) -> list[str]:
        """Stream the books of ``tickers`` too (only without ``market_tickers``); safe from
        another thread. Returns the markets that were new."""
        if not self._deferred:
            raise ValueError(
                "add_markets needs a stream with orderbook_delta and no market_tickers"
            )
        with self._lock:
            new = [t for t in dict.fromkeys(tickers) if t not in self._book_tickers]
            self._book_tickers.extend(new)
            if new and self._ws is not None:
                self._extend_books(self._ws)
        return new

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first = True
        connector = _SignedReconnect(self.url, self._auth, self._closed, **self._kwargs)
        with self._lock:
            self._connector = connector
        try:
            for ws in connector:
                if not first:
                    self.stats.reconnects += 1
                first = False
                try:
                    with self._lock:
                        if self._closed.is_set():  # else close() sees this connection
                            return
                        self._ws = ws
                        self._sequencer.reset()
                        self._subscribe(ws)
                    while True:
                        try:
                            raw = ws.recv(timeout=QUIET_S)
                        except TimeoutError:
                            self._ask_again(ws)
                            continue
                        yield from self._receive(ws, raw)
                except ConnectionClosed as exc:
                    if not self._closed.is_set():
                        logger.warning("stream connection lost (%s): reconnecting", exc)
                finally:
                    with self._lock:
                        self._ws = None
                    ws.close()  # at once, also when an error ends the iteration
                if self._closed.is_set():
                    return
        except _Closed:
            return
        except InvalidStatus as exc:
            raise _refused(self.url, exc) from None

    # --- the protocol -------------------------------------------------------------------------

    def _send(self, ws: ClientConnection, cmd: str, params: dict[str, Any]) -> int:
        with self._lock:
            self._ids += 1
            ws.send(json.dumps({"id": self._ids, "cmd": cmd, "params": params}))
            return self._ids

    def _subscribe(self, ws: ClientConnection) -> None:
        """The commands of a new connection: every channel at once, the deferred orderbook
        channel apart (with the markets added so far)."""
        self._subscribe_ids.clear()
        self._book_command, self._book_asked, self._book_sid = None, [], None
        channels = [c for c in self.channels if not (self._deferred and c == ORDERBOOK)]
        if channels:
            params: dict[str, Any] = {"channels": channels}
            if self.market_tickers is not None:
                params["market_tickers"] = self.market_tickers
            self._subscribe_ids.add(self._send(ws, "subscribe", params))
        if self._deferred and self._book_tickers:
            self._extend_books(ws)

    def _extend_books(self, ws: ClientConnection) -> None:
        """Ask for the added markets' books: a subscribe the first time, then add_markets
        (once the subscription's sid is known; until then the answer triggers it)."""
        missing = [t for t in self._book_tickers if t not in self._book_asked]
        if not missing:
            return
        if self._book_command is None:
            params = {"channels": [ORDERBOOK], "market_tickers": missing}
            self._book_command = self._send(ws, "subscribe", params)
            self._subscribe_ids.add(self._book_command)
        elif self._book_sid is not None:
            params = {"sids": [self._book_sid], "market_tickers": missing, "action": "add_markets"}
            self._send(ws, "update_subscription", params)
            self._sequencer.add_markets(self._book_sid, missing)
        else:
            return
        self._book_asked.extend(missing)

    def _receive(self, ws: ClientConnection, raw: str | bytes) -> Iterator[dict[str, Any]]:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StreamError(f"the server sent a frame that is not JSON: {raw[:80]!r}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise StreamError(f"the server sent a message without a type: {str(message)[:80]}")
        kind = message["type"]
        with self._lock:
            if kind in RESPONSE_TYPES:
                self._response(ws, message)
                return
            verdict = self._sequencer.admit(message)
            self._resnapshot(ws, verdict.resnapshot)
        if verdict.keep:
            yield message

    def _ask_again(self, ws: ClientConnection) -> None:
        """The stream fell quiet: books still waiting for their snapshot ask again, and
        otherwise one market's snapshot is asked for, whose ``seq`` shows a loss of the last
        messages before the quiet (a lost tail shows no gap until the next message)."""
        with self._lock:
            pending = self._sequencer.pending()
            if pending:
                self.stats.snapshot_retries += len(pending)
            else:
                self._probes += 1
                pending = self._sequencer.probe(self._probes)
                self.stats.probes += len(pending)
            for ask in pending:
                self._resnapshot(ws, ask)

    def _resnapshot(self, ws: ClientConnection, ask: tuple[int, tuple[str, ...]] | None) -> None:
        if ask is not None:
            sid, tickers = ask
            params = {"sids": [sid], "market_tickers": list(tickers), "action": "get_snapshot"}
            self._send(ws, "update_subscription", params)

    def _response(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind, msg = message["type"], message.get("msg")
        if kind == "subscribed" and isinstance(msg, dict):
            sid, channel = int(msg["sid"]), str(msg["channel"])
            if channel == ORDERBOOK and message.get("id") == self._book_command:
                self._book_sid = sid
                self._sequencer.subscribed(sid, channel, self._book_asked)
                self._extend_books(ws)  # markets added while the subscribe was on its way
            else:
                self._sequencer.subscribed(sid, channel, self.market_tickers or ())
            logger.info("subscribed to %s (sid %s)", channel, sid)
        elif (
            kind == "ok"
            and isinstance(message.get("sid"), int)
            and isinstance(message.get("seq"), int)
        ):
            self._resnapshot(ws, self._sequencer.answered(message["sid"], message["seq"]))
        elif kind == "error":
            body = msg if isinstance(msg, dict) else {}
            code, text = body.get("code"), body.get("msg", "")
            self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
            if message.get("id") in self._subscribe_ids:
                raise StreamError(f"subscribe refused: error {code} ({text})", code)
            if code in TERMINAL_CODES:
                logger.warning("stream error %s (%s): reconnecting to resubscribe", code, text)
                ws.close()
            else:
                logger.warning("stream error %s (%s) on command %s", code, text, message.get("id"))
