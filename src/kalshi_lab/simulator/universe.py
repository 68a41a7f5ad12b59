"""What is listed: series, events and markets, with their tickers, strikes and schedules.

Nothing here depends on prices or outcomes, so the listing of a seed stays the same when the
price model changes.

Every event has one latent underlying (a temperature, a rate, an index level) that settles in
one of ``K`` adjacent buckets, and lists its markets in one of Kalshi's three structures
(``data.synthetic.event_shares``):

* a threshold **ladder** of ``n`` strikes, ``K = n + 1`` buckets: market ``j = 1..n`` is
  "above the boundary between buckets ``j - 1`` and ``j``" (``strike_type`` ``greater``,
  ticker ``-T<strike>``) and resolves YES iff the winning bucket ``W >= j``, so several
  resolve YES together and the event is not mutually exclusive;
* a **bracket** set of ``K`` exclusive ranges, one market per bucket: the open tails ``less`` and
  ``greater`` (tickers ``-T<strike>``) and the ranges ``between`` (tickers ``-B<midpoint>``,
  both strikes included, so a range's cap is one reporting tick below the next floor); exactly
  one resolves YES;
* a **binary** event: one YES/NO market on a two-outcome underlying. Times are whole hours counted from ``data.start`` 00:00 UTC (the hourly
grid every other module uses); a market is open during hours ``open_h <= h < close_h``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from kalshi_lab.params import EVENT_STRUCTURES, MIN_BRACKET_STRIKES, DataParams, SyntheticParams
from kalshi_lab.simulator.segments import positions, starts_of

#: the exchange's determination-to-settlement delay (``settlement_timer_seconds``)
SETTLEMENT_TIMER_S = 3600
#: latest close hour (UTC) of a market's last day: close + determination + timer stays inside
#: that day, so every market has settled by the end of ``data.end``, when the snapshot is taken
LAST_CLOSE_HOUR = 20
MAX_DETERMINATION_S = 2 * 3600
STRIKE_STEPS = np.array([0.5, 1.0, 2.0, 5.0, 10.0])
#: the underlying is reported (``expiration_value``) to this many decimals, so a ``between``
#: range, which includes both its strikes, ends one tick below the next range's floor
VALUE_DECIMALS = 2
VALUE_TICK = 10.0**-VALUE_DECIMALS
#: event structures, coded as their index in ``data.synthetic.event_shares``
LADDER, BRACKET, BINARY = (EVENT_STRUCTURES.index(s) for s in ("ladder", "bracket", "binary"))
#: fewest markets each structure lists: a ladder two strikes, a bracket both tails and a range
MIN_LISTED = np.array([2, MIN_BRACKET_STRIKES, 1])


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
    structure: np.ndarray  # LADDER, BRACKET or BINARY
    n_outcomes: np.ndarray  # K: buckets of the underlying (ladder: strikes + 1; binary: 2)
    open_h: np.ndarray
    close_h: np.ndarray
    created_s: np.ndarray  # seconds before open_time the markets were created
    determined_s: np.ndarray  # seconds after close_time the outcome was determined
    # the underlying's buckets: bucket k spans level + (k - K/2) step, one step wide
    level: np.ndarray
    step: np.ndarray
    value_u: np.ndarray  # where inside the winning bucket the underlying settled, in [0, 1)
    # markets
    ticker: list[str]
    market_event: np.ndarray
    market_outcome: np.ndarray  # lowest bucket of its event that this market's YES pays on
    pays_above: np.ndarray  # ladder strikes: YES also pays on every bucket above market_outcome
    strike_type: list[str | None]
    floor_strike: np.ndarray  # NaN when the strike type has no floor
    cap_strike: np.ndarray  # NaN when it has no cap
    yes_sub_title: list[str]

    @property
    def n_events(self) -> int:
        return len(self.event_ticker)

    @cached_property
    def binary(self) -> np.ndarray:
        """Per event: a single YES/NO market."""
        return self.structure == BINARY

    @cached_property
    def ladder(self) -> np.ndarray:
        """Per event: a threshold ladder (cumulative strikes, not mutually exclusive)."""
        return self.structure == LADDER

    @cached_property
    def ladder_strike(self) -> np.ndarray:
        """Per market: its position on its ladder (0 = lowest strike), -1 off ladders.

        A ladder's strikes are consecutive markets of one event, so they share its hours: on the
        grid, the same hour of the next strike is one market length further on.
        """
        return np.where(self.pays_above, self.market_outcome - 1, -1)

    @cached_property
    def has_strike_above(self) -> np.ndarray:
        """Per market: a ladder strike that is not its ladder's highest."""
        strike = self.ladder_strike
        return (strike >= 0) & np.append(strike[1:] == strike[:-1] + 1, False)

    @cached_property
    def mutually_exclusive(self) -> np.ndarray:
        """Per event: at most one market resolves YES (brackets only: a binary event's one
        market is reported as Kalshi reports it, ``false``)."""
        return self.structure == BRACKET

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

    @cached_property
    def listed(self) -> np.ndarray:
        """Markets each event lists."""
        return np.bincount(self.market_event, minlength=self.n_events)

    @cached_property
    def close_month(self) -> np.ndarray:
        """Per event, the UTC month of its close, ``YYYY-MM`` (its raw partition's month)."""
        return np.datetime_as_string(self.close_ts.astype("datetime64[s]"), unit="M")

    def markets_of(self, events: np.ndarray) -> np.ndarray:
        """The markets of ``events`` (ascending indices), event after event."""
        listed = self.listed[events]
        return np.repeat(starts_of(self.listed)[events], listed) + positions(listed)

    def subset(self, events: np.ndarray) -> Universe:
        """The universe of ``events`` (ascending indices) and their markets, renumbered from 0
        in the same order: a chunk to simulate, or the events of one raw partition."""
        markets = self.markets_of(events)
        per_event = {name: getattr(self, name)[events] for name in _EVENT_ARRAYS}
        per_market = {name: getattr(self, name)[markets] for name in _MARKET_ARRAYS}
        return Universe(
            t0=self.t0,
            snapshot=self.snapshot,
            event_ticker=[self.event_ticker[e] for e in events.tolist()],
            ticker=[self.ticker[m] for m in markets.tolist()],
            strike_type=[self.strike_type[m] for m in markets.tolist()],
            yes_sub_title=[self.yes_sub_title[m] for m in markets.tolist()],
            market_event=np.repeat(np.arange(len(events)), self.listed[events]),
            **per_event,
            **per_market,
        )


