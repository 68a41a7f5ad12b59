"""The stage shell's memory handling: a stage that is its process imports without the cyclic
collector and freezes the collector's objects (its last collections on exit walked
scikit-learn and SciPy for 0.3-0.7 s per stage); a stage run inside another program freezes
nothing, since frozen objects are never freed."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from kalshi_lab.stages.runner import run_stage

# a stage body defined in __main__, as in ``python -m kalshi_lab.stages.<name>``; it reports
# whether an object made while the stage imported and one it leaves behind (a cycle) are
# frozen (tracked by the collector, in none of its generations)
AS_A_PROCESS = textwrap.dedent(
    """
    import gc, sys
    sys.argv[:] = ["-m"]  # what python -m sets while the stage's packages import
    from kalshi_lab.stages.runner import run_stage
    print("collecting while the stage imports:", gc.isenabled())

    def frozen(thing):
        return gc.is_tracked(thing) and not any(o is thing for o in gc.get_objects())

    left = []

    def main():
        print("imported objects frozen before the body:", frozen(run_stage))
        print("collecting in the body:", gc.isenabled())
        cycle = []
        cycle.append(cycle)
        left.append(cycle)
        print("its cycle frozen in the body:", frozen(cycle))

    run_stage("validate", main, argv=[])
    print("its cycle frozen after the body:", frozen(left[0]))
    """
)


def test_a_stage_that_is_its_process_freezes_the_objects_before_and_after_its_body():
    done = subprocess.run(
        [sys.executable, "-c", AS_A_PROCESS], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [
        "collecting while the stage imports: False",
        "imported objects frozen before the body: True",
        "collecting in the body: True",
        "its cycle frozen in the body: False",
        "its cycle frozen after the body: True",
    ]


def test_a_stage_run_inside_another_program_freezes_nothing():
    before = gc.get_freeze_count()
    run_stage("validate", lambda: None, argv=[])
    assert gc.get_freeze_count() == before
