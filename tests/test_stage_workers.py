"""A stage process starts its workers before its own imports, and only when they will work:
params.yaml's compute runs local workers and the stage's input is large enough; the fork
server they come from ignores Ctrl-C while it imports, the workers end on it, silently."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kalshi_lab import compute
from kalshi_lab.stages import workers
from stage_support import ROOT, write_composed_params


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["python", "-m", "kalshi_lab.stages.evaluate"], "kalshi_lab.stages.evaluate"),
        (
            ["python", "-X", "importtime", "-m", "kalshi_lab.stages.parquet"],
            "kalshi_lab.stages.parquet",
        ),
        (["python", "-m", "kalshi_lab.stages.evaluate", "--help"], None),
        (["python", "-m", "kalshi_lab.stages.features", "-h"], None),
        (["python", "-m", "pytest", "kalshi_lab.stages.evaluate"], None),
        (["python", "-c", "import kalshi_lab.stages.evaluate"], None),
        (["python", "-m"], None),
        ([], None),
    ],
)
def test_the_stage_a_process_runs_is_read_from_its_command_line(argv, module):
    assert workers.stage_run_as_main(argv) == module


@pytest.fixture
def started(tmp_path, monkeypatch):
    """The modules each start_stage_workers call had the fork server import, in a working
    directory of its own (params.yaml with the defaults unless a test writes another)."""
    calls: list[list[str]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(workers, "start_fork_server", calls.append)
    monkeypatch.setattr(workers, "_started", False)
    monkeypatch.setattr(compute, "cores_available", lambda: 2)
    write_composed_params(tmp_path, [])
    return calls


def _large_input(stage: str, short: int = 0) -> None:
    """The input that says whether ``stage``'s workers pay: ``short`` bytes below the size
    from which they do."""
    path, size = workers.LARGE_INPUT[stage]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size - short)


def test_partitioned_stages_start_workers_at_any_size_the_others_not_without_input(started):
    for stage in ("validate", "fetch", "train", "evaluate", "backtest", "parquet", "features"):
        workers.start_stage_workers(f"kalshi_lab.stages.{stage}")
    assert started == [["kalshi_lab.stages.parquet"], ["kalshi_lab.stages.features"]]
    assert workers.workers_started()


@pytest.mark.parametrize("stage", ["train", "evaluate", "backtest"])
def test_a_stage_starts_workers_from_a_large_input_on(started, stage):
    _large_input(stage, short=1)
    assert not workers.start_stage_workers(f"kalshi_lab.stages.{stage}")
    assert not workers.workers_started()
    _large_input(stage)
    assert workers.start_stage_workers(f"kalshi_lab.stages.{stage}")
    assert started == [[f"kalshi_lab.stages.{stage}"]]
    assert workers.workers_started()


@pytest.mark.parametrize(
    ("overrides", "cores", "large", "expected"),
    [
        (["compute.workers=1"], 2, True, False),  # one worker: this process does the work
        (["compute.workers=2"], 2, False, True),  # asked for: whatever the size
        (["compute.workers=null"], 1, True, False),  # one core to run on
        (["compute=dask"], 2, True, False),  # Dask starts its own
    ],
)
def test_compute_says_whether_a_stage_process_starts_workers(
    started, tmp_path, monkeypatch, overrides, cores, large, expected
):
    write_composed_params(tmp_path, overrides)
    monkeypatch.setattr(compute, "cores_available", lambda: cores)
    if large:
        _large_input("evaluate")
    assert workers.start_stage_workers("kalshi_lab.stages.evaluate") is expected
    assert workers.start_stage_workers("kalshi_lab.stages.parquet") is expected
    assert len(started) == 2 * expected


def test_params_that_do_not_validate_start_nothing_and_raise_nothing(started, tmp_path):
    _large_input("evaluate")
    (tmp_path / "params.yaml").write_text("compute: {workers: -3}\n")
    assert not workers.start_stage_workers("kalshi_lab.stages.evaluate")
    (tmp_path / "params.yaml").unlink()
    assert not workers.start_stage_workers("kalshi_lab.stages.features")
    assert started == []


#: a worker's work, in a module of its own that the fork server imports (nothing else)
_PROBE = textwrap.dedent(
    """
    import os, signal, time

    def sigint(_):
        handler = signal.getsignal(signal.SIGINT)
        return getattr(handler, "__name__", str(handler))

    def ctrl_c(_):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
        return "went on"
    """
)

#: in a fresh interpreter (this one's fork server may run already): the fork server's
#: ignored signals, this process's SIGINT handler after starting it, and its workers'
_FORK_SERVER = textwrap.dedent(
    """
    import multiprocessing.forkserver, signal, sys
    from kalshi_lab.compute import map_partitions, start_fork_server
    from kalshi_lab.params import ComputeParams
    from probe import ctrl_c, sigint

    signal.signal(signal.SIGINT, signal.default_int_handler)
    start_fork_server(["probe"])
    pid = multiprocessing.forkserver._forkserver._forkserver_pid
    status = open(f"/proc/{pid}/status").read()
    ignored = int(status.split("SigIgn:")[1].split()[0], 16)
    print(bool(ignored & 1 << (signal.SIGINT - 1)))
    print(sigint(0))
    print(*map_partitions(sigint, [0, 1], ComputeParams(workers=2)))
    try:
        print(*map_partitions(ctrl_c, [0, 1], ComputeParams(workers=2)))
    except SystemExit as exc:
        print("the work ended:", exc.code)
    """
)


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python *args`` in ``cwd``, on this checkout's code and the modules in ``cwd``."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(cwd)])),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_the_fork_server_ignores_ctrl_c_and_its_workers_end_on_it_silently(tmp_path):
    (tmp_path / "probe.py").write_text(_PROBE)
    run = _python(["-c", _FORK_SERVER], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "True",
        "default_int_handler",
        "_end_on_ctrl_c _end_on_ctrl_c",
        "the work ended: 130",
    ]
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr


#: what ``python -m kalshi_lab.stages.features`` has when its package imports (``sys.argv``
#: is ``["-m"]`` until the module runs), then whether the package started the workers
_AS_PYTHON_M = textwrap.dedent(
    """
    import sys
    sys.orig_argv[:] = [sys.executable, "-m", "kalshi_lab.stages.features"]
    sys.argv[:] = sys.argv[:1] if sys.argv[1:] else ["-m"]
    from kalshi_lab.stages import workers
    print(workers.workers_started())
    """
)


@pytest.mark.parametrize(("argv", "expected"), [([], "True"), (["not -m"], "False")])
def test_a_stage_process_starts_its_workers_as_its_package_imports(tmp_path, argv, expected):
    write_composed_params(tmp_path, ["compute.workers=2"])
    run = _python(["-c", _AS_PYTHON_M, *argv], tmp_path)
    assert (run.returncode, run.stdout.strip()) == (0, expected), run.stderr


def test_a_worker_running_its_stage_module_again_prints_no_warning(tmp_path):
    """What a local worker does before its first partition: its fork server has imported the
    stage module, multiprocessing runs it again as ``__mp_main__``."""
    again = (
        "import runpy, kalshi_lab.stages.features; "
        "runpy.run_module('kalshi_lab.stages.features', run_name='__mp_main__', alter_sys=True)"
    )
    run = _python(["-W", "error", "-c", again], tmp_path)
    assert (run.returncode, run.stderr) == (0, "")
