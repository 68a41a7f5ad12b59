"""DVC stage entry points: ``python -m kalshi_lab.stages.<name>`` (see dvc.yaml).

Ctrl-C while a stage module is still importing its libraries (about a second, before
:func:`kalshi_lab.stages.runner.run_stage` takes over) ends with the same one line as later,
not a traceback: nothing has been written yet. Only a stage process gets the hook (``python
-m`` sets ``sys.argv[0]`` to ``-m`` while it imports the module's packages), not a notebook
or test that imports a stage; it only changes how an uncaught KeyboardInterrupt is reported,
and Python still ends the process by SIGINT (130 in a shell).
"""

import sys

_report = sys.excepthook


def _interrupted(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
    else:
        _report(exc_type, exc, tb)


if sys.argv[:1] == ["-m"]:
    sys.excepthook = _interrupted
    from kalshi_lab.stages.workers import start_if_stage_process

    start_if_stage_process()  # before the stage module's imports: kalshi_lab.stages.workers
