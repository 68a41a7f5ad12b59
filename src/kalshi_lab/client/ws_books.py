"""Live order books from the ``orderbook_delta`` channel: each market's snapshot, then its deltas.

Messages come in either of Kalshi's formats (docs.kalshi.com/websockets, AsyncAPI
``orderbookSnapshotPayload`` / ``orderbookDeltaPayload``): the current one (snapshot
``yes_dollars_fp``/``no_dollars_fp`` = [[dollar string, count string], ...]; delta
``price_dollars`` + ``delta_fp``) and the legacy integer one (snapshot ``yes``/``no`` = [[cents,
count], ...]; delta ``price`` in cents + ``delta``), parsed by the REST client's own readers
(:mod:`kalshi_lab.client.records`) so that both sources agree to the last digit.

:meth:`StreamBooks.book` answers in the form ``KalshiClient.get_orderbook`` does
(:class:`~kalshi_lab.client.records.Orderbook`, bids ascending, best last), so a consumer can
take its book from either.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kalshi_lab.client.records import Orderbook, count, price
from kalshi_lab.errors import DataError

Levels = dict[Decimal, Decimal]


def snapshot_levels(msg: Mapping[str, Any]) -> tuple[Levels, Levels]:
    """(YES bids, NO bids) of an ``orderbook_snapshot``'s ``msg``; a missing side is empty."""
    if any(f"{side}_dollars_fp" in msg for side in ("yes", "no")):
        body: dict[str, Any] = {
            "orderbook_fp": {f"{s}_dollars": msg.get(f"{s}_dollars_fp") for s in ("yes", "no")}
        }
    elif any(f"{side}_dollars" in msg for side in ("yes", "no")):
        body = {"orderbook_fp": {f"{s}_dollars": msg.get(f"{s}_dollars") for s in ("yes", "no")}}
    else:
        body = {"orderbook": {s: msg.get(s) for s in ("yes", "no")}}
    try:
        book = Orderbook.model_validate(body)
    except ValueError as exc:
        raise DataError(f"orderbook_snapshot of {msg.get('market_ticker')}: {exc}") from None
    return _levels(book.yes), _levels(book.no)


def _levels(pairs: tuple[tuple[Decimal, Decimal], ...]) -> Levels:
    out: Levels = {}
    for p, n in pairs:
        out[p] = out.get(p, Decimal(0)) + n
    return {p: n for p, n in out.items() if n > 0}


def delta_change(msg: Mapping[str, Any]) -> tuple[str, Decimal, Decimal]:
    """(side, price in dollars, contracts added, < 0 removed) of an ``orderbook_delta``."""
    side = msg.get("side")
    try:
        level, change = price(msg, "price"), count(msg, "delta")
    except ValueError as exc:
        raise DataError(f"orderbook_delta of {msg.get('market_ticker')}: {exc}") from None
    if side not in ("yes", "no") or level is None or change is None:
        raise DataError(
            f"orderbook_delta of {msg.get('market_ticker')} lacks side, price or delta: {dict(msg)}"
        )
    return side, level, change


class StreamBooks:
    """The books of every market seen on the stream (thread-safe: a stream thread applies,
    others read).

    ``orphan_deltas`` counts deltas of markets without a snapshot yet and ``negative_levels``
    levels a delta would have taken below zero (both mean a message was missed; the level is
    removed): neither should happen behind a :class:`~kalshi_lab.client.ws.KalshiStream`.
    """

    def __init__(self) -> None:
        self._books: dict[str, tuple[Levels, Levels]] = {}
        self._lock = threading.Lock()
        self.orphan_deltas = 0
        self.negative_levels = 0

    def apply(self, message: Mapping[str, Any]) -> None:
        """Apply an ``orderbook_snapshot`` or ``orderbook_delta``; other types are ignored."""
        kind, msg = message.get("type"), message.get("msg") or {}
        if kind == "orderbook_snapshot":
            yes, no = snapshot_levels(msg)
            with self._lock:
                self._books[msg["market_ticker"]] = (yes, no)
        elif kind == "orderbook_delta":
            side, level, change = delta_change(msg)
            with self._lock:
                book = self._books.get(msg["market_ticker"])
                if book is None:
                    self.orphan_deltas += 1
                    return
                levels = book[0] if side == "yes" else book[1]
                left = levels.get(level, Decimal(0)) + change
                if left < 0:
                    self.negative_levels += 1
                if left > 0:
                    levels[level] = left
                else:
                    levels.pop(level, None)

    def forget(self, ticker: str) -> None:
        """Drop a market's book (e.g. when it leaves the subscription)."""
        with self._lock:
            self._books.pop(ticker, None)

    @property
    def tickers(self) -> list[str]:
        with self._lock:
            return sorted(self._books)

    def __contains__(self, ticker: object) -> bool:
        with self._lock:
            return ticker in self._books

    def book(self, ticker: str) -> Orderbook:
        """The market's book as ``KalshiClient.get_orderbook`` returns it; KeyError if no
        snapshot of it came yet."""
        with self._lock:
            yes, no = self._books[ticker]
            return Orderbook.model_construct(
                yes=tuple(sorted(yes.items())), no=tuple(sorted(no.items()))
            )
