"""One simulation run: every array the JSON documents are rendered from, for one seed.

Each component draws from its own child of ``SeedSequence(seed)``, so the listing does not
change when, say, the trade model does, and candles or books can be rebuilt in any order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kalshi_lab.params import DataParams, SyntheticParams
from kalshi_lab.simulator.books import Books, build_books
from kalshi_lab.simulator.candles import Candles, build_candles
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.latent import Latent, simulate_latent
from kalshi_lab.simulator.quotes import Quotes, simulate_quotes
from kalshi_lab.simulator.summary import MarketStats, market_stats
from kalshi_lab.simulator.trades import Trades, simulate_trades
from kalshi_lab.simulator.universe import Universe, build_universe

logger = logging.getLogger(__name__)

STREAMS = ("universe", "latent", "quotes", "trades", "stats", "books", "pages")


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named component; the same every time it is asked for."""
    return np.random.default_rng(
        np.random.SeedSequence(seed).spawn(len(STREAMS))[STREAMS.index(name)]
    )


@dataclass(frozen=True)
class Simulation:
    data: DataParams
    universe: Universe
    grid: MarketGrid
    latent: Latent
    quotes: Quotes
    trades: Trades
    stats: MarketStats

    @property
    def syn(self) -> SyntheticParams:
        assert self.data.synthetic is not None
        return self.data.synthetic

    def rng(self, name: str) -> np.random.Generator:
        return stream(self.syn.seed, name)

    @cached_property
    def yes(self) -> np.ndarray:
        """Per market: True when it resolves YES: its bucket is the event's winner or, for a
        ladder strike, the winner is its bucket or one above (every strike below a YES is YES)."""
        u = self.universe
        winner = self.latent.winner[u.market_event]
        return np.where(u.pays_above, winner >= u.market_outcome, winner == u.market_outcome)

    def candles(self, period_hours: int) -> Candles:
        return build_candles(self.grid, self.quotes, self.trades, self.universe.t0, period_hours)

    def books(self) -> Books:
        return build_books(
            self.grid,
            self.quotes,
            self.universe.t0,
            self.data.orderbook_snapshots_per_day,
            self.syn,
            self.rng("books"),
        )


def simulate(data: DataParams) -> Simulation:
    """Draw everything for ``data``, each component from its own seeded stream."""
    syn = data.synthetic
    assert syn is not None, "data.synthetic is required by the simulator"
    universe = build_universe(data, stream(syn.seed, "universe"))
    grid = MarketGrid.of(universe)
    latent = simulate_latent(universe, grid, syn, stream(syn.seed, "latent"))
    quotes = simulate_quotes(latent.prob, grid, universe, syn, stream(syn.seed, "quotes"))
    trades = simulate_trades(
        latent.prob, grid, quotes, universe.t0, syn, stream(syn.seed, "trades")
    )
    stats = market_stats(
        universe, grid, quotes, trades, syn.depth_contracts, stream(syn.seed, "stats")
    )
    logger.info(
        "simulated %d events, %d markets, %d market-hours, %d trades",
        universe.n_events,
        len(universe.ticker),
        grid.size,
        trades.size,
    )
    return Simulation(
        data=data,
        universe=universe,
        grid=grid,
        latent=latent,
        quotes=quotes,
        trades=trades,
        stats=stats,
    )
