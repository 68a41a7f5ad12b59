"""What is listed: series, events and markets, with their tickers, strikes and schedules.

Nothing here depends on prices or outcomes, so the listing of a seed stays the same when the
price model changes. Times are whole hours counted from ``data.start`` 00:00 UTC (the hourly
grid every other module uses); a market is open during hours ``open_h <= h < close_h``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kalshi_lab.params import DataParams, SyntheticParams
from kalshi_lab.simulator.segments import positions

#: the exchange's determination-to-settlement delay (``settlement_timer_seconds``)
SETTLEMENT_TIMER_S = 3600
#: latest close hour (UTC) of a market's last day: close + determination + timer stays inside
#: that day, so every market has settled by the end of ``data.end``, when the snapshot is taken
LAST_CLOSE_HOUR = 20
MAX_DETERMINATION_S = 2 * 3600
STRIKE_STEPS = np.array([0.5, 1.0, 2.0, 5.0, 10.0])


@dataclass(frozen=True)
class SeriesSpec:
    """One series: a family of recurring events sharing rules, category and fee schedule."""

    ticker: str
    title: str
    category: str
    frequency: str
    tags: tuple[str, ...]
    fee_multiplier: float
    source: str


#: a handful of series; the index-like one trades at half fee, as Kalshi's S&P/Nasdaq series do
SERIES = (
    SeriesSpec(
        "KXSIMA",
        "Simulated temperature A",
        "Climate and Weather",
        "daily",
        ("Weather",),
        1.0,
        "Sim Weather Service",
    ),
    SeriesSpec(
        "KXSIMB",
        "Simulated inflation B",
        "Economics",
        "monthly",
        ("Inflation",),
        1.0,
        "Sim Bureau of Statistics",
    ),
    SeriesSpec(
        "KXSIMC",
        "Simulated election C",
        "Politics",
        "one-off",
        ("Elections",),
        1.0,
        "Sim Election Board",
    ),
    SeriesSpec(
        "KXSIMD", "Simulated crypto price D", "Crypto", "weekly", ("BTC",), 1.0, "Sim Benchmarks"
    ),
    SeriesSpec(
        "KXSIME",
        "Simulated stock index E",
        "Financials",
        "daily",
        ("S&P",),
        0.5,
        "Sim Index Provider",
    ),
)


@dataclass(frozen=True)
class Universe:
    """Events (one row each) and markets (one row each), plus the clock they live on."""

    t0: int  # Unix seconds of data.start 00:00 UTC: hour h is t0 + 3600 h
    snapshot: int  # Unix seconds of the end of data.end: when /markets, trades, candles are fetched
    # events
    event_ticker: list[str]
    event_series: np.ndarray  # index into SERIES
    n_outcomes: np.ndarray  # K: mutually exclusive outcomes (binary events: 2, one listed)
    binary: np.ndarray  # a single YES/NO market
    open_h: np.ndarray
    close_h: np.ndarray
    created_s: np.ndarray  # seconds before open_time the markets were created
    determined_s: np.ndarray  # seconds after close_time the outcome was determined
    # strike ladder of multi-strike events: bucket k spans level + (k - K/2) step, one step wide
    level: np.ndarray
    step: np.ndarray
    value_u: np.ndarray  # where inside the winning bucket the underlying settled, in [0, 1)
    # markets
    ticker: list[str]
    market_event: np.ndarray
    market_outcome: np.ndarray  # outcome k of its event that this market's YES pays on
    strike_type: list[str | None]
    floor_strike: np.ndarray  # NaN when the strike type has no floor
    cap_strike: np.ndarray  # NaN when it has no cap
    yes_sub_title: list[str]

    @property
    def n_events(self) -> int:
        return len(self.event_ticker)

    @cached_property
    def life_h(self) -> np.ndarray:
        """Hours each event's markets are open."""
        return self.close_h - self.open_h

    @cached_property
    def open_ts(self) -> np.ndarray:
        return self.t0 + 3600 * self.open_h

    @cached_property
    def close_ts(self) -> np.ndarray:
        return self.t0 + 3600 * self.close_h

    @cached_property
    def settlement_ts(self) -> np.ndarray:
        return self.close_ts + self.determined_s + SETTLEMENT_TIMER_S


