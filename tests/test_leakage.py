"""Leakage tests on simulated markets: nothing decided at t uses data after t.

* Features computed from all the data equal features computed from the raw tables truncated at
  a sampled ``as_of`` t (``kalshi_lab.features.truncate``, the definition the features stage's
  check of the user features uses: markets as known at t, listed by t, unresolved if settled
  later, an early close after t not yet known, the event's structure from the strikes listed
  by t; candles ending and trades made at or before t), on every row with ``as_of <= t``:
  every feature, the ladder and bracket ones included.
* A model trained on shuffled labels, fit and scored through the pipeline's split, scores at
  chance on validation, while the same model on the true labels does not.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from kalshi_lab.compose_params import compose
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.tables import read_table
from kalshi_lab.features import TARGET_COLUMNS, build_features, feature_columns
from kalshi_lab.features.truncate import TablesAt
from kalshi_lab.models import fit_model
from kalshi_lab.params import Params, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.split import periods

ROOT = Path(__file__).resolve().parents[1]
#: what a row knows at its as_of: the model's inputs and the quotes the baselines read
KNOWN_AT_AS_OF = ["price", "yes_bid", "yes_ask", "mid", "market_prob"]
N_CUTOFFS = 6
#: rows a cutoff must already have: the comparison is about something
MIN_KNOWN = 100
SHUFFLES = 24


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Params, dict[str, pd.DataFrame]]:
    """300 simulated markets over four months, as the parquet stage writes them."""
    params = params_from_dict(
        compose(
            [
                "data.start=2025-01-01",
                "data.end=2025-04-30",
                "data.synthetic.n_markets=300",
                "data.synthetic.min_duration_days=8",
                "data.synthetic.max_duration_days=25",
                "data.orderbook_snapshots_per_day=1",
                "model=logreg",  # single-threaded: a 2-core box shared by two test workers
            ],
            ROOT / "conf",
        )
    )
    work = tmp_path_factory.mktemp("leakage")
    write_synthetic_raw(params.data, work / "raw")
    (work / "parquet").mkdir()
    write_tables(work / "raw", work / "parquet")
    tables = {name: read_table(name, work / "parquet") for name in ("markets", "candles", "trades")}
    # The simulator closes no market early; make every third one an early closer, whose
    # recorded close_time (the early close) comes days before its contract's latest expiration.
    markets = tables["markets"]
    early = np.arange(len(markets)) % 3 == 0
    markets.loc[early, "can_close_early"] = True
    markets.loc[early, "latest_expiration_time"] = markets.loc[early, "close_time"] + pd.Timedelta(
        days=10
    )
    return params, tables


def test_features_at_each_as_of_equal_features_from_data_truncated_there(sim):
    params, tables = sim
    full = build_features(tables["markets"], tables["candles"], tables["trades"], params.features)
    # cutoffs where more than MIN_KNOWN rows are already known, and not in the last days
    known_by_day = full["as_of"].value_counts().sort_index().cumsum()
    days = known_by_day.index[known_by_day.to_numpy() > MIN_KNOWN].to_numpy()
    rng = np.random.default_rng(0)
    cutoffs = rng.choice(days[:-5], size=N_CUTOFFS, replace=False)
    columns = ["ticker", "as_of", *KNOWN_AT_AS_OF, *feature_columns(params.features)]
    for t in map(pd.Timestamp, cutoffs):
        known = TablesAt(tables, t)
        assert len(known["candles"]) < len(tables["candles"])  # the truncation removed data
        truncated = build_features(
            known["markets"], known["candles"], known["trades"], params.features
        )
        expected = full.loc[full["as_of"] <= t, columns].reset_index(drop=True)
        got = truncated.loc[truncated["as_of"] <= t, columns].reset_index(drop=True)
        assert len(expected) > 100
        pd.testing.assert_frame_equal(got, expected, obj=f"features at or before {t}")


def _validation_auc(params: Params, features: pd.DataFrame, shuffle_seed: int | None) -> float:
    target = TARGET_COLUMNS[params.model.target]
    split = periods(features, params.split, params.model.target).validation
    labelled = features[target].notna().to_numpy()
    train, valid = features[split.train & labelled], features[split.valid & labelled]
    y = train[target].to_numpy(dtype=int)
    if shuffle_seed is not None:
        y = np.random.default_rng(shuffle_seed).permutation(y)
    columns = feature_columns(params.features)
    model = fit_model(
        params.model, train[columns], y, train["event_ticker"].to_numpy(), "the leakage test"
    )
    return roc_auc_score(
        valid[target].to_numpy(dtype=int), model.predict_proba(valid[columns])[:, 1]
    )


def test_a_model_trained_on_shuffled_labels_scores_at_chance(sim):
    params, tables = sim
    features = build_features(
        tables["markets"], tables["candles"], tables["trades"], params.features
    )
    assert _validation_auc(params, features, None) > 0.9  # the control: real labels teach
    # one shuffle's AUC varies by about 0.12 (rows of one event move together), so the test
    # averages SHUFFLES of them: about 0.025 around 0.5 at chance, so 0.07 is near 3 sd
    shuffled = [_validation_auc(params, features, seed) for seed in range(SHUFFLES)]
    assert abs(np.mean(shuffled) - 0.5) < 0.07, shuffled
