"""The train stage's fits: in worker processes for LightGBM, one after another for the rest.

The fits of the walk-forward folds, the test refit and the live model are independent. A
LightGBM model's (:data:`PROCESS_FITS`) run in worker processes, one thread each, as many at
once as the stage may use cores, the largest first: on two cores that is faster than one fit
after another on two threads, and a busy neighbour slows it less (the two threads of one fit
wait for each other at every step; processes do not). The other models fit in a second or two,
less than a worker takes to start (a fresh interpreter, its imports and its read of the
features), so they fit in the stage's own process. Measured in
benchmarks/bench_train_processes.py. Either way every model predicts the same, bit for bit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.features import TARGET_COLUMNS
from kalshi_lab.guards import constant_model_reason
from kalshi_lab.models.fit import fit_model
from kalshi_lab.params import ModelParams

log = logging.getLogger(__name__)

#: the models fit in worker processes (module docstring)
PROCESS_FITS = frozenset({"lightgbm", "lightgbm_offset"})
#: the key of the live model's fit, beside the periods'
LIVE = "live"

#: a fit: its training mask over the features, what it is (for logs and errors), and whether a
#: model constant on its rows is refused (a scored period's) or kept (the live model)
Job = tuple[np.ndarray, str, bool]
#: what reads the features table (its given columns): the train stage's reader
Reader = Callable[[list[str]], pd.DataFrame]


@dataclass(frozen=True)
class Fit:
    """One fit: the model (None when refused as constant), its row count, why it was refused
    (None when kept) and the seconds it took."""

    model: Any
    n_train: int
    reason: str | None
    seconds: float


def fit_rows(
    params: ModelParams,
    features: pd.DataFrame,
    job: Job,
    columns: list[str],
    n_jobs: int | None = None,
) -> Fit:
    """``params``' model fit on the labelled rows of ``features`` in ``job``'s mask; ``n_jobs``
    as in :func:`kalshi_lab.models.fit.fit_model`."""
    train, what, check = job
    target = TARGET_COLUMNS[params.target]
    rows = features[train & features[target].notna().to_numpy()]
    started = time.perf_counter()
    model = fit_model(params, rows, rows[target].to_numpy(dtype=int), columns, what, n_jobs)
    seconds = time.perf_counter() - started
    reason = constant_model_reason(model.predict_proba(rows[columns])[:, 1]) if check else None
    return Fit(model if reason is None else None, len(rows), reason, seconds)


def workers(params: ModelParams, n_fits: int) -> int:
    """How many worker processes fit ``n_fits`` models of ``params`` (0: fit here)."""
    if params.name not in PROCESS_FITS:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, n_fits) if (cores or 1) > 1 else 0


def fit_all(
    params: ModelParams,
    features: pd.DataFrame,
    jobs: dict[str, Job],
    columns: list[str],
    read: Reader,
) -> dict[str, Fit]:
    """Each of ``jobs`` fit, in worker processes (which ``read`` the features' columns they
    need once each) or here (:func:`workers`); logs each fit as it ends."""

    def done(key: str, fit: Fit) -> Fit:
        # one line per fit, with its time: a slow model never leaves the stage silent for
        # the whole training, and the log says which period cost what
        log.info(
            "trained %s for %s on %d rows in %.1f s",
            params.name,
            jobs[key][1],
            fit.n_train,
            fit.seconds,
        )
        return fit

    n_workers = workers(params, len(jobs))
    if not n_workers:
        return {
            key: done(key, fit_rows(params, features, job, columns)) for key, job in jobs.items()
        }
    needed = list(dict.fromkeys([*columns, TARGET_COLUMNS[params.target], "event_ticker"]))
    largest_first = sorted(jobs, key=lambda key: -int(jobs[key][0].sum()))
    # spawn: a fresh interpreter, whatever threads (OpenMP, BLAS, Arrow) this process started
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, context, _worker_reads, (read, needed)) as pool:
        running = {
            pool.submit(
                _fit_in_worker, params, np.packbits(jobs[key][0]), *jobs[key][1:], columns
            ): key
            for key in largest_first
        }
        fitted = {running[f]: done(running[f], f.result()) for f in as_completed(running)}
    return {key: fitted[key] for key in jobs}


#: a worker process's features table, read once when it starts (:func:`_worker_reads`)
_worker_features: pd.DataFrame | None = None


def _worker_reads(read: Reader, columns: list[str]) -> None:
    global _worker_features
    _worker_features = read(columns)


def _fit_in_worker(
    params: ModelParams, packed: np.ndarray, what: str, check: bool, columns: list[str]
) -> Fit:
    """:func:`fit_rows` in a worker process, on one thread; ``packed``: the mask's bits."""
    if _worker_features is None:
        raise RuntimeError("a fit in a worker before its initializer read the features")
    train = np.unpackbits(packed, count=len(_worker_features)).astype(bool)
    return fit_rows(params, _worker_features, (train, what, check), columns, n_jobs=1)
