"""Benchmark: the whole pipeline, stage by stage, at a few sizes, against a base version.

Run on demand (not a test)::

    uv run python benchmarks/bench_pipeline.py --markets 10000 [--markets 30000 ...]
        [--base main] [--stages fetch,parquet] [--repeat 1] [--keep DIR] [--json FILE]

The code measured is the working tree's HEAD (commit first: uncommitted changes are not
measured) and, with ``--base``, that ref ("today's code"): each in a scratch clone with its own
environment (``uv sync --frozen --compile-bytecode``, not timed), so that each runs with its own
uv.lock. For each ``--markets`` N, params.yaml is composed in each clone with
``data.synthetic.n_markets=N data.end=2025-12-31`` (not timed), then each stage runs as
``python -m kalshi_lab.stages.<stage>`` in a fresh process: its wall time, and the CPU time and
memory of it with every worker process it starts (common.measure_tree). The two versions alternate stage by stage (which
goes first flips every stage and every repeat), so that the shared VM's load hits both alike;
each version runs its own fetch. ``--stages`` picks the stages reported; the stages before the
last one picked run too, since each needs its predecessors' outputs.

Printed: a markdown table per N (best wall and CPU time over the repeats, largest memory),
the whole pipeline, seconds per 1,000 markets, whether the cost per market stays flat from the
smallest N to the largest, the issue's goals as PASS/FAIL lines, and whether the two versions'
reports/metrics.json and reports/backtest.json are identical (a difference does not fail the
benchmark, but is printed loudly). The plain-Python-loop time and the load average are printed
before and after: the VM is shared. Every run is written to a JSON file. A failing stage ends the
benchmark: exit code 1 and one ``error:`` line naming the stage, N and version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, measure_tree, python_loop_s

STAGES = ("validate", "fetch", "parquet", "features", "train", "evaluate", "backtest")
#: outputs both versions should produce identically, and the stage that writes each
COMPARED = {"reports/metrics.json": "evaluate", "reports/backtest.json": "backtest"}
#: the pipeline's output directories in a clone, emptied before every run
OUTPUTS = ("data", "models", "reports")
END = "2025-12-31"
#: the issue's goals: whole pipeline at 10k <= 30 s; at 100k <= 6 min and no stage above 4 GB;
#: cost per market at the largest N within 20 % of that at the smallest
GOAL_10K_S = 30.0
GOAL_100K_S = 360.0
GOAL_PEAK_GB = 4.0
GOAL_FLAT = 1.2
LOG_TAIL = 20


class BenchError(Exception):
    """A step of the benchmark failed: the message is the one ``error:`` line."""


@dataclass(frozen=True)
class Version:
    """One version of the code: its label in the tables, the ref asked for, and its clone."""

    label: str
    ref: str
    sha: str
    clone: Path

    @property
    def python(self) -> Path:
        return self.clone / ".venv" / "bin" / "python"

    def __str__(self) -> str:
        return f"{self.label} ({self.ref} = {self.sha[:10]})"


def git(*args: str, cwd: Path = ROOT, check: bool = True) -> str:
    """git's output; a failure is a BenchError with git's own message (unless not ``check``)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def child_env() -> dict[str, str]:
    """This environment without the variables that point uv and Python at this worktree's
    environment, so that a clone's uv sync and its stages use the clone's own."""
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def run_logged(cmd: list[str], cwd: Path, log: Path, what: str) -> None:
    """Run an untimed setup step, its output to ``log``; a failure is a BenchError."""
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=cwd, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise BenchError(f"{what} failed with exit code {done.returncode}", log)


def resolve(ref: str) -> str:
    """The commit ``ref`` names in this repository."""
    sha = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
    if not sha:
        raise BenchError(f"--base {ref}: not a commit of this repository")
    return sha


