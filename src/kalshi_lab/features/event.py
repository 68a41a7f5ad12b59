"""Event-level features, per event structure (:mod:`kalshi_lab.data.structure`).

All inputs are the quotes of the event's strikes that are open at ``as_of`` (a row exists only
before a market's close) and quoted there (bid and ask of the daily candle that ended at
as_of): every input is known at as_of.

* every structure: ``EVENT_N_OPEN``, the event's strikes open at as_of;
* a **bracket** set (exclusive ranges): the mids add up to about 1; the excess is the
  overround (``BRACKET_OVERROUND``) and a strike's mid over the sum (``BRACKET_SHARE``) its
  probability with the overround removed;
* a **ladder** (cumulative thresholds, "above X_i" or "below X_i"): a sum of mids means
  nothing there (P(above 4.0) already contains P(above 4.1)). Adjacent strikes give the
  implied distribution of the underlying: P(X_i < V <= X_i+1) = P(above X_i) - P(above X_i+1).
  Its mean and standard deviation (context columns ``ladder_mean`` / ``ladder_sd``, in the
  underlying's units) give the scale-free features ``LADDER_Z``, how many standard deviations
  the mean lies on the YES side of the strike, and ``LADDER_SD_STEPS``, the deviation in strike
  spacings. At executable prices a higher strike's "above" bid over a lower one's ask is a
  no-arbitrage gap (buy the lower, sell the higher, at least one pays $1):
  ``LADDER_ARB_GAP`` (the largest with an adjacent strike, > 0 before fees) and
  ``LADDER_N_CROSSED`` (the ladder's adjacent pairs so crossed).

Bracket and ladder features need two quoted strikes; with one they are NaN, so an event whose
other strikes are listed later gets the same features at as_of whatever it becomes.

The implied distribution: bucket probabilities are clipped at 0 where the ladder is not
monotone and renormalised; an inner bucket sits at its middle with the variance of a uniform
over it, a tail one strike spacing (the ladder's mean spacing) beyond the outer strike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import BRACKET, LADDER

_LADDER = ("LADDER_Z", "LADDER_SD_STEPS", "LADDER_ARB_GAP", "LADDER_N_CROSSED")
#: context, not model inputs: in the underlying's units, which differ by series
_LADDER_CONTEXT = ("ladder_mean", "ladder_sd")
#: an executable crossing smaller than this is float noise on a cent grid
_CROSSED = 1e-9


def _event_days(event: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One compact integer id per (event, day)."""
    span = int(day.max() - day.min()) + 1
    group = event * span + (day - day.min())
    if int(event.max() + 1) * span > 4 * len(group):
        group, _ = pd.factorize(group)  # sparse ids: compact them before bincount
    return group


