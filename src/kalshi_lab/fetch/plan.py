"""What a Kalshi fetch asks for: which markets, which candle and trade windows, what is final.

Pure functions of the market documents, the parameters and the run's "now", so that a resumed
run plans exactly the units the killed run planned (and finds them in the cache).

* A market is in range if it was open on at least one UTC day of ``[start, end]``:
  ``open_time <= end + 1 day`` and ``close_time >= start`` (the same rule the simulator's
  date range follows).
* A settled market's data cannot change: its candles and trades are one final unit each over
  its whole life. A market still open is cut into calendar-month windows: the months that
  ended before now are final, the current one is provisional.
* The raw directory is partitioned by series and month (:mod:`kalshi_lab.data.raw_store`): an
  event and everything of its markets go to ``series=<its series>/month=<the UTC month of the
  latest close of its chosen markets>``, so an event whose markets close in two months is in
  the later one, whole.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from kalshi_lab.client.records import Market
from kalshi_lab.data.raw_store import partition_name
from kalshi_lab.errors import DataError

#: candle periods fetched: daily always, hourly on request (minutes)
DAILY, HOURLY = 1440, 60
#: a window counts as closed once it ended this long before now (late trades, late candles)
SETTLE_MARGIN_S = 3600


@dataclass(frozen=True)
class Window:
    """``[start_ts, end_ts]`` in Unix seconds; ``final`` if its data can no longer change."""

    start_ts: int
    end_ts: int
    final: bool

    @property
    def key(self) -> str:
        return f"{self.start_ts}-{self.end_ts}" if self.final else f"{self.start_ts}-open"


def day_bounds(start: dt.date, end: dt.date) -> tuple[int, int]:
    """Unix seconds of 00:00 UTC on ``start`` and of 00:00 UTC after ``end``."""
    first = dt.datetime.combine(start, dt.time(), dt.UTC)
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return int(first.timestamp()), int(after.timestamp())


def in_range(market: Market, start_ts: int, after_end_ts: int) -> bool:
    return (
        market.open_time.timestamp() <= after_end_ts and market.close_time.timestamp() >= start_ts
    )


def is_open_at(market: Market, now: float) -> bool:
    """Trading at ``now``: between open and close and not yet closed by the exchange."""
    closed = market.status in (
        "closed",
        "determined",
        "disputed",
        "amended",
        "finalized",
        "settled",
    )
    return not closed and market.open_time.timestamp() <= now < market.close_time.timestamp()


def _ceil(ts: int, step: int) -> int:
    return -(-ts // step) * step


def candle_windows(market: Market, period_minutes: int, now: float) -> list[Window]:
    """Windows covering every candle of the market's life that has ended by ``now``.

    A candle is filed under its END (``end_period_ts``); the last one of a market ends at the
    first period boundary at or after its close. A settled market gets one final window.
    """
    step = period_minutes * 60
    start = int(market.open_time.timestamp())
    last = _ceil(int(market.close_time.timestamp()), step)
    if market.is_settled:
        return [Window(start, last, final=True)]
    out = []
    for a, b in _months(start, min(last, int(now) // step * step)):
        out.append(Window(a, b, final=b + SETTLE_MARGIN_S <= now))
    return out


def trade_windows(market: Market, now: float) -> list[Window]:
    """Windows covering every trade of the market's life up to ``now``."""
    start = int(market.open_time.timestamp())
    end = int(market.close_time.timestamp())
    if market.is_settled:
        return [Window(start, end, final=True)]
    return [
        Window(a, b, final=b + SETTLE_MARGIN_S <= now)
        for a, b in _months(start, min(end, int(now)))
    ]


def _months(start_ts: int, end_ts: int) -> list[tuple[int, int]]:
    """``[start_ts, end_ts]`` cut at UTC month starts; consecutive pieces share no second."""
    if end_ts < start_ts:
        return []
    cuts = []
    month = dt.datetime.fromtimestamp(start_ts, dt.UTC).replace(day=1, hour=0, minute=0, second=0)
    while True:
        month = (month + dt.timedelta(days=32)).replace(day=1)
        if month.timestamp() > end_ts:
            break
        cuts.append(int(month.timestamp()))
    lows = [start_ts, *cuts]
    highs = [c - 1 for c in cuts] + [end_ts]
    return list(zip(lows, highs, strict=True))


@dataclass(frozen=True)
class Partition:
    """One ``series=<S>/month=<YYYY-MM>`` partition of the raw directory: whole events."""

    name: str
    series: str
    events: tuple[str, ...]  # sorted
    markets: tuple[Market, ...]  # by ticker


def partitions(markets: list[Market], series_of_event: dict[str, str]) -> list[Partition]:
    """The partitions of ``markets`` (sorted by ticker), sorted by name, as the simulator's.

    An event's month is the UTC month of the latest ``close_time`` among its chosen markets. A
    series ticker that cannot name a directory is a DataError naming it and its event.
    """
    closes: dict[str, dt.datetime] = {}
    for m in markets:
        closes[m.event_ticker] = max(m.close_time, closes.get(m.event_ticker, m.close_time))
    name_of: dict[str, str] = {}
    for event, close in closes.items():
        series, month = series_of_event[event], close.astimezone(dt.UTC).strftime("%Y-%m")
        try:
            name_of[event] = partition_name(series, month)
        except ValueError:
            raise DataError(
                f"GET /events/{event}: series_ticker {series!r} cannot name a raw partition "
                "directory (series=<S>/month=<YYYY-MM>)"
            ) from None
    members: dict[str, list[Market]] = defaultdict(list)
    for m in markets:
        members[name_of[m.event_ticker]].append(m)
    return [
        Partition(
            name=name,
            series=series_of_event[members[name][0].event_ticker],
            events=tuple(sorted({m.event_ticker for m in members[name]})),
            markets=tuple(members[name]),
        )
        for name in sorted(members)
    ]
