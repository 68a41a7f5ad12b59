"""What the features stage records of the user features beside the feature table
(``data/features/user_features.json``), and the evaluate stage copies into
``reports/evaluation.json`` under ``features``: which user features were model inputs and
whether, where and how their look-ahead check ran. A check that failed stopped the stage, so a
record says either that it passed or why it did not run (none, or turned off)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.params import FeatureParams


def user_features_record(params: FeatureParams, cutoffs: list[pd.Timestamp]) -> dict[str, Any]:
    """The record of ``params.extra`` checked at ``cutoffs`` (empty when it did not run)."""
    check = params.leak_check
    ran = bool(params.extra) and check.enabled
    if not params.extra:
        result = "not run: no user features"
    elif not check.enabled:
        result = "not run: features.leak_check.enabled is false"
    else:
        result = "passed"
    return {
        "user_features": [
            {"_target_": e.target, "columns": list(e.columns), "kwargs": e.kwargs}
            for e in params.extra
        ],
        "leak_check": {
            "enabled": check.enabled,
            "ran": ran,
            "result": result,
            "cutoffs": [t.isoformat() for t in cutoffs],
            "seed": check.seed,
        },
    }


def read_user_features_record(path: Path = paths.USER_FEATURES) -> dict[str, Any]:
    """The record the features stage wrote; a DataError names the stage to run if missing."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run the features stage first")
    return json.loads(path.read_text(encoding="utf-8"))
