"""Chronological periods with an embargo, shared by train, evaluate and the analyzer.

The dated range (the sorted unique ``as_of``) is cut into three periods: train, validation (what
``dvc exp`` comparisons and tuning read) and a final test period that nothing tunes on. Within
train + validation, ``split.n_folds`` walk-forward folds, each as long as validation and the
last one being validation itself, score one block of days with a model fit on every row
labelled before that block (an expanding window). The test period is scored by a model refit on
train + validation.

The cut is by decision time (``as_of``), never by row number, so one date is never on both
sides. Let S be the first scored day of a fold. A training row must have its label known before
S minus the embargo:
* ``direction``: the label is the next day's price, known at ``as_of + 1 day``;
* ``settlement``: the label is known at the market's settlement, so a market (and with it every
  strike of its event, which settle together) trains only if the whole event settled before
  S - embargo.
Scored rows are every row with ``as_of`` in the fold's block, whatever their label status. An
earlier walk-forward fold with no training row (a short history) is skipped with a WARNING;
validation and test without one are errors. The split logs how many rows, markets and events it keeps out of training, and why: on real data
most markets can be left out (an event trains only once all its strikes settled), and that must
be visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.params import SplitParams

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)
TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
LATER = "after the scored period"
EMBARGO = "embargo: as_of between the training labels' cut-off and the first scored day"
UNSETTLED = "event not fully settled: a strike has no settlement_ts (an event trains whole)"
SETTLED_LATE = "event settled at or after the cut-off: label unknown before the embargo"
NEXT_DAY_LATE = "next day's price (the label) known only at or after the cut-off"
_REASONS = (TRAIN, VALIDATION, TEST, LATER, EMBARGO, UNSETTLED, SETTLED_LATE, NEXT_DAY_LATE)


@dataclass(frozen=True)
class Split:
    """Boolean row masks over one features frame: rows to fit on and rows to score."""

    train: np.ndarray
    valid: np.ndarray  # the scored rows (validation, a walk-forward block or the test period)
    valid_start: pd.Timestamp
    train_end: pd.Timestamp  # labels of training rows are known strictly before this
    valid_end: pd.Timestamp | None = None  # scored rows have as_of before this (None: no end)


@dataclass(frozen=True)
class Periods:
    """Walk-forward folds (expanding window, the last one is validation) and the test split."""

    folds: tuple[Split, ...]
    numbers: tuple[int, ...]  # each fold's number (1-based) among split.n_folds
    test: Split | None

    @property
    def validation(self) -> Split:
        return self.folds[-1]


def _why(features: pd.DataFrame, target: str, split: Split, scored: str) -> np.ndarray:
    """Per row, TRAIN, ``scored``, or why it is neither (LATER, EMBARGO, or its label)."""
    as_of = features["as_of"]
    if target == "direction":
        late = [((as_of + DAY) >= split.train_end, NEXT_DAY_LATE)]
    elif target == "settlement":
        events = features["event_ticker"]
        settled = features["settlement_ts"]
        event_settled = settled.groupby(events, sort=False, observed=True).transform("max")
        unsettled = settled.isna().groupby(events, sort=False, observed=True).transform("any")
        late = [
            (unsettled.astype(bool), UNSETTLED),
            (~(event_settled < split.train_end), SETTLED_LATE),
        ]
    else:
        raise DataError(f"unknown target {target!r}")
    no_end = pd.Series(False, index=as_of.index)
    after = as_of >= split.valid_end if split.valid_end is not None else no_end
    rules = [
        (after, LATER),
        (as_of >= split.valid_start, scored),
        (as_of >= split.train_end, EMBARGO),
        *late,
    ]
    return np.select(
        [mask.to_numpy(dtype=bool) for mask, _ in rules],
        [reason for _, reason in rules],
        default=TRAIN,
    )


def _log_split(
    features: pd.DataFrame, why: np.ndarray, target: str, split: Split, name: str
) -> None:
    """INFO lines: rows, markets and events per side, and of those kept out of training, why."""
    frame = pd.DataFrame(
        {
            "why": why,
            "market": features["ticker"].to_numpy(),
            "event": features["event_ticker"].to_numpy(),
        }
    )
    counts = frame.groupby("why", sort=False).agg(
        rows=("market", "size"), markets=("market", "nunique"), events=("event", "nunique")
    )
    until = f" until {split.valid_end:%Y-%m-%d}" if split.valid_end is not None else ""
    log.info(
        "split (%s): training labels known before %s (the cut-off), %s from %s%s",
        target,
        f"{split.train_end:%Y-%m-%d}",
        name,
        f"{split.valid_start:%Y-%m-%d}",
        until,
    )
    for reason in _REASONS:
        if reason in counts.index:
            n = counts.loc[reason]
            log.info(
                "split: %d rows, %d markets, %d events: %s",
                n["rows"],
                n["markets"],
                n["events"],
                reason if reason in (TRAIN, name) else f"not in train, {reason}",
            )
    trained = frame[why == TRAIN]
    log.info(
        "split: %d of %d markets and %d of %d events have no training row",
        frame["market"].nunique() - trained["market"].nunique(),
        frame["market"].nunique(),
        frame["event"].nunique() - trained["event"].nunique(),
        frame["event"].nunique(),
    )


def _fold(
    features: pd.DataFrame,
    target: str,
    start: pd.Timestamp,
    end: pd.Timestamp | None,
    embargo_days: int,
) -> tuple[Split, np.ndarray]:
    """The split scoring ``[start, end)`` after fitting on labels known before start - embargo."""
    bounds = Split(
        train=np.zeros(0, dtype=bool),
        valid=np.zeros(0, dtype=bool),
        valid_start=start,
        train_end=start - embargo_days * DAY,
        valid_end=end,
    )
    why = _why(features, target, bounds, VALIDATION)
    split = Split(
        train=why == TRAIN,
        valid=why == VALIDATION,
        valid_start=start,
        train_end=bounds.train_end,
        valid_end=end,
    )
    return split, why


def _no_training_rows(split: Split, knobs: str) -> DataError:
    return DataError(
        f"no training rows: nothing is labelled before {split.train_end:%Y-%m-%d} ({knobs})"
    )


def periods(features: pd.DataFrame, params: SplitParams, target: str) -> Periods:
    """Walk-forward folds and test split for ``features`` (columns ticker, as_of, event_ticker,
    settlement_ts) and ``target``.

    Logs, for validation and test, the rows, markets and events on each side and why the others
    are not trained on; one line per earlier walk-forward fold.
    """
    if features.empty:
        raise DataError("no feature rows to split: the data range holds no market-days")
    days = pd.DatetimeIndex(np.sort(features["as_of"].unique()))
    n = len(days)
    cut = int(np.floor(n * params.train_size))
    test_cut = n - int(np.floor(n * params.test_size))
    if params.test_size > 0 and test_cut == n:
        raise DataError(f"split.test_size={params.test_size} holds no day of the {n} days")
    if cut < 1 or cut >= test_cut:
        raise DataError(
            f"split.train_size={params.train_size} leaves an empty side: the data has {n} days"
        )
    length = test_cut - cut
    first = cut - (params.n_folds - 1) * length
    if first < 1:
        raise DataError(
            f"split.n_folds={params.n_folds} folds of {length} days (the validation length) "
            f"need more than {(params.n_folds - 1) * length} days before validation; "
            f"there are {cut}"
        )
    test_start = days[test_cut] if test_cut < n else None
    folds, numbers = [], []
    for k in range(params.n_folds):
        start = days[first + k * length]
        end = days[first + (k + 1) * length] if first + (k + 1) * length < n else None
        split, why = _fold(features, target, start, end, params.embargo_days)
        if k == params.n_folds - 1:
            _log_split(features, why, target, split, VALIDATION)
            if not split.train.any():
                raise _no_training_rows(
                    split,
                    f"split.train_size={params.train_size}, "
                    f"split.embargo_days={params.embargo_days}",
                )
        elif not split.train.any():
            # an early fold of a short history: skipped, not fatal; the others still tell
            log.warning(
                "split: walk-forward fold %d of %d skipped: no row is labelled before %s "
                "(fewer split.n_folds would start later)",
                k + 1,
                params.n_folds,
                f"{split.train_end:%Y-%m-%d}",
            )
            continue
        else:
            log.info(
                "split: walk-forward fold %d of %d: %d training rows (labels before %s), "
                "%d scored rows from %s to %s",
                k + 1,
                params.n_folds,
                int(split.train.sum()),
                f"{split.train_end:%Y-%m-%d}",
                int(split.valid.sum()),
                f"{start:%Y-%m-%d}",
                f"{end:%Y-%m-%d}",
            )
        folds.append(split)
        numbers.append(k + 1)
    test = None
    if test_start is not None:
        test, why = _fold(features, target, test_start, None, params.embargo_days)
        _log_split(features, np.where(why == VALIDATION, TEST, why), target, test, TEST)
        if not test.train.any():
            raise _no_training_rows(test, f"split.test_size={params.test_size}")
    return Periods(folds=tuple(folds), numbers=tuple(numbers), test=test)


def chronological_split(features: pd.DataFrame, params: SplitParams, target: str) -> Split:
    """The validation split of :func:`periods`: fit on train, score validation."""
    return periods(features, params, target).validation
