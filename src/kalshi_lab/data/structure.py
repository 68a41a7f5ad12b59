"""Event structure from the API's own fields: a threshold ladder, a bracket set, a single
binary, or other.

Kalshi describes what a market's YES pays on with ``strike_type`` and its strikes (Market
object, docs.kalshi.com/api-reference/market/get-market): ``greater`` / ``greater_or_equal``
with a ``floor_strike`` ("above X"), ``less`` / ``less_or_equal`` with a ``cap_strike``
("below X"), ``between`` with both (a range, inclusive: the strikes are the minimum and
maximum "expiration value that leads to a YES settlement"), and ``custom`` / ``functional`` /
``structured`` otherwise. The event says whether its markets exclude each other
(``mutually_exclusive``). An event is:

* a **ladder**: two or more thresholds on one underlying, all in one direction, at distinct
  strikes (``KXU3-25JUN-T4.0``, ``-T4.1``, ...). Cumulative: P(above 4.1) <= P(above 4.0), and
  several strikes resolve YES together. Most Kalshi economics and crypto events are ladders.
  The API names no underlying, so "one underlying" is read from the markets' ``yes_sub_title``
  being one text but for its numbers ("Above 4.1%", "Above 4.2%"): a spread event listing
  "Kansas City wins by over 7.5" beside "Denver wins by over 3.5" has thresholds on two
  margins, and a risk limit that took them for one ladder would miss that both can lose.
* a **bracket** set: two or more ranges that do not overlap (``between`` ranges, ``-B4.15``,
  and open tails ``less`` / ``greater``): at most one resolves YES (weather highs).
* a **binary**: a single listed YES/NO market (most sports and politics questions).
* **other**: anything whose payoff is not one of those: a scalar market, a multivariate
  (combo) market, a ``functional`` or ``structured`` strike, or several markets with ``custom``
  strikes, missing strikes or overlapping ranges (a candidate list, an exact score).

The strikes decide, not the ``mutually_exclusive`` flag, because they define the payoff; where
the two disagree (a ladder flagged exclusive, ranges flagged not exclusive) the count is
logged. Classification is of the markets listed: a lone strike of a ladder fetched without its
siblings is a binary here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

LADDER, BRACKET, BINARY, OTHER = "ladder", "bracket", "binary", "other"
STRUCTURES = (LADDER, BRACKET, BINARY, OTHER)
#: structures whose markets pay 0 or 1 dollar on a known region of one underlying: the ones a
#: strategy trades and whose event risk is computed from the strikes
TRADED = (LADDER, BRACKET, BINARY)

#: the columns that carry a market's place in its event, in the markets table, the feature
#: table, predictions and signals
STRUCTURE_COLUMNS = ("structure", "strike_type", "floor_strike", "cap_strike")

ABOVE = ("greater", "greater_or_equal")  # YES when the value is above floor_strike
BELOW = ("less", "less_or_equal")  # YES when the value is below cap_strike
RANGE = "between"  # YES when floor_strike <= value <= cap_strike
#: strike types whose payoff is not a 0/1 bet on a region of one value
UNSTRUCTURED = ("functional", "structured")


@dataclass(frozen=True)
class YesRegion:
    """Per market, the values of the underlying for which YES pays: from ``lo`` to ``hi``
    (-inf / +inf for an open end), each end included or not. All NaN where the market has no
    region (a custom strike, no strike)."""

    lo: np.ndarray
    hi: np.ndarray
    lo_closed: np.ndarray
    hi_closed: np.ndarray

    @property
    def known(self) -> np.ndarray:
        return ~(np.isnan(self.lo) | np.isnan(self.hi))

    def pays(self, value: np.ndarray) -> np.ndarray:
        """(markets, values) bool: does YES pay when the underlying settles at ``value``."""
        v = np.asarray(value, dtype=float)[None, :]
        lo, hi = self.lo[:, None], self.hi[:, None]
        above_lo = np.where(self.lo_closed[:, None], v >= lo, v > lo)
        below_hi = np.where(self.hi_closed[:, None], v <= hi, v < hi)
        return above_lo & below_hi


def yes_region(strike_type: np.ndarray, floor: np.ndarray, cap: np.ndarray) -> YesRegion:
    """The YES region of each market from its ``strike_type``, ``floor_strike`` and
    ``cap_strike`` (NaN: absent); a strike type without the strike it needs has none."""
    kind = pd.Series(strike_type, dtype=object).to_numpy()
    floor = np.asarray(floor, dtype=float)
    cap = np.asarray(cap, dtype=float)
    above = np.isin(kind, ABOVE) & ~np.isnan(floor)
    below = np.isin(kind, BELOW) & ~np.isnan(cap)
    between = (kind == RANGE) & ~np.isnan(floor) & ~np.isnan(cap) & (floor <= cap)
    lo = np.select([above, below, between], [floor, -np.inf, floor], np.nan)
    hi = np.select([above, below, between], [np.inf, cap, cap], np.nan)
    return YesRegion(
        lo=lo,
        hi=hi,
        lo_closed=(kind == "greater_or_equal") | between,
        hi_closed=(kind == "less_or_equal") | between,
    )


def threshold(strike_type: np.ndarray, floor: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per market, the strike of a threshold ("above X" or "below X"); NaN for anything else."""
    kind = pd.Series(strike_type, dtype=object).to_numpy()
    return np.select(
        [np.isin(kind, ABOVE), np.isin(kind, BELOW)],
        [np.asarray(floor, dtype=float), np.asarray(cap, dtype=float)],
        np.nan,
    )