def prepare(label: str, ref: str, sha: str, scratch: Path) -> Version:
    """A clone of ``sha`` in ``scratch`` with its own environment; an existing one is reused
    (``--keep`` from an earlier run): uv sync then only checks it."""
    clone = scratch / f"{label}-{sha[:10]}"
    version = Version(label, ref, sha, clone)
    if not clone.exists():
        git("clone", "--quiet", "--shared", "--no-checkout", str(ROOT), str(clone))
        git("checkout", "--quiet", "--detach", sha, cwd=clone)
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    began = time.perf_counter()
    run_logged([uv, "sync", "--frozen", "--compile-bytecode"], clone, scratch / f"{label}-sync.log",
               f"uv sync in the clone of {version}")  # fmt: skip
    # untimed: the first run after a new environment reads its files (lightgbm, sklearn, pyarrow
    # ...) from disk; the stage measured first would pay for it, the others not
    run_logged([str(version.python), "-m", "kalshi_lab.stages.validate"], clone,
               scratch / f"{label}-warm.log", f"warming up the clone of {version}")  # fmt: skip
    print(f"{version}: clone and environment ready in {time.perf_counter() - began:.0f} s")
    return version


def measure_stage(version: Version, stage: str, markets: int, log: Path) -> dict:
    """Run one stage in a fresh process in the version's clone: its wall time, and the CPU
    time and memory of it with every worker process it started (common.measure_tree)."""
    where = f"at {markets:,} markets in {version}"
    cmd = [str(version.python), "-m", f"kalshi_lab.stages.{stage}"]
    with log.open("w") as out:
        try:
            usage = measure_tree(cmd, version.clone, child_env(), out)
        except RuntimeError as exc:
            raise BenchError(f"stage {stage} {where}: {exc}", log) from None
    if usage.returncode != 0:
        raise BenchError(f"stage {stage} failed with exit code {usage.returncode} {where}", log)
    result = asdict(usage)
    del result["returncode"]
    #: the memory the stage takes from the machine: the sampled sum over its processes, or the
    #: largest single one's peak if a sample missed it
    result["peak_gb"] = max(usage.largest_rss_gb, usage.tree_rss_gb)
    return result


def compare_outputs(versions: list[Version], ran: list[str]) -> dict[str, bool | None]:
    """Whether each compared report is identical across the versions (None: not written)."""
    equal: dict[str, bool | None] = {}
    for name, stage in COMPARED.items():
        if stage not in ran:
            equal[name] = None
            continue
        texts = [json.loads((v.clone / name).read_text()) for v in versions]
        equal[name] = all(text == texts[0] for text in texts)
    return equal


def run_size(
    versions: list[Version], markets: int, ran: list[str], repeat: int, logs: Path
) -> tuple[list[dict], list[dict]]:
    """Every stage of ``ran`` for every version, ``repeat`` times, at ``markets`` markets: the
    measured stage runs and the output comparison of each repeat."""
    for v in versions:
        run_logged(
            [str(v.python), "-m", "kalshi_lab.compose_params",
             f"data.synthetic.n_markets={markets}", f"data.end={END}"],
            v.clone, logs / f"{v.label}-{markets}-compose.log", f"composing params in {v}",
        )  # fmt: skip
    runs, comparisons = [], []
    for r in range(repeat):
        for v in versions:
            git("clean", "-ffdxq", "--", *OUTPUTS, cwd=v.clone)
        for i, stage in enumerate(ran):
            order = versions if (r + i) % 2 == 0 else versions[::-1]
            for v in order:
                log = logs / f"{v.label}-{markets}-{r}-{stage}.log"
                result = measure_stage(v, stage, markets, log)
                runs.append({"markets": markets, "repeat": r, "version": v.label, "stage": stage,
                             **result})  # fmt: skip
                print(f"  {markets:>7,} #{r} {stage:<9} {v.label}: {result['wall_s']:7.1f} s wall "
                      f"{result['cpu_s']:7.1f} s CPU {result['peak_gb']:5.2f} GB")  # fmt: skip
        if len(versions) > 1:
            equal = compare_outputs(versions, ran)
            comparisons.append({"markets": markets, "repeat": r, "equal": equal})
            for name, same in equal.items():
                if same is False:
                    print(f"!!!!!! {name} DIFFERS between {' and '.join(map(str, versions))} "
                          f"at {markets:,} markets (repeat {r}) !!!!!!")  # fmt: skip
    return runs, comparisons