#: the numpy fields of a Universe with one entry per event, and with one per market
_EVENT_ARRAYS = (
    "event_series", "structure", "n_outcomes", "open_h", "close_h", "created_s", "determined_s",
    "level", "step", "value_u",
)  # fmt: skip
_MARKET_ARRAYS = ("market_outcome", "pays_above", "floor_strike", "cap_strike")


def _unix(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _event_sizes(
    syn: SyntheticParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(structure, K, listed) per event, with exactly ``n_markets`` listed markets in total.

    Structures are drawn with ``event_shares``; ladders list 2..max_strikes strikes, brackets
    3..max_strikes markets. The last event is cut to the markets still missing; when that leaves
    too few for its structure, it takes the structure that fits with the largest share (a
    one-market remainder is a binary event).
    """
    n = syn.n_markets
    shares = np.array(syn.event_shares.ordered())
    # n events are always enough: every event lists at least one market
    structure = np.searchsorted(np.cumsum(shares)[:-1], rng.random(n), side="right")
    ladder_n = rng.integers(MIN_LISTED[LADDER], syn.max_strikes + 1, n)
    bracket_n = rng.integers(MIN_BRACKET_STRIKES, max(syn.max_strikes, MIN_BRACKET_STRIKES) + 1, n)
    listed = np.choose(structure, [ladder_n, bracket_n, np.ones(n, dtype=np.int64)])
    total = np.cumsum(listed)
    n_events = int(np.searchsorted(total, n)) + 1
    structure, listed = structure[:n_events].copy(), listed[:n_events].copy()
    listed[-1] -= int(total[n_events - 1]) - n  # trim the last event to hit n_markets exactly
    if listed[-1] < MIN_LISTED[structure[-1]]:
        fits = listed[-1] >= MIN_LISTED
        structure[-1] = int(np.argmax(np.where(fits, shares, -1.0)))
    k = np.choose(structure, [listed + 1, listed, np.full(n_events, 2)])
    return structure, k, listed


def build_universe(data: DataParams, rng: np.random.Generator) -> Universe:
    """Draw the listing of ``data.synthetic.n_markets`` markets inside ``data.start..data.end``."""
    syn = data.synthetic
    assert syn is not None
    n_days = (data.end - data.start).days + 1
    # a market opens on one day and closes at least min_duration_days later, inside the range;
    # DataParams already rejects a range with fewer than min_duration_days + 1 days
    longest = min(syn.max_duration_days, n_days - 1)
    assert longest >= syn.min_duration_days, "DataParams validates the date range"
    structure, k, listed = _event_sizes(syn, rng)
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
    structure, k, listed, open_h, close_h, step, level = (
        a[order] for a in (structure, k, listed, open_h, close_h, step, level)
    )
    drawn = {name: a[order] for name, a in drawn.items()}

    width = max(4, len(str(n_events)))
    event_ticker = []
    for i in range(n_events):
        close_day = data.start + dt.timedelta(days=int(close_h[i]) // 24)
        stamp = close_day.strftime("%y%b%d").upper()
        event_ticker.append(f"{SERIES[drawn['series'][i]].ticker}-{stamp}-{i:0{width}d}")

    market_event = np.repeat(np.arange(n_events), listed)
    ladder = structure[market_event] == LADDER
    # a ladder's strike j sits on the lower edge of bucket j, so its strikes are buckets 1..n
    market_outcome = positions(listed) + ladder
    strikes = _strikes(structure, k, level, step, market_event, market_outcome, event_ticker)
    return Universe(
        t0=_unix(data.start),
        snapshot=_unix(data.end + dt.timedelta(days=1)),
        event_ticker=event_ticker,
        event_series=drawn["series"],
        structure=structure,
        n_outcomes=k,
        open_h=open_h,
        close_h=close_h,
        created_s=drawn["created_s"],
        determined_s=drawn["determined_s"],
        level=level,
        step=step,
        value_u=drawn["value_u"],
        market_event=market_event,
        market_outcome=market_outcome,
        pays_above=ladder,
        **strikes,
    )


def bucket_low(
    level: np.ndarray, step: np.ndarray, k: np.ndarray, bucket: np.ndarray
) -> np.ndarray:
    """Lower edge of ``bucket`` of an event with ``k`` buckets: level + (bucket - k/2) step."""
    return level + (bucket - k / 2) * step


def _strikes(
    structure: np.ndarray,
    k: np.ndarray,
    level: np.ndarray,
    step: np.ndarray,
    market_event: np.ndarray,
    market_outcome: np.ndarray,
    event_ticker: list[str],
) -> dict[str, Any]:
    """Ticker, strike type, strikes and YES sub-title of every market (the ``Market`` fields)."""
    e = market_event
    lo = bucket_low(level[e], step[e], k[e], market_outcome)
    hi = lo + step[e]
    ticker: list[str] = []
    strike_type: list[str | None] = []
    sub_title: list[str] = []
    floor = np.full(len(e), np.nan)
    cap = np.full(len(e), np.nan)
    rows = zip(structure[e].tolist(), e.tolist(), market_outcome.tolist(), strict=True)
    for m, (kind, ev, j) in enumerate(rows):
        base = event_ticker[ev]
        if kind == BINARY:
            ticker.append(f"{base}-Y")
            strike_type.append(None)
            sub_title.append("Yes")
        elif kind == LADDER or j == k[ev] - 1:  # above a threshold: a ladder strike, a top tail
            ticker.append(f"{base}-T{lo[m]:g}")
            strike_type.append("greater")
            floor[m] = lo[m]
            sub_title.append(f"Above {lo[m]:g}")
        elif j == 0:
            ticker.append(f"{base}-T{hi[m]:g}")
            strike_type.append("less")
            cap[m] = hi[m]
            sub_title.append(f"Below {hi[m]:g}")
        else:  # Kalshi's between is inclusive at both ends: the range stops a tick short
            top = round(hi[m] - VALUE_TICK, VALUE_DECIMALS)
            ticker.append(f"{base}-B{lo[m] + step[ev] / 2:g}")
            strike_type.append("between")
            floor[m], cap[m] = lo[m], top
            sub_title.append(f"{lo[m]:g} to {top:g}")
    return {
        "ticker": ticker,
        "strike_type": strike_type,
        "floor_strike": floor,
        "cap_strike": cap,
        "yes_sub_title": sub_title,
    }
