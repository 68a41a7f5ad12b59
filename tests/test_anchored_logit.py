"""The anchored logistic model: the market price unless a feature is significant across events,
then that feature at full strength; evidence counted in events, not rows."""

import tracemalloc

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from kalshi_lab.evaluation.bootstrap import cluster_bootstrap
from kalshi_lab.evaluation.metrics import brier_per_row
from kalshi_lab.models import MarketAnchoredLogit, anchored_logit, build_model, fit_model
from kalshi_lab.models.market_offset import OFFSET_FEATURE, sigmoid
from kalshi_lab.params import ModelParams


def events(n_events: int, days: int, seed: int, edge: float = 0.0, shock: float = 0.0):
    """``days`` rows per event: the market's log-odds, a signal worth ``edge`` log-odds per unit
    that the price misses, an event-level noise column (one value per event, many rows: the
    trap a row count falls into) and a row-level one; one outcome per event, shifted by a
    common ``shock`` the price misses on these events only."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 1.5, n_events)
    signal = rng.normal(0.0, 1.0, n_events)
    outcome = rng.uniform(size=n_events) < sigmoid(market + edge * signal + shock)
    event = np.repeat(np.arange(n_events), days)
    X = pd.DataFrame(
        {
            OFFSET_FEATURE: market[event] + rng.normal(0, 0.05, len(event)),
            "SIGNAL": signal[event],
            "EVENT_NOISE": rng.normal(size=n_events)[event],
            "ROW_NOISE": rng.normal(size=len(event)),
        }
    )
    return X, outcome[event].astype(int), event


def test_without_a_significant_feature_it_is_the_market_and_not_better_than_it():
    X, y, event = events(300, 20, 0, shock=-0.4)
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    assert model.selected_features_ == []
    market = sigmoid(X[OFFSET_FEATURE].to_numpy())
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], market, rtol=0, atol=1e-15)
    # the common shock is not learned: there is no intercept
    diff = brier_per_row(y, model.predict_proba(X)[:, 1]) - brier_per_row(y, market)
    assert (
        cluster_bootstrap(event, {"d": diff}, 200, 0)["d"]["share_below_zero"] == 0.0
    )  # a tie, no skill


def test_a_feature_the_market_misses_enters_at_full_strength():
    X, y, event = events(600, 10, 1, edge=1.0)
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    assert model.selected_features_ == ["SIGNAL"]
    # per standard deviation of SIGNAL (about 1): close to the true 1.0, not shrunk toward 0
    assert model.coef_[0] == pytest.approx(1.0, abs=0.25)
    fresh, y_fresh, _ = events(600, 10, 2, edge=1.0)
    market = sigmoid(fresh[OFFSET_FEATURE].to_numpy())
    gain = brier_per_row(y_fresh, market) - brier_per_row(y_fresh, model.predict_proba(fresh)[:, 1])
    assert gain.mean() > 0.005


def test_evidence_is_counted_in_events_not_rows():
    """An event-level noise column repeated over 200 days per event looks significant by rows
    and is not by events: with groups it stays out."""
    picked = {True: 0, False: 0}
    for seed in range(10):
        X, y, event = events(60, 200, seed)
        picked[True] += (
            "EVENT_NOISE" in MarketAnchoredLogit().fit(X, y, groups=event).selected_features_
        )
        picked[False] += "EVENT_NOISE" in MarketAnchoredLogit().fit(X, y).selected_features_
    assert picked[True] <= 1 and picked[False] >= 5


def test_no_price_starts_from_the_training_base_rate_and_missing_values_from_the_median():
    X, y, event = events(300, 5, 3, edge=1.0)
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    row = X.iloc[:1].copy()
    row[OFFSET_FEATURE] = np.nan
    row["SIGNAL"] = np.nan
    base = np.log(y.mean() / (1 - y.mean()))
    at_median = (np.nanmedian(X["SIGNAL"]) - X["SIGNAL"].mean()) / X["SIGNAL"].std(ddof=0)
    expected = sigmoid(base + model.coef_[0] * at_median)
    assert model.predict_proba(row)[0, 1] == pytest.approx(expected)


def test_the_stages_pass_events_and_the_fit_repeats_and_pickles(tmp_path):
    X, y, event = events(300, 5, 4, edge=1.0)
    params = ModelParams(name="anchored_logit", target="settlement", seed=0, params={})
    model = fit_model(params, X, y, np.array([f"E{e}" for e in event]), "a test")
    direct = MarketAnchoredLogit().fit(X, y, groups=event)
    np.testing.assert_array_equal(model.predict_proba(X), direct.predict_proba(X))
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert clone(model).get_params() == model.get_params()
    assert isinstance(build_model(params), MarketAnchoredLogit)


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": 1.5}, {"max_features": -1}])
def test_bad_settings_are_refused(bad):
    X, y, event = events(50, 2, 5)
    with pytest.raises(ValueError):
        MarketAnchoredLogit(**bad).fit(X, y, groups=event)


def test_a_prediction_reads_columns_by_name_and_needs_every_training_column():
    X, y, event = events(300, 5, 5, edge=1.0)
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    assert model.selected_features_ == ["SIGNAL"]
    expected = model.predict_proba(X)
    shuffled = X[X.columns[::-1]].assign(EXTRA=1.0)
    np.testing.assert_array_equal(model.predict_proba(shuffled), expected)
    with pytest.raises(ValueError, match="EVENT_NOISE"):
        model.predict_proba(X.drop(columns="EVENT_NOISE"))  # not selected, still required


def test_the_fit_standardises_by_the_training_medians_means_and_spreads_leaving_x_alone():
    X, y, event = events(300, 5, 4, edge=1.0)
    X.iloc[::7, 1] = np.nan
    X.iloc[::11, 2] = np.inf
    before = X.copy()
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    pd.testing.assert_frame_equal(X, before)  # the fit works on its own matrix
    values = X.to_numpy(dtype=float)
    finite = np.isfinite(values)
    median = np.nan_to_num(np.nanmedian(np.where(finite, values, np.nan), axis=0))
    filled = np.where(finite, values, median)
    np.testing.assert_array_equal(model.median_, median)
    np.testing.assert_array_equal(model.mean_, filled.mean(axis=0))
    np.testing.assert_array_equal(model.scale_, filled.std(axis=0))


def test_the_selection_and_coefficients_are_those_of_the_standardised_matrix_bit_for_bit():
    """The fit standardises one column at a time; its statistics and coefficients are the
    bits of the whole standardised matrix, column-major as a frame of floats holds it."""
    X, y, event = events(400, 5, 6, edge=1.0)
    rng = np.random.default_rng(6)
    X["SECOND"] = y + rng.normal(0, 2.0, len(X))  # a second feature the market misses
    X.iloc[::9, 2] = np.nan
    model = MarketAnchoredLogit().fit(X, y, groups=event)
    assert model.selected_features_ == ["SECOND", "SIGNAL"]  # two: the matrix's layout counts
    z = np.asfortranarray((X.fillna(X.median()).to_numpy() - model.mean_) / model.scale_)
    yes = y.astype(float)
    offset = X[OFFSET_FEATURE].to_numpy()
    residual = yes - sigmoid(offset)
    per_event = np.array(
        [[np.sum((z[:, j] * residual)[event == e]) for j in range(5)] for e in range(400)]
    )
    first = per_event.sum(axis=0) / np.sqrt((per_event**2).sum(axis=0))
    assert model.z_scores_[0] == pytest.approx(first[4], rel=1e-12)
    np.testing.assert_array_equal(
        model.coef_, model._coefficients(z[:, model.selected_], offset, yes)
    )


def test_the_fit_holds_no_second_matrix_of_the_training_rows():
    """The live model's fit at 100k markets holds every labelled row's inputs: a standardised
    copy of them beside the caller's would be a gigabyte more."""
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(50_000, 40)), columns=[f"F{j}" for j in range(40)])
    X[OFFSET_FEATURE] = rng.normal(0, 1.5, len(X))
    y = (rng.uniform(size=len(X)) < sigmoid(X[OFFSET_FEATURE].to_numpy())).astype(int)
    tracemalloc.start()
    MarketAnchoredLogit().fit(X, y, groups=np.arange(len(X)) // 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.5 * X.to_numpy().nbytes


def test_the_cluster_sums_are_bincount_s_bits_in_any_order_of_the_clusters():
    """The score test's per-event sums add each event's rows one after the other in row order,
    as ``np.bincount`` adds them: a pairwise or reordered sum (``np.add.reduceat``, a sum of
    the rows sorted otherwise) rounds differently and changes which feature enters."""
    rng = np.random.default_rng(11)
    n, n_clusters = 20_000, 300
    scattered = rng.integers(0, n_clusters, n)  # an event's rows anywhere in the table
    contiguous = np.sort(scattered)  # the features table's order: an event's rows together
    weights = [rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n) for _ in range(3)]
    weights[2][::7] = -0.0
    for cluster in (scattered, contiguous):
        sums = anchored_logit._cluster_sums(
            iter(weights), anchored_logit._membership(cluster, n_clusters)
        )
        expected = np.column_stack(
            [np.bincount(cluster, weights=w, minlength=n_clusters) for w in weights]
        )
        assert sums.shape == (n_clusters, 3)
        np.testing.assert_array_equal(sums.view(np.int64), expected.view(np.int64))
