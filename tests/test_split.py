"""The split is chronological, embargoed, and never trains on a label unknown at validation start."""

import logging

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.errors import DataError
from kalshi_lab.params import SplitParams
from kalshi_lab.split import chronological_split

DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2025-01-02", tz="UTC")


def panel() -> pd.DataFrame:
    """Three events over 20 days: one settles early, one late, one never."""
    rows = []
    for event, (first, last, settles) in {
        "E1": (0, 7, 8),
        "E2": (3, 19, 20),
        "E3": (10, 19, None),
    }.items():
        for strike in ("a", "b"):
            for d in range(first, last + 1):
                rows.append(
                    {
                        "ticker": f"{event}-{strike}",
                        "event_ticker": event,
                        "as_of": START + d * DAY,
                        "settlement_ts": START + settles * DAY if settles is not None else pd.NaT,
                    }
                )
    return pd.DataFrame(rows)


def test_direction_split_is_by_date_with_embargo():
    frame = panel()
    split = chronological_split(frame, SplitParams(train_size=0.5, embargo_days=2), "direction")
    train_dates, valid_dates = frame.loc[split.train, "as_of"], frame.loc[split.valid, "as_of"]
    assert valid_dates.min() == split.valid_start == START + 10 * DAY
    # a direction label is known one day after as_of; it must be known before the embargo
    assert (train_dates + DAY).max() < split.valid_start - 2 * DAY
    assert not (split.train & split.valid).any()


def test_settlement_trains_only_on_events_settled_before_validation():
    frame = panel()
    split = chronological_split(frame, SplitParams(train_size=0.5, embargo_days=1), "settlement")
    assert set(frame.loc[split.train, "event_ticker"]) == {"E1"}
    # every strike of an event is on the same side
    sides = frame.assign(train=split.train).groupby("event_ticker")["train"].agg(["min", "max"])
    assert (sides["min"] == sides["max"]).all()


def test_no_training_rows_is_a_clear_error():
    frame = panel()
    with pytest.raises(DataError, match="no training rows"):
        chronological_split(frame, SplitParams(train_size=0.05, embargo_days=5), "settlement")
    with pytest.raises(DataError, match="no feature rows"):
        chronological_split(
            frame.iloc[:0], SplitParams(train_size=0.5, embargo_days=0), "direction"
        )


def test_split_ignores_row_order():
    frame = panel()
    shuffled = frame.sample(frac=1.0, random_state=0)
    a = chronological_split(frame, SplitParams(0.6, 1), "direction")
    b = chronological_split(shuffled, SplitParams(0.6, 1), "direction")
    assert a.valid_start == b.valid_start
    assert np.array_equal(frame.index[a.train], np.sort(shuffled.index[b.train]))


def _split_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kalshi_lab.split"]


def test_settlement_split_logs_what_it_keeps_out_of_training_and_why(caplog):
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"):
        chronological_split(panel(), SplitParams(train_size=0.5, embargo_days=1), "settlement")
    # 20 days: validation from day 10, labels known before day 9
    assert _split_lines(caplog) == [
        "split (settlement): training labels known before 2025-01-11 (the cut-off), "
        "validation from 2025-01-12",
        "split: 16 rows, 2 markets, 1 events: train",  # E1, settled on day 8
        "split: 40 rows, 4 markets, 2 events: validation",  # E2 and E3 from day 10
        "split: 2 rows, 2 markets, 1 events: not in train, embargo: as_of between the training "
        "labels' cut-off and the first scored day",  # E2 on day 9
        "split: 12 rows, 2 markets, 1 events: not in train, event settled at or after the "
        "cut-off: label unknown before the embargo",  # E2 on days 3-8, settled on day 20
        "split: 4 of 6 markets and 2 of 3 events have no training row",
    ]


def test_unsettled_strikes_and_late_next_day_labels_are_logged(caplog):
    frame = panel()
    # one strike of E1 never settles: the whole event stays out of training
    frame.loc[frame["ticker"] == "E1-b", "settlement_ts"] = pd.NaT
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"), pytest.raises(DataError):
        chronological_split(frame, SplitParams(train_size=0.5, embargo_days=1), "settlement")
    assert (
        "split: 16 rows, 2 markets, 1 events: not in train, event not fully settled: a strike "
        "has no settlement_ts (an event trains whole)"
    ) in _split_lines(caplog)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"):
        chronological_split(panel(), SplitParams(train_size=0.5, embargo_days=2), "direction")
    # labels known before day 8: day 7's label (day 8's price) is late for E1 and E2
    assert (
        "split: 4 rows, 4 markets, 2 events: not in train, next day's price (the label) known "
        "only at or after the cut-off"
    ) in _split_lines(caplog)
