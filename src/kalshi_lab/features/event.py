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

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: the columns :func:`event_features` fills; the last two are context, not model inputs (in
#: the underlying's units, which differ by series)
EVENT_COLUMNS = (
    "EVENT_N_OPEN",
    "BRACKET_OVERROUND",
    "BRACKET_SHARE",
    "LADDER_Z",
    "LADDER_SD_STEPS",
    "LADDER_ARB_GAP",
    "LADDER_N_CROSSED",
    "ladder_mean",
    "ladder_sd",
)
#: an executable crossing smaller than this is float noise on a cent grid
_CROSSED = 1e-9


def _event_days(event: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One compact integer id per (event, day)."""
    span = int(day.max() - day.min()) + 1
    group = event * span + (day - day.min())
    if int(event.max() + 1) * span > 4 * len(group):
        group, _ = pd.factorize(group)  # sparse ids: compact them before bincount
    return group


def _bracket(group: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    """Bracket features of quoted bracket rows (``group`` and ``mid`` of those rows only)."""
    ids, slot = np.unique(group, return_inverse=True)
    total = np.bincount(slot, weights=mid, minlength=len(ids))[slot]
    n = np.bincount(slot, minlength=len(ids))[slot]
    valid = (n >= 2) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "BRACKET_OVERROUND": np.where(valid, total - 1.0, np.nan),
            "BRACKET_SHARE": np.where(valid, mid / total, np.nan),
        }


def _ladder(
    rows: np.ndarray,
    group: np.ndarray,
    strike: np.ndarray,
    yes_above: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    out: Mapping[str, np.ndarray],
) -> None:
    """Write the ladder features and context of quoted ladder strikes into ``out`` at
    ``rows``; the other arguments are arrays of those rows only. Everything that is one value
    per ladder-day (its distribution, spacing, crossings) is computed once per ladder-day and
    gathered; only the strike's own distance and gap are per row."""
    order = np.lexsort((strike, group))  # by event-day, strikes ascending
    target, g, x = rows[order], group[order], strike[order]
    up = yes_above[order]
    b, a = bid[order], ask[order]
    if not up.all():  # everything in "above" terms: P(V above x), and the prices of that claim
        b, a = np.where(up, b, 1.0 - a), np.where(up, a, 1.0 - b)
    p = (b + a) / 2.0
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    count = np.diff(np.r_[first, len(g)])
    slot = np.repeat(np.arange(len(first)), count)  # the row's ladder-day
    last = first + count - 1
    pair = g[1:] == g[:-1]  # (k, k+1) adjacent strikes of one ladder-day
    # buckets: above each strike up to the next one (the last: the upper tail), and the
    # lower tail below each ladder-day's first strike; negative ones (a crossed ladder) are 0
    q = np.maximum(p - np.append(np.where(pair, p[1:], 0.0), 0.0), 0.0)
    q_low = np.maximum(1.0 - p[first], 0.0)
    spacing = (x[last] - x[first]) / np.maximum(count - 1, 1)
    upper = np.append(np.where(pair, x[1:], x[:-1] + spacing[slot[:-1]]), x[-1] + spacing[-1])
    value, width = (x + upper) / 2.0, upper - x
    low_value = x[first] - spacing / 2.0
    n = len(first)
    mass = np.bincount(slot, weights=q, minlength=n) + q_low
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.bincount(slot, weights=q * value, minlength=n) + q_low * low_value) / mass
        value -= mean[slot]
        var = np.bincount(slot, weights=q * (value * value + width * width / 12.0), minlength=n)
        var += q_low * ((low_value - mean) ** 2 + spacing**2 / 12.0)
        sd = np.sqrt(var / mass)
        cross = np.where(pair, b[1:] - a[:-1], -np.inf)  # higher strike's bid, lower one's ask
        crossed = np.bincount(slot[:-1], weights=cross > _CROSSED, minlength=n)
        invalid = (count < 2) | ~(mass > 0)
        for per_day in (mean, sd, crossed):
            per_day[invalid] = np.nan
        # the mean's distance into YES from the strike, in sds: value now holds bucket - mean
        side = mean[slot] - x
        np.negative(side, out=side, where=~up)
        gap = np.maximum(np.r_[-np.inf, cross], np.r_[cross, -np.inf])
        gap[np.repeat(invalid, count)] = np.nan
        out["LADDER_Z"][target] = side / sd[slot]
        out["LADDER_SD_STEPS"][target] = (sd / spacing)[slot]
        out["LADDER_ARB_GAP"][target] = gap
        out["LADDER_N_CROSSED"][target] = crossed[slot]
        out["ladder_mean"][target] = mean[slot]
        out["ladder_sd"][target] = sd[slot]


def event_features(
    event: np.ndarray,
    day: np.ndarray,
    is_bracket: np.ndarray,
    is_ladder: np.ndarray,
    strike: np.ndarray,
    yes_above: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    out: Mapping[str, np.ndarray],
) -> None:
    """Fill ``out[name]`` (one float64 array per EVENT_COLUMNS name, all rows) per row.

    Per row: ``event`` an integer event id, ``day`` the as_of day number, whether the event is
    a bracket set or a ladder, ``strike`` a threshold's strike (NaN otherwise, see
    :func:`kalshi_lab.data.structure.threshold`), ``yes_above`` whether YES pays above it, and
    the YES ``bid`` / ``ask`` at as_of (NaN: none). Bracket and ladder features are computed on
    their rows only and written into the caller's columns: at millions of rows, fresh
    temporaries of every row are what costs time.
    """
    for name in EVENT_COLUMNS[1:]:
        out[name].fill(np.nan)
    if not len(day):
        return
    group = _event_days(event, day)
    out["EVENT_N_OPEN"][:] = np.bincount(group)[group]
    quoted = ~(np.isnan(bid) | np.isnan(ask))
    rows = np.flatnonzero(quoted & is_bracket)
    for name, values in _bracket(group[rows], (bid[rows] + ask[rows]) / 2.0).items():
        out[name][rows] = values
    rows = np.flatnonzero(quoted & is_ladder & ~np.isnan(strike))
    if len(rows):
        _ladder(rows, group[rows], strike[rows], yes_above[rows], bid[rows], ask[rows], out)
