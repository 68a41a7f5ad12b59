"""A stage process starts its local workers first thing, before its own imports.

The workers fork from a fork server that imports the stage module (pandas, pyarrow,
scikit-learn, the project: about a second of CPU) before it forks any. Started at a stage's
first :func:`kalshi_lab.compute.map_partitions`, the server's imports came after the stage's
own, one after the other: about 0.5 s of the parquet and features stages at 10,000 markets,
and more than the evaluate stage's second core saved. Started when ``python -m`` imports the
stage's package, before the stage module's imports, the server imports while the stage does,
on the other core.

Only a stage run as its own process starts them (``python -m kalshi_lab.stages.<name>``, as
DVC runs it), not a test or notebook that imports a stage, and only when params.yaml's
``compute`` runs work in local worker processes and the stage's input is large enough for
them to pay (:data:`LARGE_INPUT`). A params.yaml that does not validate starts nothing: the
stage reports it. Results never depend on whether the workers were started: outputs are the
same bytes wherever the work runs (tests/test_compute.py, tests/test_stages_on_workers.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kalshi_lab import paths
from kalshi_lab.compute import STAGE_PACKAGE, start_fork_server, uses_local_workers
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.params import load_params

#: the stages whose work runs in local workers, and the input (with its size in bytes) from
#: which they pay for their start-up; None: at any size, their work being split by partition
#: anyway. Features: 2.3 MB at the default 1,000 markets, 21 MB at 10,000, 199 MB at 100,000;
#: validation predictions: 21 kB and 411 kB at 1,000 and 10,000. Train's worker (the live
#: model's fit) saved nothing at 10,000 markets for 2.3 s more CPU, 2.7 s of 22 at 100,000
LARGE_INPUT: dict[str, tuple[Path, int] | None] = {
    "parquet": None,
    "features": None,
    "train": (paths.FEATURES, 32 << 20),
    "evaluate": (paths.FEATURES, 8 << 20),
    "backtest": (paths.PREDICTIONS, 128 << 10),
}

#: whether this process started its stage's workers (:func:`start_stage_workers`)
_started = False


def stage_run_as_main(argv: list[str]) -> str | None:
    """The stage module ``argv`` (a process's ``sys.orig_argv``) runs with ``python -m``, if
    any, and not for its ``--help`` (which reads nothing)."""
    if "-m" not in argv[:-1]:
        return None
    module, *args = argv[argv.index("-m") + 1 :]
    if not module.startswith(STAGE_PACKAGE + ".") or {"-h", "--help"} & set(args):
        return None
    return module


def start_stage_workers(module: str) -> bool:
    """Start the fork server of stage ``module``'s workers, importing the module, when its
    work will run on them; returns whether it did."""
    global _started
    stage = module.rpartition(".")[2]
    if stage not in LARGE_INPUT:
        return False
    try:
        compute = load_params().compute
    except KalshiLabError:
        return False  # the stage itself reports what is wrong with params.yaml
    large = LARGE_INPUT[stage]
    if not uses_local_workers(compute) or (
        compute.workers is None and large is not None and _size(large[0]) < large[1]
    ):
        return False
    start_fork_server([module])
    _started = True
    return True


def workers_started() -> bool:
    """Whether this process is a stage that started its workers (the stage then runs its work
    on them, :func:`kalshi_lab.compute.in_process_if_small`)."""
    return _started


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the stage says what is missing


def start_if_stage_process() -> None:
    """The hook of the stages' package: start the workers of the stage this process runs."""
    module = stage_run_as_main(getattr(sys, "orig_argv", []))
    if module is not None:
        start_stage_workers(module)
