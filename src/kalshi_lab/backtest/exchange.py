"""The market: quotes, depth, fees and trading hours, replayed from recorded orderbooks.

The ORDERBOOK table holds bids only (API.md section 2): a NO bid at x is a YES offer at 1 - x, so
YES asks are derived from NO bids and NO asks from YES bids. Every query at time ``ts`` reads the
latest snapshot with ``snapshot_ts <= ts`` (never a later one): an order decided at as_of is filled
against the book that was visible at as_of.

Fills are taker fills at the displayed prices (buy at the ask, sell at the bid, never at the
mid), walking levels from the best toward the order's limit. At most ``max_fill_share`` of a
level's displayed size can be taken per snapshot, by all orders together: depth one order took is
gone for the next order against the same snapshot; the next snapshot shows a fresh book. Prices
are integer cents at this boundary (the data's markets are ``linear_cent``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from kalshi_lab.backtest.decision import Fill, Order
from kalshi_lab.backtest.fees import FeeSchedule, quadratic_units
from kalshi_lab.errors import DataError

logger = logging.getLogger(__name__)

_NEVER = np.iinfo(np.int64).max  # close_time of a market without one
_UNKNOWN = np.iinfo(np.int64).min  # close_time of a market missing from the markets table
_EPS = 1e-9  # slack for float sizes such as 0.3 * 10 = 2.9999999999999996


def _ns(ts: pd.Timestamp) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamps must be tz-aware (UTC), got {ts!r}")
    return int(ts.as_unit("ns").value)


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a UTC timestamp column; NaT becomes _NEVER."""
    ts = pd.to_datetime(values, utc=True).dt.tz_convert(None).dt.as_unit("ns")
    return np.where(ts.isna().to_numpy(), _NEVER, ts.to_numpy().astype(np.int64))


class Exchange(Protocol):
    """What strategies and executors may ask of a market venue."""

    def quotes(self, tickers: list[str], ts: pd.Timestamp) -> pd.DataFrame: ...

    def execute(self, order: Order, ts: pd.Timestamp) -> Fill | None: ...

    def snapshot_times(self, ticker: str, start: pd.Timestamp, n: int) -> list[pd.Timestamp]: ...

    def is_open(self, ticker: str, ts: pd.Timestamp) -> bool: ...


