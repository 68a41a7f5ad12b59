"""Chronological train/validation split with an embargo, shared by train, evaluate and backtest.

The split is by decision time (``as_of``), never by row number, so one date is never on both
sides. Let V be the first validation day. A training row must have its label known before V
minus the embargo:
* ``direction``: the label is the next day's price, known at ``as_of + 1 day``;
* ``settlement``: the label is known at the market's settlement, so a market (and with it every
  strike of its event, which settle together) trains only if the whole event settled before
  V - embargo.
Validation rows are every row with ``as_of >= V``, whatever their label status. The split logs
how many rows, markets and events it keeps out of training, and why: on real data most markets
can be left out (an event trains only once all its strikes settled), and that must be visible.
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
EMBARGO = "embargo: as_of between the training labels' cut-off and the validation start"
UNSETTLED = "event not fully settled: a strike has no settlement_ts (an event trains whole)"
SETTLED_LATE = "event settled at or after the cut-off: label unknown before the embargo"
NEXT_DAY_LATE = "next day's price (the label) known only at or after the cut-off"


@dataclass(frozen=True)
class Split:
    """Boolean row masks over one features frame, and the boundary they follow from."""

    train: np.ndarray
    valid: np.ndarray
    valid_start: pd.Timestamp
    train_end: pd.Timestamp  # labels of training rows are known strictly before this


def _why(
    features: pd.DataFrame, target: str, valid_start: pd.Timestamp, train_end: pd.Timestamp
) -> np.ndarray:
    """Per row, TRAIN or why it is not a training row (VALIDATION, EMBARGO, or its label)."""
    as_of = features["as_of"]
    if target == "direction":
        late = [((as_of + DAY) >= train_end, NEXT_DAY_LATE)]
    elif target == "settlement":
        events = features["event_ticker"]
        settled = features["settlement_ts"]
        event_settled = settled.groupby(events, sort=False, observed=True).transform("max")
        unsettled = settled.isna().groupby(events, sort=False, observed=True).transform("any")
        late = [(unsettled.astype(bool), UNSETTLED), (~(event_settled < train_end), SETTLED_LATE)]
    else:
        raise DataError(f"unknown target {target!r}")
    rules = [(as_of >= valid_start, VALIDATION), (as_of >= train_end, EMBARGO), *late]
    return np.select(
        [mask.to_numpy(dtype=bool) for mask, _ in rules],
        [reason for _, reason in rules],
        default=TRAIN,
    )


def _log_split(features: pd.DataFrame, why: np.ndarray, target: str, split: Split) -> None:
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
    log.info(
        "split (%s): training labels known before %s (the cut-off), validation from %s",
        target,
        f"{split.train_end:%Y-%m-%d}",
        f"{split.valid_start:%Y-%m-%d}",
    )
    for reason in (TRAIN, VALIDATION, EMBARGO, UNSETTLED, SETTLED_LATE, NEXT_DAY_LATE):
        if reason in counts.index:
            n = counts.loc[reason]
            log.info(
                "split: %d rows, %d markets, %d events: %s",
                n["rows"],
                n["markets"],
                n["events"],
                reason if reason in (TRAIN, VALIDATION) else f"not in train, {reason}",
            )
    trained = frame[why == TRAIN]
    log.info(
        "split: %d of %d markets and %d of %d events have no training row",
        frame["market"].nunique() - trained["market"].nunique(),
        frame["market"].nunique(),
        frame["event"].nunique() - trained["event"].nunique(),
        frame["event"].nunique(),
    )


def chronological_split(features: pd.DataFrame, params: SplitParams, target: str) -> Split:
    """Masks for ``features`` (columns ticker, as_of, event_ticker, settlement_ts) and ``target``.

    Logs the rows, markets and events on each side and why the others are not trained on.
    """
    if features.empty:
        raise DataError("no feature rows to split: the data range holds no market-days")
    days = np.sort(features["as_of"].unique())
    cut = int(np.floor(len(days) * params.train_size))
    if cut < 1 or cut >= len(days):
        raise DataError(
            f"split.train_size={params.train_size} leaves an empty side: the data has {len(days)} days"
        )
    valid_start = pd.Timestamp(days[cut])
    train_end = valid_start - params.embargo_days * DAY
    why = _why(features, target, valid_start, train_end)
    split = Split(
        train=why == TRAIN, valid=why == VALIDATION, valid_start=valid_start, train_end=train_end
    )
    _log_split(features, why, target, split)
    if not split.train.any():
        raise DataError(
            f"no training rows: nothing is labelled before {train_end:%Y-%m-%d} "
            f"(split.train_size={params.train_size}, split.embargo_days={params.embargo_days})"
        )
    return split
