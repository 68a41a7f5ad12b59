"""Time-series operations on a panel stored as contiguous, time-ordered groups (one per market).

Each function is one vectorised numpy pass over all markets at once. Shifting the flat array and
masking by the position within the group replaces ``groupby().shift()``: a value never crosses
from one market into the next, which is what made per-market Python loops look necessary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Layout of the panel rows: row i is row ``pos[i]`` of a group with ``size[i]`` rows."""

    pos: np.ndarray  # int64, position within the group (0 = its first row)
    size: np.ndarray  # int64, number of rows of the row's group

    @classmethod
    def from_sizes(cls, sizes: np.ndarray) -> Groups:
        """Layout of groups of the given sizes, stored one after the other."""
        sizes = np.asarray(sizes, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        n = int(sizes.sum())
        pos = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
        return cls(pos=pos, size=np.repeat(sizes, sizes))

    @property
    def remaining(self) -> np.ndarray:
        """Rows after this one in the same group."""
        return self.size - 1 - self.pos


def lag(x: np.ndarray, k: int, groups: Groups) -> np.ndarray:
    """``x`` from ``k`` rows earlier in the same group; NaN where the group has no such row."""
    out = np.full(x.shape, np.nan)
    if k == 0:
        out[:] = x
    elif k < len(x):
        out[k:] = x[:-k]
    out[groups.pos < k] = np.nan
    return out


def lead(x: np.ndarray, k: int, groups: Groups) -> np.ndarray:
    """``x`` from ``k`` rows later in the same group; NaN where the group has no such row."""
    out = np.full(x.shape, np.nan)
    if k < len(x):
        out[:-k] = x[k:]
    out[groups.remaining < k] = np.nan
    return out


def last_true_index(flag: np.ndarray, groups: Groups) -> np.ndarray:
    """Index of the latest row at or before each row, in the same group, where ``flag`` holds.

    -1 where there is none. A running maximum of the flagged row numbers is a forward fill
    that needs no loop; indices from an earlier group are discarded by comparing with the
    row's group start.
    """
    idx = np.where(flag, np.arange(len(flag), dtype=np.int64), -1)
    np.maximum.accumulate(idx, out=idx)
    idx[idx < np.arange(len(flag), dtype=np.int64) - groups.pos] = -1
    return idx


def take_or_nan(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as float, NaN where ``idx`` is -1."""
    out = np.asarray(values, dtype=np.float64)[np.maximum(idx, 0)]
    out[idx < 0] = np.nan
    return out


def rolling_std(x: np.ndarray, window: int, groups: Groups, min_periods: int = 2) -> np.ndarray:
    """Sample std (ddof 1) of the last ``window`` values of the group, NaN-skipping.

    Equals ``groupby(...).rolling(window, min_periods).std()``. Two passes (mean, then squared
    deviations) over ``window`` shifted copies: numerically stable, unlike differences of a
    running sum of squares over millions of rows, and only ``window`` vector operations.
    """
    count = np.zeros(x.shape)
    total = np.zeros(x.shape)
    for k in range(window):
        v = lag(x, k, groups)
        ok = ~np.isnan(v)
        count += ok
        total += np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares = np.zeros(x.shape)
        for k in range(window):
            d = lag(x, k, groups) - mean
            squares += np.where(np.isnan(d), 0.0, d * d)
        std = np.sqrt(squares / (count - 1))
    std[count < min_periods] = np.nan
    return std
