"""Taker trades against the quotes: when they happen, who takes, at what price, how many.

Arrivals are Poisson per market-hour with rate ``trades_per_day / 24 x liquidity x activity x
day shock``: activity rises toward close, and the gamma day shock (mean 1) makes trading
bursty, so that quiet markets have whole days without a trade (candles with a null price). A
share ``informed_share`` of takers knows the latent probability and only trades with an edge
(buys YES at the ask when latent > ask, NO at 1 - bid when latent < bid); of the rest, a share
``longshot_taker_share`` buys the cheaper side (the longshot: a lottery ticket) and the others
the favourite. Over-priced longshots bought by takers are where real takers lose (Becker 2026).
A YES taker pays the ask; a NO taker sells YES at the bid, so yes_price = bid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.params import SyntheticParams
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.quotes import Quotes
from kalshi_lab.simulator.segments import group_bounds, segmented_cumsum

#: gamma shape of the per-market-day activity shock (mean 1); small = bursty, many empty days
DAY_SHOCK_SHAPE = 0.5
#: tail index and scale of trade sizes (Lomax): median ~4 contracts, mean ~17, rare thousands
SIZE_TAIL = 1.3
SIZE_SCALE = 5.0
MAX_SIZE = 25_000
#: probability that a trade opens new positions (raises open interest) rather than closing
OPEN_SHARE = 0.65
US_PER_HOUR = 3600 * 10**6


@dataclass(frozen=True)
class Trades:
    """All trades, sorted by market then time (ties: draw order)."""

    market: np.ndarray
    elem: np.ndarray  # grid element (market-hour) of the trade
    time_us: np.ndarray  # Unix microseconds
    yes_price: np.ndarray  # cents
    taker_yes: np.ndarray  # True: taker bought YES; False: taker bought NO
    count: np.ndarray  # whole contracts
    open_interest: np.ndarray  # contracts outstanding just after the trade
    uuid_bytes: np.ndarray  # (n, 16) uint8: a version-4 UUID per trade

    @property
    def size(self) -> int:
        return len(self.market)


@dataclass(frozen=True)
class TradeDraws:
    """A generator per draw of the trades, in the order they are made."""

    day_shock: np.random.Generator
    arrivals: np.random.Generator
    informed: np.random.Generator
    longshot: np.random.Generator
    offset: np.random.Generator
    size: np.random.Generator
    opens: np.random.Generator
    uuid: np.random.Generator


def market_days(open_h: np.ndarray, close_h: np.ndarray) -> np.ndarray:
    """UTC days a market open during hours ``open_h <= h < close_h`` trades on: one day shock
    each."""
    return (close_h - 1) // 24 - open_h // 24 + 1


def arrival_rate(
    grid: MarketGrid, liquidity: np.ndarray, trades_per_day: float, rng: np.random.Generator
) -> np.ndarray:
    """Expected trades per grid element, with a day shock per market-day drawn from ``rng``."""
    activity = (1 + 3 * grid.life_fraction() ** 2) / 2  # mean 1 over a market's life
    day_key = grid.market * (int(grid.hour.max(initial=0)) // 24 + 1) + grid.hour // 24
    bounds = group_bounds(day_key)
    shock = rng.gamma(DAY_SHOCK_SHAPE, 1 / DAY_SHOCK_SHAPE, len(bounds))
    shock = np.repeat(shock, np.diff(np.append(bounds, grid.size)))
    return trades_per_day / 24 * liquidity[grid.market] * activity * shock


def simulate_trades(
    latent: np.ndarray,
    grid: MarketGrid,
    quotes: Quotes,
    t0: int,
    syn: SyntheticParams,
    draws: TradeDraws,
) -> Trades:
    rate = arrival_rate(grid, quotes.liquidity, syn.trades_per_day, draws.day_shock)
    elem = np.repeat(np.arange(grid.size), draws.arrivals.poisson(rate))
    n = len(elem)
    informed = draws.informed.random(n) < syn.informed_share
    longshot = draws.longshot.random(n) < syn.longshot_taker_share
    offset = draws.offset.integers(0, US_PER_HOUR, n)
    size = np.ceil(SIZE_SCALE * ((1 - draws.size.random(n)) ** (-1 / SIZE_TAIL) - 1))
    opens = draws.opens.random(n) < OPEN_SHARE

    fair = 100 * latent[elem]
    bid, ask = quotes.bid[elem], quotes.ask[elem]
    cheap_yes = bid + ask < 100  # the YES side costs less than the NO side
    taker_yes = np.where(informed, fair > ask, longshot == cheap_yes)
    keep = ~informed | (fair > ask) | (fair < bid)  # an informed taker without an edge stays out
    order = np.lexsort((offset, elem))
    order = order[keep[order]]

    elem, taker_yes, offset, opens = elem[order], taker_yes[order], offset[order], opens[order]
    count = np.clip(size[order], 1, MAX_SIZE).astype(np.int64)
    market = grid.market[elem]
    per_market = np.bincount(market, minlength=len(grid.lengths))
    # open interest: a walk of +-count reflected at 0 (it never goes negative, moves <= count)
    flow = np.where(opens, count, -count)
    open_interest = np.abs(segmented_cumsum(flow, per_market))

    uuid = draws.uuid.integers(0, 256, (len(elem), 16), dtype=np.uint8)
    uuid[:, 6] = (uuid[:, 6] & 0x0F) | 0x40
    uuid[:, 8] = (uuid[:, 8] & 0x3F) | 0x80
    return Trades(
        market=market,
        elem=elem,
        time_us=(t0 + 3600 * grid.hour[elem]) * 10**6 + offset,
        yes_price=np.where(taker_yes, quotes.ask[elem], quotes.bid[elem]),
        taker_yes=taker_yes,
        count=count,
        open_interest=open_interest.astype(np.int64),
        uuid_bytes=uuid,
    )