def summarize(runs: list[dict], reported: list[str]) -> dict:
    """Per N, version and stage: best wall and CPU over the repeats, largest peak RSS; the
    whole pipeline (the reported stages of one repeat) at its best repeat."""
    summary: dict = {}
    for run in runs:
        if run["stage"] not in reported:
            continue
        by_stage = summary.setdefault(run["markets"], {}).setdefault(run["version"], {})
        best = by_stage.setdefault(run["stage"], {"wall_s": 1e18, "cpu_s": 1e18, "peak_gb": 0})
        best["wall_s"] = min(best["wall_s"], run["wall_s"])
        best["cpu_s"] = min(best["cpu_s"], run["cpu_s"])
        best["peak_gb"] = max(best["peak_gb"], run["peak_gb"])
    for markets, by_version in summary.items():
        for label, by_stage in by_version.items():
            totals: dict[int, dict] = {}
            for run in runs:
                if (run["markets"], run["version"]) == (markets, label) and run[
                    "stage"
                ] in reported:
                    total = totals.setdefault(run["repeat"], {"wall_s": 0.0, "cpu_s": 0.0})
                    total["wall_s"] += run["wall_s"]
                    total["cpu_s"] += run["cpu_s"]
            best = min(totals.values(), key=lambda total: total["wall_s"])
            by_stage["total"] = {
                "wall_s": round(best["wall_s"], 3),
                "cpu_s": round(best["cpu_s"], 3),
                "peak_gb": max(by_stage[s]["peak_gb"] for s in reported),
            }
    return summary


