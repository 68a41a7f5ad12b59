"""The bot's WebSocket feed: live order books kept in a background thread.

The exchange asks :meth:`StreamFeed.book` for a market's book; one is given only while the
stream is up and that market's book is known good on the current connection (its snapshot came
on it and no gap waits for a fresh one). Otherwise the answer is None and the exchange reads
the REST endpoint, so the bot trades on whichever source is sound at the moment. Markets are
added as the bot quotes them (:meth:`watch`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from kalshi_lab.client import KalshiSigner
from kalshi_lab.client.records import Orderbook
from kalshi_lab.client.ws import KalshiStream
from kalshi_lab.client.ws_books import StreamBooks

logger = logging.getLogger(__name__)


class StreamFeed:
    """The ``orderbook_delta`` channel of one account's connection, consumed in a daemon
    thread from :meth:`start` to :meth:`close`; a ``BookSource`` for LiveKalshiExchange."""

    def __init__(self, url: str, signer: KalshiSigner | None, **stream_options: Any) -> None:
        self.stream = KalshiStream(url, channels=["orderbook_delta"], auth=signer, **stream_options)
        self.books = StreamBooks()
        self.error: BaseException | None = None
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
        with self._lock:
            if self.stream.stats.reconnects != self._connection:
                self._connection = self.stream.stats.reconnects
                self._fresh.clear()  # books of the last connection may have missed deltas
            self.books.apply(message)
            if message["type"] == "orderbook_snapshot":
                self._fresh.add(message["msg"]["market_ticker"])

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
