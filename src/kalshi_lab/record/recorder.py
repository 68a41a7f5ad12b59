"""Feeds stream messages into a new segment of a recordings directory until the stream ends or stops.

The stream (``KalshiStream``) does the protocol: subscriptions, heartbeats, reconnection, a
fresh snapshot after a ``seq`` gap. The recorder only stores what it yields, timestamped on
arrival, and makes it durable: a flush every second from a thread of its own (a quiet stream
must not keep its last messages in memory), the segment closed and counted on any exit.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kalshi_lab.data.stream_store import SegmentWriter, salvage, stream_dir

logger = logging.getLogger(__name__)

#: the message types recorded (Kalshi AsyncAPI: channels orderbook_delta and trade)
RECORDED = ("orderbook_snapshot", "orderbook_delta", "trade")
FLUSH_EVERY_S = 1.0


@dataclass
class RecordStats:
    """What one recording session wrote and left out."""

    segment: str
    recorded: Counter[str] = field(default_factory=Counter)  # by message type
    skipped: Counter[str] = field(default_factory=Counter)  # other types, by type
    salvaged: dict[str, int] = field(default_factory=dict)  # earlier open segments -> records


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(
    messages: Iterable[Mapping[str, Any]],
    recorded_dir: Path,
    params: Mapping[str, Any],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], dt.datetime] = _utcnow,
    flush_every_s: float = FLUSH_EVERY_S,
) -> RecordStats:
    """Record ``messages`` into a new segment of ``recorded_dir`` until they end or ``should_stop``.

    Segments a killed recorder left open are salvaged first. ``params`` is what the stream was
    opened for (channels, series): stored in every envelope as a request's params are, so
    keep it short (each message names its market). An exception (KeyboardInterrupt included) still closes and counts the segment.
    """
    directory = stream_dir(recorded_dir)
    directory.mkdir(parents=True, exist_ok=True)
    salvaged = {s.name: s.records for s in salvage(directory)}
    for name, n in salvaged.items():
        logger.info("record: closed %s, left open by an earlier recorder, with %d records", name, n)
    writer = SegmentWriter(directory, params)
    stats = RecordStats(writer.name, salvaged=salvaged)
    lock = threading.Lock()
    done = threading.Event()

    def flush_periodically() -> None:
        while not done.wait(flush_every_s):
            with lock:
                writer.flush()

    flusher = threading.Thread(target=flush_periodically, name="record-flush", daemon=True)
    flusher.start()
    try:
        for message in messages:
            kind = message.get("type")
            if kind in RECORDED:
                with lock:
                    writer.write(message, clock())
                stats.recorded[kind] += 1
            else:
                stats.skipped[str(kind)] += 1
            if should_stop():
                break
    finally:
        done.set()
        flusher.join()
        with lock:
            writer.close()
        logger.info(
            "record: %s: %d records %s; skipped %s",
            writer.path,
            writer.records,
            dict(stats.recorded),
            dict(stats.skipped) or "none",
        )
    return stats