def table(summary: dict, markets: int, labels: list[str], reported: list[str]) -> str:
    """The markdown table of one N: a row per stage, the whole pipeline, s per 1,000 markets."""
    head = ["stage"] + [f"{label} {col}" for label in labels for col in ("wall s", "CPU s", "GB")]
    if len(labels) > 1:
        head.append(f"{labels[0]} / {labels[1]} wall")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage in [*reported, "total"]:
        whole = "**whole pipeline**" if len(reported) == len(STAGES) else "**total**"
        cells = [stage if stage != "total" else whole]
        for label in labels:
            m = summary[markets][label][stage]
            cells += [f"{m['wall_s']:.1f}", f"{m['cpu_s']:.1f}", f"{m['peak_gb']:.2f}"]
        if len(labels) > 1:
            walls = [summary[markets][label][stage]["wall_s"] for label in labels]
            cells.append(f"{walls[0] / walls[1]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    per_1k = [summary[markets][label]["total"]["wall_s"] / (markets / 1000) for label in labels]
    cells = ["s per 1,000 markets"] + [c for p in per_1k for c in (f"{p:.2f}", "", "")]
    if len(labels) > 1:
        cells.append("")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(summary: dict, labels: list[str], all_stages: bool) -> list[str]:
    """The issue's goals, a PASS/FAIL line each, for every version and N they apply to."""
    lines = []
    sizes = sorted(summary)
    for label in labels:
        for markets in sizes:
            total = summary[markets][label]["total"]
            if markets == 10_000 and all_stages:
                lines.append(check(total["wall_s"] <= GOAL_10K_S, label,
                             f"10,000 markets, whole pipeline {total['wall_s']:.1f} s "
                             f"(goal <= {GOAL_10K_S:.0f} s)"))  # fmt: skip
            if markets == 100_000 and all_stages:
                lines.append(check(total["wall_s"] <= GOAL_100K_S, label,
                             f"100,000 markets, whole pipeline {total['wall_s']:.1f} s "
                             f"(goal <= {GOAL_100K_S:.0f} s)"))  # fmt: skip
            if markets == 100_000:
                lines.append(check(total["peak_gb"] <= GOAL_PEAK_GB, label,
                             f"100,000 markets, largest stage peak {total['peak_gb']:.2f} GB "
                             f"(goal <= {GOAL_PEAK_GB:.0f} GB)"))  # fmt: skip
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            per = [summary[n][label]["total"]["wall_s"] / n for n in (small, large)]
            lines.append(check(per[1] / per[0] <= GOAL_FLAT, label,
                         f"cost per market at {large:,} is {per[1] / per[0]:.2f}x that at "
                         f"{small:,} (goal <= {GOAL_FLAT:.2f}x)"))  # fmt: skip
            stages = [s for s in summary[large][label] if s != "total"]
            ratios = [summary[large][label][s]["wall_s"] / large
                      / (summary[small][label][s]["wall_s"] / small) for s in stages]  # fmt: skip
            lines.append(f"     {label}: per stage, " + ", ".join(
                f"{s} {ratio:.2f}x" for s, ratio in zip(stages, ratios, strict=True)))  # fmt: skip
    return lines


def check(ok: bool, label: str, text: str) -> str:
    return f"{'PASS' if ok else 'FAIL'} {label}: {text}"


def machine(when: str) -> dict:
    """The machine's speed and load now: a shared VM's figures mean little without them."""
    loop = python_loop_s()
    load = os.getloadavg()
    print(f"machine {when}: plain Python loop {loop:.2f} s, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    return {"python_loop_s": round(loop, 3), "loadavg": [round(x, 2) for x in load]}


def stage_list(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {unknown}; stages are {STAGES}")
    return [s for s in STAGES if s in stages]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, action="append", help="repeatable; default 10000")
    parser.add_argument("--base", help="a git ref to compare against, e.g. main")
    parser.add_argument("--stages", type=stage_list, default=list(STAGES), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="scratch directory to use and keep")
    parser.add_argument(
        "--json", type=Path, help="result file (default: /tmp/bench_pipeline-*.json)"
    )
    args = parser.parse_args()
    sizes = sorted(set(args.markets or [10_000]))
    reported = args.stages
    ran = list(STAGES[: STAGES.index(reported[-1]) + 1])
    stamp = datetime.now(UTC)
    out = args.json or Path(tempfile.gettempdir()) / f"bench_pipeline-{stamp:%Y%m%dT%H%M%S}.json"
    if git("status", "--porcelain", "--untracked-files=no").strip():
        print("note: the working tree has uncommitted changes; HEAD is measured without them")

    try:
        refs = {"head": ("HEAD", resolve("HEAD"))}
        if args.base:
            refs["base"] = (args.base, resolve(args.base))
    except BenchError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline-"))
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = {"date": stamp.isoformat(timespec="seconds"), "end": END, "stages": reported,
              "repeat": args.repeat}  # fmt: skip
    try:
        versions = [prepare(label, ref, sha, scratch) for label, (ref, sha) in refs.items()]
        result["versions"] = {v.label: {"ref": v.ref, "sha": v.sha} for v in versions}
        result["machine_before"] = machine("before")
        result["runs"], result["comparisons"] = [], []
        for markets in sizes:
            runs, comparisons = run_size(versions, markets, ran, args.repeat, logs)
            result["runs"] += runs
            result["comparisons"] += comparisons
            out.write_text(json.dumps(result, indent=1))  # what is measured so far survives
        result["machine_after"] = machine("after")
    except BenchError as exc:
        message, *log = exc.args
        if log:
            tail = log[0].read_text(errors="replace").splitlines()[-LOG_TAIL:]
            print("\n".join(tail), file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    labels = [v.label for v in versions]
    result["summary"] = summarize(result["runs"], reported)
    result["goals"] = verdicts(result["summary"], labels, reported == list(STAGES))
    out.write_text(json.dumps(result, indent=1))

    print()
    for v in versions:
        print(f"- {v.label}: {v.ref} = {v.sha[:10]} {git('log', '-1', '--format=%s', v.sha)[:90]}")
    for markets in sizes:
        print(
            f"\n{markets:,} markets x {END[:4]}: a stage's best time of {args.repeat}, the "
            "whole pipeline's best repeat, the largest memory of a stage with its workers:\n"
        )
        print(table(result["summary"], markets, labels, reported))
    print()
    print("\n".join(result["goals"]))
    for comparison in result["comparisons"]:
        for name, same in comparison["equal"].items():
            state = {True: "identical", False: "!!!!!! DIFFERENT !!!!!!", None: "not written"}
            print(f"{name} at {comparison['markets']:,} (repeat {comparison['repeat']}): "
                  f"{state[same]}")  # fmt: skip
    print(f"\nresults: {out}" + (f"; scratch kept in {scratch}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
