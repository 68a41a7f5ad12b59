"""The features stage's automatic look-ahead check of the user features.

A user feature is honest when its value at a row's ``as_of`` uses only what was known then. So
it must not change when everything after ``as_of`` is taken away. The check samples
``features.leak_check.cutoffs`` times t, computes every user feature again on the tables as they
stood at t (:class:`~kalshi_lab.features.truncate.TablesAt`) for the rows with ``as_of <= t``,
and compares: any value that differs (beyond 1e-9 relatively, 1e-12 absolutely; NaN equals NaN)
stops the stage with one error naming the feature, a ticker and an as_of.

Cut-offs are days of the feature table (as_of values, 00:00 UTC): a leak of data stamped just
after as_of shows at t = as_of itself. They are drawn without replacement, with
``features.leak_check.seed``, among the days by which at least ``min_rows`` rows are known
(so that the comparison is about something), the last day excluded (nothing after it to hide).

What it costs: per cut-off, one more call of every user feature on the truncated tables, plus
the truncation of each table the features read (a filter on its time stamp). The built-in
features are not checked here: they are the package's code, which tests/test_leakage.py proves
on every test run with the same truncation, and building them again per cut-off would cost the
whole features stage again (as much as the stage itself, per cut-off).

What it cannot see: a feature that is honest on these cut-offs but not on others (the check
samples), and a value that is not deterministic (random noise drawn per call differs between
the two computations and is reported as a difference: seed it by row, or turn the check off).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.features.truncate import TablesAt
from kalshi_lab.features.user import UserFeature
from kalshi_lab.params import LeakCheckParams

log = logging.getLogger(__name__)

#: how close two values must be to count as one (floating point sums may differ in the last bit)
RTOL, ATOL = 1e-9, 1e-12


def sample_cutoffs(as_of: pd.Series, params: LeakCheckParams) -> list[pd.Timestamp]:
    """The cut-off times (see the module docstring), in time order; fewer than asked when
    fewer days qualify (logged), a DataError naming ``min_rows`` when none does."""
    known_by_day = as_of.value_counts().sort_index().cumsum()
    days = known_by_day.index[:-1][known_by_day.to_numpy()[:-1] >= params.min_rows]
    if not len(days):
        raise DataError(
            f"features.leak_check: no day but the last has {params.min_rows} rows known by it "
            f"(features.leak_check.min_rows; the table has {len(as_of)} rows over "
            f"{len(known_by_day)} days): lower it, or turn the check off"
        )
    n = min(params.cutoffs, len(days))
    if n < params.cutoffs:
        log.info(
            "leak check: %d cut-offs, not %d: only %d days have %d rows known by them",
            n,
            params.cutoffs,
            len(days),
            params.min_rows,
        )
    chosen = np.random.default_rng(params.seed).choice(len(days), size=n, replace=False)
    return [pd.Timestamp(days[i]) for i in sorted(chosen)]


def check_user_features(
    features: list[UserFeature],
    tables: Mapping[str, pd.DataFrame],
    rows: pd.DataFrame,
    values: pd.DataFrame,
    cutoffs: list[pd.Timestamp],
) -> None:
    """Recompute ``features`` on ``tables`` known at each cut-off and compare with ``values``
    (computed on all of ``tables`` for ``rows``); DataError at the first difference."""
    for t in cutoffs:
        known = TablesAt(tables, t)
        before = (rows["as_of"] <= t).to_numpy()
        subset = rows[before].reset_index(drop=True)
        for feature in features:
            got = feature.compute(known, subset)
            expected = values.loc[before, feature.columns].reset_index(drop=True)
            _compare(feature, expected, got, subset, t)
        log.info("leak check at %s: %d rows, no user feature changed", t.isoformat(), len(subset))


def _compare(
    feature: UserFeature,
    expected: pd.DataFrame,
    got: pd.DataFrame,
    rows: pd.DataFrame,
    t: pd.Timestamp,
) -> None:
    for column in feature.columns:
        full, known = expected[column].to_numpy(), got[column].to_numpy()
        differs = ~np.isclose(known, full, rtol=RTOL, atol=ATOL, equal_nan=True)
        if differs.any():
            i = int(np.flatnonzero(differs)[0])
            raise DataError(
                f"{feature.name} looks ahead: {column} on {rows['ticker'].iloc[i]} at as_of "
                f"{rows['as_of'].iloc[i].isoformat()} is {full[i]:.6g} from all the data but "
                f"{known[i]:.6g} from the data known at {t.isoformat()} ({int(differs.sum())} "
                f"of {len(rows)} rows up to then differ); fix it, or set "
                "features.leak_check.enabled=false to keep it unchecked (recorded)"
            )
