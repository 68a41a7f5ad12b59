"""The local server's WebSocket endpoint: Kalshi's stream protocol (docs.kalshi.com/websockets,
AsyncAPI spec) over the server's data and moving clock, on its own loopback port.

* **Handshake**: ``GET /trade-api/ws/v2``, signed like a portfolio request (the same
  :class:`~kalshi_lab.server.auth.SignatureVerifier`, message timestamp + ``GET`` + path): a
  missing, stale or wrong signature is refused with 401 before any WebSocket frame. A server
  started without a key serves unauthenticated connections their public channels only
  (``fill`` and ``user_orders`` answer error 9, "Authentication required").
* **Commands** (``id``, ``cmd``, ``params``): ``subscribe``, ``unsubscribe``,
  ``update_subscription`` (``add_markets``, ``delete_markets``, ``get_snapshot``),
  ``list_subscriptions``; answers ``subscribed`` / ``unsubscribed`` / ``ok`` / ``error`` with
  the spec's codes.
* **Channels**, each published as the clock passes (polled every ``tick_s`` wall seconds):
  ``orderbook_delta`` (a snapshot of the book the REST endpoint shows now, then the per-level
  difference whenever that book changes: each recorded snapshot the clock passes, at its
  time, depth taken by an order, the market closing), ``trade`` (recorded trades once the clock reaches them), ``ticker`` (best
  bid/ask and last trade, when they change), and the private ``fill`` (every fill the account
  books, at once) and ``user_orders`` (each order whenever its document changes).
  ``orderbook_delta`` and ``trade`` messages carry ``seq`` per subscription, as Kalshi's do.
* **Faults**: ``FaultConfig.stream_*`` (:mod:`kalshi_lab.server.faults`), drawn per data message.
"""

from __future__ import annotations

import json
import logging
import threading
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from kalshi_lab.client.records import Trade
from kalshi_lab.client.ws import WS_PATH
from kalshi_lab.server.auth import SignatureVerifier
from kalshi_lab.server.books import BookStore
from kalshi_lab.server.config import LOOPBACK
from kalshi_lab.server.dataset import Dataset, MarketEntry, TradeEntry
from kalshi_lab.server.errors import ApiError, ServerSetupError
from kalshi_lab.server.faults import FaultInjector, StreamFault
from kalshi_lab.server.historical import Cutoff
from kalshi_lab.server.portfolio import Portfolio
from kalshi_lab.server.stats import ServerStats
from kalshi_lab.server.stream_messages import (
    LevelMap,
    delta_msgs,
    fill_msg,
    level_map,
    signed_change,
    snapshot_msg,
    ticker_msg,
    trade_msg,
    user_order_msg,
)

logger = logging.getLogger(__name__)
#: websockets' logger for this endpoint: held at INFO, as DEBUG dumps the signed headers
_protocol_logger = logging.getLogger(f"{__name__}.protocol")
_protocol_logger.setLevel(logging.INFO)

PUBLIC_CHANNELS = frozenset({"orderbook_delta", "trade", "ticker"})
PRIVATE_CHANNELS = frozenset({"fill", "user_orders"})
#: channels whose messages carry ``seq``
SEQUENCED = frozenset({"orderbook_delta", "trade"})
#: the spec's error table (the codes this server answers)
ERRORS = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    9: "Authentication required",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
}
DEFAULT_TICK_S = 0.02


class CommandError(Exception):
    """A command the server answers with an ``error`` message."""

    def __init__(self, code: int, **extra: Any) -> None:
        super().__init__(ERRORS[code])
        self.code = code
        self.extra = extra


class _Dropped(Exception):
    """The ``stream_drop`` fault: the connection is closed instead of sending a message."""


