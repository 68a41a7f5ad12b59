"""kalshi-lab: research-to-trading pipeline for Kalshi prediction markets.

The seed's public names: :class:`KalshiClient` (the Trade API v2), :class:`KalshiAnalyzer`
(daily price and traded-value series) and :class:`KalshiFeatureEngineer` (the lag-feature
dataset and its chronological split). They are imported on first use, so that a pipeline
stage importing one submodule does not pay for the client and the notebook face.
"""

from __future__ import annotations

import importlib
from typing import Any

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
