"""``build_features``: the daily feature table of all markets, in one vectorised pass.

Time semantics: a row is a decision point at ``as_of``, the END of a daily candle (00:00 UTC
after the day). Every feature of the row uses only candles with ``end_period_ts <= as_of`` and
trades with ``created_time <= as_of``; targets look at later data and are never features.
Rows exist only while ``as_of < close_time``: a decision after the close cannot trade (and at
as_of the exchange knows whether the market is still open). The day that contains the close is
still on the grid, as the previous row's direction target.

``close_time`` is the ACTUAL close once a market closed: Kalshi moves it when a market that
``can_close_early`` closes early ("will X happen by D" closes when X happens, usually YES). A
feature must not measure time to that close, or every earlier row would reveal the early close;
``DAYS_TO_CLOSE`` uses the close known in advance instead (``_close_known_in_advance``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import ABOVE, BRACKET, LADDER, threshold
from kalshi_lab.errors import DataError
from kalshi_lab.features.candles import daily_candles
from kalshi_lab.features.columns import (
    CONTEXT_COLUMNS,
    KEY_COLUMNS,
    TARGET_COLUMNS,
    builtin_output_columns,
)
from kalshi_lab.features.event import EVENT_COLUMNS, event_features
from kalshi_lab.features.flow import daily_flow
from kalshi_lab.features.grouped import Groups, lag_into, rolling_std, select_rows
from kalshi_lab.features.panel import DAY_NS, utc_ns
from kalshi_lab.features.prices import daily_prices
from kalshi_lab.features.quotes import mid_quote, quote_features
from kalshi_lab.features.table import FloatBlock
from kalshi_lab.features.targets import direction_target, settlement_target
from kalshi_lab.params import FeatureParams

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "markets": (
        "ticker",
        "event_ticker",
        "series_ticker",
        "result",
        "open_time",
        "close_time",
        "settlement_ts",
        "can_close_early",
        "latest_expiration_time",
        "structure",
        "strike_type",
        "floor_strike",
        "cap_strike",
    ),
    "candles": (
        "ticker",
        "period_minutes",
        "end_period_ts",
        "price_mean",
        "yes_bid_close",
        "yes_ask_close",
        "open_interest",
    ),
    "trades": ("ticker", "created_time", "count", "yes_price", "no_price", "taker_side"),
}

#: output columns that are not float64 (keys, close_time, settlement_ts, structure,
#: strike_type): the first ones of ``builtin_output_columns``, every later column is float64
_LEADING = (*KEY_COLUMNS, *CONTEXT_COLUMNS[:4])


def _check_columns(name: str, frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise DataError(f"{name} table lacks columns {missing}")


def _sorted_markets(markets: pd.DataFrame) -> pd.DataFrame:
    """Markets sorted by ticker, so that the grid (grouped by market) is sorted by ticker."""
    markets = markets.assign(ticker=markets["ticker"].astype(str))
    dup = markets["ticker"].duplicated()
    if dup.any():
        raise DataError(f"markets has duplicate tickers, e.g. {markets['ticker'][dup].iloc[0]}")
    if markets["close_time"].isna().any():
        raise DataError("markets has null close_time; every Kalshi market has a scheduled close")
    return markets.sort_values("ticker", kind="stable").reset_index(drop=True)


def _close_known_in_advance(markets: pd.DataFrame) -> np.ndarray:
    """Per market, in ns, the close a decision before the actual close could know of.

    A market that cannot close early closes at its ``close_time``. One that can is bounded by
    its contract's ``latest_expiration_time``, which an early close does not move, whereas its
    ``close_time`` becomes the early close itself. Older records lack the latest expiration:
    those markets fall back to ``close_time``, and a WARNING counts them, since their early
    close (if any) leaks into ``DAYS_TO_CLOSE``.
    """
    close = utc_ns(markets["close_time"], "markets.close_time")
    early = markets["can_close_early"].to_numpy(dtype=bool, na_value=False)
    latest = markets["latest_expiration_time"]
    missing = early & latest.isna().to_numpy()
    if missing.any():
        log.warning(
            "features: %d of %d markets that can close early lack latest_expiration_time; "
            "their DAYS_TO_CLOSE counts to close_time, so an early close could leak, e.g. %s",
            int(missing.sum()),
            int(early.sum()),
            markets["ticker"][missing].iloc[0],
        )
    latest_ns = pd.DatetimeIndex(latest).as_unit("ns").asi8  # NaT: only where not used
    return np.where(early & ~missing, latest_ns, close)


def _event_ids(markets: pd.DataFrame) -> np.ndarray:
    """Integer event id per market; a market without event_ticker is an event of its own."""
    codes, uniques = pd.factorize(markets["event_ticker"])
    return np.where(codes >= 0, codes, len(uniques) + np.arange(len(codes)))


def _in_days(ts: pd.Series) -> np.ndarray:
    """Timestamps as float days since the epoch (the unit of the panel's day numbers); NaT -> NaN."""
    ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
    return np.where(ts.isna().to_numpy(), np.nan, ns / DAY_NS)


def build_features(
    markets: pd.DataFrame, candles: pd.DataFrame, trades: pd.DataFrame, params: FeatureParams
) -> pd.DataFrame:
    """One row per (ticker, UTC day) while the market is open, sorted by ticker then as_of.

    Inputs have the columns of ``tables.MARKETS``, ``tables.CANDLES`` and ``tables.TRADES``
    (trades already de-duplicated); only daily candles are used. Columns are
    ``builtin_output_columns(params)``: keys, context, ``TARGET_COLUMNS`` and the built-in
    features; the user's (``features.extra``) are added by :func:`add_user_features`.
    """
    for name, frame in (("markets", markets), ("candles", candles), ("trades", trades)):
        _check_columns(name, frame)
    markets = _sorted_markets(markets)
    tickers = pd.Index(markets["ticker"])

    # Daily series on the full grid, including the days from the close on.
    panel, candle = daily_candles(candles, tickers)
    flow = daily_flow(trades, tickers, panel)
    prices = daily_prices(candle.price_mean, panel.groups, params.min_price)
    close = utc_ns(markets["close_time"], "markets.close_time")
    # A decision at as_of can still trade, and the next day starts (at as_of) before the close.
    before_close = panel.day * DAY_NS < close[panel.market]
    direction = direction_target(prices.ret, prices.traded, before_close, panel.groups)

    # Rows kept: a prefix of each market's rows, so lags of a kept row are kept rows too and
    # backward-looking features can be computed on the kept rows alone.
    keep = np.flatnonzero(before_close)
    m = panel.market[keep]
    rows_per_market = np.bincount(m, minlength=len(markets))
    groups = Groups.from_sizes(rows_per_market)
    candle, flow, prices = (select_rows(x, keep) for x in (candle, flow, prices))
    mid = mid_quote(candle)

    floats = FloatBlock(builtin_output_columns(params)[len(_LEADING) :], len(keep))
    for k in range(1, params.n_lags + 1):
        lag_into(floats.column(f"RET_{k}"), prices.ret, k - 1, groups)
        lag_into(floats.column(f"VOLUME_{k}"), flow.yes_value, k - 1, groups)
    floats.update(
        {
            "price": prices.price,
            "yes_bid": candle.yes_bid,
            "yes_ask": candle.yes_ask,
            "mid": mid,
            "market_prob": mid,
            TARGET_COLUMNS["settlement"]: settlement_target(markets["result"])[m],
            TARGET_COLUMNS["direction"]: direction[keep],
            "NO_TRADE": ~prices.traded,
            "DAYS_SINCE_TRADE": prices.days_since_trade,
            "N_TRADES": flow.n_trades,
            "NO_VOLUME": flow.no_value,
        }
    )
    # TS is the market's age, not the calendar: a tree split on a date would memorise one
    # period's outcomes; age and time to close describe the life cycle every market shares.
    day = panel.day[keep]
    floats.update({"TS": day - _in_days(markets["open_time"])[m]})
    floats.update({"DAYS_TO_CLOSE": (_close_known_in_advance(markets) / DAY_NS)[m] - day})
    floats.update({"FLOW_IMBALANCE": flow.imbalance})
    floats.update({"VOLATILITY": rolling_std(prices.ret, params.volatility_window, groups)})
    floats.update(quote_features(candle, mid, groups, params.min_price))
    kind = markets["strike_type"].to_numpy(dtype=object)
    floor = markets["floor_strike"].to_numpy(dtype=float)
    cap = markets["cap_strike"].to_numpy(dtype=float)
    structure = markets["structure"].to_numpy(dtype=object)
    event_features(
        _event_ids(markets)[m],
        day,
        (structure == BRACKET)[m],
        (structure == LADDER)[m],
        threshold(kind, floor, cap)[m],
        np.isin(kind, ABOVE)[m],
        candle.yes_bid,
        candle.yes_ask,
        {name: floats.column(name) for name in EVENT_COLUMNS},
    )
    floats.update({"floor_strike": floor[m], "cap_strike": cap[m]})

    out = floats.to_frame(
        {
            "ticker": tickers.to_numpy()[m],
            "event_ticker": markets["event_ticker"].to_numpy()[m],
            "series_ticker": markets["series_ticker"].to_numpy()[m],
            "as_of": pd.DatetimeIndex((day * DAY_NS).view("datetime64[ns]")).tz_localize("UTC"),
            "close_time": markets["close_time"].array.take(m),
            "settlement_ts": markets["settlement_ts"].array.take(m),
            "structure": markets["structure"].to_numpy(dtype=object)[m],
            "strike_type": markets["strike_type"].to_numpy(dtype=object)[m],
        }
    )
    log.info(
        "features: %d rows of %d markets (%d grid days, %d from the close on dropped), %d columns",
        len(out),
        np.count_nonzero(rows_per_market),
        panel.n_rows,
        panel.n_rows - len(keep),
        out.shape[1],
    )
    no_rows = rows_per_market == 0
    if no_rows.any():
        log.info(
            "features: %d of %d markets have no row: %d without a daily candle, %d whose daily "
            "candles all end at or after the close",
            int(no_rows.sum()),
            len(markets),
            int((no_rows & (panel.n_days == 0)).sum()),
            int((no_rows & (panel.n_days > 0)).sum()),
        )
    return out
