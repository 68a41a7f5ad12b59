"""One split's predictions: the model on every scored row, baselines on the labelled ones.

Baselines are fit on the split's own training rows (the ones its model was fit on), never on
the rows they score. A scored row is kept for the scores only if it has a label and, for the
settlement target, a market price (the market baselines need one); the rows left out and why
are logged, and every scored row still gets a prediction for the backtest.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import STRUCTURE_COLUMNS
from kalshi_lab.evaluation.baselines import baselines
from kalshi_lab.evaluation.report import Scored
from kalshi_lab.features import TARGET_COLUMNS, UNLABELLED_BECAUSE
from kalshi_lab.split import Split

log = logging.getLogger(__name__)

#: columns of the features table copied into the predictions (what the backtest reads)
PREDICTION_CONTEXT = [
    "ticker",
    "event_ticker",
    "series_ticker",
    "as_of",
    "mid",
    "market_prob",
    # what the market pays on: strategies skip structure "other" and pair a ladder's strikes;
    # reports split by structure
    *STRUCTURE_COLUMNS,
]


def _scorable(rows: pd.DataFrame, target_name: str, what: str) -> np.ndarray:
    """Rows with a label (and a market price for settlement); logs how many are not."""
    labelled = rows[TARGET_COLUMNS[target_name]].notna().to_numpy()
    log.info(
        "%s: %d of %d rows have no %s label, predicted but not scored: %s",
        what,
        int((~labelled).sum()),
        len(rows),
        target_name,
        UNLABELLED_BECAUSE[target_name],
    )
    if target_name != "settlement":
        return labelled
    priced = rows["market_prob"].notna().to_numpy()
    if (labelled & ~priced).any():
        log.info(
            "%s: %d labelled rows have no market price, predicted but not scored: the market "
            "baselines need a quote",
            what,
            int((labelled & ~priced).sum()),
        )
    return labelled & priced


def score_split(
    features: pd.DataFrame,
    split: Split,
    model: Any,
    target_name: str,
    columns: list[str],
    what: str,
) -> tuple[Scored, pd.DataFrame]:
    """The scored block of ``split`` and the predictions of all its scored rows."""
    target = TARGET_COLUMNS[target_name]
    train = features[split.train & features[target].notna().to_numpy()]
    rows = features[split.valid]
    predictions = rows[PREDICTION_CONTEXT].assign(
        prob=model.predict_proba(rows[columns])[:, 1],
        label=rows[target].to_numpy(),
        # the close known at as_of (DAYS_TO_CLOSE is measured to it), for exits before the close
        known_close=rows["as_of"] + pd.to_timedelta(rows["DAYS_TO_CLOSE"], unit="D"),
    )
    keep = _scorable(rows, target_name, what)
    scored = rows[keep]
    block = Scored(
        y=scored[target].to_numpy(dtype=int),
        prob=predictions["prob"].to_numpy()[keep],
        baselines=baselines(target_name, train, train[target].to_numpy(dtype=int), scored),
        events=scored["event_ticker"].astype(str).to_numpy(),
        structure=scored["structure"].astype(str).to_numpy(),
    )
    return block, predictions
