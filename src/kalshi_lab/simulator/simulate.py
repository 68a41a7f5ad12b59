"""One simulation run: every array the JSON documents are rendered from, for one seed.

Each component draws from its own child of ``SeedSequence(seed)``, so the listing does not
change when, say, the trade model does. The universe (the listing and its schedules) is drawn
first, whole; the rest, which grows with market-hours, is simulated in chunks of consecutive
events (:func:`simulate_chunks`), each drawing exactly the values one pass over every event
would (:mod:`kalshi_lab.simulator.draws`): memory is bounded by a chunk, and the data are the
same whatever the chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from kalshi_lab.params import DataParams, SyntheticParams
from kalshi_lab.simulator.books import Books, build_books
from kalshi_lab.simulator.candles import Candles, build_candles
from kalshi_lab.simulator.draws import Draws, place, stream
from kalshi_lab.simulator.grid import MarketGrid
from kalshi_lab.simulator.latent import Latent, simulate_latent
from kalshi_lab.simulator.paging import TRADE_PAGE_REPEAT_SHARE, TRADES_PAGE_LIMIT, page_slices
from kalshi_lab.simulator.quotes import QuoteDraws, Quotes, simulate_quotes
from kalshi_lab.simulator.segments import starts_of
from kalshi_lab.simulator.summary import MarketStats, market_stats
from kalshi_lab.simulator.trades import Trades, simulate_trades
from kalshi_lab.simulator.universe import Universe, build_universe

logger = logging.getLogger(__name__)

#: outcome-hours (the latent paths, the largest arrays) simulated at a time: a few hundred MB
CHUNK_OUTCOME_HOURS = 1 << 21

Pages = list[tuple[int, int]]


@dataclass(frozen=True)
class Simulation:
    """Some events (all, a chunk, or one raw partition's) and everything drawn for them."""

    data: DataParams
    universe: Universe
    grid: MarketGrid
    latent: Latent
    quotes: Quotes
    trades: Trades
    stats: MarketStats
    books: Books
    trade_pages: list[Pages]  # per market: [start, stop) of each page of its tape, newest first

    @property
    def syn(self) -> SyntheticParams:
        assert self.data.synthetic is not None
        return self.data.synthetic

    @cached_property
    def yes(self) -> np.ndarray:
        """Per market: True when it resolves YES: its bucket is the event's winner or, for a
        ladder strike, the winner is its bucket or one above (every strike below a YES is YES)."""
        u = self.universe
        winner = self.latent.winner[u.market_event]
        return np.where(u.pays_above, winner >= u.market_outcome, winner == u.market_outcome)

    def candles(self, period_hours: int) -> Candles:
        return build_candles(self.grid, self.quotes, self.trades, self.universe.t0, period_hours)

    def subset(self, events: np.ndarray) -> Simulation:
        """The simulation of ``events`` (ascending local indices) alone, renumbered from 0."""
        u, grid = self.universe, self.grid
        markets = u.markets_of(events)
        sub = u.subset(events)
        sub_grid = MarketGrid.of(sub)
        elements = grid.elements(markets)
        local = np.full(len(u.ticker), -1)
        local[markets] = np.arange(len(markets))
        trade_rows = np.flatnonzero(local[self.trades.market] >= 0)
        book_rows = np.flatnonzero(local[self.books.market] >= 0)
        trade_market = local[self.trades.market[trade_rows]]
        trade_elem = (
            sub_grid.starts[trade_market]
            + self.trades.elem[trade_rows]
            - grid.starts[self.trades.market[trade_rows]]
        )
        return Simulation(
            data=self.data,
            universe=sub,
            grid=sub_grid,
            latent=Latent(
                winner=self.latent.winner[events],
                prior=self.latent.prior[markets],
                prob=self.latent.prob[elements],
            ),
            quotes=Quotes(
                liquidity=self.quotes.liquidity[markets],
                bid=self.quotes.bid[elements],
                ask=self.quotes.ask[elements],
            ),
            trades=_take(self.trades, trade_rows, market=trade_market, elem=trade_elem),
            stats=_take(self.stats, markets),
            books=_take(self.books, book_rows, market=local[self.books.market[book_rows]]),
            trade_pages=[self.trade_pages[m] for m in markets.tolist()],
        )


def _take(table: Any, rows: np.ndarray, **replaced: np.ndarray) -> Any:
    """``table`` (a dataclass of equally long arrays) at ``rows``, some fields ``replaced``."""
    return type(table)(
        **{
            f.name: replaced[f.name] if f.name in replaced else getattr(table, f.name)[rows]
            for f in fields(table)
        }
    )


def chunks_of(universe: Universe, outcome_hours: int) -> list[np.ndarray]:
    """Consecutive event ranges of at most ``outcome_hours`` latent values (one event may be
    more, alone): the chunks a simulation runs in."""
    size = np.cumsum(universe.n_outcomes * universe.life_h)
    bounds, first = [0], 0
    while first < universe.n_events:
        budget = (size[first - 1] if first else 0) + outcome_hours
        first = max(int(np.searchsorted(size, budget, side="right")), first + 1)
        bounds.append(first)
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _simulate_chunk(
    data: DataParams, universe: Universe, events: np.ndarray, draws: Draws
) -> Simulation:
    """Everything for the consecutive ``events``, drawing the next values from ``draws``."""
    syn = data.synthetic
    assert syn is not None
    markets = universe.markets_of(events)
    chunk = universe.subset(events)
    grid = MarketGrid.of(chunk)
    first_row = int(starts_of(universe.n_outcomes)[events[0]])
    prior = draws.prior[first_row : first_row + int(chunk.n_outcomes.sum())]
    latent = simulate_latent(
        chunk, grid, syn, prior, draws.winner[events], draws.paths, draws.paths_sum
    )
    quote_draws = QuoteDraws(
        liquidity=draws.quotes.liquidity[markets],
        own=draws.quotes.own,
        common=draws.quotes.common,
        spread=draws.quotes.spread,
    )
    quotes = simulate_quotes(latent.prob, grid, chunk, syn, quote_draws)
    trades = simulate_trades(latent.prob, grid, quotes, chunk.t0, syn, draws.trades)
    per_market = np.bincount(trades.market, minlength=len(chunk.ticker)).tolist()
    return Simulation(
        data=data,
        universe=chunk,
        grid=grid,
        latent=latent,
        quotes=quotes,
        trades=trades,
        stats=market_stats(chunk, grid, quotes, trades, draws.depth[markets]),
        books=build_books(
            grid, quotes, chunk.t0, data.orderbook_snapshots_per_day, syn, draws.books
        ),
        trade_pages=[
            page_slices(n, TRADES_PAGE_LIMIT, TRADE_PAGE_REPEAT_SHARE, draws.pages)
            for n in per_market
        ],
    )


def simulate_chunks(
    data: DataParams, outcome_hours: int | None = None
) -> tuple[Universe, Iterator[tuple[np.ndarray, Simulation]]]:
    """The universe, and its simulation chunk by chunk: (events, their simulation), in event
    order, each chunk at most ``outcome_hours`` latent values (:func:`chunks_of`; by default
    :data:`CHUNK_OUTCOME_HOURS`)."""
    syn = data.synthetic
    assert syn is not None, "data.synthetic is required by the simulator"
    universe = build_universe(data, stream(syn.seed, "universe"))
    chunks = chunks_of(universe, outcome_hours or CHUNK_OUTCOME_HOURS)
    draws = place(data, universe, chunks)

    def run() -> Iterator[tuple[np.ndarray, Simulation]]:
        for events in chunks:
            yield events, _simulate_chunk(data, universe, events, draws)

    return universe, run()


def simulate(data: DataParams) -> Simulation:
    """Draw everything for ``data`` at once: every event in one chunk."""
    universe, chunks = simulate_chunks(data, outcome_hours=np.iinfo(np.int64).max)
    [(_, sim)] = list(chunks)
    logger.info(
        "simulated %d events, %d markets, %d market-hours, %d trades",
        universe.n_events,
        len(universe.ticker),
        sim.grid.size,
        sim.trades.size,
    )
    return sim
