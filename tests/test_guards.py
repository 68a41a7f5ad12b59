"""A period too thin to score is skipped with its reason; nothing scorable is one clear error."""

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier

from kalshi_lab.guards import constant_model_reason, nothing_scorable, scorable, skip_reason
from kalshi_lab.params import SplitParams
from kalshi_lab.split import periods

START = pd.Timestamp("2025-01-02", tz="UTC")
DAY = pd.Timedelta(days=1)
#: 60 days, an event every 2 days: about 18 events train for validation, 6 are scored there
SPLIT = SplitParams(train_size=0.6, embargo_days=1, min_train_events=5, min_scored_events=3)


def panel(n_days: int = 60) -> pd.DataFrame:
    """Events of two strikes (one YES, one NO) every 2 days, each open 4 days, priced."""
    rows = []
    for first in range(0, n_days - 3, 2):
        for strike, outcome in (("a", 1.0), ("b", 0.0)):
            for d in range(first, first + 4):
                rows.append(
                    {
                        "ticker": f"E{first}-{strike}",
                        "event_ticker": f"E{first}",
                        "as_of": START + d * DAY,
                        "settlement_ts": START + (first + 4) * DAY,
                        "DAYS_TO_CLOSE": float(first + 4 - d),
                        "target_settlement": outcome,
                        "market_prob": 0.6 if outcome else 0.4,
                    }
                )
    return pd.DataFrame(rows)


def reason(frame: pd.DataFrame, params: SplitParams = SPLIT) -> str | None:
    return skip_reason(frame, periods(frame, params, "settlement").validation, "settlement", params)


def test_a_period_with_enough_events_and_both_classes_is_scored():
    assert reason(panel()) is None


def test_too_few_training_or_scored_events_skip_the_period_naming_the_key():
    frame = panel()
    split = periods(frame, SPLIT, "settlement").validation
    n_train = frame.loc[split.train, "event_ticker"].nunique()
    n_scored = frame.loc[split.valid, "event_ticker"].nunique()
    fewer_train = SplitParams(0.6, 1, min_train_events=n_train + 1, min_scored_events=1)
    assert reason(frame, fewer_train) == (
        f"{n_train} events with a labelled training row, fewer than "
        f"split.min_train_events={n_train + 1}"
    )
    assert reason(frame, SplitParams(0.6, 1, min_train_events=n_train, min_scored_events=1)) is None
    fewer_scored = SplitParams(0.6, 1, min_train_events=1, min_scored_events=n_scored + 1)
    assert reason(frame, fewer_scored) == (
        f"{n_scored} events with a scored row, fewer than split.min_scored_events={n_scored + 1}"
    )


def test_unlabelled_and_unpriced_rows_do_not_count_as_scored_events():
    frame = panel()
    split = periods(frame, SPLIT, "settlement").validation
    scored_events = frame.loc[split.valid, "event_ticker"].unique()
    # all but two scored events lose their labels, one more its prices
    frame.loc[frame["event_ticker"].isin(scored_events[2:]), "target_settlement"] = np.nan
    frame.loc[frame["event_ticker"] == scored_events[1], "market_prob"] = np.nan
    labelled, priced = scorable(frame, "settlement")
    assert set(frame.loc[split.valid & labelled & priced, "event_ticker"]) == {scored_events[0]}
    assert reason(frame) == "1 events with a scored row, fewer than split.min_scored_events=3"
    # direction needs no price: every row counts as priced
    assert scorable(frame.assign(target_direction=1.0), "direction")[1].all()


def test_one_class_in_training_or_scoring_skips_the_period():
    frame = panel()
    split = periods(frame, SPLIT, "settlement").validation
    train_only = frame.index[split.train]
    no_train = frame.assign(target_settlement=1.0)
    assert reason(no_train) == "its training labels hold one class (all 1)"
    unpriced_no = frame.copy()  # the NO strikes of training events lose their prices
    unpriced_no.loc[train_only[frame.loc[train_only, "target_settlement"] == 0], "market_prob"] = (
        np.nan
    )
    assert reason(unpriced_no) == (
        "its priced training rows (the recalibrated market's) hold one class (all 1)"
    )
    scored_yes = frame.copy()
    scored_yes.loc[split.valid, "target_settlement"] = 0.0
    assert reason(scored_yes) == "its scored labels hold one class (all 0)"


def test_a_lightgbm_that_found_no_split_is_a_constant_model():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"signal": rng.normal(size=100)})
    y = (x["signal"] > 0).astype(int).to_numpy()
    stump = LGBMClassifier(n_estimators=20, min_child_samples=100, verbose=-1).fit(x, y)
    prob = stump.predict_proba(x)[:, 1]
    assert constant_model_reason(prob) == (
        f"the fitted model is constant: it predicts {prob[0]:.4f} for every training row "
        "(e.g. a LightGBM that found no split)"
    )
    learner = LGBMClassifier(n_estimators=20, min_child_samples=10, verbose=-1).fit(x, y)
    assert constant_model_reason(learner.predict_proba(x)[:, 1]) is None


def test_nothing_scorable_names_the_events_there_are_and_needed():
    frame = panel()
    frame.loc[frame["event_ticker"] == "E0", "settlement_ts"] = pd.NaT
    error = nothing_scorable(frame, {"fold_1": "why 1", "test": "why 2"}, SPLIT)
    assert str(error) == (
        "no period can be scored: the data holds 29 events (28 fully settled); a period needs "
        "at least split.min_train_events=5 events trained on and split.min_scored_events=3 "
        "events scored, both classes and a model that is not constant; fold_1: why 1; "
        "test: why 2"
    )


@pytest.mark.parametrize("target", ["settlement", "direction"])
def test_a_skip_reason_never_depends_on_rows_outside_the_period(target):
    frame = panel().assign(target_direction=lambda f: f["target_settlement"])
    split = periods(frame, SPLIT, target).validation
    before = skip_reason(frame, split, target, SPLIT)
    # labels of rows neither trained on nor scored (purged, later, embargoed) do not matter
    outside = ~(split.train | split.valid)
    assert outside.any()
    frame.loc[outside, ["target_settlement", "target_direction"]] = np.nan
    assert skip_reason(frame, split, target, SPLIT) == before
