"""The bot's WebSocket feed: live order books and the account's fills, kept in a background
thread.

Books: the exchange asks :meth:`StreamFeed.book` for a market's book; one is given only while
the stream is up and that market's book is known good on the current connection (its snapshot
came on it and no gap waits for a fresh one). Otherwise the answer is None and the exchange
reads the REST endpoint, so the bot trades on whichever source is sound at the moment. Markets
are added as the bot quotes them (:meth:`watch`).

Fills (with a signer: the ``fill`` channel needs an authenticated connection): each fill
message is parsed as soon as it arrives and kept until the trading thread takes it
(:meth:`take_fills`), so the exchange books it from whichever source tells it first, the
stream or the REST listing. The stream is not the only source, because it cannot be: Kalshi
does not replay the messages of a connection's downtime, and ``fill`` messages carry no
``seq`` (AsyncAPI ``fillPayload``), so a lost one leaves no trace on the stream. The exchange's
REST listing stays on every cycle, as the catch-up of whatever the stream missed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from kalshi_lab.client import KalshiSigner
from kalshi_lab.client.records import Fill, Orderbook
from kalshi_lab.client.ws import KalshiStream
from kalshi_lab.client.ws_books import StreamBooks

logger = logging.getLogger(__name__)


class StreamFeed:
    """The ``orderbook_delta`` and (with a signer) ``fill`` channels of one account's
    connection, consumed in a daemon thread from :meth:`start` to :meth:`close`; a
    ``BookSource`` and a ``FillSource`` for LiveKalshiExchange.

    ``snapshots`` counts the snapshots applied per market: the first, and each one after a
    reconnect or a gap (a resnapshot), from which the book is sound again. ``bad_fills``
    counts fill messages that could not be read (each logged; the REST listing books their
    fill)."""

    def __init__(self, url: str, signer: KalshiSigner | None, **stream_options: Any) -> None:
        channels = ["orderbook_delta"] if signer is None else ["orderbook_delta", "fill"]
        self.stream = KalshiStream(url, channels=channels, auth=signer, **stream_options)
        self.books = StreamBooks()
        self.error: BaseException | None = None
        self.snapshots: Counter[str] = Counter()
        self.bad_fills = 0
        self._fills: list[Fill] = []  # received, not taken yet (guarded by _lock)
        self._fresh: set[str] = set()  # markets whose snapshot came on this connection
        self._connection = -1
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kalshi-stream", daemon=True)

    def start(self) -> StreamFeed:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stream.close()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            for message in self.stream:
                self._take(message)
        except Exception as exc:  # noqa: BLE001 - the bot goes on with REST, and says why
            self.error = exc
            logger.error("the stream stopped (%s): books come from REST", exc)

    def _take(self, message: dict[str, Any]) -> None:
        if message["type"] == "fill":
            self._take_fill(message.get("msg"))
            return
        with self._lock:
            if self.stream.stats.reconnects != self._connection:
                self._connection = self.stream.stats.reconnects
                self._fresh.clear()  # books of the last connection may have missed deltas
            self.books.apply(message)
            if message["type"] == "orderbook_snapshot":
                ticker = message["msg"]["market_ticker"]
                self._fresh.add(ticker)
                self.snapshots[ticker] += 1

    def _take_fill(self, msg: Any) -> None:
        try:
            fill = Fill.model_validate(msg)
        except ValidationError as exc:
            self.bad_fills += 1
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "msg"
            logger.error("a fill message could not be read (%s: %s): the REST listing books it",
                         where, first["msg"])  # fmt: skip
            return
        if fill.trade_id is None:
            self.bad_fills += 1
            logger.error("a fill message of order %s has no trade_id: the REST listing books it",
                         fill.order_id)  # fmt: skip
            return
        with self._lock:
            self._fills.append(fill)

    def take_fills(self) -> list[Fill]:
        """The fills received since the last call, in arrival order (called from the trading
        thread; the stream thread keeps adding)."""
        with self._lock:
            taken, self._fills = self._fills, []
        return taken

    @property
    def up(self) -> bool:
        return self.error is None and self.stream.connected

    def watch(self, tickers: Sequence[str]) -> None:
        """Stream these markets' books from now on (no-op for those already streamed)."""
        if self.error is None and tickers:
            self.stream.add_markets(list(tickers))

    def book(self, ticker: str) -> Orderbook | None:
        """The market's live book, or None when the stream cannot vouch for it now."""
        if not self.up or ticker in self.stream.stale_markets():
            return None
        with self._lock:
            if ticker not in self._fresh or self.stream.stats.reconnects != self._connection:
                return None
            return self.books.book(ticker)
