"""Benchmark: a LightGBM fit's wall time by OpenMP wait policy and n_jobs, on quiet and busy cores.

Run on demand (not a test)::

    uv run python benchmarks/bench_lightgbm_threads.py [--rows 156000] [--features 50]
        [--repeat 3] [--policies default passive] [--jobs 1 2]

One fit of the ``lightgbm`` config (conf/model/lightgbm.yaml, with the registry's fixed
settings, ``n_jobs`` replaced) on seeded synthetic rows (a tenth of the values NaN, as lag
features are before a market has history), in a process of its own per fit: libgomp reads
``OMP_WAIT_POLICY`` once, when it is loaded, so a policy needs a fresh interpreter.
``default`` is libgomp's own (no variable: a waiting thread spins for a while before it
sleeps), ``passive`` what ``import kalshi_lab`` sets unless the variable is already set.
Every configuration runs ``--repeat`` times, alternating, first on the cores as they are
("quiet"), then while one busy loop (``while True: pass``, another process) competes for
them ("busy"). Prints median and worst wall time and median CPU time per configuration;
fails unless every fit predicted the same probabilities, bit for bit. Figures and the choice
they made (``n_jobs=2``, passive) are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

POLICIES = {"default": None, "passive": "PASSIVE", "active": "ACTIVE"}


def worker(rows: int, features: int, jobs: int) -> None:
    """Child process: one fit; prints its wall time, CPU time and a hash of its predictions."""
    import lightgbm  # first: libgomp is loaded with the environment the parent chose
    import numpy as np

    from kalshi_lab.compose_params import compose
    from kalshi_lab.models.registry import LIGHTGBM_FIXED
    from kalshi_lab.params import params_from_dict

    root = Path(__file__).resolve().parents[1]
    model = params_from_dict(compose(["model=lightgbm"], root / "conf")).model
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=2.0, size=rows) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    classifier = lightgbm.LGBMClassifier(
        random_state=model.seed, **(LIGHTGBM_FIXED | {"n_jobs": jobs}), **model.params
    )
    wall, cpu = time.perf_counter(), time.process_time()
    classifier.fit(x, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest = hashlib.sha256(classifier.predict_proba(x).tobytes()).hexdigest()
    print(json.dumps({"wall": wall, "cpu": cpu, "predictions": digest}))


def fit_once(policy: str, jobs: int, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if POLICIES[policy] is not None:
        env["OMP_WAIT_POLICY"] = POLICIES[policy]
    cmd = [sys.executable, __file__, "--worker", "--rows", str(args.rows)]
    cmd += ["--features", str(args.features), "--jobs", str(jobs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(args: argparse.Namespace, load: str) -> dict[tuple[str, int], list[dict]]:
    configs = [(policy, jobs) for policy in args.policies for jobs in args.jobs]
    results: dict[tuple[str, int], list[dict]] = {config: [] for config in configs}
    for _ in range(args.repeat):
        for policy, jobs in configs:
            results[policy, jobs].append(fit_once(policy, jobs, args))
    for (policy, jobs), runs in results.items():
        walls = [run["wall"] for run in runs]
        print(
            f"{load:>5}  {policy:>8}  n_jobs={jobs}:  wall median {statistics.median(walls):6.2f} s"
            f"  worst {max(walls):6.2f} s  CPU median {statistics.median(r['cpu'] for r in runs):6.2f} s"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=156_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--policies", nargs="+", choices=sorted(POLICIES), default=list(POLICIES)[:2]
    )
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.rows, args.features, args.jobs[0])
        return
    print(f"{args.rows:,} rows x {args.features} features; load {os.getloadavg()}")
    quiet = measure(args, "quiet")
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = measure(args, "busy")
    finally:
        busy_loop.kill()
    print(f"load {os.getloadavg()}")
    digests = {run["predictions"] for runs in (*quiet.values(), *busy.values()) for run in runs}
    if len(digests) != 1:
        raise SystemExit(f"predictions differ between configurations: {len(digests)} distinct")
    print("predictions: identical in every fit")


if __name__ == "__main__":
    main()
