"""The split is chronological, embargoed, and never trains on a label unknown at validation start."""

import logging

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.params import EvaluationParams, SplitParams
from kalshi_lab.split import chronological_split, periods

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


def long_panel(n_days: int = 60) -> pd.DataFrame:
    """Events of two strikes every 3 days, each open 6 days and settled 1 day after its close."""
    rows = []
    for first in range(0, n_days - 5, 3):
        for strike in ("a", "b"):
            for d in range(first, first + 6):
                rows.append(
                    {
                        "ticker": f"E{first}-{strike}",
                        "event_ticker": f"E{first}",
                        "as_of": START + d * DAY,
                        "settlement_ts": START + (first + 6) * DAY,
                    }
                )
    return pd.DataFrame(rows)


THREE = SplitParams(train_size=0.6, embargo_days=2, test_size=0.2, n_folds=3)


def test_three_periods_are_ordered_and_disjoint_and_test_scores_last():
    frame = long_panel()
    found = periods(frame, THREE, "settlement")
    days = np.sort(frame["as_of"].unique())  # 60 days: validation days 36-47, test 48-59
    valid, test = found.validation, found.test
    assert valid.valid_start == days[36] and valid.valid_end == days[48] == test.valid_start
    as_of = frame["as_of"]
    assert as_of[valid.valid].between(days[36], days[47]).all() and valid.valid.sum() > 0
    assert (as_of[test.valid] >= days[48]).all()
    assert (as_of[test.valid] >= days[48]).sum() == (as_of >= days[48]).sum()
    assert not (valid.valid & test.valid).any()
    # validation's model never trains on a row at or after the validation cut-off, ...
    assert (frame.loc[valid.train, "settlement_ts"] < valid.valid_start - 2 * DAY).all()
    # ... the test model is refit on validation rows whose labels are known before the test
    assert (as_of[test.train] >= valid.valid_start).any()
    assert (frame.loc[test.train, "settlement_ts"] < test.valid_start - 2 * DAY).all()
    for split in (valid, test):  # every strike of an event on the same side
        sides = frame.assign(train=split.train).groupby("event_ticker")["train"].nunique()
        assert (sides == 1).all()


def test_walk_forward_folds_expand_and_tile_up_to_validation():
    frame = long_panel()
    found = periods(frame, THREE, "direction")
    days = np.sort(frame["as_of"].unique())
    starts = [f.valid_start for f in found.folds]
    assert found.numbers == (1, 2, 3)
    assert starts == [days[12], days[24], days[36]]  # folds of 12 days, validation last
    assert [f.valid_end for f in found.folds] == [days[24], days[36], days[48]]
    trains = [f.train.sum() for f in found.folds]
    assert trains == sorted(trains) and len(set(trains)) == 3  # expanding window
    for fold in found.folds:
        assert ((frame["as_of"][fold.train] + DAY) < fold.valid_start - 2 * DAY).all()
        assert frame["as_of"][fold.valid].between(fold.valid_start, fold.valid_end - DAY).all()
    # the blocks tile train + validation from the first fold on: no scored row twice
    scored = np.sum([f.valid for f in found.folds], axis=0)
    assert scored.max() == 1 and scored.sum() == (frame["as_of"].between(days[12], days[47])).sum()


def test_defaults_keep_the_plain_train_validation_split():
    frame = long_panel()
    plain = periods(frame, SplitParams(train_size=0.8, embargo_days=1), "direction")
    assert plain.test is None and len(plain.folds) == 1
    assert plain.validation.valid_end is None
    assert plain.validation.valid.sum() == (frame["as_of"] >= plain.validation.valid_start).sum()


def test_an_early_fold_without_training_rows_is_skipped_with_a_warning(caplog):
    frame = long_panel()
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"):
        found = periods(frame, SplitParams(0.6, 10, test_size=0.2, n_folds=3), "settlement")
    # fold 1 scores from day 12: with a 10-day embargo, nothing settled before day 2
    assert found.numbers == (2, 3) and len(found.folds) == 2
    assert found.validation.valid_start == START + 36 * DAY
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "split: walk-forward fold 1 of 3 skipped: no row is labelled before 2025-01-04 "
        "(fewer split.n_folds would start later)"
    ]


def test_impossible_periods_are_clear_errors_naming_the_parameter():
    frame = long_panel()
    with pytest.raises(DataError, match="split.n_folds=5 folds of 12 days"):
        periods(frame, SplitParams(0.6, 2, test_size=0.2, n_folds=5), "direction")
    with pytest.raises(DataError, match="split.test_size=0.01 holds no day"):
        periods(frame, SplitParams(0.6, 2, test_size=0.01), "direction")


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: SplitParams(0.6, 2, test_size=0.4), "split.test_size"),
        (lambda: SplitParams(0.6, 2, test_size=-0.1), "split.test_size"),
        (lambda: SplitParams(0.6, 2, n_folds=0), "split.n_folds"),
        (lambda: EvaluationParams(10, 0, 10), "evaluation.bootstrap_samples"),
        (lambda: EvaluationParams(1000, 0, 1), "evaluation.reliability_bins"),
    ],
)
def test_bad_split_and_evaluation_params_name_the_key(make, key):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        make()
