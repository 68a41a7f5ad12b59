"""Benchmark: the parquet stage on a flat raw directory and on the same data partitioned, with
the columnar reader (and, on demand, the record-by-record reader it replaced).

Run on demand (not a test)::

    uv run python benchmarks/bench_parquet.py --raw /tmp/raw10k [--markets 10000]
        [--start 2025-01-01] [--end 2025-12-31] [--split /tmp/raw10k-split] [--workers 2]
        [--by-record]

If ``--raw`` does not exist, the simulator writes it there first, partitioned; a partitioned
``--raw`` is the partitioned form, and flattened into ``<raw>-flat`` the flat one; a flat
``--raw`` is split record by record into its ``series=S/month=YYYY-MM`` partitions at
``--split`` (tests/raw_split.py). Each run is
``kalshi_lab.data.parquet_build.write_tables`` in a process of its own, exactly as the stage does
(all six tables into their datasets, on ``--workers`` worker processes); wall time is
``write_tables``'s, CPU time the process's, peak RSS the process's own and the largest sum
over it and its worker processes (sampled every 20 ms). The run fails unless all wrote equal
tables (:func:`kalshi_lab.data.tables.read_table`).

10,000 markets over 2025 (1.1 M orderbook snapshots, 8.7 M book levels, 1.6 M trades, 0.29 M
candles; 103 MB gzipped; split into 60 partitions, 5 series x 12 months, in 76 s), the stage's
whole process (``/usr/bin/time -v python -m kalshi_lab.stages.parquet``) on the project VM
(2 cores shared with other jobs, load average 5 to 6 at the time: wall times are inflated and
vary; CPU times are steadier):

=======================================================  ======  ========  ===================
                                                         wall    CPU       peak RSS
=======================================================  ======  ========  ===================
one file per table (commit 200366e), flat raw            27.9 s  12.5 s    0.87 GB
datasets, flat raw (one partition: memory not bounded)   28.3 s  14.4 s    0.89 GB
datasets, partitioned raw, 2 workers                     20.0 s            1.06 GB, 4 processes
datasets, partitioned raw, 1 worker (in process)         16.6 s            0.42 GB
=======================================================  ======  ========  ===================

The partitioned runs' RSS is the sum over the stage and its workers (forkserver and two
workers: each a Python with pyarrow and pandas imported, 0.13 GB, before any data); a worker
parsing the largest partition (2.5 MB gzipped, 178 k book levels) peaks at 0.24 GB. Earlier
(commit 8d24af8, pandas rows in pure Python) the stage took 63 to 76 s and 2.45 GB.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

from common import data_args, prepare_data, run_child
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.raw_store import PARTITIONS
from kalshi_lab.data.tables import TABLES, read_table
from kalshi_lab.params import ComputeParams
from raw_split import flatten_raw, split_raw

#: run -> (which raw directory, columnar reader)
RUNS = {"by-record": ("raw", False), "flat": ("raw", True), "partitioned": ("split", True)}


class TreeRss:
    """The largest sum of RSS over this process and its descendants, sampled every 20 ms: the
    worker processes' memory counts too (a process's own peak RSS leaves it out)."""

    def __init__(self) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = psutil.Process(os.getpid())
        while not self._done.wait(0.02):
            total = 0
            for process in (me, *me.children(recursive=True)):
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def worker(run: str, raw: Path, out: Path, workers: int) -> None:
    """Child process: the stage's work; prints its timing as JSON."""
    tree = TreeRss()
    began = time.perf_counter()
    rows = write_tables(raw, out, fast=RUNS[run][1], compute=ComputeParams(workers=workers))
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "rows": rows, "tree_rss_mb": tree.stop() / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw directory (made if absent)")
    parser.add_argument("--split", type=Path, help="--raw partitioned (made if absent)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--by-record", action="store_true", help="also the slow reader")
    data_args(parser)
    parser.add_argument("--worker", choices=sorted(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.worker:
        worker(args.worker, args.raw, args.out, args.workers)
        return

    prepare_data(args)
    split = args.split or args.raw.with_name(args.raw.name + "-split")
    if (args.raw / PARTITIONS).exists():  # the simulator's own partitions; flattened once
        split, args.raw = args.raw, args.raw.with_name(args.raw.name + "-flat")
        if not args.raw.exists():
            flatten_raw(split, args.raw)
    elif not split.exists():
        began = time.perf_counter()
        names = split_raw(args.raw, split)
        print(
            f"split {args.raw} into {len(names)} partitions in {time.perf_counter() - began:.0f} s"
        )
    size = sum(p.stat().st_size for p in args.raw.iterdir()) / 1e6
    print(f"raw data: {args.raw} ({size:.0f} MB gzipped), partitioned: {split}")
    runs = [r for r in RUNS if args.by_record or r != "by-record"]
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        for run in runs:
            out = Path(tmp) / run
            out.mkdir()
            raw = args.raw if RUNS[run][0] == "raw" else split
            script_args = ["--raw", str(raw), "--worker", run, "--out", str(out)]
            r = run_child(Path(__file__), [*script_args, "--workers", str(args.workers)])
            print(
                f"{run:>11}: wall {r['seconds']:6.1f} s  CPU {r['cpu_s']:6.1f} s  peak RSS "
                f"{r['peak_rss_mb'] / 1024:5.2f} GB (with its workers {r['tree_rss_mb'] / 1024:5.2f} "
                f"GB)  rows {r['rows']}"
            )
        different = [
            name
            for name in TABLES
            if any(
                not read_table(name, Path(tmp) / run).equals(read_table(name, Path(tmp) / runs[0]))
                for run in runs[1:]
            )
        ]
    print(f"tables: {'identical' if not different else 'DIFFERENT: ' + ', '.join(different)}")
    if different:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
