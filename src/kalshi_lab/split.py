"""Chronological periods of whole events with an embargo, shared by train, evaluate and the
analyzer.

The dated range (the sorted unique ``as_of``) is cut into windows: train, validation (what
``dvc exp`` comparisons and tuning read) and a final test period that nothing tunes on. Within
train + validation, ``split.n_folds`` walk-forward folds, each as long as validation and the
last one being validation itself, each score one window with a model fit on every row labelled
before it (an expanding window). The test period is scored by a model refit on train +
validation. Windows are cut by decision time (``as_of``), never by row number.

**Each event is scored in one period only**, the one whose window holds the time it resolves
(:func:`kalshi_lab.resolution.event_resolution`: its last settlement, or the latest close
known in advance while a strike is unsettled; the last window is open-ended). A period scores
the rows of its own events that lie in its window: the decisions made while that period's
model was the one in use. An event whose rows straddle a window's start (decided in one window,
resolved in a later one) is purged from the earlier window: those rows are scored nowhere, and
counted (reason ``PURGED``). So no outcome is scored twice, validation never scores an event
that resolves in the test period, and each period's scores are independent of the others'.
Events that resolve before the first window are training rows only.

Let S be a window's start. A training row must have its label known before S minus the
embargo:
* ``direction``: the label is the next day's price, known at ``as_of + 1 day``;
* ``settlement``: the label is known at the market's settlement, so a market (and with it every
  strike of its event, which settle together) trains only if the whole event settled before
  S - embargo: training events resolve before S, in an earlier period or before the first.
The split logs how many rows, markets and events it keeps out of training and scoring, and why:
on real data most markets can be left out (an event trains only once all its strikes settled),
and that must be visible. Whether a period has enough to be scored at all is
:mod:`kalshi_lab.guards`' decision, not the split's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.params import SplitParams
from kalshi_lab.resolution import event_resolution

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)
TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
LATER = "after the scored period"
PURGED = "purged: in the window, but its event resolves in a later period (scored there only)"
EMBARGO = "embargo: as_of between the training labels' cut-off and the first scored day"
UNSETTLED = "event not fully settled: a strike has no settlement_ts (an event trains whole)"
SETTLED_LATE = "event settled at or after the cut-off: label unknown before the embargo"
NEXT_DAY_LATE = "next day's price (the label) known only at or after the cut-off"
#: the columns of the features frame :func:`periods` reads
SPLIT_COLUMNS: tuple[str, ...] = (
    "ticker",
    "event_ticker",
    "as_of",
    "settlement_ts",
    "DAYS_TO_CLOSE",
)
_REASONS = (
    TRAIN,
    VALIDATION,
    TEST,
    LATER,
    PURGED,
    EMBARGO,
    UNSETTLED,
    SETTLED_LATE,
    NEXT_DAY_LATE,
)


@dataclass(frozen=True)
class Split:
    """Boolean row masks over one features frame: rows to fit on, rows to score, rows purged."""

    train: np.ndarray
    valid: np.ndarray  # the scored rows: the period's own events' rows inside its window
    purged: np.ndarray  # rows inside the window whose event resolves in a later period
    valid_start: pd.Timestamp
    train_end: pd.Timestamp  # labels of training rows are known strictly before this
    valid_end: pd.Timestamp | None = None  # scored rows have as_of before this (None: no end)


@dataclass(frozen=True)
class Periods:
    """Walk-forward folds (expanding window, the last is validation) and the test period."""

    folds: tuple[Split, ...]
    test: Split | None

    @property
    def validation(self) -> Split:
        return self.folds[-1]

    def named(self) -> list[tuple[str, str, Split]]:
        """Every scored period as (key in the reports, name in the logs, split): ``fold_1``
        .. ``fold_n`` (``fold_n`` is validation), then ``test``."""
        n = len(self.folds)
        out = [
            (f"fold_{k}", "validation" if k == n else f"walk-forward fold {k} of {n}", split)
            for k, split in enumerate(self.folds, start=1)
        ]
        return out + ([("test", "test", self.test)] if self.test is not None else [])


def _code(reason: str) -> int:
    """The code of ``reason`` in the arrays :func:`_why` returns: its index in _REASONS."""
    return _REASONS.index(reason)


def _event_settlement(features: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row, when its event settled (its markets' last settlement) and whether a market of
    it has not: what :func:`_why` reads for the settlement target, the same in every period
    (computed once for all of them: two group-bys over every row)."""
    events = features["event_ticker"]
    settled = features["settlement_ts"]
    event_settled = settled.groupby(events, sort=False, observed=True).transform("max")
    unsettled = settled.isna().groupby(events, sort=False, observed=True).transform("any")
    return event_settled, unsettled


def _why(
    features: pd.DataFrame,
    target: str,
    split: Split,
    owned: np.ndarray,
    scored: str,
    settlement: tuple[pd.Series, pd.Series] | None,
) -> np.ndarray:
    """Per row, the code (:func:`_code`) of TRAIN, ``scored``, or why it is neither (LATER,
    PURGED, EMBARGO, its label).

    ``owned``: the rows whose event resolves in this period (the split's own events). Codes,
    not the reasons' text: an array of the text takes four bytes per character per row (a
    quarter of a gigabyte at 30k markets), a code one byte. ``settlement``: the
    :func:`_event_settlement` of ``features`` for the settlement target (None for direction).
    """
    as_of = features["as_of"]
    if target == "direction":
        late = [((as_of + DAY) >= split.train_end, NEXT_DAY_LATE)]
    elif target == "settlement":
        if settlement is None:
            raise ValueError("the settlement target's split needs its events' settlement")
        event_settled, unsettled = settlement
        late = [
            (unsettled.astype(bool), UNSETTLED),
            (~(event_settled < split.train_end), SETTLED_LATE),
        ]
    else:
        raise DataError(f"unknown target {target!r}")
    no_end = pd.Series(False, index=as_of.index)
    after = as_of >= split.valid_end if split.valid_end is not None else no_end
    window = (as_of >= split.valid_start).to_numpy(dtype=bool)
    rules = [
        (after.to_numpy(dtype=bool), LATER),
        (window & owned, scored),
        (window, PURGED),
        ((as_of >= split.train_end).to_numpy(dtype=bool), EMBARGO),
        *((mask.to_numpy(dtype=bool), reason) for mask, reason in late),
    ]
    return np.select(
        [mask for mask, _ in rules],
        [np.int8(_code(reason)) for _, reason in rules],
        default=np.int8(_code(TRAIN)),
    )


