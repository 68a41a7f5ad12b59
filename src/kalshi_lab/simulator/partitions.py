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
``compute=dask`` cluster needs) reads the pieces too. Then each partition's pieces are rendered
as JSON and compressed by :func:`render_partition`, run per partition by
:func:`kalshi_lab.compute.map_partitions`, on every core: that is most of the work. The files
depend on the data alone, not on the number of workers or the engine.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from kalshi_lab.compute import in_process_if_small, map_partitions, start_workers_early
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


@dataclass(frozen=True)
class PartitionJob:
    """What one worker needs to write one partition: small, so that it pickles cheaply."""

    out: Path  # the partition's raw directory
    pieces: tuple[Path, ...]  # its Simulation pieces (:func:`spill`), in event order
    series: int  # index into SERIES
    series_volume: int  # contracts traded in the whole series, every partition included


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


def render_partition(job: PartitionJob) -> dict[str, int]:
    """Write one partition from its pieces; returns the records written per kind."""
    with RawWriter(job.out, may_be_empty=MAY_BE_EMPTY) as writer:
        market_docs = []
        for path in job.pieces:
            sim = unspill(path)
            market_docs.extend(emit.write_piece(sim, writer))
        if sim.data.hourly_candles:  # after every daily candle, as one pass writes them
            for path in job.pieces:
                emit.write_candles(unspill(path), writer, emit.HOURLY)
        u, seed = sim.universe, sim.syn.seed
        emit.write_series(writer, job.series, job.series_volume, u.t0, u.snapshot)
        emit.write_markets(writer, market_docs, seed, u.snapshot)
        return dict(writer.counts)


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
    volume = np.zeros(len(SERIES), dtype=np.int64)
    pieces: list[list[Path]] = [[] for _ in names]
    with tempfile.TemporaryDirectory(prefix=SPILL_DIR + "-", dir=raw_dir) as scratch:
        for c, (events, sim) in enumerate(chunks):
            volume += series_volume(sim)
            part = of_event[events]
            for p in np.unique(part).tolist():
                path = Path(scratch) / f"{p}-{c}.pickle.lz4"
                spill(path, sim.subset(np.flatnonzero(part == p)))
                pieces[p].append(path)
        simulated = time.perf_counter()
        series = [int(universe.event_series[np.argmax(of_event == p)]) for p in range(len(names))]
        jobs = [
            PartitionJob(raw_dir / name, tuple(paths), s, int(volume[s]))
            for name, paths, s in zip(names, pieces, series, strict=True)
        ]
        counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
        for written in map_partitions(render_partition, jobs, engine):
            counts.update(written)
    write_partition_list(raw_dir, names)
    logger.info(
        "simulated %d events, %d markets in %.1f s; wrote %d partitions in %.1f s",
        universe.n_events,
        len(universe.ticker),
        simulated - began,
        len(names),
        time.perf_counter() - simulated,
    )
    return dict(counts)
