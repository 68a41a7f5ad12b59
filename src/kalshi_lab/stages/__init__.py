"""DVC stage entry points: ``python -m kalshi_lab.stages.<name>`` (see dvc.yaml).

Ctrl-C while a stage module is still importing its libraries (about a second, before
:func:`kalshi_lab.stages.runner.run_stage` takes over) ends with the same one line as later,
not a traceback: nothing has been written yet. Only a stage process gets the hook (``python
-m`` sets ``sys.argv[0]`` to ``-m`` while it imports the module's packages), not a notebook
or test that imports a stage; it only changes how an uncaught KeyboardInterrupt is reported,
and Python still ends the process by SIGINT (130 in a shell). A stage process also imports
with the cyclic collector off (run_stage turns it back on) and starts its local workers
before its own imports (:mod:`kalshi_lab.stages.workers`).
"""

import gc
import sys
import warnings

_report = sys.excepthook

# A local worker process runs its stage's module again, as ``__mp_main__`` (multiprocessing's
# preparation of a child of a ``python -m`` process), after its fork server has imported it
# (kalshi_lab.compute): on purpose, so runpy's warning that the module is already imported
# would only be noise on every worker's stderr.
warnings.filterwarnings(
    "ignore",
    message=r"'kalshi_lab\.stages\.\w+' found in sys\.modules after import of package",
    category=RuntimeWarning,
)


def _interrupted(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
    else:
        _report(exc_type, exc, tb)


if sys.argv[:1] == ["-m"]:
    sys.excepthook = _interrupted
    # no cyclic collection while the stage imports its libraries: their hundreds of thousands
    # of objects set off collection after collection (0.05-0.3 s of a stage's 0.5-1.5 s of
    # imports); kalshi_lab.stages.runner.run_stage freezes them and turns it back on
    gc.disable()
    from kalshi_lab.stages.workers import start_if_stage_process

    start_if_stage_process()  # before the stage module's imports: kalshi_lab.stages.workers
