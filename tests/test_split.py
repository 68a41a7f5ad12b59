"""The split is chronological, embargoed, never trains on a label unknown when a period starts,
and scores each event in one period only."""

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.tables import read_table
from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.features import build_features
from kalshi_lab.params import EvaluationParams, SplitParams, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.split import PURGED, chronological_split, periods

ROOT = Path(__file__).resolve().parents[1]
DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2025-01-02", tz="UTC")


def panel() -> pd.DataFrame:
    """Three events over 20 days: one settles early, one late, one never; each closes the day
    after its last row."""
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
                        "DAYS_TO_CLOSE": float(last + 1 - d),
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


def test_no_training_rows_is_left_to_the_guards_and_no_rows_is_a_clear_error():
    frame = panel()
    split = chronological_split(frame, SplitParams(train_size=0.05, embargo_days=5), "settlement")
    assert not split.train.any() and split.valid.any()  # kalshi_lab.guards skips it
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
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"):
        split = chronological_split(
            frame, SplitParams(train_size=0.5, embargo_days=1), "settlement"
        )
    assert not split.train.any()
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
                        "DAYS_TO_CLOSE": float(first + 6 - d),
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


def test_walk_forward_folds_expand_and_their_windows_tile_up_to_validation():
    frame = long_panel()
    found = periods(frame, THREE, "direction")
    days = np.sort(frame["as_of"].unique())
    assert [f.valid_start for f in found.folds] == [days[12], days[24], days[36]]
    assert [f.valid_end for f in found.folds] == [days[24], days[36], days[48]]
    trains = [f.train.sum() for f in found.folds]
    assert trains == sorted(trains) and len(set(trains)) == 3  # expanding window
    for fold in found.folds:
        assert ((frame["as_of"][fold.train] + DAY) < fold.valid_start - 2 * DAY).all()
        window = frame["as_of"].between(fold.valid_start, fold.valid_end - DAY).to_numpy()
        # each row of the window is scored here or purged (its event resolves later)
        assert np.array_equal(fold.valid | fold.purged, window)
        assert not (fold.valid & fold.purged).any()
    # the windows tile train + validation from the first fold on: no row scored twice
    scored = np.sum([f.valid for f in found.folds], axis=0)
    assert scored.max() == 1


