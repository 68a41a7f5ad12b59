"""Assembly of the output DataFrame without copying its float columns.

All float columns live in one preallocated (column, row) array that pandas adopts as a single
block; building a DataFrame from a dict of a few dozen million-row arrays would copy them all
to consolidate. Callers fill the block's rows in place through ``FloatBlock.column``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


class FloatBlock:
    """Float64 storage of named columns of ``n_rows`` rows, in the given order."""

    def __init__(self, names: list[str], n_rows: int) -> None:
        self.names = names
        self._values = np.empty((len(names), n_rows))
        self._index = {name: i for i, name in enumerate(names)}
        self._written: set[str] = set()

    def column(self, name: str) -> np.ndarray:
        """Writable view of one column; the caller must fill all of it."""
        self._written.add(name)
        return self._values[self._index[name]]

    def update(self, columns: Mapping[str, np.ndarray]) -> None:
        """Copy each array into its column; call as soon as computed, so temporaries die early."""
        for name, values in columns.items():
            self.column(name)[:] = values

    def to_frame(self, leading: Mapping[str, object]) -> pd.DataFrame:
        """DataFrame of ``leading`` columns (any dtype) followed by the float columns."""
        unwritten = [name for name in self.names if name not in self._written]
        if unwritten:
            raise RuntimeError(f"float columns never written: {unwritten}")
        numbers = pd.DataFrame(self._values.T, columns=self.names, copy=False)
        return pd.concat([pd.DataFrame(leading, copy=False), numbers], axis=1, copy=False)
