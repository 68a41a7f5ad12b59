"""kalshi-lab: research-to-trading pipeline for Kalshi prediction markets.

The seed's public names: :class:`KalshiClient` (the Trade API v2), :class:`KalshiAnalyzer`
(daily price and traded-value series) and :class:`KalshiFeatureEngineer` (the lag-feature
dataset and its chronological split).
"""

from kalshi_lab.analyzer import KalshiAnalyzer, KalshiFeatureEngineer
from kalshi_lab.client import KalshiClient

__all__ = ["KalshiAnalyzer", "KalshiClient", "KalshiFeatureEngineer"]
