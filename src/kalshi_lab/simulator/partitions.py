"""The simulated raw directory, partitioned: ``series=<S>/month=<YYYY-MM>/``, one per series and
UTC month of its events' close, each a flat raw directory holding whole events (the series
document, the events, their markets as /markets pages, candlesticks, trades and order books),
listed in partitions.json once all are complete (:mod:`kalshi_lab.data.raw_store`).

The simulation runs here, chunk by chunk in event order (its draws must be made in that order:
:mod:`kalshi_lab.simulator.draws`); each chunk is cut into its partitions' pieces, spilled to
a scratch directory inside the raw directory being written (:data:`SPILL_DIR`, removed
however the run ends short of a SIGKILL, and never listed: the stage writes into a staged
directory that a killed run leaves for the next one to remove), and dropped, so memory holds
one chunk. Inside the output, not in this machine's temporary directory, so that a Dask
worker on another machine that sees the project's files (a shared filesystem, as every
``compute=dask`` cluster needs) reads the pieces too. Each partition's pieces are rendered as
JSON and compressed by :func:`render_partition`, run per partition by
:func:`kalshi_lab.compute.map_partitions`, on every core: that is most of the work. Events are
drawn in the order they open, so the partitions of the early months are complete long before
the last draw: each is handed to the workers as soon as its last piece is spilled, while the
draws go on in a thread of this process (:func:`kalshi_lab.compute.produced_ahead`), and the
second core no longer waits for the first to finish drawing. All but one file: a partition's
series document counts the contracts traded in the whole series, known once the last chunk is
drawn; :func:`finish` writes it, and with it the manifest that completes the partition, then.
The files depend on the data alone, not on the number of workers or the engine, nor on the
order the partitions are rendered in.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from kalshi_lab.compute import (
    in_process_if_small,
    map_partitions,
    produced_ahead,
    start_workers_early,
)
from kalshi_lab.data.raw_store import KINDS, RawWriter, partition_name, write_partition_list
from kalshi_lab.params import ComputeParams, DataParams
from kalshi_lab.simulator import emit
from kalshi_lab.simulator.documents import series_volume
from kalshi_lab.simulator.simulate import Simulation, simulate_chunks
from kalshi_lab.simulator.universe import SERIES, Universe

logger = logging.getLogger(__name__)

#: the kinds a simulated partition may have no record of: none (every event lists markets,
#: every market has candles and a book snapshot, and trades); a partition that has none of a
#: kind is still complete, as the parquet stage checks across partitions
MAY_BE_EMPTY: tuple[str, ...] = ()
SPILL_CODEC = "lz4"
#: the scratch directory of the spilled pieces, inside the raw directory while it is written
SPILL_DIR = ".simulated-pieces"
#: market-hours below which the partitions are rendered in this process when ``compute``
#: leaves the number of workers open: starting worker processes (each imports the project)
#: costs more than a second core saves (1,000 markets over 2025, 0.65 M market-hours: 2.3 s
#: in one process, 6.1 s with two workers; 10,000, 6.6 M: the two workers pay)
PARALLEL_MARKET_HOURS = 2_000_000
#: the kinds :func:`render_partition` writes: all but the series document (:func:`finish`)
RENDERED: tuple[str, ...] = tuple(kind for kind in KINDS if kind != "series")


@dataclass(frozen=True)
class PartitionJob:
    """What one worker needs to write one partition: small, so that it pickles cheaply."""

    index: int  # the partition's, in the sorted names of :func:`event_partitions`
    out: Path  # the partition's raw directory
    pieces: tuple[Path, ...]  # its Simulation pieces (:func:`spill`), in event order


@dataclass
class Draws:
    """What the draws leave for the partitions' series documents, once the last is made."""

    volume: np.ndarray  # contracts traded per series, in every chunk drawn so far
    seconds: float = 0.0  # from the start of the fetch to the end of the last draw


def event_partitions(universe: Universe) -> tuple[list[str], np.ndarray]:
    """The partitions' names, sorted, and the index of each event's partition."""
    keys = [
        partition_name(SERIES[s].ticker, month)
        for s, month in zip(
            universe.event_series.tolist(), universe.close_month.tolist(), strict=True
        )
    ]
    names, of_event = np.unique(np.array(keys, dtype=object), return_inverse=True)
    return names.tolist(), of_event


def spill(path: Path, piece: Simulation) -> None:
    """Write ``piece`` to the scratch file ``path``: pickled, then LZ4-compressed (its integer
    arrays shrink about four times, at a GB/s: the disk, not the CPU, bounds a spill)."""
    data = pickle.dumps(piece, protocol=pickle.HIGHEST_PROTOCOL)
    packed = pa.compress(data, codec=SPILL_CODEC, asbytes=True)
    path.write_bytes(len(data).to_bytes(8, "little") + packed)


