"""Benchmark: the train stage's fits one after another in one process (what the stage does,
the registry's two LightGBM threads) against the same fits in worker processes, one thread
each, on the cores as they are and with a busy loop beside them.

Run on demand (not a test), from a checkout whose features stage has run::

    uv run python benchmarks/bench_train_processes.py [--model lightgbm] [--repeat 3]
        [--loads quiet busy] [--modes here processes]

Reads ``data/features/features.parquet`` and the ``split``/``features`` config of
``params.yaml`` (with ``model=--model`` from conf/), and makes the stage's fits: one per
period that ``kalshi_lab.guards.skip_reason`` does not skip and the live model's, each
followed by its predictions on its training rows (the stage's constant-model check).
``--repeat`` times per mode, alternating: ``here`` (one fit after another in this process)
and ``processes`` (a ``spawn`` pool with as many workers as cores, one thread each, largest fit
first; the workers' start, imports and read of the features columns they need are included:
a worker is a fresh interpreter, whatever threads this process started). ``busy`` runs the
same while one busy loop (``while True: pass``, another process) competes for the cores.
Prints median and worst wall time and median CPU time (this process and its workers) per
mode; fails unless every run's models predicted the same probabilities on every row, bit for
bit. Figures and the choice they made are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from common import ROOT
from kalshi_lab import paths
from kalshi_lab.compose_params import compose
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.features.read import read_features
from kalshi_lab.guards import skip_reason
from kalshi_lab.models.fit import fit_estimator
from kalshi_lab.models.registry import build_model
from kalshi_lab.params import ModelParams, load_params, params_from_dict
from kalshi_lab.split import periods
from kalshi_lab.stages.train import train_columns

MODES = ("here", "processes")
#: a worker's features (the columns the fits read), read once when it starts
_worker_features: pd.DataFrame | None = None


def fit(
    model: ModelParams, features: pd.DataFrame, train: np.ndarray, columns: list[str], jobs: int
) -> Any:
    """One of the stage's fits on the labelled rows where ``train`` holds, and its predictions
    on them; ``jobs``: LightGBM's threads (0: the registry's)."""
    target = TARGET_COLUMNS[model.target]
    rows = features[train & features[target].notna().to_numpy()]
    estimator = build_model(model)
    if jobs and "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=jobs)
    y = rows[target].to_numpy(dtype=int)
    fit_estimator(estimator, rows[columns], y, rows["event_ticker"].to_numpy())
    estimator.predict_proba(rows[columns])
    return estimator


def _worker_reads(columns: list[str]) -> None:
    global _worker_features
    _worker_features = pd.read_parquet(paths.FEATURES, columns=columns)


def _fit_in_worker(model: ModelParams, packed: np.ndarray, columns: list[str]) -> Any:
    assert _worker_features is not None
    train = np.unpackbits(packed, count=len(_worker_features)).astype(bool)
    return fit(model, _worker_features, train, columns, jobs=1)


def cpu_seconds() -> float:
    """CPU time of this process and of its ended children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(mode: str, state: dict) -> dict:
    """Every fit in ``mode``: wall and CPU time, and a hash of the models' predictions."""
    model, features, masks, columns = (state[k] for k in ("model", "features", "masks", "columns"))
    wall, cpu = time.perf_counter(), cpu_seconds()
    if mode == "here":
        models = [fit(model, features, mask, columns, jobs=0) for mask in masks]
    else:
        needed = list(dict.fromkeys([*columns, TARGET_COLUMNS[model.target], "event_ticker"]))
        order = sorted(range(len(masks)), key=lambda i: -int(masks[i].sum()))
        context = multiprocessing.get_context("spawn")
        workers = min(len(os.sched_getaffinity(0)), len(masks))
        with ProcessPoolExecutor(workers, context, _worker_reads, (needed,)) as pool:
            futures = {
                i: pool.submit(_fit_in_worker, model, np.packbits(masks[i]), columns) for i in order
            }
            models = [futures[i].result() for i in range(len(masks))]
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    digest = hashlib.sha256()
    for fitted in models:
        digest.update(fitted.predict_proba(features[columns]).tobytes())
    return {"wall": wall, "cpu": cpu, "predictions": digest.hexdigest()}


def measure(args: argparse.Namespace, state: dict, load: str) -> set[str]:
    """Every mode ``--repeat`` times, alternating; prints each run and the summary."""
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for _ in range(args.repeat):
        for mode in args.modes:
            out = run(mode, state)
            results[mode].append(out)
            print(f"  {load} {mode}: {out['wall']:.1f} s wall, {out['cpu']:.1f} s CPU", flush=True)
    for mode, runs in results.items():
        walls = [r["wall"] for r in runs]
        print(
            f"{load:>5} {mode:>9}: wall median {statistics.median(walls):6.1f} s (worst "
            f"{max(walls):6.1f}), CPU median {statistics.median(r['cpu'] for r in runs):6.1f} s",
            flush=True,
        )
    return {r["predictions"] for runs in results.values() for r in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    model = params_from_dict(compose([f"model={args.model}"], ROOT / "conf")).model
    params = dataclasses.replace(load_params(), model=model)
    features = read_features(train_columns(params))
    found = periods(features, params.split, model.target)
    masks = [
        split.train
        for _, _, split in found.named()
        if skip_reason(features, split, model.target, params.split) is None
    ]
    masks.append(np.ones(len(features), dtype=bool))  # the live model: every labelled row
    columns = feature_columns(params.features)
    state = {"model": model, "features": features, "masks": masks, "columns": columns}
    sizes = ", ".join(str(int(mask.sum())) for mask in masks)
    print(f"{len(features)} rows, {len(masks)} fits of {model.name} ({sizes} rows before labels)")
    digests: set[str] = set()
    for load in args.loads:
        busy = None
        if load == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            digests |= measure(args, state, load)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    if len(digests) != 1:
        sys.exit(f"error: the runs predicted differently ({len(digests)} distinct predictions)")
    print("predictions identical in every run")


if __name__ == "__main__":
    main()
