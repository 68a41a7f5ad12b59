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

OpenBLAS's threads (NumPy's and SciPy's matrix products) likewise spin after each product for
2^28 cycles by default before they sleep: over the thousands of small products of a
scikit-learn ``LogisticRegression`` fit (the evaluate stage's recalibrated market, 277,490
training rows at 10,000 markets) the idle thread spun throughout, 1.13 s of CPU and 1.12 s of
wall on the 2-core VM; with ``OPENBLAS_THREAD_TIMEOUT=12`` (2^12 cycles) 0.21 s and 0.21 s, and
the same bits: how a product is split between the threads does not depend on how long they
wait. OpenBLAS reads it once, when NumPy loads it, so it is set here too.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")

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
