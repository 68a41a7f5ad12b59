"""Scores, baselines, bootstrap and reports behave as their definitions say."""

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression

from kalshi_lab.evaluation.baselines import baselines, recalibrated_market
from kalshi_lab.evaluation.bootstrap import cluster_bootstrap
from kalshi_lab.evaluation.importance import feature_importance
from kalshi_lab.evaluation.metrics import reliability, roc_points, score, wilson
from kalshi_lab.evaluation.report import Scored, headline, period_report, scores, with_best
from kalshi_lab.params import EvaluationParams


def test_perfect_and_uninformative_scores():
    y = np.array([0, 1, 0, 1])
    perfect = score(y, np.array([0.0, 1.0, 0.0, 1.0]))
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0 and perfect["brier"] < 1e-9
    coin = score(y, np.full(4, 0.5))
    assert coin["brier"] == pytest.approx(0.25) and coin["log_loss"] == pytest.approx(np.log(2))
    assert score(np.array([1, 1]), np.array([0.9, 0.8]))["roc_auc"] == 0.5


def biased_market(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Prices with a favourite-longshot bias that grows with time to close, and outcomes."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.98, n)
    days = rng.uniform(0, 30, n)
    logit = np.log(truth / (1 - truth)) * (1 - 0.02 * days)  # prices shrink toward 0.5
    rows = pd.DataFrame({"market_prob": 1 / (1 + np.exp(-logit)), "DAYS_TO_CLOSE": days})
    return rows, (rng.uniform(size=n) < truth).astype(int)


def test_settlement_baselines_are_market_recal_and_base_rate():
    train, y_train = biased_market(200, 0)
    rows = pd.DataFrame({"market_prob": [0.2, 0.9], "DAYS_TO_CLOSE": [3.0, 10.0]})
    out = baselines("settlement", train, y_train, rows)
    assert list(out) == ["market", "recal", "base_rate"]
    assert out["market"][0].tolist() == pytest.approx([0.2, 0.9])
    assert out["base_rate"][0].tolist() == pytest.approx([y_train.mean()] * 2)


def test_recalibrated_market_learns_the_bias_from_training_rows_only():
    train, y_train = biased_market(20_000, 1)
    rows, y = biased_market(20_000, 2)
    recal, _ = recalibrated_market(train, y_train, rows)
    market = rows["market_prob"].to_numpy()
    assert score(y, recal)["brier"] < score(y, market)["brier"] - 0.003
    # it never sees the scored rows' outcomes: the same rows with other labels, same output
    relabelled = rows.assign(target_settlement=1 - y)
    assert np.array_equal(recalibrated_market(train, y_train, relabelled)[0], recal)
    # ... but it does depend on its training rows
    flipped, _ = recalibrated_market(train, 1 - y_train, rows)
    assert np.corrcoef(flipped, recal)[0, 1] < 0


def test_persistence_baseline_uses_training_frequencies():
    train = pd.DataFrame({"RET_1": [0.1, 0.2, -0.1, 0.0]})
    y_train = np.array([1, 0, 0, 0])
    valid = pd.DataFrame({"RET_1": [0.3, -0.3, np.nan]})
    out = baselines("direction", train, y_train, valid)
    assert list(out) == ["persistence", "base_rate"]
    prob, hard = out["persistence"]
    assert prob.tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert hard.tolist() == [1, 0, 0]
    assert out["base_rate"][1].tolist() == [0, 0, 0]


def test_wilson_interval_matches_the_formula_and_stays_in_unit_range():
    lower, upper = wilson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert lower[0] == pytest.approx(0.0, abs=1e-12) and upper[0] == pytest.approx(0.2775, abs=1e-4)
    assert lower[1] == pytest.approx(0.2366, abs=1e-4) and upper[1] == pytest.approx(
        0.7634, abs=1e-4
    )
    assert upper[2] == pytest.approx(1.0) and lower[2] == pytest.approx(0.7225, abs=1e-4)


def test_reliability_bins_hold_equal_counts_even_when_predictions_crowd_near_zero():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.0, 0.05, 4000), rng.uniform(size=1000)])
    y = (rng.uniform(size=5000) < p).astype(int)
    curve = reliability(y, p, n_bins=10)
    assert len(curve) == 10 and (curve["count"] == 500).all()
    assert curve["mean_predicted"].is_monotonic_increasing
    assert (curve["lower"] <= curve["fraction_positive"]).all()
    assert (curve["fraction_positive"] <= curve["upper"]).all()
    assert np.abs(curve["mean_predicted"] - curve["fraction_positive"]).max() < 0.1
    roc = roc_points(y, p, max_points=50)
    assert len(roc) <= 50 and roc.iloc[0].tolist() == [0.0, 0.0]
    assert roc.iloc[-1].tolist() == [1.0, 1.0]


