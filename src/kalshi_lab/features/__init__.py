"""Daily feature table: one row per market and UTC day, keyed by the candle's END (as_of).

Public API, used by the features, train, evaluate and backtest stages::

    build_features(markets, candles, trades, params) -> DataFrame
    feature_columns(params) -> list[str]   # the model's inputs, in order
    TARGET_COLUMNS = {"settlement": "target_settlement", "direction": "target_direction"}
    UNLABELLED_BECAUSE[target] -> why a row of that target has no label (for logs)

The user's own features (``features.extra``) are in :mod:`kalshi_lab.features.user`, their
look-ahead check in :mod:`kalshi_lab.features.leak_check` (on the tables as known at a time,
:mod:`kalshi_lab.features.truncate`) and its record in :mod:`kalshi_lab.features.record`.
"""

from kalshi_lab.features.build import build_features
from kalshi_lab.features.columns import (
    TARGET_COLUMNS,
    UNLABELLED_BECAUSE,
    feature_columns,
    output_columns,
)

__all__ = [
    "TARGET_COLUMNS",
    "UNLABELLED_BECAUSE",
    "build_features",
    "feature_columns",
    "output_columns",
]
