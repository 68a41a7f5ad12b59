"""Time-series operations on a panel stored as contiguous, time-ordered groups (one per market).

Each function is one vectorised numpy pass over all markets at once. Shifting the flat array and
masking by the position within the group replaces ``groupby().shift()``: a value never crosses
from one market into the next, which is what made per-market Python loops look necessary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


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
        pos = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)
        return cls(pos=pos, size=np.repeat(sizes, sizes))

    @property
    def remaining(self) -> np.ndarray:
        """Rows after this one in the same group."""
        return self.size - 1 - self.pos


def lag_into(out: np.ndarray, x: np.ndarray, k: int, groups: Groups) -> None:
    """Write ``x`` from ``k`` rows earlier in the same group into ``out`` (NaN where none).

    Writing into a preallocated output column avoids one temporary per lag: at millions of
    rows, memory traffic, not arithmetic, is what costs time.
    """
    n = len(x)
    out[k:] = x[: max(n - k, 0)]  # nothing when the rows are fewer than k (a small partition)
    out[: min(k, n)] = np.nan
    if k:
        out[groups.pos < k] = np.nan


def lag(x: np.ndarray, k: int, groups: Groups) -> np.ndarray:
    """``x`` from ``k`` rows earlier in the same group; NaN where the group has no such row."""
    out = np.empty(x.shape)
    lag_into(out, x, k, groups)
    return out


def lead(x: np.ndarray, k: int, groups: Groups) -> np.ndarray:
    """``x`` from ``k >= 1`` rows later in the same group; NaN where the group has no such row."""
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
    row = np.arange(len(flag), dtype=np.int64)
    idx = np.where(flag, row, -1)
    np.maximum.accumulate(idx, out=idx)
    row -= groups.pos  # the group's first row
    idx[idx < row] = -1
    return idx


def take_or_nan(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as float, NaN where ``idx`` is -1."""
    out = np.asarray(values, dtype=np.float64)[np.maximum(idx, 0)]
    out[idx < 0] = np.nan
    return out


def select_rows(columns: T, rows: np.ndarray) -> T:
    """The same dataclass of per-row arrays, keeping only ``rows``."""
    fields = dataclasses.fields(columns)
    return dataclasses.replace(columns, **{f.name: getattr(columns, f.name)[rows] for f in fields})


def rolling_std(x: np.ndarray, window: int, groups: Groups, min_periods: int = 2) -> np.ndarray:
    """Sample std (ddof 1) of the last ``window`` values of the group, NaN-skipping.

    Equals ``groupby(...).rolling(window, min_periods).std()``. Two passes (mean, then squared
    deviations) over ``window`` shifted slices: numerically stable, unlike differences of a
    running sum of squares over millions of rows, and only ``window`` vector operations.
    """
    n = len(x)
    valid = ~np.isnan(x)
    filled = np.where(valid, x, 0.0)
    count = valid.astype(np.float64)
    total = filled.copy()
    in_group = [groups.pos[k:] >= k for k in range(1, min(window, n))]
    for k, ok in enumerate(in_group, start=1):
        count[k:] += valid[: n - k] & ok
        total[k:] += np.where(ok, filled[: n - k], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares = np.where(valid, (x - mean) ** 2, 0.0)
        for k, ok in enumerate(in_group, start=1):
            d = filled[: n - k] - mean[k:]
            squares[k:] += np.where(valid[: n - k] & ok, d * d, 0.0)
        std = np.sqrt(squares / (count - 1))
    std[count < min_periods] = np.nan
    return std
