"""Where a stage's per-partition work runs: worker processes here (``compute=local``) or a Dask
cluster (``compute=dask``), chosen in params.yaml's ``compute`` section.

A stage hands :func:`map_partitions` a function and its partitions; results come back in the
partitions' order, whatever order they finish in, so a stage's outputs are the same on either
engine and with any number of workers (tests/test_compute.py runs one input on all of them).
The work functions write their own output files and return small summaries: a partition's data
never travels back through a pipe. At most two partitions per worker are in flight, so a
stage's memory is bounded by a few partitions, not by their number. Dask's own scheduler runs
the work; this module only submits it and collects the results in order. :func:`aside` runs one
piece of a stage's work in a local worker while the stage goes on with the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sized
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from kalshi_lab.errors import ParamError
from kalshi_lab.params import ComputeParams

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

#: what an exhausted iterator gives instead of a partition
_NONE: Any = object()
#: partitions in flight per worker: one running, one queued so that a worker never waits
IN_FLIGHT_PER_WORKER = 2
#: the package of the stage modules, which the fork server may import (importing one only
#: defines its stage; running it is ``python -m``'s)
STAGE_PACKAGE = "kalshi_lab.stages"
#: seconds to wait for the scheduler at ``compute.address``
CONNECT_TIMEOUT_S = 10
#: what Dask sets in its workers' environment before they start, and the variables of it that
#: set their BLAS threads (none of which a LocalCluster here sets: :func:`_on_dask`)
BLAS_THREADS_CONFIG = "distributed.nanny.pre-spawn-environ"
BLAS_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cores_available() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def in_process_if_small(compute: ComputeParams, small: bool) -> ComputeParams:
    """``compute``, with one worker (everything in this process) when the work is ``small``
    and ``compute=local`` leaves the number of workers open: worker processes each import the
    project when they start, which costs more than a second core saves on small work."""
    if compute.engine == "local" and compute.workers is None and small:
        return dataclasses.replace(compute, workers=1)
    return compute


def map_partitions(
    fn: Callable[[T], R],
    partitions: Iterable[T],
    compute: ComputeParams,
    *,
    busy: Callable[[], bool] | None = None,
) -> Iterator[R]:
    """``fn(partition)`` for each partition, yielded in the partitions' order.

    ``fn`` and the partitions must pickle (a module-level function; paths, not tables), except
    with one local worker, which runs everything in this process. An exception in ``fn`` is
    raised here, as itself, and the partitions not yet started are cancelled. ``partitions``
    may be an iterator still producing them (:func:`produced_ahead`): each is taken when a
    worker has room for it, and there are as many workers as ``compute`` says, not fewer for
    fewer partitions, as with a list. While ``busy()`` (this process producing them, e.g.
    :meth:`Ahead.producing`), one worker fewer runs partitions: the producer, whose work the
    later partitions wait for, keeps a core (at equal priority, two workers compressing on
    threads of their own took most of it).
    """
    _check_importable(fn)
    workers = compute.workers or cores_available()
    if isinstance(partitions, Sized):
        workers = min(workers, len(partitions))
    rest = iter(partitions)
    first = next(rest, _NONE)  # the workers start once there is work for them
    if first is _NONE:
        return
    partitions = itertools.chain([first], rest)
    if compute.engine == "dask":
        yield from _on_dask(fn, partitions, compute, workers, busy)
    elif workers == 1:
        yield from map(fn, partitions)  # no start-up, no pickling: the small data sets' path
    else:
        yield from _on_processes(fn, partitions, workers, busy)


def uses_local_workers(compute: ComputeParams) -> bool:
    """Whether ``compute`` runs work in local worker processes (more than one)."""
    return compute.engine == "local" and (compute.workers or cores_available()) > 1


def start_workers_early(fn: Callable[..., Any], compute: ComputeParams) -> None:
    """Start the fork server now, importing ``fn``'s module in the background, if ``compute``
    runs work in local worker processes: a stage with work of its own before
    :func:`map_partitions` (the simulator's draws, seconds at 10,000 markets) hides the
    workers' start-up behind it. Results never depend on it."""
    if uses_local_workers(compute):
        start_fork_server(_preload(fn))


def start_fork_server(modules: list[str]) -> None:
    """Start the fork server the local workers fork from, importing ``modules`` before it
    forks any: a no-op when it runs already.

    The server starts with SIGINT ignored (a disposition a new process inherits), so that a
    Ctrl-C at the terminal, which reaches every process of the group, does not print the
    server's KeyboardInterrupt traceback when it comes while the server still imports; the
    stage process reports it in one line. The workers end on it (:func:`_worker_setup`). This
    process ignores SIGINT only while it starts the server (a fork and an exec: milliseconds):
    a Ctrl-C then is lost."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
    if threading.current_thread() is not threading.main_thread():
        multiprocessing.forkserver.ensure_running()  # only the main thread may set handlers
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)


class Ahead(Iterator[T]):
    """The items a thread of this process produces (:func:`produced_ahead`), in order."""

    def __init__(self, produced: queue.SimpleQueue[tuple[T, BaseException | None]]) -> None:
        self._produced = produced
        self._done = threading.Event()

    def producing(self) -> bool:
        """Whether the producer is still at work (for :func:`map_partitions`'s ``busy``)."""
        return not self._done.is_set()

    def __next__(self) -> T:
        item, error = self._produced.get()
        if error is not None:
            raise error
        if item is _NONE:
            self._produced.put((item, None))  # exhausted for good
            raise StopIteration
        return item


@contextlib.contextmanager
def produced_ahead(items: Generator[T, None, None]) -> Iterator[Ahead[T]]:
    """``items``, produced by a thread of this process as fast as it can, whatever the
    consumer is waiting for: the simulator draws its chunks there while this thread waits on
    the workers rendering the partitions already drawn (:func:`map_partitions` takes one when
    a worker has room, and would otherwise hold the draws up until then). The items wait in an
    unbounded queue: they must be small (paths, not tables).

    An exception in the producer is raised by the consumer's iterator, as itself. On leaving
    the block, however, the producer stops after the item it is producing and is closed (its
    ``finally`` blocks run) before the block's exit returns: its files can be removed then.
    """
    produced: queue.SimpleQueue[tuple[T, BaseException | None]] = queue.SimpleQueue()
    ahead = Ahead(produced)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                produced.put((item, None))
            else:
                ahead._done.set()
                produced.put((_NONE, None))
        except BaseException as exc:  # noqa: BLE001 - the consumer raises it
            produced.put((_NONE, exc))
        finally:
            ahead._done.set()
            items.close()

    thread = threading.Thread(target=produce, name="produced-ahead", daemon=True)
    thread.start()
    try:
        yield ahead
    finally:
        stop.set()
        thread.join()


def _in_flight(workers: int, busy: Callable[[], bool] | None) -> Callable[[], int]:
    """How many partitions :func:`_in_order` keeps submitted: two per worker and the one
    waited for, or, while ``busy()``, one per worker but one (none queued)."""
    window = workers * IN_FLIGHT_PER_WORKER + 1
    return lambda: max(workers - 1, 1) if busy is not None and busy() else window


def _in_order(
    submit: Callable[[T], Any], partitions: Iterable[T], in_flight: Callable[[], int]
) -> Iterator[Any]:
    """Results of futures in submission order, ``in_flight()`` of them submitted and not yet
    taken (the one waited for included) while the next is waited for; on an error (or when
    the caller stops early) the futures not yet done are cancelled."""
    queue = iter(partitions)
    pending: deque[Any] = deque()
    try:
        while True:
            for p in itertools.islice(queue, max(in_flight() - len(pending), 0)):
                pending.append(submit(p))  # keep the workers busy meanwhile
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _preload(fn: Callable[..., Any]) -> list[str]:
    """The modules the fork server imports once, before it forks any worker: the work's, and
    the stage's when a stage runs as ``python -m kalshi_lab.stages.<name>`` (a worker runs its
    module body again, as multiprocessing does with ``__main__``; with its imports already
    made, that costs nothing). Without them each worker imported the libraries itself: 1 to 2 s
    of CPU per worker and stage."""
    main = getattr(sys.modules["__main__"].__spec__, "name", None)
    stage = [main] if main and main.startswith(STAGE_PACKAGE + ".") else []
    return [*stage, fn.__module__]


def _on_processes(
    fn: Callable[[T], R], partitions: Iterable[T], workers: int, busy: Callable[[], bool] | None
) -> Iterator[R]:
    # forkserver: a worker forks from a clean server process, never from this one, whose
    # threads (Arrow's pools, a writer's compression threads) fork would copy mid-flight
    with _process_pool(fn, workers) as pool:
        yield from _in_order(lambda p: pool.submit(fn, p), partitions, _in_flight(workers, busy))


@contextlib.contextmanager
def aside(fn: Callable[[T], R], partition: T) -> Iterator[Callable[[], R]]:
    """``fn(partition)`` in a local worker process of its own, started on entering the block,
    while this process goes on with the block: the callable yielded waits for its result and
    raises its error as itself. A stage hands it work of its own that its other work does not
    wait for (the backtest's delayed runs, while it runs the rest): on two cores, the two
    run at once. On leaving the block, work not started is cancelled and running work is
    waited for. ``fn`` and ``partition`` must pickle, as for :func:`map_partitions`."""
    _check_importable(fn)
    with _process_pool(fn, 1) as pool:
        future = pool.submit(fn, partition)
        try:
            yield future.result
        finally:
            future.cancel()


def _check_importable(fn: Callable[..., Any]) -> None:
    if getattr(fn, "__module__", None) == "__main__":
        # a worker finds a function by its module's name: in a worker, __main__ is another
        # module (or none), so it would fail there, and only with several workers
        raise TypeError(f"{fn.__qualname__} is defined in __main__: move it to a module")


def _process_pool(fn: Callable[..., Any], workers: int) -> ProcessPoolExecutor:
    """``workers`` local worker processes for ``fn``, forked from the fork server."""
    start_fork_server(_preload(fn))
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_worker_setup,
        initargs=(log.getEffectiveLevel(),),
    )


def _worker_setup(level: int) -> None:
    """A worker's log lines go where the stage's go (stderr), at the stage's level; Ctrl-C
    ends it (:func:`_end_on_ctrl_c`; its fork server ignores SIGINT: :func:`start_fork_server`)."""
    signal.signal(signal.SIGINT, _end_on_ctrl_c)
    logging.basicConfig(level=level, format="%(asctime)s %(processName)s %(levelname)s %(message)s")


def _end_on_ctrl_c(signum: int, _frame: object) -> None:
    """A worker's SIGINT: SystemExit (code 128 + SIGINT), which ends an idle worker silently
    and a busy one's partition, handed back as its error. Ctrl-C at the terminal reaches the
    stage and its workers alike: the stage says it in one line and discards what it staged;
    Python's KeyboardInterrupt would print its traceback from every idle worker."""
    raise SystemExit(128 + signum)


def _on_dask(
    fn: Callable[[T], R],
    partitions: Iterable[T],
    compute: ComputeParams,
    workers: int,
    busy: Callable[[], bool] | None,
) -> Iterator[R]:
    import dask  # only a dask run pays for the import
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if compute.address is None:
            # Dask starts its workers with one BLAS thread each; a fit's sums (the evaluate
            # stage's recalibrated market) then add up in another order than in this process
            # or a local worker and differ in the last digits: they keep this process's
            with dask.config.set({f"{BLAS_THREADS_CONFIG}.{name}": None for name in BLAS_THREADS}):
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                )
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(compute.address, timeout=CONNECT_TIMEOUT_S))
            except OSError as exc:
                raise ParamError(
                    f"compute.address: no Dask scheduler answered at {compute.address} "
                    f"within {CONNECT_TIMEOUT_S} s ({type(exc).__name__})"
                ) from None
            workers = max(len(client.scheduler_info()["workers"]), 1)
        client.forward_logging()  # the work's log lines reach this process's stderr
        yield from _in_order(
            lambda p: client.submit(fn, p, pure=False), partitions, _in_flight(workers, busy)
        )
