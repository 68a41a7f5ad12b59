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
    out["as_of"] = _utc(out["as_of"])
    if not out["prob"].between(0.0, 1.0).all():
        raise DataError("predictions prob must lie in [0, 1]")
    if "known_close" in out.columns:
        out["known_close"] = _utc(out["known_close"])
    return out


def _utc(values: pd.Series) -> pd.Series:
    """A timestamp column in UTC; tz-aware columns are converted without pandas' parsing."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True)


def signal_tickers(
    predictions: pd.DataFrame, positions: Mapping[str, ContractPosition]
) -> list[str]:
    """The markets a step quotes: those predicted (first appearance) and those held."""
    predicted = list(dict.fromkeys(predictions["ticker"].tolist()))
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
    predicted = predictions["ticker"].to_numpy(dtype=object)
    in_preds = set(predicted.tolist())
    if len(in_preds) < len(predicted):  # rare: pandas only then
        duplicated = predictions["ticker"].duplicated(keep="last").to_numpy()
        skipped[DUPLICATE] += int(duplicated.sum())
        predictions = predictions[~duplicated]
        predicted = predicted[~duplicated]
    held = [t for t in positions if t not in in_preds]
    tickers = np.concatenate([predicted, np.array(held, dtype=object)])
    if not np.array_equal(quotes.index.to_numpy(dtype=object), tickers):
        quotes = quotes.reindex(tickers)
    n_held = len(held)

    def padded(column: str) -> np.ndarray:
        return np.concatenate([predictions[column].to_numpy(dtype=float), np.full(n_held, np.nan)])

    columns: dict[str, np.ndarray | pd.DatetimeIndex] = {
        "event_ticker": np.concatenate(
            [
                predictions["event_ticker"].to_numpy(dtype=object),
                np.array([positions[t].event_ticker for t in held], dtype=object),
            ]
        ),
        "prob": padded("prob"),
        "mid": padded("mid"),
    }
    if "known_close" in predictions.columns:  # absent: a strategy that needs it says so
        known = predictions["known_close"].to_numpy("datetime64[ns]")  # UTC, by check_predictions
        columns["known_close"] = pd.DatetimeIndex(
            np.concatenate([known, np.full(n_held, np.datetime64("NaT", "ns"))]), tz="UTC"
        )
    for col in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
        columns[col] = quotes[col].to_numpy(dtype=float) / 100.0
    columns["taker_rate"] = quotes["taker_rate"].to_numpy(dtype=float)
    is_open = quotes["is_open"].to_numpy()
    if is_open.dtype != bool:  # a reindexed market unknown to the quotes: NaN is not open
        is_open = is_open == True  # noqa: E712
    being_worked = np.zeros(len(tickers), dtype=bool)
    if working:  # most steps have none; else pandas' isin, in C, not a loop over rows
        being_worked = pd.Index(tickers).isin(list(working))
    is_predicted = np.arange(len(tickers)) < len(predicted)
    for reason, mask in (
        (CLOSED, is_predicted & ~is_open),
        (WORKING, is_predicted & is_open & being_worked),
    ):
        if mask.any():
            skipped[reason] += int(np.count_nonzero(mask))
    keep = is_open & ~being_worked
    if not keep.all():
        tickers = tickers[keep]
        columns = {k: v[keep] for k, v in columns.items()}
    index = pd.Index(tickers, name="ticker", dtype=object, copy=False)
    return pd.DataFrame(columns, index=index, copy=False)  # fresh arrays: no copy needed
