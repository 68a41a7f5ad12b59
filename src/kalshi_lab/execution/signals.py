"""The ``signals`` a strategy sees at one time: predictions joined with the executable quotes.

Backtest, paper and live build them the same way, from the predictions made at ``ts`` and the
exchange's quotes at ``ts`` (nothing later), so a strategy cannot tell the modes apart.

A prediction may carry its market's place in its event (:data:`STRUCTURE_COLUMNS`, the markets
table's columns, see :mod:`kalshi_lab.data.structure`). Markets of an event of structure
``other`` (a scalar, custom, functional or multivariate payoff) are not signals: no strategy
here prices them, and the risk limits cannot bound an event whose payoff is not 0 or 1 on a
region of one value. They are counted in ``skipped`` like the other reasons, so the backtest's
end-of-run line and the bot's cycle line say how many; they are never an error that stops the
bot. Predictions without the columns (a user's own) are of unknown structure: traded as before,
never a leg of a ladder arbitrage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import OTHER, STRUCTURE_COLUMNS, STRUCTURES
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import ContractPosition

PREDICTION_COLUMNS = ("ticker", "event_ticker", "as_of", "prob", "mid")
#: optional prediction columns, as in the markets table: the event's structure, what YES pays on
#: and the strikes (missing: unknown); every signal frame has them
_LABELS = ("structure", "strike_type")  # STRUCTURE_COLUMNS of strings (the others are floats)
OTHER_STRUCTURE = "event of structure other (scalar, custom or multivariate payoff): not traded"
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
    if "structure" in out.columns:
        unknown = set(out["structure"].dropna().unique().tolist()) - set(STRUCTURES)
        if unknown:
            raise DataError(
                f"predictions structure must be one of {STRUCTURES} or missing, got "
                f"{sorted(map(str, unknown))}"
            )
    return out


def _labels(values: pd.Series) -> np.ndarray:
    """A column of strings as an object array: as stored when it is one (missing: None or NaN,
    which compare unequal to any label), else with None for missing (pandas' string and
    categorical NA cannot be compared). The conversion costs a pass over the column, the
    stored array nothing: the backtest asks at every step."""
    if values.dtype == object:
        return values.to_numpy()
    return values.to_numpy(dtype=object, na_value=None)


def _other(predictions: pd.DataFrame) -> np.ndarray | None:
    """Per prediction, whether its event is of structure ``other``; None without the column."""
    if "structure" not in predictions.columns:
        return None
    return _labels(predictions["structure"]) == OTHER


def _utc(values: pd.Series) -> pd.Series:
    """A timestamp column in UTC; tz-aware columns are converted without pandas' parsing."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True)


def signal_tickers(
    predictions: pd.DataFrame, positions: Mapping[str, ContractPosition]
) -> list[str]:
    """The markets a step quotes: those predicted (first appearance), but for the markets of
    events of structure ``other``, which are not traded, and those held."""
    tickers = predictions["ticker"].to_numpy(dtype=object)
    other = _other(predictions)
    if other is not None and other.any():
        tickers = tickers[~other]
    predicted = list(dict.fromkeys(tickers.tolist()))
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
    them). Columns: the prediction's (``prob``, ``mid``, ``known_close`` when given, and
    STRUCTURE_COLUMNS), the quotes in dollars, ``yes_ask_size`` / ``no_ask_size`` (contracts
    displayed at that ask: the other side's best bid size) and ``taker_rate``. Prediction
    columns are missing (NaN, None) for a held market without a usable prediction. Signals left
    out (structure other, closed market, order being worked, duplicate) are counted in
    ``skipped``; a held market of structure other stays, as held without a prediction (its
    exits still apply); other held markets without a prediction are not counted.
    """
    predicted = predictions["ticker"].to_numpy(dtype=object)
    in_preds = set(predicted.tolist())
    take: np.ndarray | None = None  # the prediction rows used, when not all of them
    if len(in_preds) < len(predicted):  # rare: pandas only then
        take = ~predictions["ticker"].duplicated(keep="last").to_numpy()
        skipped[DUPLICATE] += int(np.count_nonzero(~take))
    other = _other(predictions)
    if other is not None and other.any():
        skipped[OTHER_STRUCTURE] += int(np.count_nonzero(other if take is None else other & take))
        take = ~other if take is None else take & ~other
        in_preds = set(predicted[take].tolist())
    if take is not None:
        predicted = predicted[take]
    held = [t for t in positions if t not in in_preds]
    tickers = np.concatenate([predicted, np.array(held, dtype=object)])
    if not np.array_equal(quotes.index.to_numpy(dtype=object), tickers):
        quotes = quotes.reindex(tickers)
    n_held = len(held)

    def used(values: np.ndarray) -> np.ndarray:
        """A prediction column's values on the rows used."""
        return values if take is None else values[take]

    def given(column: str, missing: object = np.nan) -> np.ndarray:
        """A prediction column on the rows used (labels if ``missing`` is None, else floats),
        then ``missing`` for each held market."""
        if missing is None:
            values = used(_labels(predictions[column]))
        else:
            values = used(predictions[column].to_numpy(dtype=float, na_value=np.nan))
        return np.concatenate([values, np.full(n_held, missing, dtype=values.dtype)])

    columns: dict[str, np.ndarray | pd.DatetimeIndex] = {
        "event_ticker": np.concatenate(
            [
                used(predictions["event_ticker"].to_numpy(dtype=object)),
                np.array([positions[t].event_ticker for t in held], dtype=object),
            ]
        ),
        "prob": given("prob"),
        "mid": given("mid"),
    }
    if "known_close" in predictions.columns:  # absent: a strategy that needs it says so
        known = used(predictions["known_close"].to_numpy("datetime64[ns]"))  # UTC
        columns["known_close"] = pd.DatetimeIndex(
            np.concatenate([known, np.full(n_held, np.datetime64("NaT", "ns"))]), tz="UTC"
        )
    for col in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
        columns[col] = quotes[col].to_numpy(dtype=float) / 100.0
    # buying YES takes the NO bids, buying NO the YES bids
    columns["yes_ask_size"] = quotes["no_bid_size"].to_numpy(dtype=float)
    columns["no_ask_size"] = quotes["yes_bid_size"].to_numpy(dtype=float)
    columns["taker_rate"] = quotes["taker_rate"].to_numpy(dtype=float)
    for col in STRUCTURE_COLUMNS:
        missing = None if col in _LABELS else np.nan
        if col in predictions.columns:
            columns[col] = given(col, missing)
        else:
            columns[col] = np.full(
                len(tickers), missing, dtype=object if missing is None else float
            )
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
