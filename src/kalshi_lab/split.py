"""Chronological train/validation split with an embargo, shared by train, evaluate and backtest.

The split is by decision time (``as_of``), never by row number, so one date is never on both
sides. Let V be the first validation day. A training row must have its label known before V
minus the embargo:
* ``direction``: the label is the next day's price, known at ``as_of + 1 day``;
* ``settlement``: the label is known at the market's settlement, so a market (and with it every
  strike of its event, which settle together) trains only if the whole event settled before
  V - embargo.
Validation rows are every row with ``as_of >= V``, whatever their label status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.params import SplitParams

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Split:
    """Boolean row masks over one features frame, and the boundary they follow from."""

    train: np.ndarray
    valid: np.ndarray
    valid_start: pd.Timestamp
    train_end: pd.Timestamp  # labels of training rows are known strictly before this


def chronological_split(features: pd.DataFrame, params: SplitParams, target: str) -> Split:
    """Masks for ``features`` (columns as_of, event_ticker, settlement_ts) and ``target``."""
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
    as_of = features["as_of"]
    if target == "direction":
        train = (as_of + DAY) < train_end
    elif target == "settlement":
        events = features["event_ticker"]
        settled = features["settlement_ts"]
        event_settled = settled.groupby(events, sort=False, observed=True).transform("max")
        unsettled = settled.isna().groupby(events, sort=False, observed=True).transform("any")
        train = ~unsettled.astype(bool) & (event_settled < train_end) & (as_of < train_end)
    else:
        raise DataError(f"unknown target {target!r}")
    valid = as_of >= valid_start
    train_mask, valid_mask = train.to_numpy(dtype=bool), valid.to_numpy(dtype=bool)
    if not train_mask.any():
        raise DataError(
            f"no training rows: nothing is labelled before {train_end:%Y-%m-%d} "
            f"(split.train_size={params.train_size}, split.embargo_days={params.embargo_days})"
        )
    return Split(train=train_mask, valid=valid_mask, valid_start=valid_start, train_end=train_end)
