"""The stage shell's memory handling: a stage that is its process freezes the collector's
objects (its last collections on exit walked scikit-learn and SciPy for 0.3-0.7 s per stage);
a stage run inside another program freezes nothing, since frozen objects are never freed."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from kalshi_lab.stages.runner import run_stage

# a stage body defined in __main__, as in ``python -m kalshi_lab.stages.<name>``; it reports
# the frozen objects it finds and leaves a cycle behind, which the shell must freeze too
AS_A_PROCESS = textwrap.dedent(
    """
    import gc
    from kalshi_lab.stages.runner import run_stage

    left = []

    def main():
        print("frozen before the body:", gc.get_freeze_count() > 0)
        cycle = []
        cycle.append(cycle)
        left.append(cycle)
        left.append(gc.get_freeze_count())

    run_stage("validate", main, argv=[])
    print("frozen after the body:", gc.get_freeze_count() > left[1])
    """
)


def test_a_stage_that_is_its_process_freezes_the_objects_before_and_after_its_body():
    done = subprocess.run(
        [sys.executable, "-c", AS_A_PROCESS], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [
        "frozen before the body: True",
        "frozen after the body: True",
    ]


def test_a_stage_run_inside_another_program_freezes_nothing():
    before = gc.get_freeze_count()
    run_stage("validate", lambda: None, argv=[])
    assert gc.get_freeze_count() == before
