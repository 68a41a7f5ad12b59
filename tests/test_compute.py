"""Where per-partition work runs never changes what comes back: the same results, in the
partitions' order, in this process, in worker processes and on a 2-worker Dask LocalCluster."""

from __future__ import annotations

import os
import threading
import time
import types
from concurrent.futures import Future
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from kalshi_lab import compute
from kalshi_lab.compute import aside, map_partitions, produced_ahead
from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.params import ComputeParams


def _work(job: tuple[Path, int]) -> tuple[int, int, int]:
    """Partition ``i``: a file of its own, finished later the earlier it started (so that
    completion order is the reverse of submission order)."""
    out, i = job
    time.sleep(0.05 * (8 - i) if i < 8 else 0)
    (out / f"part-{i}").write_text(str(i * i))
    return i, i * i, os.getpid()


def _fail_on_first(job: tuple[Path, int]) -> int:
    out, i = job
    if i == 0:
        raise DataError(f"partition {i}: a bad record")
    time.sleep(0.3)
    (out / f"part-{i}").write_text("done")
    return i


ENGINES = [
    pytest.param(ComputeParams(engine="local", workers=1), id="local-1"),
    pytest.param(ComputeParams(engine="local", workers=2), id="local-2"),
    pytest.param(ComputeParams(engine="dask", workers=2), id="dask-2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_gives_the_results_in_the_partitions_order(tmp_path, engine):
    results = list(map_partitions(_work, [(tmp_path, i) for i in range(10)], engine))
    assert [(i, sq) for i, sq, _ in results] == [(i, i * i) for i in range(10)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"part-{i}" for i in range(10))
    pids = {pid for _, _, pid in results}
    if engine.workers == 1:
        assert pids == {os.getpid()}  # no pickling, no start-up: the small data's path
    else:
        assert os.getpid() not in pids and len(pids) == 2  # both workers took partitions


@pytest.mark.parametrize("engine", ENGINES[:2])
def test_an_error_in_a_partition_is_raised_as_itself_and_the_rest_are_not_started(tmp_path, engine):
    with pytest.raises(DataError, match="partition 0: a bad record"):
        list(map_partitions(_fail_on_first, [(tmp_path, i) for i in range(40)], engine))
    started = len(list(tmp_path.iterdir()))
    # in flight when the error came: at most two per worker, never the 39 others
    assert started <= 2 * engine.workers


def test_workers_default_to_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert compute.cores_available() == 3


def test_an_address_needs_the_dask_engine():
    with pytest.raises(
        ParamError, match="compute.address: is a Dask scheduler's: set compute=dask"
    ):
        ComputeParams(engine="local", address="tcp://127.0.0.1:8786")


@pytest.mark.slow
def test_a_dask_address_nobody_answers_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(compute, "CONNECT_TIMEOUT_S", 1)
    engine = ComputeParams(engine="dask", address="tcp://127.0.0.1:9")
    with pytest.raises(
        ParamError, match=r"compute.address: no Dask scheduler answered at tcp://127.0.0.1:9"
    ):
        list(map_partitions(_work, [(tmp_path, 0)], engine))


def _blas_threads(_: int) -> list[int]:
    """The threads of NumPy's and SciPy's BLAS libraries, once loaded."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    return sorted(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_workers_run_blas_on_as_many_threads_as_this_process(engine):
    """A fit's float sums add up in an order set by its BLAS threads: with fewer threads than
    here (Dask's default for its workers: one), the evaluate stage's recalibrated market
    differs in the last digits, and compute must never change a result."""
    assert list(map_partitions(_blas_threads, [0, 1], engine)) == [_blas_threads(0)] * 2


@pytest.mark.parametrize("engine", ENGINES)
def test_no_partitions_is_no_work_and_starts_no_workers(engine, monkeypatch):
    monkeypatch.setattr(compute, "_on_processes", None)  # would fail if called
    monkeypatch.setattr(compute, "_on_dask", None)
    assert list(map_partitions(_work, [], engine)) == []


def test_work_defined_in_main_is_refused_on_every_engine(tmp_path):
    """A stage runs as __main__: work defined there would fail in a worker only (by name, in
    another __main__), so it is refused before any runs, whatever the engine."""
    work = types.FunctionType(_work.__code__, {"time": time, "os": os}, "in_main")
    work.__module__ = "__main__"
    for engine in (ComputeParams(engine="local", workers=1), ComputeParams(workers=2)):
        with pytest.raises(TypeError, match="_work is defined in __main__: move it"):
            list(map_partitions(work, [(tmp_path, 0)], engine))
    with (
        pytest.raises(TypeError, match="_work is defined in __main__: move it"),
        aside(work, (tmp_path, 0)),
    ):
        pass
    assert not list(tmp_path.iterdir())


def test_work_aside_runs_in_another_process_while_this_one_goes_on(tmp_path):
    """The result comes back, from another process, while this one did its own work; the
    work's error is raised as itself, when its result is asked for."""
    with aside(_work, (tmp_path, 1)) as result:
        (tmp_path / "here").write_text("meanwhile")
        i, square, pid = result()
    assert (i, square, (tmp_path / "part-1").read_text()) == (1, 1, "1")
    assert pid != os.getpid()
    with (
        aside(_fail_on_first, (tmp_path, 0)) as result,
        pytest.raises(DataError, match="partition 0: a bad record"),
    ):
        result()


@pytest.mark.parametrize("engine", ENGINES)
def test_partitions_from_an_iterator_are_taken_as_the_workers_have_room(tmp_path, engine):
    """A producer still making partitions (the simulator's draws) is not drained before the
    first result: each is taken when a worker can start it."""
    taken: list[int] = []

    def produce():
        for i in range(40):
            taken.append(i)
            yield tmp_path, i

    results = map_partitions(_work, produce(), engine)
    assert next(results)[:2] == (0, 0)
    assert len(taken) <= 2 * engine.workers + 1
    assert [i for i, _, _ in results] == list(range(1, 40))


def test_a_producer_ahead_produces_whatever_the_consumer_waits_for():
    produced_all = threading.Event()

    def produce():
        yield from range(5)
        produced_all.set()

    with produced_ahead(produce()) as items:
        assert next(items) == 0
        assert produced_all.wait(timeout=10)  # while this thread took one item only
        assert list(items) == [1, 2, 3, 4]


def test_an_error_in_a_producer_ahead_is_raised_by_its_consumer_as_itself():
    def produce():
        yield 1
        raise DataError("a bad chunk")

    with produced_ahead(produce()) as items, pytest.raises(DataError, match="a bad chunk"):
        assert next(items) == 1
        next(items)


def test_leaving_a_producer_ahead_early_stops_it_before_the_block_is_left():
    """The simulator removes the producer's scratch files once the block is left: the
    producer must be over by then, its own clean-up done."""
    cleaned: list[bool] = []

    def produce():
        try:
            for i in range(1000):
                time.sleep(0.01)
                yield i
        finally:
            cleaned.append(True)

    with produced_ahead(produce()) as items:
        assert next(items) == 0
    assert cleaned == [True]
    assert not [t for t in threading.enumerate() if t.name == "produced-ahead"]


def test_while_this_process_is_busy_one_worker_fewer_runs_partitions():
    """Two workers, and this process producing the partitions: one runs at a time, none
    queued, so that the producer keeps a core; then two per worker and the one waited for."""
    busy = [True]
    submitted: list[int] = []

    def submit(p: int) -> Future:
        submitted.append(p)
        future: Future = Future()
        future.set_result(p)
        return future

    results = compute._in_order(submit, range(10), compute._in_flight(2, lambda: busy[0]))
    assert next(results) == 0 and submitted == [0]
    assert next(results) == 1 and submitted == [0, 1]
    busy[0] = False
    assert next(results) == 2 and submitted == list(range(7))
    assert list(results) == list(range(3, 10))
    assert compute._in_flight(2, None)() == 5 and compute._in_flight(1, lambda: True)() == 1
