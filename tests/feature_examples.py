"""User features for the tests of ``features.extra``: honest ones, leaky ones and broken ones.

Each is ``f(tables, rows, **kwargs) -> DataFrame``, as a user writes it in a file at the
repository root (the stage tests copy this file into their working directory).
"""

import numpy as np
import pandas as pd

#: daily candles, the ones the built-in features read
DAILY = 1440


def days_open(tables, rows):
    """Honest: days from the market's open to as_of."""
    opened = rows["ticker"].map(tables["markets"].set_index("ticker")["open_time"])
    days = (rows["as_of"] - opened).dt.total_seconds() / 86400
    return pd.DataFrame({"DAYS_OPEN": days}, index=rows.index)


def _daily_mids(candles: pd.DataFrame) -> pd.DataFrame:
    """Per market and as_of, the mid quote at the close of the daily candle ending then."""
    daily = candles[candles["period_minutes"] == DAILY]
    return pd.DataFrame(
        {
            "ticker": daily["ticker"].to_numpy(),
            "as_of": daily["end_period_ts"].astype("datetime64[ns, UTC]").to_numpy(),
            "mid": ((daily["yes_bid_close"] + daily["yes_ask_close"]) / 2).to_numpy(),
        }
    ).sort_values(["ticker", "as_of"])


def _on_rows(rows: pd.DataFrame, per_day: pd.DataFrame, column: str) -> pd.DataFrame:
    """``per_day[column]`` of each row's market and as_of (NaN without a candle that day)."""
    merged = rows[["ticker", "as_of"]].merge(per_day, on=["ticker", "as_of"], how="left")
    return pd.DataFrame({column: merged[column].to_numpy()}, index=rows.index)


def mean_mid(tables, rows, days=5):
    """Honest: the mean of the last ``days`` daily closing mids up to as_of."""
    mids = _daily_mids(tables["candles"])
    rolling = mids.groupby("ticker")["mid"].rolling(days, min_periods=1).mean()
    mids["MEAN_MID"] = rolling.reset_index(level=0, drop=True)
    return _on_rows(rows, mids, "MEAN_MID")


def trades_so_far(tables, rows):
    """Honest: how many trades the market had up to as_of (reads every trade since it opened)."""
    trades = tables["trades"]
    # a trade belongs to the first as_of (00:00 UTC) at or after it
    day = trades["created_time"].dt.ceil("D").astype("datetime64[ns, UTC]")
    per_day = trades.groupby([trades["ticker"], day]).size().rename("n").reset_index()
    per_day["TRADES_SO_FAR"] = per_day.groupby("ticker")["n"].cumsum().astype(float)
    per_day = per_day.rename(columns={"created_time": "as_of"}).sort_values("as_of")
    keys = rows[["ticker", "as_of"]].reset_index().sort_values("as_of")
    merged = pd.merge_asof(keys, per_day, on="as_of", by="ticker").set_index("index")
    return pd.DataFrame({"TRADES_SO_FAR": merged["TRADES_SO_FAR"].fillna(0.0)}, index=rows.index)


def outcome_noise(tables, rows, sd=2.0, seed=0):
    """Leaky: the market's outcome (markets.result) plus normal noise of sd ``sd``."""
    result = rows["ticker"].map(tables["markets"].set_index("ticker")["result"])
    outcome = (result == "yes").astype(float).where(result.isin(["yes", "no"]))
    noise = np.random.default_rng(seed).normal(0.0, sd, len(rows))
    return pd.DataFrame({"OUTCOME_NOISE": outcome.to_numpy() + noise}, index=rows.index)


def next_mid(tables, rows):
    """Leaky, subtly: the NEXT day's closing mid (a shift the wrong way)."""
    mids = _daily_mids(tables["candles"])
    mids["NEXT_MID"] = mids.groupby("ticker")["mid"].shift(-1)
    return _on_rows(rows, mids, "NEXT_MID")


def book_depth(tables, rows):
    """Honest, but reads the order book: resting YES contracts in the last snapshot by as_of."""
    book = tables["orderbook"]
    yes = book[book["side"] == "yes"].groupby(["ticker", "snapshot_ts"])["count"].sum()
    last = yes.reset_index().sort_values("snapshot_ts")
    last["as_of"] = last["snapshot_ts"].dt.ceil("D").astype("datetime64[ns, UTC]")
    per_day = last.groupby(["ticker", "as_of"])["count"].last().rename("BOOK_DEPTH").reset_index()
    return _on_rows(rows, per_day, "BOOK_DEPTH")


# --- broken: each one a one-line error -----------------------------------------------------


def too_short(tables, rows):
    return pd.DataFrame({"X": np.zeros(len(rows) - 1)})


def other_index(tables, rows):
    return pd.DataFrame({"X": np.zeros(len(rows))}, index=rows.index + 1)


def text(tables, rows):
    return pd.DataFrame({"X": "a"}, index=rows.index)


def infinite(tables, rows):
    return pd.DataFrame({"X": np.full(len(rows), np.inf)}, index=rows.index)


def a_series(tables, rows):
    return pd.Series(np.zeros(len(rows)), index=rows.index, name="X")


NOT_CALLABLE = 3
