"""Worst-case loss of an event's positions and buys, from the payoff structure of its markets.

A Kalshi contract pays 100 cents to the side that wins and nothing to the other (Market object,
docs.kalshi.com/api-reference/market/get-market: ``strike_type``, ``floor_strike``,
``cap_strike`` say where YES pays on the event's underlying). The markets of one event settle on
the same value, so what they can lose together depends on the event's structure
(:mod:`kalshi_lab.data.structure`): on a **ladder** ("above 4.0", "above 4.2") YES on the low
strike and NO on the high one both win between the strikes and never lose together; on a
**bracket** set NO on two ranges never loses twice. Summing the costs overstates such books.

The underlying's states are enumerated exactly: every distinct strike of the event is a state of
its own (``greater`` and ``greater_or_equal`` differ there, ``between`` includes both ends) and
so is every open interval between consecutive strikes and each open tail. Every market's YES
region starts and ends at strikes, so each market's payoff is constant on each state; no value
is sampled and no float midpoint is formed. A **binary** event (one market) has two states: YES
wins, NO wins.

Per state, in integer cents, the loss is the money in minus the payout:

* a held position: its basis (cost + buy fees) less 100 per contract where its side wins;
* a buy not yet filled (a working buy, a buy being checked): its cost bound where its side loses
  and nothing where it wins. The buy may fill in full, in part or not at all; its loss in a
  state is linear in the contracts it gets, so the worst is one end: all of its bound where it
  loses, none where it wins (if it did not fill). Crediting an unfilled buy's payout would let
  a hedge that never fills free room for the bet it was meant to hedge.

Markets whose payoff is not known (an event of structure ``other``, a market missing from the
markets table, an event not learned) win in no state: every position there loses its basis in
every state, i.e. the event's loss is the sum of its costs, the conservative rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import BINARY, BRACKET, LADDER, YesRegion, yes_region
from kalshi_lab.execution.account import ContractPosition
from kalshi_lab.execution.decision import ContractOrder

logger = logging.getLogger(__name__)

#: structures whose states are enumerated from the strikes (a binary needs none)
STRUCK = (LADDER, BRACKET)
#: a binary event's two states, YES wins and NO wins: where its YES wins
BINARY_YES = np.array([True, False])
#: where a masked max starts (numpy needs one): below any loss, so that no state is no limit
_NO_STATE = np.iinfo(np.int64).min


@dataclass(frozen=True)
class _Event:
    """One event's number of states and, per market, the states where YES wins and where NO
    does (the complement: both kept, a buy is checked against one or the other)."""

    n_states: int
    wins: dict[str, tuple[np.ndarray, np.ndarray]]


class EventPayoffs:
    """Per event whose payoffs are known, which states of its underlying each side of each of
    its markets wins in; learned from the markets table (``kalshi_lab.data.tables.MARKETS``)."""

    def __init__(self, markets: pd.DataFrame | None = None) -> None:
        self._events: dict[str, _Event] = {}
        if markets is not None:
            self.learn(markets)

    def learn(self, markets: pd.DataFrame) -> None:
        """Learn, or relearn, every event listed in ``markets``.

        The listing replaces what was known of an event (a strike added to a ladder changes its
        states); an event now of structure ``other``, or a ladder or bracket with a market
        without a YES region, is forgotten: the conservative rule. A frame without a
        ``structure`` column (not the parquet table) teaches nothing.
        """
        if "structure" not in markets.columns:
            logger.info("risk: markets without a structure: every event's loss is its costs' sum")
            return
        events = markets["event_ticker"].astype(str).to_numpy(dtype=object)
        tickers = markets["ticker"].astype(str).to_numpy(dtype=object)
        structure = markets["structure"].to_numpy(dtype=object)
        region = yes_region(
            markets["strike_type"].to_numpy(dtype=object),
            markets["floor_strike"].to_numpy(dtype=float),
            markets["cap_strike"].to_numpy(dtype=float),
        )
        # an event is known when each of its markets is: a ladder or bracket market with a
        # YES region, or the market of a binary
        priced = (np.isin(structure, STRUCK) & region.known) | (structure == BINARY)
        known = pd.Series(priced).groupby(events).transform("all").to_numpy(dtype=bool)
        for event in set(events[~known].tolist()):
            self._events.pop(event, None)
        binary = known & (structure == BINARY)
        for event, ticker in zip(events[binary].tolist(), tickers[binary].tolist(), strict=True):
            self._events[event] = _Event(2, {ticker: (BINARY_YES, ~BINARY_YES)})
        struck = known & ~binary
        self._learn_struck(events[struck], tickers[struck], _rows(region, struck))
        logger.info(
            "risk: the event limit knows the payoffs of %d events (%d markets); %d markets of "
            "other or incomplete structure count their whole cost as lost",
            len(set(events[known].tolist())),
            int(known.sum()),
            int((~known).sum()),
        )

    def _learn_struck(self, events: np.ndarray, tickers: np.ndarray, region: YesRegion) -> None:
        """The states of ladder and bracket events and where each market's YES wins, for all
        events at once: per event its strikes, then one membership test per (market, state)."""
        if not len(events):
            return
        code, names = pd.factorize(events)
        n_events = len(names)
        # the event's strikes: the finite ends of its markets' regions, distinct and sorted
        strike_event = np.concatenate([code, code])
        strike = np.concatenate([region.lo, region.hi])
        finite = np.isfinite(strike)
        strike_event, strike = strike_event[finite], strike[finite]
        order = np.lexsort((strike, strike_event))
        strike_event, strike = strike_event[order], strike[order]
        new = np.ones(len(strike), dtype=bool)
        new[1:] = (strike_event[1:] != strike_event[:-1]) | (strike[1:] != strike[:-1])
        strike_event, strike = strike_event[new], strike[new]
        first = np.ones(len(strike), dtype=bool)
        first[1:] = strike_event[1:] != strike_event[:-1]
        below = np.where(first, -np.inf, np.roll(strike, 1))  # the strike before, in the event
        last = np.flatnonzero(np.append(first[1:], True))  # each event's highest strike
        # states: the open interval up to each strike, the strike itself, the open upper tail
        s_event = np.concatenate([strike_event, strike_event, strike_event[last]])
        s_lo = np.concatenate([below, strike, strike[last]])
        s_hi = np.concatenate([strike, strike, np.full(len(last), np.inf)])
        s_point = np.repeat([False, True, False], [len(strike), len(strike), len(last)])
        # in the order of the underlying: up to a strike, the strike, past it
        order = np.lexsort((s_point, s_hi, s_event))
        s_lo, s_hi, s_point = s_lo[order], s_hi[order], s_point[order]
        n_states = np.bincount(s_event, minlength=n_events)
        start = np.cumsum(n_states) - n_states
        # one row per (market, state of its event)
        per_market = n_states[code]
        market = np.repeat(np.arange(len(code)), per_market)
        offset = np.arange(len(market)) - np.repeat(np.cumsum(per_market) - per_market, per_market)
        state = start[code][market] + offset
        lo, hi = region.lo[market], region.hi[market]
        v_lo, v_hi = s_lo[state], s_hi[state]
        at_point = ((v_lo > lo) | ((v_lo == lo) & region.lo_closed[market])) & (
            (v_hi < hi) | ((v_hi == hi) & region.hi_closed[market])
        )
        in_interval = (v_lo >= lo) & (v_hi <= hi)
        pays = np.where(s_point[state], at_point, in_interval)
        wins: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(n_events)]
        ends = np.cumsum(per_market)[:-1]
        rows = zip(np.split(pays, ends), np.split(~pays, ends), strict=True)
        for c, ticker, row in zip(code.tolist(), tickers.tolist(), rows, strict=True):
            wins[c][ticker] = row
        for c, event in enumerate(names.tolist()):
            self._events[event] = _Event(int(n_states[c]), wins[c])

    def copy(self) -> EventPayoffs:
        """What this knows, to learn more apart: one learning of a whole markets table serves
        many runs (a backtest's four over 10,000 markets), each learning what it reads."""
        out = EventPayoffs()
        out._events = dict(self._events)  # an _Event is frozen and replaced, never changed
        return out

    def n_states(self, event: str) -> int:
        """States of the event's underlying (1 for an event whose payoffs are not known)."""
        known = self._events.get(event)
        return 1 if known is None else known.n_states

    def wins(self, ticker: str, event: str, side: str) -> np.ndarray:
        """(states,) bool: where ``side`` of ``ticker`` wins; nowhere when not known."""
        known = self._events.get(event)
        pair = None if known is None else known.wins.get(ticker)
        if pair is None:
            return np.zeros(self.n_states(event), dtype=bool)
        return pair[side == "no"]

    def loses(self, ticker: str, event: str, side: str) -> np.ndarray:
        """(states,) bool: where ``side`` of ``ticker`` loses; everywhere when not known."""
        known = self._events.get(event)
        pair = None if known is None else known.wins.get(ticker)
        if pair is None:
            return np.ones(self.n_states(event), dtype=bool)
        return pair[side == "yes"]

    def loss(
        self,
        event: str,
        positions: Iterable[ContractPosition] = (),
        buys: Iterable[ContractOrder] = (),
    ) -> EventLoss:
        """The event's loss per state from its held ``positions`` and unfilled ``buys``."""
        out = EventLoss(self, event)
        for pos in positions:
            cents = out.cents
            cents += pos.basis_cents
            cents -= (100 * pos.contracts) * self.wins(pos.ticker, event, pos.side)
        for order in buys:
            out.add(order.ticker, order.side, order.cost_bound_cents)
        return out


def _rows(region: YesRegion, mask: np.ndarray) -> YesRegion:
    """The regions of the markets selected by ``mask``."""
    return YesRegion(
        region.lo[mask], region.hi[mask], region.lo_closed[mask], region.hi_closed[mask]
    )


class EventLoss:
    """Per state of one event's underlying, the most its positions and buys lose, in cents.

    Most events a decision touches hold nothing yet: their states are only made (zeros) when
    something is counted, so that checking a buy there costs no array.
    """

    def __init__(self, payoffs: EventPayoffs, event: str) -> None:
        self.payoffs = payoffs
        self.event = event
        self._cents: np.ndarray | None = None  # None: nothing counted, no loss anywhere

    @property
    def cents(self) -> np.ndarray:
        """(states,) int64: the loss in each state."""
        if self._cents is None:
            self._cents = np.zeros(self.payoffs.n_states(self.event), dtype=np.int64)
        return self._cents

    @property
    def worst_cents(self) -> int:
        """The worst case: the largest loss over the states."""
        return int(self.cents.max())

    def room_cents(self, ticker: str, side: str, cap_cents: int) -> int:
        """The largest cost bound a buy of ``side`` of ``ticker`` may have so that no state it
        loses in ends above ``cap_cents`` (its loss is its bound there and nothing elsewhere:
        a buy that loses only where the event has room, a hedge, is not held back by the
        states where the event is at its cap)."""
        if self._cents is None:  # every side of a market loses somewhere
            return cap_cents
        loses = self.payoffs.loses(ticker, self.event, side)
        return cap_cents - int(self._cents.max(where=loses, initial=_NO_STATE))

    def add(self, ticker: str, side: str, bound_cents: int) -> None:
        """Count an unfilled buy: its cost bound in every state where its side loses."""
        loses = self.payoffs.loses(ticker, self.event, side)
        np.add(self.cents, bound_cents, out=self.cents, where=loses)