def test_cluster_bootstrap_resamples_clusters_not_rows():
    rng = np.random.default_rng(0)
    # 40 events of 50 rows; all rows of an event share one difference
    events = np.repeat(np.arange(40), 50)
    per_event = rng.normal(0.0, 1.0, 40)
    diff = per_event[events]
    out = cluster_bootstrap(events, {"d": diff}, 2000, seed=1)["d"]
    assert out["estimate"] == pytest.approx(diff.mean())
    assert out["lower"] < out["estimate"] < out["upper"]
    # the interval is about +-1.96 sd/sqrt(40 events), not sd/sqrt(2000 rows)
    half = (out["upper"] - out["lower"]) / 2
    assert half == pytest.approx(1.96 * per_event.std() / np.sqrt(40), rel=0.2)
    assert out == cluster_bootstrap(events, {"d": diff}, 2000, seed=1)["d"]  # seeded
    # one event: nothing to resample, no uncertainty between events
    single = cluster_bootstrap(np.zeros(10), {"d": np.arange(10.0)}, 500, seed=0)["d"]
    assert single["lower"] == single["upper"] == pytest.approx(4.5)


def test_differences_bootstrapped_together_get_the_intervals_each_gets_alone():
    # a period's report bootstraps its six differences in one call (one set of draws): each
    # must come out as it does on its own with the same seed
    rng = np.random.default_rng(3)
    releases = rng.integers(0, 30, 400).astype(str)
    diffs = {name: rng.normal(shift, 1.0, 400) for name, shift in (("a", 0.3), ("b", -0.2))}
    together = cluster_bootstrap(releases, diffs, 600, seed=5)
    for name, diff in diffs.items():
        assert together[name] == cluster_bootstrap(releases, {name: diff}, 600, seed=5)[name]
    assert together["a"] != together["b"]


def test_release_ids_numbered_once_over_the_table_bootstrap_as_the_labels_do():
    # the evaluate stage sends each period's work its rows' release ids, numbered in order of
    # first appearance over the whole table, not the labels: a period's intervals (and the
    # pooled folds', across periods) must not change
    rng = np.random.default_rng(4)
    labels = np.array([f"KXU3 2025-{m:02d}-{d:02d}" for m, d in rng.integers(1, 13, (500, 2))])
    ids = pd.factorize(labels)[0].astype(np.int32)
    diffs = {"d": rng.normal(0.1, 1.0, 500)}
    for rows in (slice(None), slice(120, 380), rng.uniform(size=500) < 0.4):
        by_id = cluster_bootstrap(ids[rows], {"d": diffs["d"][rows]}, 400, seed=2)
        assert by_id == cluster_bootstrap(labels[rows], {"d": diffs["d"][rows]}, 400, seed=2)


def test_cluster_bootstrap_weights_clusters_by_their_rows():
    events = np.array(["a"] * 9 + ["b"])
    diff = np.array([1.0] * 9 + [-9.0])
    out = cluster_bootstrap(events, {"d": diff}, 1000, seed=0)["d"]
    assert out["estimate"] == pytest.approx(0.0)
    # resamples of two a's give 1.0, of two b's -9.0; about a quarter each
    assert 0.15 < out["share_below_zero"] < 0.35


