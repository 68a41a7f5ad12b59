"""What the raw-data benchmarks share: the data size they run at, and timing a child process.

A child process per measured implementation, so that each one's peak RSS is its own (read
from ``os.wait4``, not from this process, which only waits).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from kalshi_lab.params import DataParams

ROOT = Path(__file__).resolve().parents[1]
# the straightforward implementations the benchmarks compare against live beside the tests
# that use them as oracles
sys.path.append(str(ROOT / "tests"))


def data_params(markets: int, start: str, end: str) -> DataParams:
    """The default ``data`` config (conf/) with a size and date range of our choosing."""
    # imported here, not at the top: composing pulls in DVC and Hydra (about 200 MB), which a
    # benchmark that only launches and waits (bench_pipeline) should not carry into the
    # children it forks
    from kalshi_lab.compose_params import compose
    from kalshi_lab.params import params_from_dict

    overrides = [f"data.synthetic.n_markets={markets}", f"data.start={start}", f"data.end={end}"]
    return params_from_dict(compose(overrides, ROOT / "conf")).data


def data_args(parser) -> None:
    """The options that pick the simulated data set."""
    parser.add_argument("--markets", type=int, default=10_000)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-12-31")


def python_loop_s(steps: int = 10_000_000, tries: int = 3) -> float:
    """Seconds a plain Python loop of ``steps`` additions takes, best of ``tries``: the speed of
    the machine at the time, printed beside a benchmark's figures (a shared VM's varies by 2x)."""
    best = float("inf")
    for _ in range(tries):
        began = time.perf_counter()
        total = 0
        for i in range(steps):
            total += i
        best = min(best, time.perf_counter() - began)
    return best


def run_child(script: Path, args: list[str]) -> dict:
    """Run ``script`` with ``args`` in a fresh interpreter; its JSON result plus its peak RSS.

    The child prints one JSON object as its last line of stdout.
    """
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    usage = wait_usage(proc)
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def wait_usage(proc: subprocess.Popen) -> resource.struct_rusage:
    """Wait for ``proc`` (setting its returncode) and return its resource usage from
    ``os.wait4``: its own CPU time and peak RSS (``ru_maxrss``, kilobytes on Linux; the largest
    of it and the children it waited for), not this process's."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


#: prctl option: orphaned descendants are re-parented to this process, not to init
PR_SET_CHILD_SUBREAPER = 36
#: seconds between two samples of a process tree's memory (a sample costs about 3 ms of CPU)
SAMPLE_S = 0.25
#: seconds a measured command's orphaned descendants may outlive it
ORPHAN_WAIT_S = 30.0


@dataclass(frozen=True)
class Usage:
    """What a command and every process it started used."""

    wall_s: float
    #: CPU time of all of them, the worker processes nobody waited for included
    cpu_s: float
    #: the largest peak RSS of any one of them (os.wait4's ru_maxrss)
    largest_rss_gb: float
    #: the largest sum of their RSS at one time, sampled every SAMPLE_S: what worker processes
    #: take together (pages they share, e.g. libraries imported before a fork, count once per
    #: process; a peak shorter than a sample can be missed: largest_rss_gb catches a single one)
    tree_rss_gb: float
    returncode: int


def measure_tree(cmd: list[str], cwd: Path, env: dict[str, str], out: IO) -> Usage:
    """Run ``cmd`` to its end, output to ``out``, measuring it with all its descendants.

    A stage may run worker processes that it never waits for (a forkserver's pool): their CPU
    time and peak RSS would be missing from the stage's own ``os.wait4``. This process makes
    itself a child subreaper (Linux), so such orphans become its children, and waits for them
    too. It must have no other children meanwhile. A descendant still running ORPHAN_WAIT_S
    after ``cmd`` ended is an error.
    """
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    done = threading.Event()
    tree_peak = [0]

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(SAMPLE_S):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # ended since it was listed
                    continue
            tree_peak[0] = max(tree_peak[0], total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    usage = wait_usage(proc)
    wall = time.perf_counter() - began
    cpu, largest = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            pid, _, orphan = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            break
        if pid == 0:
            if time.monotonic() > deadline:
                done.set()
                left = [p.pid for p in psutil.Process().children(recursive=True)]
                raise RuntimeError(f"{cmd} left processes {left} running {ORPHAN_WAIT_S:.0f} s")
            time.sleep(0.05)
            continue
        cpu += orphan.ru_utime + orphan.ru_stime
        largest = max(largest, orphan.ru_maxrss)
    done.set()
    sampler.join()
    gb = 1024**2  # ru_maxrss is in kilobytes on Linux
    return Usage(round(wall, 3), round(cpu, 3), round(largest / gb, 3),
                 round(tree_peak[0] / 1024**3, 3), proc.returncode)  # fmt: skip


def _write_data(markets: int, start: str, end: str, raw: Path, tables: Path | None) -> None:
    from kalshi_lab.data.parquet_build import write_tables
    from kalshi_lab.simulator import write_synthetic_raw

    if not raw.exists():
        began = time.perf_counter()
        write_synthetic_raw(data_params(markets, start, end), raw)
        print(f"simulated {markets:,} markets into {raw} in {time.perf_counter() - began:.0f} s")
    if tables is not None and not tables.exists():
        tables.mkdir(parents=True)
        print(f"tables in {tables}: {write_tables(raw, tables)}")


def prepare_data(args, tables: Path | None = None) -> None:
    """Simulate ``args.raw`` (``--markets``, ``--start``, ``--end``) and write its parquet
    ``tables``, whichever is missing, in a spawned process. Done here, the simulation's 1.5 GB
    would be this process's, and a child forked from it counts its parent's pages in its own
    peak RSS until it execs: the first run's children would report that peak, not theirs."""
    if args.raw.exists() and (tables is None or tables.exists()):
        return
    child = multiprocessing.get_context("spawn").Process(
        target=_write_data, args=(args.markets, args.start, args.end, args.raw, tables)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"simulating {args.raw} failed with exit code {child.exitcode}")