class StreamData:
    """What every session reads: the live markets (those ``GET /markets/{t}`` serves: not
    archived by the cutoff) and their trades in time order."""

    def __init__(self, dataset: Dataset, cutoff: Cutoff) -> None:
        self.markets = {t: m for t, m in dataset.markets.items() if not cutoff.archived(m)}
        live = [t for t in dataset.trades if t.ticker in self.markets]
        self.trades: list[TradeEntry] = sorted(live, key=lambda t: (t.us, t.ticker))
        self.trade_us = [t.us for t in self.trades]
        by_ticker: dict[str, list[TradeEntry]] = {}
        for t in self.trades:
            by_ticker.setdefault(t.ticker, []).append(t)
        self._by_ticker = {k: ([t.us for t in v], v) for k, v in by_ticker.items()}

    def trades_until(self, now: int) -> int:
        """How many trades the clock has reached at ``now`` (created before ``now + 1`` s)."""
        return bisect_right(self.trade_us, (now + 1) * 1_000_000 - 1)

    def last_trade(self, ticker: str, now: int) -> tuple[int, Trade | None]:
        """(how many of the market's trades are reached, the latest of them)."""
        times, entries = self._by_ticker.get(ticker, ([], []))
        i = bisect_right(times, (now + 1) * 1_000_000 - 1)
        return i, (Trade.model_validate(entries[i - 1].doc) if i else None)


