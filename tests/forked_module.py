"""``python -m <module> <args>`` in a process forked from a server that has already imported
the heavy libraries the module needs, instead of a new interpreter that imports them again.

multiprocessing's forkserver (one per test process) imports ``preload`` once; each run is a
fork of it that does what ``python -m`` does: the working directory and then ``PYTHONPATH``
first on the interpreter's own ``sys.path`` (the test process's additions left out),
``sys.argv`` ``["-m", *args]`` while the module's packages import, the module run as
``__main__``, stdin from /dev/null, stdout and stderr captured whole, the exit code that of
``sys.exit`` (1 and the traceback, through ``sys.excepthook``, for an uncaught exception).
None of the project's own modules is imported before the module runs: this file imports none.
"""

import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: the interpreter's ``sys.path`` after its first entry, as a ``python -m`` started now has it
_BASE_PATH = json.loads(
    subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
)


class ForkedModules:
    """Runs modules as ``python -m`` does, each in a fork of one preloaded server."""

    def __init__(self, preload: Sequence[str]) -> None:
        self._context = multiprocessing.get_context("forkserver")
        # this module too: a fork then finds ``_run_module`` and ``_BASE_PATH`` ready
        self._context.set_forkserver_preload([*preload, __name__])

    def run(
        self, module: str, args: Sequence[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        """``python -m module *args`` in ``cwd`` with environment ``env``."""
        command = [sys.executable, "-m", module, *args]
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            process = self._context.Process(
                target=_run_module, args=(module, list(args), cwd, env, out, err)
            )
            process.start()
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join()
                raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(
                command, process.exitcode, out.read_text(), err.read_text()
            )


def _run_module(
    module: str, args: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path
) -> None:
    """In the forked process: ``python -m module *args``, then exit with its code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [str(Path.cwd()), *extra, *_BASE_PATH]
    sys.argv = ["-m", *args]
    with open(os.devnull, "rb") as stdin, open(out, "wb") as stdout, open(err, "wb") as stderr:
        for stream, fd in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(stream.fileno(), fd)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # reported as the interpreter reports what ends a program
        sys.excepthook(*sys.exc_info())
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_code(code: object) -> int:
    """The exit code of a process ended by ``sys.exit(code)``, as the interpreter makes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