def _bracket(group: np.ndarray, counted: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    total = np.bincount(group, weights=np.where(counted, mid, 0.0))[group]
    n = np.bincount(group, weights=counted.astype(np.float64))[group]
    valid = counted & (n >= 2) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = mid / total
    return {
        "BRACKET_OVERROUND": np.where(valid, total - 1.0, np.nan),
        "BRACKET_SHARE": np.where(valid, share, np.nan),
    }


def _ladder(
    group: np.ndarray,
    rows: np.ndarray,
    strike: np.ndarray,
    yes_above: np.ndarray,
    mid: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    n_rows: int,
) -> dict[str, np.ndarray]:
    """Ladder features of ``rows`` (quoted ladder strikes), NaN on every other row."""
    out = {name: np.full(n_rows, np.nan) for name in (*_LADDER, *_LADDER_CONTEXT)}
    if not len(rows):
        return out
    rows = rows[np.lexsort((strike[rows], group[rows]))]  # by event-day, strikes ascending
    g, x = group[rows], strike[rows]
    up = yes_above[rows]
    # everything in "above" terms: P(V above x), and the prices of that claim
    p = np.where(up, mid[rows], 1.0 - mid[rows])
    b = np.where(up, bid[rows], 1.0 - ask[rows])
    a = np.where(up, ask[rows], 1.0 - bid[rows])
    g_ids, first, count = np.unique(g, return_index=True, return_counts=True)
    slot = np.searchsorted(g_ids, g)  # the row's ladder-day, 0..len(g_ids)-1
    last = first + count - 1
    pair = g[1:] == g[:-1]  # (k, k+1) adjacent strikes of one ladder-day
    # buckets: above each strike up to the next one (the last: the upper tail), and the
    # lower tail below each ladder-day's first strike; negative ones (a crossed ladder) are 0
    above_next = np.append(np.where(pair, p[1:], 0.0), 0.0)
    q = np.maximum(p - above_next, 0.0)
    q_low = np.maximum(1.0 - p[first], 0.0)
    spacing = (x[last] - x[first]) / np.maximum(count - 1, 1)
    h = spacing[slot]
    upper = np.append(np.where(pair, x[1:], x[:-1] + h[:-1]), x[-1] + h[-1])
    value, width = (x + upper) / 2.0, upper - x
    low_value = x[first] - spacing / 2.0
    n = len(g_ids)
    mass = np.bincount(slot, weights=q, minlength=n) + q_low
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.bincount(slot, weights=q * value, minlength=n) + q_low * low_value) / mass
        spread = q * ((value - mean[slot]) ** 2 + width**2 / 12.0)
        var = np.bincount(slot, weights=spread, minlength=n)
        var += q_low * ((low_value - mean) ** 2 + spacing**2 / 12.0)
        sd = np.sqrt(var / mass)
        cross = b[1:] - a[:-1]  # the higher strike's bid over the lower one's ask
        gap = np.full(len(rows), -np.inf)
        gap[1:] = np.where(pair, cross, -np.inf)
        gap[:-1] = np.maximum(gap[:-1], np.where(pair, cross, -np.inf))
        crossed = np.bincount(slot[:-1], weights=pair & (cross > _CROSSED), minlength=n)
        side = np.where(up, mean[slot] - x, x - mean[slot])  # the mean's distance into YES
        valid = (count[slot] >= 2) & (mass[slot] > 0)
        values = {
            "LADDER_Z": side / sd[slot],
            "LADDER_SD_STEPS": sd[slot] / h,
            "LADDER_ARB_GAP": gap,
            "LADDER_N_CROSSED": crossed[slot],
            "ladder_mean": mean[slot],
            "ladder_sd": sd[slot],
        }
    for name, v in values.items():
        out[name][rows] = np.where(valid, v, np.nan)
    return out


def event_features(
    event: np.ndarray,
    day: np.ndarray,
    structure: np.ndarray,
    strike: np.ndarray,
    yes_above: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
) -> dict[str, np.ndarray]:
    """EVENT_N_OPEN, the bracket and the ladder features, and the ladder context, per row.

    Per row: ``event`` an integer event id, ``day`` the as_of day number, ``structure`` the
    event's structure, ``strike`` a threshold's strike (NaN otherwise, see
    :func:`kalshi_lab.data.structure.threshold`), ``yes_above`` whether YES pays above it, and
    the YES ``bid`` / ``ask`` at as_of (NaN: none).
    """
    n_rows = len(day)
    if not n_rows:
        names = ("EVENT_N_OPEN", "BRACKET_OVERROUND", "BRACKET_SHARE", *_LADDER, *_LADDER_CONTEXT)
        return {name: np.empty(0) for name in names}
    group = _event_days(event, day)
    mid = (bid + ask) / 2.0
    quoted = ~np.isnan(mid)
    out = {"EVENT_N_OPEN": np.bincount(group).astype(np.float64)[group]}
    out.update(_bracket(group, quoted & (structure == BRACKET), mid))
    ladder_rows = np.flatnonzero(quoted & (structure == LADDER) & ~np.isnan(strike))
    out.update(_ladder(group, ladder_rows, strike, yes_above, mid, bid, ask, n_rows))
    return out
