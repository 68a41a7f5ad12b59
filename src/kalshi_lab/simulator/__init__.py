"""Offline Kalshi market simulator: writes exactly the JSON documents the Trade API v2 returns.

Modules, in the order data flows through them: ``universe`` (series, events, markets and their
schedules) -> ``draws`` (where each random draw comes from) -> ``latent`` (the calibrated true
probability) -> ``quotes`` (lagging, noisy, longshot-biased bid/ask) -> ``trades`` ->
``candles``, ``books``, ``summary`` (what the API aggregates) -> ``documents`` and ``emit``
(the JSON, through :class:`RawWriter`) -> ``partitions`` (the raw directory, per series and
month).
"""

from __future__ import annotations

from kalshi_lab.simulator.partitions import write_synthetic_raw
from kalshi_lab.simulator.simulate import Simulation, simulate

__all__ = ["Simulation", "simulate", "write_synthetic_raw"]
