"""The train stage's fits in worker processes: the same models as fitting them here, one
after another, in the order asked; only LightGBM's go to processes, and only with cores to
run them side by side."""

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.features import TARGET_COLUMNS
from kalshi_lab.models import processes
from kalshi_lab.models.registry import LIGHTGBM_FIXED
from kalshi_lab.params import ModelParams

COLUMNS = ["LOGIT_MID", "SIGNAL", "NOISE"]
LABEL = TARGET_COLUMNS["settlement"]


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    """The features reader a worker gets (module level: a worker process imports it)."""
    return pd.read_parquet(path, columns=columns)


def _features(n: int = 4000) -> pd.DataFrame:
    """Rows of 200 events, a tenth of them unlabelled (a fit skips those)."""
    rng = np.random.default_rng(0)
    market = rng.normal(0.0, 1.5, n)
    signal = rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-(market + signal)))).astype(float)
    label[rng.uniform(size=n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "event_ticker": [f"E{i % 200}" for i in range(n)],
            "LOGIT_MID": market,
            "SIGNAL": signal,
            "NOISE": rng.normal(size=n),
            LABEL: label,
        }
    )


def test_fits_in_processes_are_the_fits_made_here(tmp_path, monkeypatch):
    features = _features()
    features.to_parquet(tmp_path / "features.parquet")
    params = ModelParams(
        "lightgbm", "settlement", 0, {"n_estimators": 20, "subsample": 0.8, "subsample_freq": 1}
    )
    n = len(features)
    jobs = {
        "small": (np.arange(n) < n // 4, "a small fit", True),
        "large": (np.arange(n) < 3 * n // 4, "a large fit", True),
        processes.LIVE: (np.ones(n, dtype=bool), "every row", False),
    }
    monkeypatch.setattr(processes, "workers", lambda params, n_fits: 2)
    read = partial(_read, tmp_path / "features.parquet")
    there = processes.fit_all(params, features, jobs, COLUMNS, read)
    assert list(there) == list(jobs)  # in the order asked, not the order they ended
    for key, job in jobs.items():
        here = processes.fit_rows(params, features, job, COLUMNS)
        assert there[key].n_train == here.n_train == int((job[0] & features[LABEL].notna()).sum())
        assert there[key].reason is None
        got = there[key].model.predict_proba(features[COLUMNS])
        assert np.array_equal(got, here.model.predict_proba(features[COLUMNS]))
        # fit on one thread in its worker; predicts with the registry's threads
        assert there[key].model.get_params()["n_jobs"] == LIGHTGBM_FIXED["n_jobs"]


@pytest.mark.parametrize(
    ("name", "cores", "expected"),
    [("lightgbm", 2, 2), ("lightgbm_offset", 8, 5), ("lightgbm", 1, 0), ("anchored_logit", 8, 0)],
)
def test_only_lightgbm_fits_in_processes_and_only_beside_another_core(
    monkeypatch, name, cores, expected
):
    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert processes.workers(ModelParams(name, "settlement", 0), 5) == expected
