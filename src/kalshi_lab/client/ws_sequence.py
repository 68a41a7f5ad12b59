"""What a stream's ``sid``/``seq`` numbers say about each message: new, duplicate, or after a gap.

Kalshi numbers the messages of each subscription (``sid``) with ``seq`` 1, 2, 3, ... "to
guarantee you received all the messages" (docs.kalshi.com/websockets, AsyncAPI
``sequenceNumber``). One ``orderbook_delta`` subscription covers many markets under ONE
sequence, so a gap cannot say which market lost a delta: every market of that subscription is
stale until a fresh ``orderbook_snapshot`` for it arrives (``update_subscription`` with action
``get_snapshot``), and deltas for a stale market are dropped meanwhile (applied to a book that
missed one, they would make it wrong without anyone knowing). A ``seq`` at or below the last
one seen is a duplicate: dropped. ``fill`` messages carry no ``seq``; a fill seen twice (same
``trade_id``, "what you use to differentiate fills") is dropped too, and so is a ``user_order``
that repeats its order's last update word for word.

Nothing is dropped silently: :class:`StreamStats` counts every kind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

ORDERBOOK_CHANNEL = "orderbook_delta"


@dataclass
class StreamStats:
    """Counters of one stream, over all its connections."""

    #: data messages passed on to the consumer
    messages: int = 0
    #: connections opened after the first
    reconnects: int = 0
    #: seq jumps (messages lost between two received ones)
    gaps: int = 0
    #: messages dropped as already seen (same sid and seq, or a fill's trade_id again)
    duplicates: int = 0
    #: fresh snapshots received for markets made stale by a gap
    resnapshots: int = 0
    #: deltas dropped because their market was waiting for a fresh snapshot
    stale_deltas: int = 0
    #: snapshots asked for again, the stream having fallen quiet before they came
    snapshot_retries: int = 0
    #: snapshots asked for when the stream fell quiet, to check no message was lost before
    probes: int = 0
    #: error responses from the server, by code
    errors: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Whether to pass a message on, and the snapshots to ask for: (sid, market tickers)."""

    keep: bool
    resnapshot: tuple[int, tuple[str, ...]] | None = None


