"""The hourly grid of all markets, flattened: one segment per market, hours in time order.

Prices, quotes and trades are arrays over this grid, so a computation over all markets and all
hours is one numpy expression. Element ``i`` is market ``market[i]`` during the UTC hour that
starts at ``t0 + 3600 * hour[i]``, the ``pos[i]``-th hour since that market opened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.simulator.segments import positions, starts_of
from kalshi_lab.simulator.universe import Universe


@dataclass(frozen=True)
class MarketGrid:
    lengths: np.ndarray  # hours each market is open
    starts: np.ndarray  # offset of each market's first hour
    market: np.ndarray  # element -> market
    pos: np.ndarray  # element -> hours since its market opened
    hour: np.ndarray  # element -> hours since data.start 00:00 UTC

    @classmethod
    def of(cls, universe: Universe) -> MarketGrid:
        lengths = universe.life_h[universe.market_event]
        pos = positions(lengths)
        market = np.repeat(np.arange(len(lengths)), lengths)
        hour = universe.open_h[universe.market_event][market] + pos
        return cls(lengths=lengths, starts=starts_of(lengths), market=market, pos=pos, hour=hour)

    @property
    def size(self) -> int:
        return len(self.market)

    def elements(self, markets: np.ndarray) -> np.ndarray:
        """The elements of ``markets``, market after market, each in time order: the cost is
        that of the output, not of a pass over the whole grid."""
        lengths = self.lengths[markets]
        return np.repeat(self.starts[markets], lengths) + positions(lengths)

    @property
    def last(self) -> np.ndarray:
        """Element of each market's last open hour (the quote at close)."""
        return self.starts + self.lengths - 1

    def life_fraction(self) -> np.ndarray:
        """Share of its market's life already elapsed, in [0, 1), per element."""
        return self.pos / self.lengths[self.market]
