"""Where every random draw of a simulation comes from, so that chunks of events draw exactly
what one pass over the whole universe draws.

Each component draws from its own stream (:func:`stream`), in a fixed sequence of calls, each
call covering every event in event order: the latent stream draws the events' priors, their
winners, then every outcome's signal path; the quotes stream the markets' liquidity, their own
noise, the ladders' common noise, the spreads; and so on. A few of these calls are small (one
value per event or market): they are drawn here, whole. For each large one this module places
a generator of its own where that call starts in its stream, by making (and discarding) every
draw the calls before it make: simulating consecutive chunks of events in order, each chunk
then takes the next values of each call, as one pass over all events would. This holds because
numpy's generators keep nothing between calls but their bit generator's state (tested in
tests/test_simulator_partitions.py): the split changes nothing, only where a chunk's values
end. The discarded draws cost a fraction of the simulation, and no memory: they are made a
block at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kalshi_lab.params import DataParams, SyntheticParams
from kalshi_lab.simulator.books import DECAY_RANGE, DEPTH_SHAPE, BookDraws, snapshot_hours
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.latent import prior_and_winner
from kalshi_lab.simulator.quotes import QuoteDraws, draw_liquidity
from kalshi_lab.simulator.summary import touch_depths
from kalshi_lab.simulator.trades import (
    DAY_SHOCK_SHAPE,
    US_PER_HOUR,
    TradeDraws,
    arrival_rate,
    market_days,
)
from kalshi_lab.simulator.universe import Universe

STREAMS = ("universe", "latent", "quotes", "trades", "stats", "books", "pages")
#: values drawn at a time when a generator is moved past a call's draws
SKIP_BLOCK = 1 << 20

Draw = Callable[[np.random.Generator, int], object]


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named component; the same every time it is asked for."""
    return np.random.default_rng(
        np.random.SeedSequence(seed).spawn(len(STREAMS))[STREAMS.index(name)]
    )


@dataclass(frozen=True)
class Draws:
    """The small draws, made for every event or market, and a generator per large call.

    The generators move on as chunks are simulated: chunks must be simulated once each, in
    event order (:func:`kalshi_lab.simulator.simulate.simulate_chunks`).
    """

    prior: np.ndarray  # per outcome row of every event (its ``n_outcomes`` rows, end to end)
    winner: np.ndarray  # per event
    depth: np.ndarray  # per market: (bid, ask) contracts at the touch at the snapshot
    paths: np.random.Generator  # every outcome's signal path
    paths_sum: np.ndarray  # (1,): the running sum of the signal increments drawn so far
    quotes: QuoteDraws  # liquidity for every market
    trades: TradeDraws
    books: BookDraws
    pages: np.random.Generator  # where a page of trades repeats the previous page's last trade


def _skip(rng: np.random.Generator, draw: Draw, total: int) -> None:
    """Move ``rng`` past ``total`` values of ``draw``, a block at a time."""
    for done in range(0, total, SKIP_BLOCK):
        draw(rng, min(SKIP_BLOCK, total - done))


def _starts(rng: np.random.Generator, calls: list[tuple[Draw, int]]) -> list[np.random.Generator]:
    """A generator at the start of each of ``calls`` (draw, values), made one after the other
    from ``rng``'s position, and ``rng`` itself, moved past them all: where the next call
    starts."""
    starts = []
    for draw, total in calls:
        starts.append(copy.deepcopy(rng))
        _skip(rng, draw, total)
    return [*starts, rng]


def _normal(rng: np.random.Generator, n: int) -> object:
    return rng.standard_normal(n)


def _random(rng: np.random.Generator, n: int) -> object:
    return rng.random(n)


def place(data: DataParams, universe: Universe, chunks: list[np.ndarray]) -> Draws:
    """Draw the small calls and place a generator at the start of every large one.

    ``chunks`` are the consecutive event ranges the simulation will run in: the trades' day
    shocks and arrivals are drawn (and discarded) chunk by chunk here, since how many values
    the arrivals take depends on the rates.
    """
    syn = data.synthetic
    assert syn is not None, "data.synthetic is required by the simulator"
    u = universe
    listed, life = u.listed, u.life_h

    latent = stream(syn.seed, "latent")
    prior, winner = prior_and_winner(u.n_outcomes, latent)

    quotes = stream(syn.seed, "quotes")
    liquidity = draw_liquidity(len(u.ticker), quotes)
    own, common, spread = _starts(
        quotes, [(_normal, int((listed * life).sum())), (_normal, int(life[u.ladder].sum()))]
    )

    trades = stream(syn.seed, "trades")
    days = int((listed * market_days(u.open_h, u.close_h)).sum())
    shock, arrivals = _starts(trades, [(_gamma(DAY_SHOCK_SHAPE), days)])
    arrivals = copy.deepcopy(arrivals)  # ``trades`` moves on, past the arrivals
    n_trades = _count_trades(universe, chunks, liquidity, syn, copy.deepcopy(shock), trades)
    informed, longshot, offset, size, opens, uuid = _starts(
        trades,
        [
            (_random, n_trades),
            (_random, n_trades),
            (lambda g, n: g.integers(0, US_PER_HOUR, n), n_trades),
            (_random, n_trades),
            (_random, n_trades),
        ],
    )

    books = stream(syn.seed, "books")
    step = snapshot_hours(data.orderbook_snapshots_per_day)
    snapshots = int((listed * (_ceil_div(u.close_h, step) - _ceil_div(u.open_h, step))).sum())
    levels = snapshots * syn.book_levels
    decay: Draw = lambda g, n: g.uniform(*DECAY_RANGE, n)  # noqa: E731
    yes_decay, yes_depth, no_decay, no_depth = _starts(
        books, [(decay, levels), (_gamma(DEPTH_SHAPE), snapshots), (decay, levels)]
    )
    return Draws(
        prior=prior,
        winner=winner,
        depth=touch_depths(liquidity, syn.depth_contracts, stream(syn.seed, "stats")),
        paths=latent,
        paths_sum=np.zeros(1),
        quotes=QuoteDraws(liquidity=liquidity, own=own, common=common, spread=spread),
        trades=TradeDraws(
            day_shock=shock,
            arrivals=arrivals,
            informed=informed,
            longshot=longshot,
            offset=offset,
            size=size,
            opens=opens,
            uuid=uuid,
        ),
        books=BookDraws(
            yes_decay=yes_decay, yes_depth=yes_depth, no_decay=no_decay, no_depth=no_depth
        ),
        pages=stream(syn.seed, "pages"),
    )


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -(-a // b)


def _gamma(shape: float) -> Draw:
    """Draws of a gamma of ``shape``: its scale changes no draw, only what is made of it."""
    return lambda g, n: g.gamma(shape, 1.0, n)


def _count_trades(
    universe: Universe,
    chunks: list[np.ndarray],
    liquidity: np.ndarray,
    syn: SyntheticParams,
    shock: np.random.Generator,
    arrivals: np.random.Generator,
) -> int:
    """Trades of the whole universe, drawing (and discarding) its day shocks from ``shock``
    and its arrivals from ``arrivals`` chunk by chunk: ``arrivals`` ends past them."""
    total = 0
    for events in chunks:
        chunk = universe.subset(events)
        grid = MarketGrid.of(chunk)
        rate = arrival_rate(grid, liquidity[universe.markets_of(events)], syn.trades_per_day, shock)
        total += int(arrivals.poisson(rate).sum())
    return total