def _block(seed: int, n_events: int = 60) -> Scored:
    rng = np.random.default_rng(seed)
    events = np.repeat(np.arange(n_events), 10)
    truth = rng.uniform(0.05, 0.95, n_events)[events]
    y = (rng.uniform(size=len(events)) < truth).astype(int)
    market = np.clip(truth + rng.normal(0, 0.15, len(y)), 0.01, 0.99)
    return Scored(
        y=y,
        prob=truth,
        baselines={
            "market": (market, (market > 0.5).astype(int)),
            "recal": (market, (market > 0.5).astype(int)),
            "base_rate": (np.full(len(y), 0.5), np.zeros(len(y), dtype=int)),
        },
        events=events,
        clusters=events // 2,  # two events per release
        structure=np.array(["ladder", "bracket", "binary"])[events % 3],
    )


def test_two_events_of_one_release_move_together():
    # releases of two events whose differences cancel: resampled together, every resample's
    # mean is 0; resampled as events apart, it is not
    events = np.repeat(np.arange(40), 5)
    diff = np.where(events % 2 == 0, 1.0, -1.0)
    together = cluster_bootstrap(events // 2, {"d": diff}, 500, seed=0)["d"]
    assert together["lower"] == together["upper"] == pytest.approx(0.0)
    apart = cluster_bootstrap(events, {"d": diff}, 500, seed=0)["d"]
    assert apart["upper"] - apart["lower"] > 0.3


def test_period_report_and_headline():
    block = with_best(_block(0), "settlement")
    params = EvaluationParams(bootstrap_samples=500, bootstrap_seed=0, reliability_bins=10)
    report = period_report(block, "settlement", params)
    table = report["scores"]
    assert set(table) == {"model", "market", "recal", "base_rate"}
    assert report["brier_skill"]["vs_market"] == pytest.approx(
        1 - table["model"]["brier"] / table["market"]["brier"]
    )
    diff = report["bootstrap"]["model_minus_recal"]["brier_diff"]
    assert diff["estimate"] == pytest.approx(table["model"]["brier"] - table["recal"]["brier"])
    assert diff["upper"] < 0  # the truth beats a noisy market over 60 events
    assert report["bootstrap"]["n_releases"] == 30
    top = headline(report)
    best = report["bootstrap"]["model_minus_best"]["brier_diff"]
    assert top == {
        "skill_vs_best": report["brier_skill"]["vs_best"],
        "p_no_skill": pytest.approx(1 - best["share_below_zero"]),
    }
    assert top["p_no_skill"] <= 0.025  # the interval's upper end is below 0
    pooled = Scored.pooled([block, with_best(_block(1), "settlement")])
    assert scores(pooled, "settlement")["n_rows"] == 2 * len(block.y)
    assert headline({"skipped": "too few events"}) == {"skill_vs_best": None, "p_no_skill": None}


def _with_recal(block: Scored, recal: np.ndarray) -> Scored:
    return Scored(
        y=block.y,
        prob=block.prob,
        baselines={**block.baselines, "recal": (recal, (recal > 0.5).astype(int))},
        events=block.events,
        clusters=block.clusters,
        structure=block.structure,
    )


def test_the_best_baseline_is_the_better_of_market_and_recalibrated_market_per_period():
    params = EvaluationParams(bootstrap_samples=200, bootstrap_seed=0, reliability_bins=10)
    block = _block(3)
    truth = block.prob
    market = block.baselines["market"][0]
    # a recalibration fit on few events, far off: worse than the raw price, flagged, no bar
    bad = with_best(_with_recal(block, np.clip(1 - market, 0.01, 0.99)), "settlement")
    report = period_report(bad, "settlement", params)
    assert bad.best == report["best_baseline"] == "market"
    assert report["recal_worse_than_market"] is True
    assert report["brier_skill"]["vs_best"] == report["brier_skill"]["vs_market"]
    # against the bad fit alone, the model would look far better than it is
    assert report["brier_skill"]["vs_recal"] > report["brier_skill"]["vs_best"] + 0.3
    # a recalibration near the truth: the bar is the recalibrated market
    good = with_best(_with_recal(block, np.clip(truth + 0.01, 0.01, 0.99)), "settlement")
    report = period_report(good, "settlement", params)
    assert report["best_baseline"] == "recal" and report["recal_worse_than_market"] is False
    assert report["brier_skill"]["vs_best"] == report["brier_skill"]["vs_recal"]
    assert headline(report)["skill_vs_best"] == report["brier_skill"]["vs_recal"]
    # pooled folds keep each fold's own best baseline, row by row
    pooled = Scored.pooled([bad, good])
    assert pooled.best == "market, recal"
    n = len(bad.y)
    assert np.array_equal(pooled.baselines["best"][0][:n], market)
    assert np.array_equal(pooled.baselines["best"][0][n:], good.baselines["recal"][0])


def test_direction_compares_with_persistence_its_only_reference():
    block = _block(4)
    block = Scored(
        y=block.y,
        prob=block.prob,
        baselines={
            "persistence": block.baselines["market"],
            "base_rate": block.baselines["base_rate"],
        },
        events=block.events,
        clusters=block.clusters,
        structure=block.structure,
    )
    params = EvaluationParams(bootstrap_samples=200, bootstrap_seed=0, reliability_bins=10)
    report = period_report(with_best(block, "direction"), "direction", params)
    assert report["best_baseline"] == "persistence" and "recal_worse_than_market" not in report
    assert report["brier_skill"]["vs_best"] == report["brier_skill"]["vs_persistence"]


def test_period_report_splits_by_structure_on_the_same_rows():
    block = with_best(_block(2, n_events=180), "settlement")
    # the model is the market itself on ladders: no edge there, all of it on the others
    ladder = block.structure == "ladder"
    block.prob[ladder] = block.baselines["market"][0][ladder]
    params = EvaluationParams(bootstrap_samples=300, bootstrap_seed=0, reliability_bins=10)
    report = period_report(block, "settlement", params)
    parts = report["by_structure"]
    assert list(parts) == ["ladder", "bracket", "binary"]
    assert sum(p["n_rows"] for p in parts.values()) == report["n_rows"]
    assert sum(p["n_events"] for p in parts.values()) == report["n_events"]
    for name, part in parts.items():
        rows = block.structure == name
        brier = np.mean((block.prob[rows] - block.y[rows]) ** 2)
        assert part["scores"]["model"]["brier"] == pytest.approx(brier)
        assert "bootstrap" in part and "by_structure" not in part
    assert parts["ladder"]["brier_skill"]["vs_market"] == pytest.approx(0.0)
    assert parts["binary"]["bootstrap"]["model_minus_market"]["brier_diff"]["upper"] < 0


def test_importance_is_gain_for_lightgbm_and_permutation_otherwise():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"signal": rng.normal(size=500), "noise": rng.normal(size=500)})
    y = (x["signal"] + 0.3 * rng.normal(size=500) > 0).astype(int).to_numpy()
    for model in (LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1), LogisticRegression()):
        model.fit(x, y)
        frame, kind = feature_importance(model, x, y, ["signal", "noise"], seed=0)
        assert frame["feature"].tolist() == ["signal", "noise"], kind
        assert frame["importance"].iloc[0] > 10 * max(frame["importance"].iloc[1], 1e-6)
    assert "permuted" in kind


def test_a_periods_intervals_resample_its_releases():
    # two events per release: in each, the model beats the market on one by as much as it
    # loses on the other, so every resample of releases has a mean difference of exactly 0
    events = np.repeat(np.arange(20), 5)
    even = events % 2 == 0
    model, market = np.where(even, 0.9, 0.8), np.where(even, 0.8, 0.9)
    block = Scored(
        y=np.ones(len(events), dtype=int),
        prob=model,
        baselines={
            "market": (market, np.ones(len(events), dtype=int)),
            "recal": (market, np.ones(len(events), dtype=int)),
            "base_rate": (np.full(len(events), 0.5), np.zeros(len(events), dtype=int)),
        },
        events=events,
        clusters=events // 2,
        structure=np.full(len(events), "binary"),
    )
    params = EvaluationParams(bootstrap_samples=300, bootstrap_seed=0, reliability_bins=10)
    report = period_report(with_best(block, "settlement"), "settlement", params)
    diff = report["bootstrap"]["model_minus_market"]["brier_diff"]
    assert diff["lower"] == pytest.approx(0.0, abs=1e-12)
    assert diff["upper"] == pytest.approx(0.0, abs=1e-12)
    assert report["bootstrap"]["n_releases"] == 10