class Sequencer:
    """The seq bookkeeping of one connection (:meth:`reset` on a new one) and the fills and
    order updates seen over the stream's whole life (a reconnect must not book a fill twice)."""

    def __init__(self, stats: StreamStats) -> None:
        self.stats = stats
        self._fills_seen: set[str] = set()
        self._orders_seen: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """A new connection: new sids, each sequence starting again."""
        self._channel: dict[int, str] = {}
        self._last: dict[int, int] = {}
        self._markets: dict[int, set[str]] = {}
        self._stale: dict[int, set[str]] = {}

    def subscribed(self, sid: int, channel: str, markets: Iterable[str] = ()) -> None:
        """Subscription ``sid`` is ``channel`` for ``markets``: a gap makes all of them stale,
        even one whose first snapshot was the message lost."""
        self._channel[sid] = channel
        self._markets[sid] = set(markets)

    def add_markets(self, sid: int, markets: Iterable[str]) -> None:
        """Markets added to subscription ``sid`` (``update_subscription`` / ``add_markets``)."""
        self._markets.setdefault(sid, set()).update(markets)

    def stale_markets(self) -> frozenset[str]:
        """Markets of every subscription waiting for a fresh snapshot."""
        return frozenset().union(*self._stale.values())

    def probe(self, turn: int) -> list[tuple[int, tuple[str, ...]]]:
        """One market per orderbook subscription (the ``turn``-th, round robin) to ask a
        snapshot of when the stream falls quiet: its ``seq`` shows whether the last messages
        before the quiet were lost, which nothing else would until the market moves again."""
        out = []
        for sid, channel in sorted(self._channel.items()):
            markets = sorted(self._markets.get(sid, ()))
            if channel == ORDERBOOK_CHANNEL and markets:
                out.append((sid, (markets[turn % len(markets)],)))
        return out

    def pending(self) -> list[tuple[int, tuple[str, ...]]]:
        """(sid, markets) still waiting for a fresh snapshot: asked again when the stream
        falls quiet (the answer itself may have been lost, and nothing after it shows that)."""
        return [(sid, tuple(sorted(m))) for sid, m in sorted(self._stale.items()) if m]

    def stale(self, sid: int) -> frozenset[str]:
        """Markets of subscription ``sid`` waiting for a fresh snapshot."""
        return frozenset(self._stale.get(sid, ()))

    def admit(self, message: dict[str, Any]) -> Verdict:
        """The verdict on one data message (counted in :attr:`stats` when kept)."""
        sid, seq, kind = message.get("sid"), message.get("seq"), message.get("type")
        msg = message.get("msg") or {}
        resnapshot = None
        if isinstance(sid, int) and isinstance(seq, int):
            # a subscription's sequence starts at 1: a first message after that lost some
            last = self._last.get(sid, 0 if sid in self._channel else None)
            if last is not None and seq <= last:
                self.stats.duplicates += 1
                return Verdict(False)
            if last is not None and seq > last + 1:
                self.stats.gaps += 1
                resnapshot = self._gap(sid, last, seq)
            self._last[sid] = seq
        ticker = msg.get("market_ticker")
        if kind == "orderbook_snapshot" and isinstance(sid, int):
            self._markets.setdefault(sid, set()).add(ticker)
            stale = self._stale.get(sid, set())
            if ticker in stale:
                stale.discard(ticker)
                self.stats.resnapshots += 1
        elif kind == "orderbook_delta" and ticker in self._stale.get(sid, ()):  # type: ignore[arg-type]
            self.stats.stale_deltas += 1
            return Verdict(False, resnapshot)
        elif kind == "user_order":
            order_id = msg.get("order_id")
            if order_id is not None and self._orders_seen.get(order_id) == msg:
                self.stats.duplicates += 1
                return Verdict(False, resnapshot)
            self._orders_seen[order_id] = msg
        elif kind == "fill":
            trade_id = msg.get("trade_id")
            if trade_id in self._fills_seen:
                self.stats.duplicates += 1
                return Verdict(False, resnapshot)
            if trade_id is not None:
                self._fills_seen.add(trade_id)
        self.stats.messages += 1
        return Verdict(True, resnapshot)

    def answered(self, sid: int, seq: int) -> tuple[int, tuple[str, ...]] | None:
        """An ``ok`` answer of subscription ``sid`` carrying ``seq``, the subscription's
        latest number: messages sent before it that never came are a gap like any other."""
        last = self._last.get(sid, 0)
        self._last[sid] = max(last, seq)
        # the answer's seq is the last number the subscription used (the local server's
        # answers, like the spec's examples, use none of their own): one above the last
        # message received means that message was lost. Were Kalshi's answers to use a
        # number of their own, this would only cost a snapshot of each market, never a
        # wrong book: the only safe reading of an ambiguous number
        if seq <= last:
            return None
        self.stats.gaps += 1
        return self._gap(sid, last, seq)

    def _gap(self, sid: int, last: int, seq: int) -> tuple[int, tuple[str, ...]] | None:
        channel = self._channel.get(sid, "?")
        lost = seq - last - 1
        if channel != ORDERBOOK_CHANNEL:
            logger.warning("%s stream (sid %d) lost %d message(s) (seq %d -> %d)",
                           channel, sid, lost, last, seq)  # fmt: skip
            return None
        markets = self._markets.get(sid, set())
        self._stale.setdefault(sid, set()).update(markets)
        logger.warning(
            "orderbook stream (sid %d) lost %d message(s) (seq %d -> %d): asking for fresh "
            "snapshots of %d market(s)",
            sid, lost, last, seq, len(markets),
        )  # fmt: skip
        return (sid, tuple(sorted(markets))) if markets else None
