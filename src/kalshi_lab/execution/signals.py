"""The ``signals`` a strategy sees at one time: predictions joined with the executable quotes.

Backtest, paper and live build them the same way, from the predictions made at ``ts`` and the
exchange's quotes at ``ts`` (nothing later), so a strategy cannot tell the modes apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import ContractPosition

PREDICTION_COLUMNS = ("ticker", "event_ticker", "as_of", "prob", "mid")
#: columns of a signals frame (indexed by ticker); quotes in dollars; known_close only when the
#: predictions carry it
SIGNAL_COLUMNS = (
    "event_ticker",
    "prob",
    "mid",
    "known_close",
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "taker_rate",
)
CLOSED = "market closed (or unknown to the exchange)"
WORKING = "an order is still being worked in the market"
DUPLICATE = "a later signal for the same market at the same time"


def check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Predictions with the needed columns and a UTC ``as_of``; DataError otherwise."""
    missing = sorted(set(PREDICTION_COLUMNS) - set(predictions.columns))
    if missing:
        raise DataError(f"predictions lack columns {missing}")
    if predictions.empty:
        raise DataError("predictions are empty: nothing to trade")
    out = predictions.copy()
    out["as_of"] = pd.to_datetime(out["as_of"], utc=True)
    if not out["prob"].between(0.0, 1.0).all():
        raise DataError("predictions prob must lie in [0, 1]")
    if "known_close" in out.columns:
        out["known_close"] = pd.to_datetime(out["known_close"], utc=True)
    return out


def signal_tickers(
    predictions: pd.DataFrame, positions: Mapping[str, ContractPosition]
) -> list[str]:
    """The markets a step quotes: those predicted (first appearance) and those held."""
    predicted = list(dict.fromkeys(predictions["ticker"]))
    seen = set(predicted)
    return [*predicted, *(t for t in positions if t not in seen)]


def build_signals(
    predictions: pd.DataFrame,
    quotes: pd.DataFrame,
    positions: Mapping[str, ContractPosition],
    working: Collection[str],
    skipped: Counter[str],
) -> pd.DataFrame:
    """One row per open market with a prediction or a position, none being worked.

    ``predictions`` are those made at the decision time and ``quotes`` the exchange's quotes
    at that time of at least :func:`signal_tickers` (cents, as BaseKalshiExchange.quotes gives
    them). Prediction columns are NaN for a held market without one. Signals left out (closed
    market, order being worked, duplicate) are counted in ``skipped``; held markets without a
    prediction are not signals and are not counted.
    """
    duplicated = predictions["ticker"].duplicated(keep="last")
    if duplicated.any():
        skipped[DUPLICATE] += int(duplicated.sum())
    preds = predictions[~duplicated].set_index("ticker")
    held = [t for t in positions if t not in preds.index]
    tickers = [*preds.index, *held]
    quotes = quotes.reindex(tickers)
    frame = pd.DataFrame(index=pd.Index(tickers, name="ticker"))
    frame["event_ticker"] = [
        *preds["event_ticker"],
        *(positions[t].event_ticker for t in held),
    ]
    n_held = len(held)
    for col in ("prob", "mid"):
        frame[col] = np.concatenate([preds[col].to_numpy(dtype=float), np.full(n_held, np.nan)])
    if "known_close" in preds.columns:  # absent: a strategy that needs it says so
        frame["known_close"] = preds["known_close"].reindex(frame.index)
    for col in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
        frame[col] = quotes[col].to_numpy(dtype=float) / 100.0
    frame["taker_rate"] = quotes["taker_rate"].to_numpy(dtype=float)
    is_open = quotes["is_open"].fillna(False).to_numpy(dtype=bool)
    being_worked = frame.index.isin(list(working))
    predicted = np.arange(len(tickers)) < len(preds)
    for reason, mask in (
        (CLOSED, predicted & ~is_open),
        (WORKING, predicted & is_open & being_worked),
    ):
        if mask.any():
            skipped[reason] += int(np.count_nonzero(mask))
    return frame[is_open & ~being_worked]