def _unix(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _event_sizes(
    syn: SyntheticParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(binary, K, listed) per event, with exactly ``n_markets`` listed markets in total."""
    n = syn.n_markets
    binary = rng.random(n) < syn.binary_event_share
    k = np.where(binary, 2, rng.integers(2, syn.max_strikes + 1, n))
    listed = np.where(binary, 1, k)
    total = np.cumsum(listed)
    n_events = int(np.searchsorted(total, n)) + 1
    binary, k, listed = binary[:n_events].copy(), k[:n_events].copy(), listed[:n_events].copy()
    listed[-1] -= int(total[n_events - 1]) - n  # trim the last event to hit n_markets exactly
    if listed[-1] == 1 and not binary[-1]:
        binary[-1] = True  # a one-market remainder is a binary event
    k[-1] = 2 if binary[-1] else listed[-1]
    return binary, k, listed


def build_universe(data: DataParams, rng: np.random.Generator) -> Universe:
    """Draw the listing of ``data.synthetic.n_markets`` markets inside ``data.start..data.end``."""
    syn = data.synthetic
    assert syn is not None
    n_days = (data.end - data.start).days + 1
    # a market opens on one day and closes at least min_duration_days later, inside the range;
    # DataParams already rejects a range with fewer than min_duration_days + 1 days
    longest = min(syn.max_duration_days, n_days - 1)
    assert longest >= syn.min_duration_days, "DataParams validates the date range"
    binary, k, listed = _event_sizes(syn, rng)
    n_events = len(k)
    duration = rng.integers(syn.min_duration_days, longest + 1, n_events)
    open_day = rng.integers(0, n_days - duration)
    open_h = 24 * open_day + rng.integers(0, 24, n_events)
    close_h = 24 * (open_day + duration) + rng.integers(1, LAST_CLOSE_HOUR + 1, n_events)
    step = rng.choice(STRIKE_STEPS, n_events)
    # whole steps, and high enough that no strike of the ladder is negative
    level = (np.round(rng.uniform(20, 400, n_events) / step) + k) * step
    drawn = {
        "series": rng.integers(0, len(SERIES), n_events),
        "created_s": rng.integers(3600, 2 * 86400, n_events),
        "determined_s": rng.integers(0, MAX_DETERMINATION_S + 1, n_events),
        "value_u": rng.random(n_events),
    }
    # number events in the order they open, as an exchange would list them
    order = np.lexsort((close_h, open_h))
    binary, k, listed, open_h, close_h, step, level = (
        a[order] for a in (binary, k, listed, open_h, close_h, step, level)
    )
    drawn = {name: a[order] for name, a in drawn.items()}

    width = max(4, len(str(n_events)))
    event_ticker = []
    for i in range(n_events):
        close_day = data.start + dt.timedelta(days=int(close_h[i]) // 24)
        stamp = close_day.strftime("%y%b%d").upper()
        event_ticker.append(f"{SERIES[drawn['series'][i]].ticker}-{stamp}-{i:0{width}d}")

    market_event = np.repeat(np.arange(n_events), listed)
    market_outcome = positions(listed)
    lo = level[market_event] + (market_outcome - k[market_event] / 2) * step[market_event]
    hi = lo + step[market_event]
    ticker: list[str] = []
    strike_type: list[str | None] = []
    sub_title: list[str] = []
    floor = np.full(len(market_event), np.nan)
    cap = np.full(len(market_event), np.nan)
    for m, (e, j) in enumerate(zip(market_event.tolist(), market_outcome.tolist(), strict=True)):
        base = event_ticker[e]
        if binary[e]:
            ticker.append(f"{base}-Y")
            strike_type.append(None)
            sub_title.append("Yes")
        elif j == 0:
            ticker.append(f"{base}-L{hi[m]:g}")
            strike_type.append("less")
            cap[m] = hi[m]
            sub_title.append(f"Below {hi[m]:g}")
        elif j == k[e] - 1:
            ticker.append(f"{base}-T{lo[m]:g}")
            strike_type.append("greater")
            floor[m] = lo[m]
            sub_title.append(f"{lo[m]:g} or above")
        else:
            ticker.append(f"{base}-B{lo[m]:g}")
            strike_type.append("between")
            floor[m], cap[m] = lo[m], hi[m]
            sub_title.append(f"{lo[m]:g} to {hi[m]:g}")

    return Universe(
        t0=_unix(data.start),
        snapshot=_unix(data.end + dt.timedelta(days=1)),
        event_ticker=event_ticker,
        event_series=drawn["series"],
        n_outcomes=k,
        binary=binary,
        open_h=open_h,
        close_h=close_h,
        created_s=drawn["created_s"],
        determined_s=drawn["determined_s"],
        level=level,
        step=step,
        value_u=drawn["value_u"],
        ticker=ticker,
        market_event=market_event,
        market_outcome=market_outcome,
        strike_type=strike_type,
        floor_strike=floor,
        cap_strike=cap,
        yes_sub_title=sub_title,
    )
