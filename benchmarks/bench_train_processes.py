"""Benchmark: the train stage's fits in worker processes (one thread each) against one after
another in the stage's process (the registry's threads), on quiet and busy cores.

Run on demand (not a test), from a checkout whose features stage has run::

    uv run python benchmarks/bench_train_processes.py [--model lightgbm] [--repeat 3]
        [--loads quiet busy] [--modes here processes]

Reads ``data/features/features.parquet`` and the ``split``/``features`` config of
``params.yaml`` (with ``model=--model`` from conf/), makes the stage's fits
(``kalshi_lab.stages.train.plan``: one per period not skipped and the live model's) with
``kalshi_lab.models.processes.fit_all``, ``--repeat`` times per mode, alternating: ``here``
(no worker: one fit after another, the registry's ``n_jobs``) and ``processes`` (as many
workers as cores, one thread each; their start, imports and read of the features included).
``busy`` runs the same while one busy loop (``while True: pass``, another process) competes
for the cores. Prints median and worst wall time and median CPU time (this process and its
workers) per mode; fails unless every run's models predicted the same probabilities on every
row, bit for bit. Figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import resource
import statistics
import subprocess
import sys
import time

from common import ROOT
from kalshi_lab import paths
from kalshi_lab.compose_params import compose
from kalshi_lab.features import feature_columns
from kalshi_lab.models import processes
from kalshi_lab.params import load_params, params_from_dict
from kalshi_lab.split import periods
from kalshi_lab.stages.train import plan, read_features

MODES = ("here", "processes")


def cpu_seconds() -> float:
    """CPU time of this process and of its ended children (the workers)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(mode: str, args: argparse.Namespace, state: dict) -> dict:
    """One ``fit_all`` in ``mode``: its wall and CPU time, a hash of its models' predictions."""
    params, features, jobs, columns = (
        state["params"],
        state["features"],
        state["jobs"],
        state["columns"],
    )
    chosen = processes.workers(params.model, len(jobs))
    processes.workers = lambda model, n_fits: chosen if mode == "processes" else 0
    wall, cpu = time.perf_counter(), cpu_seconds()
    fitted = processes.fit_all(params.model, features, jobs, columns, read_features)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    processes.workers = state["workers"]
    digest = hashlib.sha256()
    for fit in fitted.values():
        digest.update(fit.model.predict_proba(features[columns]).tobytes())
    return {"wall": wall, "cpu": cpu, "predictions": digest.hexdigest()}


def measure(args: argparse.Namespace, state: dict, load: str) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for _ in range(args.repeat):
        for mode in args.modes:
            results[mode].append(run(mode, args, state))
            last = results[mode][-1]
            print(
                f"  {load} {mode}: {last['wall']:.1f} s wall, {last['cpu']:.1f} s CPU", flush=True
            )
    for mode, runs in results.items():
        walls = [r["wall"] for r in runs]
        print(
            f"{load:>5}  {mode:>9}:  wall median {statistics.median(walls):6.1f} s"
            f" (worst {max(walls):6.1f}),  CPU median {statistics.median(r['cpu'] for r in runs):6.1f} s",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    model = params_from_dict(compose([f"model={args.model}"], ROOT / "conf")).model
    params = dataclasses.replace(load_params(), model=model)
    features = read_features()
    found = periods(features, params.split, model.target)
    _, jobs = plan(features, found, params)
    columns = feature_columns(params.features)
    state = {
        "params": params,
        "features": features,
        "jobs": jobs,
        "columns": columns,
        "workers": processes.workers,
    }
    print(
        f"{len(features)} rows of {paths.FEATURES}, {len(jobs)} fits of {model.name} "
        f"({', '.join(str(int(job[0].sum())) for job in jobs.values())} rows before labels), "
        f"{processes.workers(model, len(jobs))} workers",
        flush=True,
    )
    digests = set()
    for load in args.loads:
        busy = None
        if load == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            results = measure(args, state, load)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        digests |= {r["predictions"] for runs in results.values() for r in runs}
    if len(digests) != 1:
        sys.exit(f"error: the runs predicted differently ({len(digests)} distinct predictions)")
    print("predictions identical in every run")


if __name__ == "__main__":
    main()