@pytest.mark.parametrize("target", ["settlement", "direction"])
def test_no_event_is_scored_in_two_periods(target):
    frame = long_panel()
    found = periods(frame, THREE, target)
    named = found.named()
    assert [key for key, _, _ in named] == ["fold_1", "fold_2", "fold_3", "test"]
    scored = {key: set(frame.loc[split.valid, "event_ticker"]) for key, _, split in named}
    assert all(scored.values())
    for a, b in itertools.combinations(scored, 2):
        assert not scored[a] & scored[b], (a, b, scored[a] & scored[b])


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default configuration's split params and features: the simulator as `dvc repro`
    runs it (about 10 s)."""
    params = params_from_dict(compose([], ROOT / "conf"))
    work = tmp_path_factory.mktemp("default")
    write_synthetic_raw(params.data, work / "raw")
    (work / "parquet").mkdir()
    write_tables(work / "raw", work / "parquet")
    tables = {name: read_table(name, work / "parquet") for name in ("markets", "candles", "trades")}
    features = build_features(
        tables["markets"], tables["candles"], tables["trades"], params.features
    )
    return params, features


def test_no_event_is_scored_in_two_periods_on_the_default_simulator(default_run):
    params, features = default_run
    found = periods(features, params.split, params.model.target)
    events = features["event_ticker"]
    scored = {key: set(events[split.valid]) for key, _, split in found.named()}
    assert len(scored) == params.split.n_folds + 1 and all(scored.values())
    for a, b in itertools.combinations(scored, 2):
        assert not scored[a] & scored[b], (a, b, len(scored[a] & scored[b]))
    # validation scores no event that settles in the test period, and purges those it cuts
    test_start = found.test.valid_start
    assert (features.loc[found.validation.valid, "settlement_ts"] < test_start).all()
    straddling = features.loc[found.validation.purged, "settlement_ts"]
    assert len(straddling) > 0 and (straddling >= test_start).all()


def test_an_event_is_scored_in_the_period_it_resolves_in():
    frame = long_panel()
    found = periods(frame, THREE, "settlement")
    for _, _, split in found.named():
        resolved = frame.loc[split.valid, "settlement_ts"]
        assert (resolved >= split.valid_start).all()
        if split.valid_end is not None:
            assert (resolved < split.valid_end).all()


def test_straddlers_are_purged_from_the_earlier_window_and_counted(caplog):
    frame = long_panel()
    with caplog.at_level(logging.INFO, logger="kalshi_lab.split"):
        found = periods(frame, THREE, "settlement")
    fold_1, fold_2 = found.folds[0], found.folds[1]
    events = frame["event_ticker"]
    # E21 (days 21-26, settled on day 27) straddles fold 2's start (day 24): its rows of days
    # 21-23 are purged from fold 1, those of days 24-26 scored in fold 2
    e21 = (events == "E21").to_numpy()
    assert (frame["as_of"][e21 & fold_1.purged].dt.day - START.day).tolist() == [21, 22, 23] * 2
    assert not (e21 & fold_1.valid).any()
    assert (e21 & fold_2.valid).sum() == 6
    # E18 (days 18-23, settled on day 24) lies in fold 1's window but resolves in fold 2's
    assert (events[fold_1.purged].unique().tolist()) == ["E18", "E21"]
    # a purged row is scored in no period
    scored = np.any([split.valid for _, _, split in found.named()], axis=0)
    assert not (scored & fold_1.purged).any()
    lines = [r.getMessage() for r in caplog.records if r.name == "kalshi_lab.split"]
    assert (
        "split: walk-forward fold 1 of 3: 24 training rows (labels before 2025-01-12); 30 scored "
        "rows of 3 events from 2025-01-14 to 2025-01-26; 18 rows of 2 events purged (they "
        "resolve in a later period)"
    ) in lines
    # validation's window: E42 (days 42-47) and E45 (45-50) resolve in the test period
    assert f"split: 18 rows, 4 markets, 2 events: not in train, {PURGED}" in lines


@pytest.mark.parametrize("target", ["settlement", "direction"])
def test_no_training_label_is_known_after_its_period_starts(target):
    frame = long_panel()
    # an event that never settles, open across the test start: never trained on
    frame.loc[frame["event_ticker"] == "E45", "settlement_ts"] = pd.NaT
    found = periods(frame, THREE, target)
    for _, _, split in found.named():
        assert split.train_end == split.valid_start - 2 * DAY
        first_scored = frame.loc[split.valid, "as_of"].min()
        if target == "settlement":
            trained = frame["event_ticker"].isin(frame.loc[split.train, "event_ticker"])
            known = frame.loc[trained, "settlement_ts"]  # every strike of a trained event
            assert known.notna().all()
        else:
            known = frame.loc[split.train, "as_of"] + DAY  # the next day's price
        assert (known < split.train_end).all() and (known < first_scored).all()
    assert "E45" not in set(frame.loc[found.test.train, "event_ticker"])


def test_an_unsettled_event_belongs_to_the_period_of_its_known_close():
    frame = long_panel()
    # E30 (days 30-35) never settles: known close day 36, validation's first day
    frame.loc[frame["event_ticker"] == "E30", "settlement_ts"] = pd.NaT
    found = periods(frame, THREE, "settlement")
    e30 = (frame["event_ticker"] == "E30").to_numpy()
    assert found.folds[1].purged[e30].all()  # its rows lie in fold 2's window
    assert not any((split.valid & e30).any() for _, _, split in found.named())


def test_defaults_keep_the_plain_train_validation_split():
    frame = long_panel()
    plain = periods(frame, SplitParams(train_size=0.8, embargo_days=1), "direction")
    assert plain.test is None and len(plain.folds) == 1
    assert plain.validation.valid_end is None
    # the last window is open-ended: every event with a row in it resolves in it
    assert plain.validation.valid.sum() == (frame["as_of"] >= plain.validation.valid_start).sum()


def test_every_period_is_returned_even_without_training_rows():
    frame = long_panel()
    found = periods(frame, SplitParams(0.6, 10, test_size=0.2, n_folds=3), "settlement")
    # fold 1 scores from day 12: with a 10-day embargo, nothing settled before day 2; whether
    # it is scored is kalshi_lab.guards' decision
    assert len(found.folds) == 3 and not found.folds[0].train.any()
    assert found.validation.valid_start == START + 36 * DAY


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
        (lambda: SplitParams(0.6, 2, min_train_events=0), "split.min_train_events"),
        (lambda: SplitParams(0.6, 2, min_scored_events=0), "split.min_scored_events"),
        (lambda: SplitParams(0.6, 2, min_scored_events=2.5), "split.min_scored_events"),
        (lambda: EvaluationParams(10, 0, 10), "evaluation.bootstrap_samples"),
        (lambda: EvaluationParams(1000, 0, 1), "evaluation.reliability_bins"),
    ],
)
def test_bad_split_and_evaluation_params_name_the_key(make, key):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        make()
