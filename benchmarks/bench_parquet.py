"""Benchmark: the parquet stage with its columnar reader against the record-by-record reader.

Run on demand (not a test)::

    uv run python benchmarks/bench_parquet.py --raw /tmp/raw10k [--markets 10000]
        [--start 2025-01-01] [--end 2025-12-31]

If ``--raw`` does not exist, the simulator writes it there first (1 to 1.5 minutes at 10,000
markets). Each reader then runs ``kalshi_lab.stages.parquet.write_tables`` in a process of its
own, exactly as the stage does (all six tables into parquet files); wall time, CPU time and
peak RSS are that process's. The run fails unless both wrote equal tables.

On the project VM (2 cores, shared with other jobs, so wall times vary by +-20 %), 10,000
markets over 2025 (1.1 M orderbook snapshots, 8.3 M book levels, 1.6 M trades, 0.28 M
candles; 0.93 GB of JSON, 108 MB gzipped). The stage's whole process
(``/usr/bin/time -v python -m kalshi_lab.stages.parquet``, imports included):

=====================================================  ===========  ========  ========
                                                       wall         CPU       peak RSS
=====================================================  ===========  ========  ========
before, commit 8d24af8 (pandas rows, pure Python)      63 - 76 s    62-72 s   2.45 GB
after, columnar reader                                 13.9 - 15 s  21-22 s   0.79 GB
=====================================================  ===========  ========  ========

and this script's own run (wall: ``write_tables`` alone; CPU and RSS: its whole process)::

     by-record: wall   82.1 s  CPU   84.7 s  peak RSS  2.38 GB
      columnar: wall   12.2 s  CPU   22.2 s  peak RSS  0.73 GB
    speed-up: 6.7x wall, 3.8x CPU
    tables: identical

The goal (<= 8 s, <= 1 GB) was set on a machine where the stage before took 31.8 s: 2.0 to
2.4 times faster than this VM, where the same ratio puts the stage at 6 to 7.5 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from common import data_args, prepare_data, run_child
from kalshi_lab.data.tables import TABLES
from kalshi_lab.stages.parquet import write_tables

READERS = {"by-record": False, "columnar": True}


def worker(reader: str, raw: Path, out: Path) -> None:
    """Child process: the stage's work with one reader; prints its timing as JSON."""
    began = time.perf_counter()
    rows = write_tables(raw, out, fast=READERS[reader])
    print(json.dumps({"seconds": time.perf_counter() - began, "rows": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw directory (made if absent)")
    data_args(parser)
    parser.add_argument("--worker", choices=sorted(READERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.worker:
        worker(args.worker, args.raw, args.out)
        return

    prepare_data(args)
    size = sum(p.stat().st_size for p in args.raw.iterdir()) / 1e6
    print(f"raw data: {args.raw} ({size:.0f} MB gzipped)")

    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        results = {}
        for reader in READERS:
            out = Path(tmp) / reader
            out.mkdir()
            script_args = ["--raw", str(args.raw), "--worker", reader, "--out", str(out)]
            results[reader] = r = run_child(Path(__file__), script_args)
            print(
                f"{reader:>10}: wall {r['seconds']:6.1f} s  CPU {r['cpu_s']:6.1f} s  "
                f"peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB  rows {r['rows']}"
            )
        different = [
            name
            for name in TABLES
            if not pq.read_table(Path(tmp) / "columnar" / f"{name}.parquet").equals(
                pq.read_table(Path(tmp) / "by-record" / f"{name}.parquet")
            )
        ]
    reference, columnar = results["by-record"], results["columnar"]
    print(
        f"speed-up: {reference['seconds'] / columnar['seconds']:.1f}x wall, "
        f"{reference['cpu_s'] / columnar['cpu_s']:.1f}x CPU"
    )
    print(f"tables: {'identical' if not different else 'DIFFERENT: ' + ', '.join(different)}")
    if different:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