def _disjoint(event: np.ndarray, region: YesRegion) -> np.ndarray:
    """Per market, whether no other market of its event overlaps its YES region."""
    order = np.lexsort((region.hi, region.lo, event))
    e, lo, hi = event[order], region.lo[order], region.hi[order]
    lo_closed, hi_closed = region.lo_closed[order], region.hi_closed[order]
    same = e[1:] == e[:-1]
    # sorted by lower end: a range overlaps the one before it when it starts before that one
    # ends, or at its end with both ends included
    overlap = same & ((lo[1:] < hi[:-1]) | ((lo[1:] == hi[:-1]) & lo_closed[1:] & hi_closed[:-1]))
    clash = np.zeros(len(order), dtype=bool)
    clash[1:] |= overlap
    clash[:-1] |= overlap
    out = np.empty(len(order), dtype=bool)
    out[order] = ~clash
    return out


def classify(markets: pd.DataFrame) -> np.ndarray:
    """The structure of each market's event (one of STRUCTURES), per row of ``markets``.

    ``markets`` has ``event_ticker``, ``mutually_exclusive`` (its event's flag), ``market_type``,
    ``strike_type``, ``floor_strike``, ``cap_strike``, ``yes_sub_title`` and ``multivariate`` (a
    combo market, from ``mve_collection_ticker`` / ``mve_selected_legs``). What disagrees with
    the events' own ``mutually_exclusive`` is logged.
    """
    n = len(markets)
    if not n:
        return np.empty(0, dtype=object)
    event = pd.factorize(markets["event_ticker"].astype(str))[0]
    kind = markets["strike_type"].to_numpy(dtype=object)
    floor = markets["floor_strike"].to_numpy(dtype=float)
    cap = markets["cap_strike"].to_numpy(dtype=float)
    region = yes_region(kind, floor, cap)
    strike = threshold(kind, floor, cap)
    frame = pd.DataFrame(
        {
            "event": event,
            "unpriceable": (markets["market_type"].to_numpy(dtype=object) != "binary")
            | markets["multivariate"].to_numpy(dtype=bool)
            | np.isin(kind, UNSTRUCTURED),
            "above": np.isin(kind, ABOVE) & ~np.isnan(strike),
            "below": np.isin(kind, BELOW) & ~np.isnan(strike),
            "ranged": region.known,
            "strike": strike,
            "subject": _without_numbers(markets["yes_sub_title"]),
        }
    )
    frame["disjoint"] = _disjoint(event, region) & region.known
    by_event = frame.groupby("event", sort=False)
    size = by_event["event"].transform("size").to_numpy()
    distinct = by_event["strike"].transform("nunique").to_numpy() == size
    one_subject = by_event["subject"].transform("nunique", dropna=False).to_numpy() == 1

    def every(column: str) -> np.ndarray:
        return by_event[column].transform("all").to_numpy(dtype=bool)

    structure = np.select(
        [
            by_event["unpriceable"].transform("any").to_numpy(dtype=bool),
            size == 1,
            (every("above") | every("below")) & distinct & one_subject,
            every("ranged") & every("disjoint"),
        ],
        [OTHER, BINARY, LADDER, BRACKET],
        OTHER,
    ).astype(object)
    _log_summary(event, structure, markets["mutually_exclusive"].to_numpy(dtype=bool))
    return structure


#: a number as sub-titles write it: "-0.1", "4.1", "100,000"
_NUMBER = re.compile(r"[-+]?\d[\d.,]*")


def _without_numbers(titles: pd.Series) -> pd.Series:
    """Each title with its numbers replaced by ``#``; a missing one as an empty text."""
    return titles.fillna("").astype(str).str.replace(_NUMBER, "#", regex=True)


def _log_summary(event: np.ndarray, structure: np.ndarray, exclusive: np.ndarray) -> None:
    """One line of events and markets per structure; a WARNING where the flag disagrees."""
    first = np.unique(event, return_index=True)[1]
    counts = ", ".join(
        f"{int((structure[first] == s).sum())} {s} ({int((structure == s).sum())} markets)"
        for s in STRUCTURES
    )
    log.info("markets: events by structure: %s", counts)
    for what, mask in (
        ("ladders flagged mutually_exclusive", (structure[first] == LADDER) & exclusive[first]),
        ("bracket sets not flagged mutually_exclusive", (structure[first] == BRACKET) & ~exclusive[first]),
    ):  # fmt: skip
        if mask.any():
            log.warning(
                "markets: %d %s; classified by their strikes, which define the payoff",
                int(mask.sum()),
                what,
            )
