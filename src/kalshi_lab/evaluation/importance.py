"""Feature importance of the trained model: what a reviewer checks for a leak or a fluke.

LightGBM reports its own split gains (the total loss reduction of the splits on each feature),
read from the fitted booster for free. Other models have no comparable native measure, so they
get permutation importance on the scored rows: how much the Brier score rises when one column
is shuffled (seeded, a few repeats).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

PERMUTATION_REPEATS = 3


def feature_importance(
    model: Any, rows: pd.DataFrame, y: np.ndarray, columns: list[str], seed: int
) -> tuple[pd.DataFrame, str]:
    """(feature, importance) rows sorted descending, and what the importance measures."""
    if _is_lightgbm(model):
        gain = model.booster_.feature_importance(importance_type="gain")
        values, kind = gain / max(gain.sum(), 1e-12), "share of LightGBM split gain"
    else:
        result = permutation_importance(
            model,
            rows[columns],
            y,
            scoring="neg_brier_score",
            n_repeats=PERMUTATION_REPEATS,
            random_state=seed,
        )
        values, kind = result.importances_mean, "Brier increase when the feature is permuted"
    frame = pd.DataFrame({"feature": columns, "importance": values})
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(
        drop=True
    ), kind


def _is_lightgbm(model: Any) -> bool:
    """Whether ``model`` is a LightGBM classifier: read from ``sys.modules``, not imported, so
    that scoring another model (the default) does not import LightGBM. A LightGBM model, built
    or unpickled, has imported it."""
    lightgbm = sys.modules.get("lightgbm")
    return lightgbm is not None and isinstance(model, lightgbm.LGBMClassifier)
