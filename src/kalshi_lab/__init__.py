"""kalshi-lab: research-to-trading pipeline for Kalshi prediction markets.

The seed's public names: :class:`KalshiClient` (the Trade API v2), :class:`KalshiAnalyzer`
(daily price and traded-value series) and :class:`KalshiFeatureEngineer` (the lag-feature
dataset and its chronological split). They are imported on first use, so that a pipeline
stage importing one submodule does not pay for the client and the notebook face.

OpenMP threads (LightGBM's, scikit-learn's) wait for work by sleeping, not spinning
(``OMP_WAIT_POLICY=PASSIVE``), unless the environment says otherwise. libgomp reads the
variable once, when it is loaded, so it is set here, before any of them is imported by a
stage, the bot or a test. By default a waiting thread spins: with another process on the
cores, a LightGBM fit spent most of its time spinning and took 2-7x longer; the predictions
are the same (benchmarks/bench_lightgbm_threads.py).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "KalshiAnalyzer": "kalshi_lab.analyzer",
    "KalshiFeatureEngineer": "kalshi_lab.analyzer",
    "KalshiClient": "kalshi_lab.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kalshi_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
