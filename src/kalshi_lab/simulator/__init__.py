"""Offline Kalshi market simulator: writes exactly the JSON documents the Trade API v2 returns.

Modules, in the order data flows through them: ``universe`` (series, events, markets and their
schedules) -> ``latent`` (the calibrated true probability) -> ``quotes`` (lagging, noisy,
longshot-biased bid/ask) -> ``trades`` -> ``candles``, ``books``, ``summary`` (what the API
aggregates) -> ``documents`` and ``emit`` (the JSON, through :class:`RawWriter`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.params import DataParams
from kalshi_lab.simulator.emit import write_all
from kalshi_lab.simulator.simulate import Simulation, simulate

logger = logging.getLogger(__name__)

__all__ = ["Simulation", "simulate", "write_synthetic_raw"]


def write_synthetic_raw(data: DataParams, raw_dir: Path) -> dict[str, int]:
    """Simulate ``data`` and record it in ``raw_dir``; returns records written per kind.

    Deterministic: the same ``data`` (``data.synthetic.seed`` included) gives byte-identical
    files. A date range too short for any market is rejected earlier, by DataParams.
    """
    began = time.perf_counter()
    sim = simulate(data)
    with RawWriter(raw_dir) as writer:
        write_all(sim, writer)
        counts = dict(writer.counts)
    logger.info("simulated and recorded in %.1f s", time.perf_counter() - began)
    return counts
