"""Shared pieces of the WebSocket tests: a stream consumed in a thread into live books, and the
REST book to compare them with."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from kalshi_lab.client.records import Orderbook
from kalshi_lab.client.ws import KalshiStream
from kalshi_lab.client.ws_books import StreamBooks
from kalshi_lab.server import LocalKalshiServer


def open_markets(srv: LocalKalshiServer) -> list[str]:
    """Markets the REST API serves as live and that trade now."""
    return sorted(
        m.ticker
        for m in srv.dataset.markets.values()
        if m.trading_at(srv.now) and not srv.cutoff.archived(m)
    )


def no_wait() -> Iterator[float]:
    """Reconnect at once (tests): websockets' default backoff starts with up to 5 s."""
    while True:
        yield 0.0


class Consumer:
    """Iterates ``stream`` in a thread, applying every message to :attr:`books`."""

    def __init__(self, stream: KalshiStream) -> None:
        self.stream = stream
        self.books = StreamBooks()
        self.messages: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for message in self.stream:
                self.messages.append(message)
                self.books.apply(message)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def __enter__(self) -> Consumer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self._thread.join(10)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m["type"] == kind]


def rest_book(srv: LocalKalshiServer, ticker: str) -> Orderbook:
    r = requests.get(f"{srv.base_url}/markets/{ticker}/orderbook", timeout=10)
    assert r.status_code == 200, r.text
    return Orderbook.model_validate(r.json())


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def books_match(consumer: Consumer, srv: LocalKalshiServer, tickers: list[str]) -> list[str]:
    """The tickers whose streamed book differs from the REST book now (or is missing)."""
    return [
        t for t in tickers if t not in consumer.books or consumer.books.book(t) != rest_book(srv, t)
    ]