@dataclass
class _Sub:
    """One subscription and what it has sent so far."""

    sid: int
    channel: str
    tickers: set[str] | None
    seq: int = 0
    #: orderbook_delta: per market, the book's change key and levels as last sent
    books: dict[str, tuple[Any, LevelMap]] = field(default_factory=dict)
    #: trade: trades reached so far; fill: fills seen so far
    cursor: int = 0
    #: ticker: per market, the change key and message last sent
    tickers_sent: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    #: fill: signed position per market; user_orders: order documents last sent
    positions: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wants(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers


class StreamEndpoint:
    """Serves the stream on ``LOOPBACK:port`` in a thread; one session thread per connection."""

    def __init__(
        self,
        dataset: Dataset,
        cutoff: Cutoff,
        books: BookStore,
        portfolio: Portfolio,
        verifier: SignatureVerifier | None,
        faults: FaultInjector,
        stats: ServerStats,
        tick_s: float = DEFAULT_TICK_S,
    ) -> None:
        self.data = StreamData(dataset, cutoff)
        self.books = books
        self.portfolio = portfolio
        self.verifier = verifier
        self.faults = faults
        self.stats = stats
        self.tick_s = tick_s
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, port: int = 0) -> None:
        try:
            self._server = serve(
                self._session,
                LOOPBACK,
                port,
                process_request=self._handshake,
                logger=_protocol_logger,
                compression=None,
            )
        except OSError as exc:
            raise ServerSetupError(
                f"cannot listen on {LOOPBACK}:{port} for the stream ({exc.strerror})"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"kalshi-stream-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        assert self._thread is not None
        self._thread.join()
        self._server = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stream is not running")
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}{WS_PATH}"

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse before the upgrade what is not ours or not signed; remember who is."""
        self.stats.request("stream_connect")
        path = request.path.split("?", 1)[0]
        if path != WS_PATH:
            self.stats.status(404)
            return connection.respond(404, f"no stream at {path}: it is at {WS_PATH}\n")
        connection.authenticated = False  # type: ignore[attr-defined]
        if self.verifier is None:
            return None
        try:
            self.verifier.verify("GET", path, request.headers)
        except ApiError as error:
            self.stats.status(error.status)
            return connection.respond(error.status, f"{error.message}\n")
        connection.authenticated = True  # type: ignore[attr-defined]
        return None

    def _session(self, ws: ServerConnection) -> None:
        session = _Session(self, ws, bool(getattr(ws, "authenticated", False)))
        try:
            session.run()
        except (ConnectionClosed, _Dropped):
            pass
        except Exception:
            logger.exception("stream session failed")
            raise


class _Session:
    """One connection: its commands, its subscriptions, their publication."""

    def __init__(self, endpoint: StreamEndpoint, ws: ServerConnection, authenticated: bool) -> None:
        self.end = endpoint
        self.ws = ws
        self.authenticated = authenticated
        self.subs: dict[int, _Sub] = {}
        self._sids = 0

    def run(self) -> None:
        while True:
            try:
                raw = self.ws.recv(timeout=self.end.tick_s)
            except TimeoutError:
                raw = None
            if raw is not None:
                self._command(raw)
            self._publish()

    # --- sending ------------------------------------------------------------------------------

    def _send(self, doc: dict[str, Any]) -> None:
        self.ws.send(json.dumps(doc))

    def _data(self, sub: _Sub, kind: str, msg: dict[str, Any], reply_id: int | None = None) -> None:
        """Send one data message of ``sub``, through the stream faults."""
        fault = self.end.faults.draw_stream()
        if fault is StreamFault.GAP and sub.channel not in SEQUENCED:
            fault = None
        if fault is not None:
            self.end.stats.fault(fault.value)
        if fault is StreamFault.DROP:
            self.ws.close_socket()  # as a network drop: no closing handshake
            raise _Dropped
        doc: dict[str, Any] = {"type": kind, "sid": sub.sid}
        if reply_id is not None:
            doc["id"] = reply_id
        if sub.channel in SEQUENCED:
            sub.seq += 1
            doc["seq"] = sub.seq
        if fault is StreamFault.GAP:
            return
        doc["msg"] = msg
        self._send(doc)
        self.end.stats.publish(kind)
        if fault is StreamFault.DUPLICATE:
            self._send(doc)

    # --- commands -----------------------------------------------------------------------------

    def _command(self, raw: str | bytes) -> None:
        cid = None
        try:
            try:
                command = json.loads(raw)
            except ValueError:
                raise CommandError(1) from None
            if not isinstance(command, dict):
                raise CommandError(1)
            cid = command.get("id")
            cmd = command.get("cmd")
            handler = {
                "subscribe": self._subscribe,
                "unsubscribe": self._unsubscribe,
                "update_subscription": self._update,
                "list_subscriptions": self._list,
            }.get(cmd)  # type: ignore[arg-type]
            if handler is None:
                raise CommandError(5)
            params = command.get("params")
            if params is None and cmd != "list_subscriptions":
                raise CommandError(2)
            handler(cid, params if isinstance(params, dict) else {})
        except CommandError as error:
            body = {"code": error.code, "msg": ERRORS[error.code], **error.extra}
            self._send({**({"id": cid} if cid else {}), "type": "error", "msg": body})

    def _tickers(self, params: dict[str, Any]) -> list[str] | None:
        many, one = params.get("market_tickers"), params.get("market_ticker")
        if many is None and one is None:
            return None
        tickers = list(many) if many is not None else [one]
        if not tickers or not all(isinstance(t, str) for t in tickers):
            raise CommandError(11)
        unknown = sorted(t for t in tickers if t not in self.end.data.markets)
        if unknown:
            raise CommandError(11, market_tickers=unknown)
        return tickers

    def _subscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        channels = params.get("channels")
        if not channels or not isinstance(channels, list):
            raise CommandError(3)
        tickers = self._tickers(params)
        for channel in channels:
            if channel not in PUBLIC_CHANNELS | PRIVATE_CHANNELS:
                raise CommandError(8)
            if channel in PRIVATE_CHANNELS and not self.authenticated:
                raise CommandError(9)
            if channel == "orderbook_delta" and tickers is None:
                raise CommandError(14)
        now = self.end.portfolio.catch_up()
        for channel in channels:
            self._sids += 1
            sub = _Sub(self._sids, channel, None if tickers is None else set(tickers))
            self.subs[sub.sid] = sub
            self._send({"id": cid, "type": "subscribed",
                        "msg": {"channel": channel, "sid": sub.sid}})  # fmt: skip
            self._start(sub, tickers or [], now, bool(params.get("send_initial_snapshot")))

    def _start(self, sub: _Sub, tickers: list[str], now: int, initial: bool) -> None:
        """What a new subscription starts from: books sent whole, the rest from now on."""
        if sub.channel == "orderbook_delta":
            self._snapshots(sub, tickers, now)
        elif sub.channel == "trade":
            sub.cursor = self.end.data.trades_until(now)
        elif sub.channel == "ticker" and not initial:
            for market in self._ticker_markets(sub, now):
                sub.tickers_sent[market.ticker] = self._ticker_state(market, now)
        elif sub.channel == "fill":
            fills = self.end.portfolio.fills_from(0)
            sub.cursor = len(fills)
            for f in fills:
                sub.positions[f.ticker] = sub.positions.get(f.ticker, Decimal(0)) + signed_change(f)
        elif sub.channel == "user_orders":
            sub.orders = {d["order_id"]: d for _, d in self.end.portfolio.order_docs()}

    def _snapshots(
        self, sub: _Sub, tickers: Iterable[str], now: int, reply: int | None = None
    ) -> None:
        books = self.end.books
        for ticker in tickers:
            market = self.end.data.markets[ticker]
            key, book = books.change_key(market, now), books.book(market, now)
            sub.books[ticker] = (key, level_map(book))
            self._data(sub, "orderbook_snapshot", snapshot_msg(market, book), reply)

    def _sub_of(self, params: dict[str, Any]) -> _Sub:
        sids = params.get("sids")
        if "sid" in params and sids is None:
            sids = [params["sid"]]
        if not isinstance(sids, list) or len(sids) != 1:
            raise CommandError(12)
        sub = self.subs.get(sids[0])
        if sub is None:
            raise CommandError(7)
        return sub

    def _unsubscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not sids or not isinstance(sids, list):
            raise CommandError(4)
        if any(s not in self.subs for s in sids):
            raise CommandError(7)
        for sid in sids:
            sub = self.subs.pop(sid)
            self._send({"id": cid, "sid": sid, "seq": sub.seq + 1, "type": "unsubscribed"})

    def _update(self, cid: int | None, params: dict[str, Any]) -> None:
        action = params.get("action")
        if not action:
            raise CommandError(15)
        sub = self._sub_of(params)
        tickers = self._tickers(params)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise CommandError(13)
        if tickers is None:
            raise CommandError(14)
        now = self.end.portfolio.catch_up()
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta":
                raise CommandError(13)
            self._snapshots(sub, tickers, now, cid)
            return
        current = set(self.end.data.markets) if sub.tickers is None else sub.tickers
        if action == "add_markets":
            new = [t for t in tickers if t not in current]
            sub.tickers = current | set(tickers)
            self._start_markets(sub, new, now)
        else:
            sub.tickers = current - set(tickers)
            for t in tickers:
                sub.books.pop(t, None)
                sub.tickers_sent.pop(t, None)
        self._send({"id": cid, "sid": sub.sid, "seq": sub.seq, "type": "ok",
                    "msg": {"market_tickers": sorted(sub.tickers)}})  # fmt: skip

    def _start_markets(self, sub: _Sub, tickers: list[str], now: int) -> None:
        if sub.channel == "orderbook_delta":
            self._snapshots(sub, tickers, now)
        elif sub.channel == "ticker":
            for t in tickers:
                market = self.end.data.markets[t]
                sub.tickers_sent[t] = self._ticker_state(market, now)

    def _list(self, cid: int | None, params: dict[str, Any]) -> None:
        subs = [{"channel": s.channel, "sid": s.sid} for s in self.subs.values()]
        self._send({"id": cid, "type": "ok", "msg": subs})

    # --- publication --------------------------------------------------------------------------

    def _publish(self) -> None:
        if not self.subs:
            return
        now = self.end.portfolio.catch_up()
        for sub in list(self.subs.values()):
            if sub.channel == "orderbook_delta":
                self._publish_books(sub, now)
            elif sub.channel == "trade":
                self._publish_trades(sub, now)
            elif sub.channel == "ticker":
                self._publish_tickers(sub, now)
            elif sub.channel == "fill":
                self._publish_fills(sub)
            else:
                self._publish_orders(sub)

    def _publish_books(self, sub: _Sub, now: int) -> None:
        """Deltas from the book last sent to the book now, through every recorded snapshot
        the clock passed since, each at its own time, and in time order across the markets:
        a clock that jumps hours streams what those hours would have, as Kalshi streams in
        real time (a rebuild times books by ``ts_ms`` and holds a stamp that runs back level).
        The book at ``now`` comes last: it differs from the last snapshot passed when the
        market stopped trading since (its book is empty), or depth was taken from it."""
        books = self.end.books
        changes: list[tuple[int, str, list[dict[str, Any]]]] = []
        for ticker, (key, before) in list(sub.books.items()):
            market = self.end.data.markets[ticker]
            new_key = books.change_key(market, now)
            if new_key == key:
                continue
            passed = books.times_between(ticker, -1 if key[1] is None else key[1], now)
            for t in [*passed, now]:
                after = level_map(books.book(market, t))
                changes.append((t, ticker, delta_msgs(market, before, after, t)))
                before = after
            sub.books[ticker] = (new_key, before)
        changes.sort(key=lambda change: change[0])  # stable: in market order within a time
        for _, _, msgs in changes:
            for msg in msgs:
                self._data(sub, "orderbook_delta", msg)

    def _publish_trades(self, sub: _Sub, now: int) -> None:
        data = self.end.data
        until = data.trades_until(now)
        for entry in data.trades[sub.cursor : until]:
            if sub.wants(entry.ticker):
                self._data(sub, "trade", trade_msg(entry))
        sub.cursor = until

    def _ticker_markets(self, sub: _Sub, now: int) -> list[MarketEntry]:
        markets = self.end.data.markets
        if sub.tickers is not None:
            return [markets[t] for t in sorted(sub.tickers)]
        return [m for m in markets.values() if m.trading_at(now)]

    def _ticker_state(self, market: MarketEntry, now: int) -> tuple[Any, dict[str, Any]]:
        n_trades, last = self.end.data.last_trade(market.ticker, now)
        key = (self.end.books.change_key(market, now), n_trades)
        msg = ticker_msg(market, self.end.books.book(market, now), last, now)
        return key, msg

    def _publish_tickers(self, sub: _Sub, now: int) -> None:
        for market in self._ticker_markets(sub, now):
            previous = sub.tickers_sent.get(market.ticker)
            n_trades, _ = self.end.data.last_trade(market.ticker, now)
            key = (self.end.books.change_key(market, now), n_trades)
            if previous is not None and previous[0] == key:
                continue
            key, msg = self._ticker_state(market, now)
            sub.tickers_sent[market.ticker] = (key, msg)
            if previous is None or _quote(previous[1]) != _quote(msg):
                self._data(sub, "ticker", msg)

    def _publish_fills(self, sub: _Sub) -> None:
        for f in self.end.portfolio.fills_from(sub.cursor):
            sub.cursor += 1
            position = sub.positions.get(f.ticker, Decimal(0)) + signed_change(f)
            sub.positions[f.ticker] = position
            if sub.wants(f.ticker):
                self._data(sub, "fill", fill_msg(f, position))

    def _publish_orders(self, sub: _Sub) -> None:
        for _, doc in reversed(self.end.portfolio.order_docs()):  # oldest first
            if sub.orders.get(doc["order_id"]) != doc:
                sub.orders[doc["order_id"]] = doc
                if sub.wants(doc["ticker"]):
                    self._data(sub, "user_order", user_order_msg(doc))


def _quote(msg: dict[str, Any]) -> dict[str, Any]:
    """A ticker message without its times: what decides whether it changed."""
    return {k: v for k, v in msg.items() if k not in ("ts", "ts_ms", "time")}
