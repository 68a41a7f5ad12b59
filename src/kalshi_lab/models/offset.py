"""The market's log-odds as a model's starting point: the column it is read from, and the link.

Apart from :mod:`kalshi_lab.models.market_offset` (a LightGBM subclass, which imports LightGBM)
so that the anchored logit, the default model, and the validate stage's check of it use them
without importing LightGBM.
"""

from __future__ import annotations

import numpy as np

#: the feature read as the market's log-odds: the offset every prediction starts from
OFFSET_FEATURE = "LOGIT_MID"


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
