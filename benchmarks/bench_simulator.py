"""Benchmark: the simulator's fetch (``write_synthetic_raw``): time, CPU and peak RSS per size.

Run on demand (not a test)::

    uv run python benchmarks/bench_simulator.py [--sizes 1000 10000 30000] [--start 2025-01-01]
        [--end 2025-12-31] [--workers 2]

Each size runs twice, each in a process of its own: with ``--workers`` worker processes (wall
time and the main process's peak RSS: the simulation, chunk by chunk) and with one, all in
that process (its CPU time is then the whole work's, and its peak RSS the simulation's plus
one partition's rendering). A worker renders one partition at a time, so its memory is a
partition's, not the data's.

On the project VM (2 cores shared with other jobs, load average 4-7 during the runs, so wall
times are long and vary), over 2025, on 2026-12-07::

    machine: a 10M-step Python loop takes 0.26 s
      1,000 markets: 58 partitions, 111,201 records, 13 MB gzipped | 2 workers: wall   5.5 s,
        main peak RSS 0.31 GB | 1 worker: wall   1.9 s, CPU   3.9 s (3.91 ms/market), peak RSS 0.31 GB
     10,000 markets: 60 partitions, 1,144,127 records, 134 MB gzipped | 2 workers: wall  20.4 s,
        main peak RSS 0.61 GB | 1 worker: wall  17.4 s, CPU  17.9 s (1.79 ms/market), peak RSS 0.64 GB
     30,000 markets: 60 partitions, 3,415,265 records, 399 MB gzipped | 2 workers: wall  54.9 s,
        main peak RSS 0.66 GB | 1 worker: wall  49.0 s, CPU  47.3 s (1.58 ms/market), peak RSS 0.71 GB

(the second core did not pay on that busy machine; the default, 2 workers from 2 M
market-hours, is for a machine whose cores are free). The fetch stage before and after, and at
100,000 markets: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

from common import data_params, python_loop_s, run_child
from kalshi_lab.data.raw_store import raw_partitions
from kalshi_lab.params import ComputeParams
from kalshi_lab.simulator import write_synthetic_raw


def worker(markets: int, start: str, end: str, workers: int, out: Path) -> None:
    """One run, in this process; prints its figures as JSON."""
    data = data_params(markets, start, end)
    began = time.perf_counter()
    counts = write_synthetic_raw(data, out, ComputeParams(workers=workers))
    seconds = time.perf_counter() - began
    size = sum(p.stat().st_size for p in out.rglob("*.gz"))
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "partitions": len(raw_partitions(out)),
                "records": sum(counts.values()),
                "gzip_mb": size / 1e6,
                "own_cpu_s": own.ru_utime + own.ru_stime,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-12-31")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # markets of one run
    parser.add_argument("--run-workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.worker:
        worker(args.worker, args.start, args.end, args.run_workers, args.out)
        return
    print(f"machine: a 10M-step Python loop takes {python_loop_s():.2f} s")
    for markets in args.sizes:
        runs = {}
        for workers in (args.workers, 1):
            with tempfile.TemporaryDirectory(prefix="bench-simulator-") as tmp:
                argv = ["--worker", str(markets), "--run-workers", str(workers)]
                argv += ["--start", args.start, "--end", args.end, "--out", f"{tmp}/raw"]
                runs[workers] = run_child(Path(__file__), argv)
        par, one = runs[args.workers], runs[1]
        print(
            f"{markets:>7,} markets: {par['partitions']} partitions, {par['records']:,} records, "
            f"{par['gzip_mb']:.0f} MB gzipped | {args.workers} workers: wall {par['seconds']:5.1f} s"
            f", main peak RSS {par['peak_rss_mb'] / 1024:4.2f} GB | 1 worker: wall "
            f"{one['seconds']:5.1f} s, CPU {one['cpu_s']:5.1f} s "
            f"({1000 * one['cpu_s'] / markets:.2f} ms/market), peak RSS "
            f"{one['peak_rss_mb'] / 1024:4.2f} GB"
        )


if __name__ == "__main__":
    main()
