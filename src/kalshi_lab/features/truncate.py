"""The parquet tables as they stood at a time t: what a decision at t could have known.

One definition, shared by the features stage's look-ahead check of the user features
(:mod:`kalshi_lab.features.leak_check`) and by tests/test_leakage.py, which proves the built-in
features with it. At ``t``:

* **markets** listed after t (``open_time > t``) are removed. A market settled after t shows no
  ``result`` and no ``settlement_ts``. One that can close early and closed after t shows the
  close known in advance, its contract's ``latest_expiration_time``, as ``close_time`` (the
  recorded close is the early close, which happened after t). ``status``, ``last_price``,
  ``volume`` and ``open_interest`` describe the market when it was fetched, not at t: they are
  hidden (null) at every t. Each market's event ``structure`` is classified again from the
  markets listed by t (strikes listed later were unknown).
* **events** without a market listed by t are removed; **series** are kept as they are.
* **candles** ending after t (``end_period_ts > t``), **trades** made after t
  (``created_time > t``) and **orderbook** snapshots taken after t (``snapshot_ts > t``) are
  removed: a stamp at exactly t is known at t, as a feature row's candle ending at its as_of.

Known limit: the markets table does not record whether a market is a multivariate combo, so the
classification at t takes none to be (combos are ``other`` through their strikes, mostly).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import BRACKET, classify

#: per table, the column that stamps when a row became known; a row stamped after t is removed
STAMPS: dict[str, str] = {
    "candles": "end_period_ts",
    "trades": "created_time",
    "orderbook": "snapshot_ts",
}
#: markets columns observed when the markets were fetched, known at no earlier t
FETCH_TIME_COLUMNS: tuple[str, ...] = ("status", "last_price", "volume", "open_interest")


def markets_known_at(markets: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """The markets table at ``t`` (see the module docstring)."""
    markets = markets[markets["open_time"] <= t].copy()
    later = ~(markets["settlement_ts"] <= t)
    markets.loc[later, "result"] = None
    markets.loc[later, "settlement_ts"] = pd.NaT
    # an early close after t is not known at t: the close then known is the contract's bound
    moves = (
        (markets["close_time"] > t)
        & markets["can_close_early"].fillna(False).astype(bool)
        & markets["latest_expiration_time"].notna()
    )
    markets.loc[moves, "close_time"] = markets.loc[moves, "latest_expiration_time"]
    for column in FETCH_TIME_COLUMNS:
        if column in markets:
            markets[column] = None if markets[column].dtype == object else np.nan
    # The strikes decide the structure; the events' mutually_exclusive flag only chooses which
    # disagreements classify logs, which the parquet stage logged already: the structure of
    # all the data stands in for it, so that no cut-off logs them again.
    flags = {"multivariate": False, "mutually_exclusive": markets["structure"] == BRACKET}
    markets["structure"] = classify(markets.assign(**flags))
    return markets


class TablesAt(Mapping[str, pd.DataFrame]):
    """``tables`` (a mapping of the parquet tables by name) as known at ``t``.

    Lazy: a table is truncated when first read, then kept, so a user feature that never reads
    the order book never pays for it. Tables are whatever ``tables`` holds: a test may give
    only markets, candles and trades.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame], t: pd.Timestamp) -> None:
        self.tables = tables
        self.t = t
        self._known: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._known:
            self._known[name] = self._truncate(name)
        return self._known[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def _truncate(self, name: str) -> pd.DataFrame:
        frame = self.tables[name]
        if name == "markets":
            return markets_known_at(frame, self.t)
        if name == "events":
            listed = self["markets"]["event_ticker"]
            return frame[frame["event_ticker"].isin(listed)]
        if name in STAMPS:
            return frame[frame[STAMPS[name]] <= self.t]
        return frame
