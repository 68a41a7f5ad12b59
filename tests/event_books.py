"""Markets tables of structured events and a brute-force loss of a book over underlying values:
what the exposure and risk tests share.

A table is classified as the parquet stage classifies it
(:func:`kalshi_lab.data.structure.classify`); tickers follow Kalshi's conventions (``-T4.0`` a
threshold of a ladder, ``-B78.5`` a range of a bracket set, ``-T78`` its open tail).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from kalshi_lab.data.structure import classify, yes_region
from kalshi_lab.execution.account import ContractPosition
from kalshi_lab.execution.decision import ContractOrder

NAN = float("nan")


def markets(*rows: tuple) -> pd.DataFrame:
    """A markets table of (ticker, event, strike_type, floor, cap) rows, with the columns the
    classification reads and its ``structure``."""
    frame = pd.DataFrame(
        rows, columns=["ticker", "event_ticker", "strike_type", "floor_strike", "cap_strike"]
    ).astype({"floor_strike": float, "cap_strike": float})
    frame = frame.assign(
        market_type="binary", multivariate=False, mutually_exclusive=False, yes_sub_title=None
    )
    return frame.assign(structure=classify(frame))


#: unemployment above 4.0 %, at or above 4.2 %: states (-inf, 4.0), 4.0, (4.0, 4.2), 4.2, (4.2, inf)
LADDER = markets(
    ("U-T4.0", "U", "greater", 4.0, NAN), ("U-T4.2", "U", "greater_or_equal", 4.2, NAN)
)
#: the New York high: below 78, 78 to 79, 80 to 81, above 81 (79 to 80 pays no YES)
BRACKETS = markets(
    ("N-T78", "N", "less", NAN, 78.0),
    ("N-B78.5", "N", "between", 78.0, 79.0),
    ("N-B80.5", "N", "between", 80.0, 81.0),
    ("N-T81", "N", "greater", 81.0, NAN),
)


def probe_values(table: pd.DataFrame, extra: Iterable[float] = ()) -> np.ndarray:
    """Values of the underlying that reach every state: each strike exactly, the midpoint of
    each pair of neighbours, one beyond either end, and ``extra``."""
    strikes = np.unique(np.concatenate([table["floor_strike"], table["cap_strike"]]))
    strikes = strikes[~np.isnan(strikes)]
    between = (strikes[1:] + strikes[:-1]) / 2
    return np.concatenate([strikes, between, [strikes[0] - 1, strikes[-1] + 1], list(extra)])


def brute_losses(
    table: pd.DataFrame,
    values: np.ndarray,
    positions: Iterable[ContractPosition] = (),
    buys: Iterable[ContractOrder] = (),
) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray]]:
    """(per value, what the book loses if the underlying settles there; per (ticker, side) of
    the table, where it loses): a position its basis less 100 a contract where it wins, a buy
    its cost bound where it loses; a market not in the table loses everywhere."""
    region = yes_region(table["strike_type"], table["floor_strike"], table["cap_strike"])
    loses = {}
    for ticker, yes in zip(table["ticker"], region.pays(values), strict=True):
        loses[ticker, "yes"], loses[ticker, "no"] = ~yes, yes
    everywhere = np.ones(len(values), dtype=bool)
    loss = np.zeros(len(values), dtype=np.int64)
    for p in positions:
        loss += p.basis_cents - 100 * p.contracts * ~loses.get((p.ticker, p.side), everywhere)
    for o in buys:
        loss += o.cost_bound_cents * loses.get((o.ticker, o.side), everywhere)
    return loss, loses


#: strikes on a grid: neighbours, shared ends
GRID = [x / 4 for x in range(-8, 9)]


@st.composite
def structured_event(draw) -> pd.DataFrame:
    """The markets table of event ``E``: a ladder (all above or all below, strict or not) or a
    bracket set (ranges between distinct grid values, open tails at either end)."""
    if draw(st.booleans()):
        strikes = draw(st.lists(st.sampled_from(GRID), min_size=2, max_size=6, unique=True))
        above = draw(st.booleans())
        kinds = ("greater", "greater_or_equal") if above else ("less", "less_or_equal")
        return markets(
            *[
                (f"E-T{x}", "E", draw(st.sampled_from(kinds)), *((x, NAN) if above else (NAN, x)))
                for x in strikes
            ]
        )
    ends = sorted(draw(st.lists(st.sampled_from(GRID), min_size=4, max_size=8, unique=True)))
    rows = [
        (f"E-B{i}", "E", "between", lo, hi)
        for i, (lo, hi) in enumerate(zip(ends[::2], ends[1::2], strict=False))
    ]
    if draw(st.booleans()):
        rows.append(("E-LO", "E", "less", NAN, ends[0]))
    if draw(st.booleans()):
        rows.append(("E-HI", "E", "greater", ends[-1], NAN))
    return markets(*rows)