@dataclass(frozen=True)
class _Snapshots:
    """All snapshots of one market; rows of snapshot k are ``starts[k]:starts[k + 1]``."""

    times: np.ndarray  # int64 ns, ascending, unique
    starts: np.ndarray  # row offsets, len(times) + 1
    is_yes: np.ndarray  # per row: a YES bid (else a NO bid)
    price: np.ndarray  # per row: int cents, ascending within a side
    size: np.ndarray  # per row: displayed contracts (float)

    def index_at(self, ts_ns: int) -> int | None:
        """Index of the latest snapshot at or before ``ts_ns``."""
        k = int(np.searchsorted(self.times, ts_ns, side="right")) - 1
        return k if k >= 0 else None

    def bids(self, k: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Bids of one side at snapshot k, ascending: the best bid is the LAST element."""
        rows = slice(self.starts[k], self.starts[k + 1])
        mask = self.is_yes[rows] if side == "yes" else ~self.is_yes[rows]
        return self.price[rows][mask], self.size[rows][mask]


class SimulatedExchange:
    """Replays the ORDERBOOK table (bids only) with MARKETS' trading hours and SERIES' fees."""

    def __init__(
        self,
        orderbook: pd.DataFrame,
        markets: pd.DataFrame,
        series: pd.DataFrame,
        taker_fee_rate: float,
        max_fill_share: float,
    ) -> None:
        if not 0.0 < max_fill_share <= 1.0:
            raise ValueError(f"max_fill_share must be in (0, 1], got {max_fill_share}")
        self.max_fill_share = max_fill_share
        book = _prepare_orderbook(orderbook)
        self._snapshots = _split_by_ticker(book)
        self._top = _top_of_book(book)
        self._close_ns = dict(zip(markets["ticker"], _utc_ns(markets["close_time"]), strict=True))
        schedules = {
            row.series_ticker: FeeSchedule.for_series(
                row.fee_type, float(row.fee_multiplier), taker_fee_rate
            )
            for row in series.itertuples(index=False)
        }
        unknown = sorted(set(markets["series_ticker"]) - set(schedules))
        if unknown:
            raise DataError(
                f"markets of series {unknown[:5]} have no fee settings in the series table"
            )
        self._fees = {
            t: schedules[s]
            for t, s in zip(markets["ticker"], markets["series_ticker"], strict=True)
        }
        # (ticker, snapshot index, bid side, bid cents) -> contracts taken at that level
        self._consumed: dict[tuple[str, int, str, int], int] = {}
        logger.info("exchange: %d markets with %d snapshots", len(self._snapshots), len(self._top))

    # --- market rules -------------------------------------------------------------------------

    def is_open(self, ticker: str, ts: pd.Timestamp) -> bool:
        """True before the market's close_time; no trading at or after it."""
        if ticker not in self._close_ns:
            raise DataError(f"market {ticker} is not in the markets table")
        return _ns(ts) < self._close_ns[ticker]

    def fee_schedule(self, ticker: str) -> FeeSchedule:
        """The fee rates of the market's series."""
        if ticker not in self._fees:
            raise DataError(f"market {ticker} has no series in the series table")
        return self._fees[ticker]

    # --- prices -------------------------------------------------------------------------------

    def quotes(self, tickers: list[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Top of book of many markets at ``ts``, vectorised (one as-of join).

        Indexed by ticker in the given order; cents as floats with NaN for a missing side:
        yes_bid, no_bid, yes_ask, no_ask, the bids' sizes, snapshot_ts (NaT without a snapshot),
        is_open, and taker_rate (the series' rate x multiplier, NaN without a series).
        """
        left = pd.DataFrame({"ticker": pd.Series(tickers, dtype=object)})
        left["ts"] = pd.Timestamp(_ns(ts), tz="UTC")
        out = pd.merge_asof(
            left,
            self._top[self._top["ticker"].isin(left["ticker"])],
            left_on="ts",
            right_on="snapshot_ts",
            by="ticker",
            direction="backward",
        ).set_index("ticker")
        out["yes_ask"] = 100.0 - out["no_bid"]
        out["no_ask"] = 100.0 - out["yes_bid"]
        # a market missing from the markets table is never open
        close = np.array([self._close_ns.get(t, _UNKNOWN) for t in out.index], dtype=np.int64)
        out["is_open"] = _ns(ts) < close
        out["taker_rate"] = [
            self._fees[t].taker_rate_float if t in self._fees else np.nan for t in out.index
        ]
        return out.drop(columns="ts")

    def snapshot_times(self, ticker: str, start: pd.Timestamp, n: int) -> list[pd.Timestamp]:
        """The first ``n`` snapshot times at or after ``start`` and before the close."""
        snaps = self._snapshots.get(ticker)
        if snaps is None:
            return []
        first = int(np.searchsorted(snaps.times, _ns(start), side="left"))
        close = self._close_ns.get(ticker, _NEVER)
        times = snaps.times[first : first + n]
        return [pd.Timestamp(t, tz="UTC") for t in times[times < close]]

    # --- execution ----------------------------------------------------------------------------

    def execute(self, order: Order, ts: pd.Timestamp) -> Fill | None:
        """Fill what the book at ``ts`` allows of ``order.remaining``, immediate-or-cancel.

        Buying YES takes YES asks, i.e. NO bids from the best (last) one down, paying
        100 - bid; buying NO takes YES bids likewise; selling YES or NO hits that side's bids.
        Stops at the limit, at the order's remaining budget (cost + fee) and at the depth left
        at this snapshot. Returns None when nothing fills.
        """
        if not self.is_open(order.ticker, ts):
            logger.debug("%s: market closed at %s", order.ticker, ts)
            return None
        snaps = self._snapshots.get(order.ticker)
        k = None if snaps is None else snaps.index_at(_ns(ts))
        if k is None:
            logger.debug("%s: no snapshot at or before %s", order.ticker, ts)
            return None
        buy = order.action == "buy"
        book_side = ("no" if order.side == "yes" else "yes") if buy else order.side
        bid_prices, sizes = snaps.bids(k, book_side)
        fees = self.fee_schedule(order.ticker)
        budget = order.remaining_budget_cents
        count = cost = units = 0
        for bid, size in zip(bid_prices[::-1], sizes[::-1], strict=True):
            price = 100 - int(bid) if buy else int(bid)
            if (buy and price > order.limit_cents) or (not buy and price < order.limit_cents):
                break
            key = (order.ticker, k, book_side, int(bid))
            available = math.floor(self.max_fill_share * size + _EPS) - self._consumed.get(key, 0)
            n = min(available, order.remaining - count)
            if budget is not None:
                n = _affordable(n, price, cost, units, budget, fees)
            if n > 0:
                self._consumed[key] = self._consumed.get(key, 0) + n
                count += n
                cost += n * price
                units += quadratic_units(n, price)
            if count == order.remaining or (budget is not None and n < available):
                break
        if count == 0:
            return None
        return Fill(
            ts=ts,
            snapshot_ts=pd.Timestamp(snaps.times[k], tz="UTC"),
            ticker=order.ticker,
            side=order.side,
            action=order.action,
            count=count,
            cost_cents=cost,
            fee_cents=fees.taker_fee_cents(units),
        )


def _affordable(n: int, price: int, cost: int, units: int, budget: int, fees: FeeSchedule) -> int:
    """Largest m <= n such that the fill so far plus m more at ``price`` costs <= budget."""

    def total(m: int) -> int:
        return cost + m * price + fees.taker_fee_cents(units + quadratic_units(m, price))

    lo, hi = 0, max(n, 0)
    while lo < hi:  # total() grows with m: binary search for the last affordable m
        mid = (lo + hi + 1) // 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _prepare_orderbook(orderbook: pd.DataFrame) -> pd.DataFrame:
    """One row per price level in integer cents, by ticker, snapshot, side and ascending price.

    Rows repeating a level are summed, so a level's depth is consumed in one place.
    """
    missing = {"ticker", "snapshot_ts", "side", "price", "count"} - set(orderbook.columns)
    if missing:
        raise DataError(f"orderbook table lacks columns {sorted(missing)}")
    if not orderbook["side"].isin(["yes", "no"]).all():
        raise DataError("orderbook side must be yes or no")
    cents = orderbook["price"].to_numpy(dtype=float) * 100.0
    rounded = np.rint(cents)
    off_grid = np.abs(cents - rounded) > 1e-6
    if off_grid.any():
        tickers = sorted(orderbook.loc[off_grid, "ticker"].unique())[:5]
        raise DataError(f"orderbook prices off the one-cent grid (subpenny markets): {tickers}")
    book = pd.DataFrame(
        {
            "ticker": orderbook["ticker"].astype(str).to_numpy(dtype=object),
            "snapshot_ts": pd.to_datetime(orderbook["snapshot_ts"], utc=True).dt.as_unit("ns"),
            "ts_ns": _utc_ns(orderbook["snapshot_ts"]),
            "is_yes": (orderbook["side"] == "yes").to_numpy(),
            "price": rounded.astype(np.int64),
            "size": orderbook["count"].to_numpy(dtype=float),
        }
    )
    book = book[(book["size"] > 0) & book["price"].between(1, 99)]
    keys = ["ticker", "snapshot_ts", "ts_ns", "is_yes", "price"]
    return book.groupby(keys, as_index=False, sort=True)["size"].sum()


def _split_by_ticker(book: pd.DataFrame) -> dict[str, _Snapshots]:
    out = {}
    for ticker, rows in book.groupby("ticker", sort=False):
        ts = rows["ts_ns"].to_numpy()
        times, first = np.unique(ts, return_index=True)
        out[ticker] = _Snapshots(
            times=times,
            starts=np.append(first, len(ts)),
            is_yes=rows["is_yes"].to_numpy(),
            price=rows["price"].to_numpy(),
            size=rows["size"].to_numpy(),
        )
    return out


def _top_of_book(book: pd.DataFrame) -> pd.DataFrame:
    """Best bid and its size per (ticker, snapshot, side), one row per snapshot, by time."""
    best = (
        book.drop(columns="ts_ns").groupby(["ticker", "snapshot_ts", "is_yes"], sort=False).last()
    )
    wide = best.unstack("is_yes")
    top = pd.DataFrame(index=wide.index)
    for is_yes, name in ((True, "yes"), (False, "no")):
        has = is_yes in wide.columns.get_level_values(1)
        top[f"{name}_bid"] = wide[("price", is_yes)].astype(float) if has else np.nan
        top[f"{name}_bid_size"] = wide[("size", is_yes)] if has else np.nan
    return top.reset_index().sort_values("snapshot_ts", kind="stable").reset_index(drop=True)