def _log_split(
    features: pd.DataFrame, why: np.ndarray, target: str, split: Split, name: str
) -> None:
    """INFO lines: rows, markets and events per side, and of those kept out of training, why
    (``why``: each row's reason code, :func:`_why`)."""
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
    for code, reason in enumerate(_REASONS):
        if code in counts.index:
            n = counts.loc[code]
            log.info(
                "split: %d rows, %d markets, %d events: %s",
                n["rows"],
                n["markets"],
                n["events"],
                reason if reason in (TRAIN, name) else f"not in train, {reason}",
            )
    trained = frame[why == _code(TRAIN)]
    log.info(
        "split: %d of %d markets and %d of %d events have no training row",
        frame["market"].nunique() - trained["market"].nunique(),
        frame["market"].nunique(),
        frame["event"].nunique() - trained["event"].nunique(),
        frame["event"].nunique(),
    )


def _period(
    features: pd.DataFrame,
    target: str,
    start: pd.Timestamp,
    end: pd.Timestamp | None,
    owned: np.ndarray,
    embargo_days: int,
    settlement: tuple[pd.Series, pd.Series] | None,
) -> tuple[Split, np.ndarray]:
    """The split scoring the ``owned`` rows in ``[start, end)`` after fitting on labels known
    before start - embargo, and each row's reason code (:func:`_why`, given ``settlement``)."""
    empty = np.zeros(0, dtype=bool)
    bounds = Split(empty, empty, empty, start, start - embargo_days * DAY, end)
    why = _why(features, target, bounds, owned, VALIDATION, settlement)
    split = Split(
        train=why == _code(TRAIN),
        valid=why == _code(VALIDATION),
        purged=why == _code(PURGED),
        valid_start=start,
        train_end=bounds.train_end,
        valid_end=end,
    )
    return split, why


def _log_fold(features: pd.DataFrame, split: Split, name: str) -> None:
    """One INFO line for an earlier walk-forward fold: what it trains on, scores and purges."""
    events = features["event_ticker"]
    log.info(
        "split: %s: %d training rows (labels before %s); %d scored rows of %d events from %s "
        "to %s; %d rows of %d events purged (they resolve in a later period)",
        name,
        int(split.train.sum()),
        f"{split.train_end:%Y-%m-%d}",
        int(split.valid.sum()),
        events[split.valid].nunique(),
        f"{split.valid_start:%Y-%m-%d}",
        f"{split.valid_end:%Y-%m-%d}",
        int(split.purged.sum()),
        events[split.purged].nunique(),
    )


def _starts(days: pd.DatetimeIndex, params: SplitParams) -> list[pd.Timestamp]:
    """The first day of each walk-forward fold's window, then of the test period's (if any)."""
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
    folds = [days[first + k * length] for k in range(params.n_folds)]
    return folds + ([days[test_cut]] if test_cut < n else [])


def periods(features: pd.DataFrame, params: SplitParams, target: str) -> Periods:
    """Walk-forward folds and test period for ``features`` (columns ticker, as_of,
    event_ticker, settlement_ts, DAYS_TO_CLOSE) and ``target``.

    Every event belongs to the period whose window holds its resolution (module docstring).
    Logs, for validation and test, the rows, markets and events on each side and why the others
    are not trained on or scored; one line per earlier walk-forward fold.
    """
    if features.empty:
        raise DataError("no feature rows to split: the data range holds no market-days")
    days = pd.DatetimeIndex(np.sort(features["as_of"].unique()))
    starts = _starts(days, params)
    ends: list[pd.Timestamp | None] = [*starts[1:], None]
    resolves = pd.DatetimeIndex(event_resolution(features)).asi8
    # the period each row's event resolves in; -1: before the first window (training only)
    owner = np.searchsorted(np.array([s.value for s in starts]), resolves, side="right") - 1
    splits = []
    settlement = _event_settlement(features) if target == "settlement" else None
    for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
        split, why = _period(
            features, target, start, end, owner == k, params.embargo_days, settlement
        )
        if k == params.n_folds - 1:
            _log_split(features, why, target, split, VALIDATION)
        elif k == params.n_folds:
            tested = np.where(why == _code(VALIDATION), np.int8(_code(TEST)), why)
            _log_split(features, tested, target, split, TEST)
        else:
            _log_fold(features, split, f"walk-forward fold {k + 1} of {params.n_folds}")
        splits.append(split)
    test = splits[params.n_folds] if len(splits) > params.n_folds else None
    return Periods(folds=tuple(splits[: params.n_folds]), test=test)


def chronological_split(features: pd.DataFrame, params: SplitParams, target: str) -> Split:
    """The validation split of :func:`periods`: fit on train, score validation."""
    return periods(features, params, target).validation
