"""The user's own model inputs: ``features.extra``, functions named by Hydra's ``_target_``.

Each entry names a function ``f(tables, rows, **kwargs) -> DataFrame``:

* ``tables``: a read-only mapping of the parquet tables by name (``markets``, ``events``,
  ``series``, ``candles``, ``trades``, ``orderbook``; columns in :mod:`kalshi_lab.data.tables`),
  each read when first asked for: the order book is by far the largest (a year of 10,000
  markets is about 0.25 GB in memory), so a function that never reads it never pays for it.
  Do not modify them: every entry and the look-ahead check read the same frames.
* ``rows``: the feature table's keys (``ticker``, ``event_ticker``, ``series_ticker``,
  ``as_of``) with a RangeIndex. A row's value must use only what was known at its ``as_of``
  (the end of the day's candle), which the features stage checks
  (:mod:`kalshi_lab.features.leak_check`).
* ``kwargs``: the entry's other keys.

It returns a DataFrame with ``rows``' index and exactly the entry's ``columns`` (upper-case
names, like the built-in features), numeric or boolean, finite or NaN. They are appended to the
feature table and are model inputs (``feature_columns``). The repository root is importable,
so ``_target_: my_features.days_open`` finds ``my_features.py`` there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.data.tables import TABLES, read_table
from kalshi_lab.errors import DataError, KalshiLabError, ParamError
from kalshi_lab.features.columns import builtin_feature_columns
from kalshi_lab.params import FeatureParams, UserFeatureParams
from kalshi_lab.paths import PARQUET_DIR
from kalshi_lab.user_code import import_function


class ParquetTables(Mapping[str, pd.DataFrame]):
    """The parquet stage's tables by name, each read on first access and then kept."""

    def __init__(self, root: Path = PARQUET_DIR) -> None:
        self.root = root
        self._read: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(name)
        if name not in self._read:
            self._read[name] = read_table(name, self.root)
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        return iter(TABLES)

    def __len__(self) -> int:
        return len(TABLES)


@dataclass(frozen=True)
class UserFeature:
    """One entry of ``features.extra``, its function imported."""

    index: int
    params: UserFeatureParams
    function: Callable[..., Any]

    @property
    def name(self) -> str:
        """How every message names the entry: ``features.extra[0] (my_features.days_open)``."""
        return f"features.extra[{self.index}] ({self.params.target})"

    @property
    def columns(self) -> list[str]:
        return list(self.params.columns)

    def compute(self, tables: Mapping[str, pd.DataFrame], rows: pd.DataFrame) -> pd.DataFrame:
        """The entry's columns on ``rows``, float64, checked (DataError naming the entry).

        An exception inside the user's function is a bug there: it keeps its traceback, with
        a note naming the entry.
        """
        try:
            out = self.function(tables, rows, **self.params.kwargs)
        except KalshiLabError as exc:  # e.g. the bot refusing a table it does not record
            raise type(exc)(f"{self.name}: {exc}") from None
        except Exception as exc:
            exc.add_note(f"raised by the user feature {self.name}")
            raise
        return self._checked(out, rows)

    def _checked(self, out: object, rows: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(out, pd.DataFrame):
            raise DataError(f"{self.name} returned a {type(out).__name__}, not a DataFrame")
        if len(out) != len(rows):
            raise DataError(f"{self.name} returned {len(out)} rows for {len(rows)} rows")
        if not out.index.equals(rows.index):
            raise DataError(f"{self.name} returned another index than its rows': use rows.index")
        if sorted(map(str, out.columns)) != sorted(self.columns):
            raise DataError(
                f"{self.name} returned columns {list(out.columns)}, its columns are {self.columns}"
            )
        for name in self.columns:
            dtype = out[name].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise DataError(f"{self.name} column {name} is {dtype}, not numeric")
        values = out[self.columns].astype(np.float64)
        infinite = np.isinf(values.to_numpy())
        if infinite.any():
            row, col = np.argwhere(infinite)[0]
            raise DataError(
                f"{self.name} column {self.columns[col]} is infinite on "
                f"{rows['ticker'].iloc[row]} at as_of {rows['as_of'].iloc[row].isoformat()}"
            )
        return values


def user_features(params: FeatureParams) -> list[UserFeature]:
    """``features.extra``, each function imported and its keys checked; ParamError naming the
    entry when its name clashes with a built-in feature, its ``_target_`` is no callable or its
    keys are not the function's keyword arguments."""
    builtin = set(builtin_feature_columns(params))
    found = []
    for index, entry in enumerate(params.extra):
        name = f"features.extra[{index}] ({entry.target})"
        clash = [c for c in entry.columns if c in builtin]
        if clash:
            raise ParamError(f"{name}: columns {clash} are built-in features")
        try:
            function = import_function(entry.target)
        except (ImportError, ValueError) as exc:
            raise ParamError(f"{name}: _target_ cannot be used: {exc}") from None
        try:
            inspect.signature(function).bind(None, None, **entry.kwargs)
        except TypeError as exc:
            raise ParamError(
                f"{name}: must be f(tables, rows, **kwargs) taking its keys "
                f"{sorted(entry.kwargs)}: {exc}"
            ) from None
        found.append(UserFeature(index, entry, function))
    return found


def compute_user_features(
    features: list[UserFeature], tables: Mapping[str, pd.DataFrame], rows: pd.DataFrame
) -> pd.DataFrame:
    """Every user feature's columns on ``rows``, in ``user_feature_columns`` order."""
    blocks = [feature.compute(tables, rows) for feature in features]
    return pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=rows.index)
