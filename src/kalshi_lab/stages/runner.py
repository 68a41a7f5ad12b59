"""The common shell of every stage: ``--help``, logging, one clear message with exit code 2
on bad input, and one line with exit code 130 on Ctrl-C."""

from __future__ import annotations

import argparse
import gc
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from kalshi_lab import paths
from kalshi_lab.errors import KalshiLabError

logger = logging.getLogger("kalshi_lab")

#: exit code of a stage stopped by Ctrl-C: 128 + SIGINT, as a shell reports it
INTERRUPTED = 130


def run_stage(name: str, body: Callable[[], None], argv: list[str] | None = None) -> None:
    """Run ``body``; a KalshiLabError becomes ``error: <message>`` on stderr and exit code 2.

    Stages take no arguments (their parameters are params.yaml's): ``--help`` describes the
    stage and exits before anything is read or written, any other argument is argparse's
    usage error (exit code 2), so a mistyped flag never runs the stage and rewrites its
    outputs. Outputs are written through :class:`kalshi_lab.io.StagedOutputs`, so a failing
    stage leaves none of them behind. Ctrl-C (KeyboardInterrupt) is the user's choice, not a
    bug: ``error: <stage>: interrupted`` and exit code 130 (128 + SIGINT, what a shell reports
    for a process ended by Ctrl-C), after StagedOutputs has discarded what was staged. Other
    exceptions are bugs and keep their traceback.

    When the stage is the process (``python -m kalshi_lab.stages.<name>``, as DVC runs it),
    the objects alive before the body and after it are frozen (``gc.freeze``): the cyclic
    collector then never walks the libraries' objects again, neither during the run nor in
    the interpreter's last collections on exit, which took 0.3-0.7 s per stage at 10,000
    markets (scikit-learn and SciPy's objects; 0.04-0.2 s frozen), a few seconds of the
    pipeline. Nothing frozen is freed, so a stage run inside another program (a test) is not
    frozen. The collector, off while the stage process imported (:mod:`kalshi_lab.stages`), is
    turned on once they are frozen.
    """
    module = inspect.getmodule(body)
    stage_parser(name, module.__doc__ if module else None).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    whole_process = module is not None and module is sys.modules.get("__main__")
    if whole_process:
        gc.freeze()
        gc.enable()  # off while a stage process imported (kalshi_lab.stages)
    try:
        body()
    except KalshiLabError as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"error: {name}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    finally:
        if whole_process:
            gc.freeze()


def stage_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """The stage's command line: no arguments, a help that says what it reads and writes."""
    return argparse.ArgumentParser(
        prog=f"python -m kalshi_lab.stages.{name}",
        description=description,
        epilog=declared_io(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def declared_io(name: str, dvc_yaml: Path = paths.DVC_YAML) -> str:
    """What ``dvc_yaml`` declares for stage ``name``: the data and params.yaml sections it
    reads and the outputs it writes (dvc.yaml is the one place that lists them)."""
    if not dvc_yaml.is_file():
        return (
            f"Run from the repository root (where {dvc_yaml} is) to see what it reads and writes."
        )
    stage = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"][name]
    reads = [dep for dep in stage.get("deps", []) if not dep.startswith("src/")]
    writes = [next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])]
    lines = [f"Run by DVC as `dvc repro {name}`, from the repository root. From {dvc_yaml}:"]
    for title, items in (
        ("reads", reads),
        (f"params ({paths.PARAMS} sections)", stage.get("params", [])),
        ("writes", writes),
    ):
        lines += [f"  {title}:", *(f"    {item}" for item in items or ["(none)"])]
    return "\n".join(lines)
