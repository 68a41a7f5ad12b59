"""Vectorised operations on ragged arrays: many series of different lengths stored end to end.

Every per-market (or per-outcome) hourly path in the simulator is one *segment* of a flat numpy
array. These helpers do per-segment work (positions, cumulative sums, AR(1)-type recursions)
without a Python loop over hours or markets, which is what lets ``n_markets`` reach 10,000.
"""

from __future__ import annotations

import numpy as np


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Offset of each segment's first element in the flat array."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def positions(lengths: np.ndarray) -> np.ndarray:
    """For every flat element, its position inside its own segment (0 at the segment start)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(starts_of(lengths), lengths)


def segmented_cumsum(
    values: np.ndarray, lengths: np.ndarray, running: np.ndarray | None = None
) -> np.ndarray:
    """Cumulative sum restarted at every segment start; empty segments are allowed anywhere.

    Computed as one running sum less its value at each segment start, so a float result
    depends, in its last bits, on the values before its segment. ``running`` (a 1-element
    array), when given, holds the running sum of the values before these and is moved past
    them: a flat array summed piece by piece then gives, bit for bit, what one pass gives
    (np.cumsum adds in order).
    """
    start = np.zeros(1, dtype=np.asarray(values).dtype) if running is None else running
    total = np.cumsum(np.concatenate((start, values)))  # total[i] = sum of values[:i]
    if running is not None:
        running[0] = total[-1]
    return total[1:] - np.repeat(total[starts_of(lengths)], lengths)


def linear_recurrence(coef: np.ndarray, innov: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``y[t] = coef[t] * y[t-1] + innov[t]`` inside each segment, ``y = innov`` at its start.

    Solved by a doubling scan (Hillis-Steele): log2(longest segment) vectorised passes instead
    of one Python step per hour. ``coef`` is forced to 0 at segment starts so that no value
    leaks from one segment into the next.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    a = np.array(coef, dtype=np.float64, copy=True)
    y = np.array(innov, dtype=np.float64, copy=True)
    a[starts_of(lengths)[lengths > 0]] = 0.0
    longest = int(lengths.max(initial=0))
    step = 1
    while step < longest:
        y[step:] = y[step:] + a[step:] * y[:-step]
        a[step:] = a[step:] * a[:-step]
        step *= 2
    return y


def group_bounds(keys: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal consecutive ``keys`` (a sorted grouping key)."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate(([0], change)).astype(np.int64)
