"""One period's predictions: the model on every scored row, baselines on the labelled ones.

Baselines are fit on the period's own training rows (the ones its model was fit on), never on
the rows they score. A scored row is kept for the scores only if it has a label and, for the
settlement target, a market price (the market baselines need one; kalshi_lab.guards); the rows
left out and why are logged and counted (:func:`coverage`), and every scored row still gets a
prediction for the backtest.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import STRUCTURE_COLUMNS
from kalshi_lab.evaluation.baselines import BASELINE_COLUMNS, baselines
from kalshi_lab.evaluation.report import Scored, with_best
from kalshi_lab.features import TARGET_COLUMNS, UNLABELLED_BECAUSE
from kalshi_lab.guards import scorable
from kalshi_lab.split import PURGED, Split

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
NO_PRICE = "no market price (the market baselines need a quote)"
SKIPPED = "period skipped (see skipped)"


def _scored_rows(rows: pd.DataFrame, target_name: str, what: str) -> np.ndarray:
    """Rows with a label (and a market price for settlement); logs how many are not."""
    labelled, priced = scorable(rows, target_name)
    log.info(
        "%s: %d of %d rows have no %s label, predicted but not scored: %s",
        what,
        int((~labelled).sum()),
        len(rows),
        target_name,
        UNLABELLED_BECAUSE[target_name],
    )
    if (labelled & ~priced).any():
        log.info(
            "%s: %d labelled rows have no market price, predicted but not scored: the market "
            "baselines need a quote",
            what,
            int((labelled & ~priced).sum()),
        )
    return labelled & priced


def _predictions(rows: pd.DataFrame, prob: np.ndarray, target_name: str) -> pd.DataFrame:
    """``rows``' context, the model's probability ``prob`` and the label, one row each."""
    return rows[PREDICTION_CONTEXT].assign(
        prob=prob,
        label=rows[TARGET_COLUMNS[target_name]].to_numpy(),
        # the close known at as_of (DAYS_TO_CLOSE is measured to it), for exits before the close
        known_close=rows["as_of"] + pd.to_timedelta(rows["DAYS_TO_CLOSE"], unit="D"),
    )


def no_predictions(features: pd.DataFrame, target_name: str) -> pd.DataFrame:
    """The predictions of a skipped period: none, in the columns of a scored one."""
    return _predictions(features.iloc[:0], np.zeros(0), target_name)


def score_split(
    train: pd.DataFrame,
    rows: pd.DataFrame,
    model: Any,
    target_name: str,
    columns: list[str],
    what: str,
    clusters: np.ndarray,
) -> tuple[Scored, pd.DataFrame]:
    """The scored block of a period (with its best baseline) and the predictions of all its
    scored rows ``rows`` (``split.valid``); ``train``: the period's labelled training rows
    (BASELINE_COLUMNS and the target: the baselines' fit); ``clusters``: the release of each of
    ``rows`` (labelled once over the whole table, so that one release has one label in every
    period: kalshi_lab.resolution)."""
    target = TARGET_COLUMNS[target_name]
    predictions = _predictions(rows, model.predict_proba(rows[columns])[:, 1], target_name)
    keep = _scored_rows(rows, target_name, what)
    # of the scored rows, only what the block and the baselines read: not a copy of every
    # model input of them
    scored = rows.loc[keep, [target, "event_ticker", "structure", *BASELINE_COLUMNS]]
    block = Scored(
        y=scored[target].to_numpy(dtype=int),
        prob=predictions["prob"].to_numpy()[keep],
        baselines=baselines(target_name, train, train[target].to_numpy(dtype=int), scored),
        events=scored["event_ticker"].astype(str).to_numpy(),
        clusters=clusters[keep],
        structure=scored["structure"].astype(str).to_numpy(),
    )
    return with_best(block, target_name), predictions


def coverage(
    features: pd.DataFrame, split: Split, target_name: str, skipped: str | None
) -> dict[str, object]:
    """What of the period's window is scored and why the rest is not: rows and events scored,
    rows in the window and the share scored, rows not scored by reason (purged, unlabelled,
    unpriced, the period skipped), events purged, and events trained on."""
    labelled, priced = scorable(features, target_name)
    events = features["event_ticker"]
    scored = split.valid & labelled & priced
    not_scored = {
        PURGED: int(split.purged.sum()),
        f"no {target_name} label: {UNLABELLED_BECAUSE[target_name]}": int(
            (split.valid & ~labelled).sum()
        ),
        NO_PRICE: int((split.valid & labelled & ~priced).sum()),
        SKIPPED: int(scored.sum()) if skipped else 0,
    }
    n_window = int((split.valid | split.purged).sum())
    if skipped:
        scored = np.zeros_like(scored)
    return {
        "skipped": skipped,
        "n_rows": int(scored.sum()),
        "n_events": int(events[scored].nunique()),
        "n_window_rows": n_window,
        "share_scored": int(scored.sum()) / n_window if n_window else 0.0,
        "not_scored": {reason: n for reason, n in not_scored.items() if n},
        "n_purged_events": int(events[split.purged].nunique()),
        "n_train_events": int(events[split.train & labelled].nunique()),
    }