def unspill(path: Path) -> Simulation:
    """The piece :func:`spill` wrote to ``path``."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    data = pa.decompress(raw[8:], decompressed_size=size, codec=SPILL_CODEC, asbytes=True)
    piece: Simulation = pickle.loads(data)
    return piece


def render_partition(job: PartitionJob) -> tuple[int, dict[str, int]]:
    """Write one partition from its pieces, all but its series document (:func:`finish`);
    returns its index and the records written per kind."""
    with RawWriter(job.out, may_be_empty=MAY_BE_EMPTY, kinds=RENDERED) as writer:
        market_docs = []
        for path in job.pieces:
            sim = unspill(path)
            market_docs.extend(emit.write_piece(sim, writer))
        if sim.data.hourly_candles:  # after every daily candle, as one pass writes them
            for path in job.pieces:
                emit.write_candles(unspill(path), writer, emit.HOURLY)
        emit.write_markets(writer, market_docs, sim.syn.seed, sim.universe.snapshot)
        return job.index, dict(writer.counts)


def finish(
    out: Path, series: int, universe: Universe, draws: Draws, rendered: dict[str, int]
) -> dict[str, int]:
    """Complete the partition :func:`render_partition` wrote into ``out``: its document of
    ``series`` (which counts the contracts traded in every partition of the series, so it
    waits for the last draw), then its manifest; returns the records of every kind."""
    with RawWriter(out, may_be_empty=MAY_BE_EMPTY, kinds=["series"], wrote=rendered) as writer:
        emit.write_series(writer, series, int(draws.volume[series]), universe.t0, universe.snapshot)
    return {**rendered, **writer.counts}


def drawn_partitions(
    chunks: Iterator[tuple[np.ndarray, Simulation]],
    of_event: np.ndarray,
    raw_dir: Path,
    names: list[str],
    scratch: Path,
    draws: Draws,
    began: float,
) -> Generator[PartitionJob, None, None]:
    """Draw ``chunks`` in order, spill each one's pieces (one per partition) to ``scratch``,
    and yield the job of each partition as soon as its last piece is spilled: events are
    drawn in the order they open, and a partition's close in its month, so the partitions of
    early months are complete while the later ones are still drawn. Adds each chunk's traded
    volume to ``draws``."""
    remaining = np.bincount(of_event, minlength=len(names))  # events not yet drawn
    pieces: list[list[Path]] = [[] for _ in names]
    for c, (events, sim) in enumerate(chunks):
        draws.volume += series_volume(sim)
        part = of_event[events]
        drawn = np.unique(part)
        for p in drawn.tolist():
            path = scratch / f"{p}-{c}.pickle.lz4"
            spill(path, sim.subset(np.flatnonzero(part == p)))
            pieces[p].append(path)
        remaining -= np.bincount(part, minlength=len(names))
        for p in drawn[remaining[drawn] == 0].tolist():
            yield PartitionJob(p, raw_dir / names[p], tuple(pieces[p]))
    draws.seconds = time.perf_counter() - began


def _engine(universe: Universe, compute: ComputeParams | None) -> ComputeParams:
    """``compute``, with one worker for a small simulation if it leaves the number open."""
    market_hours = int((universe.listed * universe.life_h).sum())
    return in_process_if_small(compute or ComputeParams(), market_hours < PARALLEL_MARKET_HOURS)


def write_synthetic_raw(
    data: DataParams, raw_dir: Path, compute: ComputeParams | None = None
) -> dict[str, int]:
    """Simulate ``data`` into the partitions of ``raw_dir``; returns records written per kind.

    Deterministic: the same ``data`` (``data.synthetic.seed`` included) gives byte-identical
    files, whatever ``compute``. A date range too short for any market is rejected earlier, by
    DataParams.
    """
    began = time.perf_counter()
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    universe, chunks = simulate_chunks(data)
    engine = _engine(universe, compute)
    start_workers_early(render_partition, engine)
    names, of_event = event_partitions(universe)
    series = np.zeros(len(names), dtype=np.int64)
    series[of_event] = universe.event_series
    draws = Draws(np.zeros(len(SERIES), dtype=np.int64))
    rendered: dict[int, dict[str, int]] = {}
    with (
        tempfile.TemporaryDirectory(prefix=SPILL_DIR + "-", dir=raw_dir) as scratch,
        produced_ahead(
            drawn_partitions(chunks, of_event, raw_dir, names, Path(scratch), draws, began)
        ) as jobs,
    ):
        for p, written in map_partitions(render_partition, jobs, engine, busy=jobs.producing):
            rendered[p] = written
    counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
    for p, name in enumerate(names):
        counts.update(finish(raw_dir / name, int(series[p]), universe, draws, rendered[p]))
    write_partition_list(raw_dir, names)
    logger.info(
        "simulated %d events, %d markets in %.1f s; wrote %d partitions in %.1f s, "
        "%.1f s after the last draw",
        universe.n_events,
        len(universe.ticker),
        draws.seconds,
        len(names),
        time.perf_counter() - began,
        time.perf_counter() - began - draws.seconds,
    )
    return dict(counts)
