"""When an event resolves, and on which data release: the units of the periods and bootstrap.

Rows of one event share one outcome, so the split assigns whole events to scored periods
(:mod:`kalshi_lab.split`) by when they resolve, and the intervals resample whole releases
(:mod:`kalshi_lab.evaluation.bootstrap`, :mod:`kalshi_lab.backtest.uncertainty`).

* **Resolution.** An event resolves at its last settlement (the latest ``settlement_ts`` of its
  strikes) once every strike has settled: that is when all its labels are known. An event with
  an unsettled strike resolves, as far as anyone knows, at the latest close known in advance
  (``as_of + DAYS_TO_CLOSE``: the scheduled close, or ``latest_expiration_time`` for a market
  that can close early, which an early close does not move). Never before its last decision:
  a settlement stamped before a row's ``as_of`` would be bad data, and the event would
  otherwise be scored in a period before its own rows.
* **Release.** Events of one *series family* that close on one UTC date resolve on one data
  print (a CPI release, a jobs report): their outcomes move together, so they are one
  resampling unit. The family is the series ticker without a leading ``KX`` (Kalshi relisted
  its series with the prefix, so ``U3`` and ``KXU3`` are one family); an event's close date is
  the UTC date of the latest ``close_time`` of its markets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: the columns :func:`release_clusters` reads
RELEASE_COLUMNS: tuple[str, ...] = ("event_ticker", "series_ticker", "close_time")
#: the prefix Kalshi added to relisted series tickers (U3 -> KXU3)
RELISTED_PREFIX = "KX"


def event_resolution(rows: pd.DataFrame) -> pd.Series:
    """Per row of ``rows`` (event_ticker, as_of, settlement_ts, DAYS_TO_CLOSE), the time its
    event resolves (module docstring); ``rows`` must hold every row of each event."""
    events = rows["event_ticker"]
    by_event = rows.groupby(events, sort=False, observed=True)
    settled = by_event["settlement_ts"].transform("max").astype(rows["as_of"].dtype)
    unsettled = rows["settlement_ts"].isna().groupby(events, observed=True).transform("any")
    known_close = rows["as_of"] + pd.to_timedelta(rows["DAYS_TO_CLOSE"], unit="D")
    scheduled = known_close.groupby(events, sort=False, observed=True).transform("max")
    resolves = scheduled.where(unsettled.astype(bool), settled)
    last_decision = by_event["as_of"].transform("max")
    return resolves.where(resolves >= last_decision, last_decision)


def series_family(series_ticker: pd.Series) -> pd.Series:
    """The series ticker without a leading ``KX``: one family across Kalshi's relisting."""
    return series_ticker.astype(str).str.removeprefix(RELISTED_PREFIX)


def release_clusters(rows: pd.DataFrame) -> np.ndarray:
    """Per row of ``rows`` (event_ticker, series_ticker, close_time), its event's release:
    ``"<family> <UTC close date>"`` (module docstring).

    Each label is written once per distinct (series, close time) and taken per row: formatting
    the date of every row was most of the evaluate stage at 10k markets.
    """
    close = rows.groupby("event_ticker", sort=False, observed=True)["close_time"].transform("max")
    close_code, closes = pd.factorize(close, use_na_sentinel=False)
    series_code, series = pd.factorize(rows["series_ticker"], use_na_sentinel=False)
    n_closes = max(len(closes), 1)
    pair_code, pairs = pd.factorize(series_code.astype(np.int64) * n_closes + close_code)
    day = pd.to_datetime(pd.Series(closes[pairs % n_closes]), utc=True).dt.strftime("%Y-%m-%d")
    family = series_family(pd.Series(series[pairs // n_closes]))
    return (family + " " + day).to_numpy(dtype=object)[pair_code]
