"""The straightforward quote lookups the QuoteIndex replaced: the oracle of its tests and the
baseline of the benchmarks (the same answers, the obvious way: a pandas groupby per market at
build time, a ``merge_asof`` per call, Python objects per level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.execution.quotes import _EPS, QuoteIndex, cents_on_grid, ns, utc_ns

_NO_TIMES = np.empty(0, dtype=np.int64)
_QUOTE_COLUMNS = ["quote_ts", "source", "yes_bid", "no_bid", "yes_bid_size", "no_bid_size"]
Level = tuple[int, tuple[object, ...], int]


def _index_at(times: np.ndarray, ts_ns: int) -> int | None:
    """Index of the latest of the ascending ``times`` at or before ``ts_ns``, None if none."""
    k = int(np.searchsorted(times, ts_ns, side="right")) - 1
    return k if k >= 0 else None


class ReferenceQuotes:
    """QuoteIndex's interface (top, levels, times), the slow and obvious way."""

    def __init__(
        self,
        orderbook: pd.DataFrame,
        candles: pd.DataFrame,
        max_fill_share: float,
        max_volume_share: float,
        max_quote_age_hours: float | None = None,
    ) -> None:
        if not 0.0 < max_fill_share <= 1.0:
            raise ValueError(f"max_fill_share must be in (0, 1], got {max_fill_share}")
        if not 0.0 < max_volume_share <= 1.0:
            raise ValueError(f"max_volume_share must be in (0, 1], got {max_volume_share}")
        if max_quote_age_hours is not None and not max_quote_age_hours > 0:
            raise ValueError(f"max_quote_age_hours must be > 0, got {max_quote_age_hours}")
        self.max_fill_share = max_fill_share
        self.max_quote_age_hours = max_quote_age_hours
        book = _prepare_orderbook(orderbook)
        self._snapshots = _split_by_ticker(book)
        self._top = _top_of_book(book)
        candle_quotes = _prepare_candles(candles, max_volume_share)
        self._candles = _split_candles(candle_quotes)
        self._candle_top = _candle_top(candle_quotes)
        self._names = sorted({*self._snapshots, *self._candles})
        self._code = {t: c for c, t in enumerate(self._names)}

    @property
    def n_book_markets(self) -> int:
        return len(self._snapshots)

    @property
    def n_snapshots(self) -> int:
        return len(self._top)

    @property
    def n_candle_markets(self) -> int:
        return len(self._candles)

    @property
    def n_candles(self) -> int:
        return len(self._candle_top)

    def _too_old(self, quote_ns: int, ts_ns: int) -> bool:
        """A quote at ``quote_ns`` is older than max_quote_age_hours at ``ts_ns``."""
        age = self.max_quote_age_hours
        return age is not None and pd.Timedelta(ts_ns - quote_ns) > pd.Timedelta(hours=age)

    def top(self, tickers: list[str], ts: pd.Timestamp) -> pd.DataFrame:
        """As QuoteIndex.top: one merge_asof per source, the fresher kept (the book at a tie),
        then the quotes too old dropped."""
        left = pd.DataFrame({"ticker": pd.Series(tickers, dtype=object)})
        left["ts"] = pd.Timestamp(ns(ts), tz="UTC")
        out = _as_of(left, self._top)
        candle = _as_of(left, self._candle_top)
        use = candle["quote_ts"].notna() & (
            out["quote_ts"].isna() | (candle["quote_ts"] > out["quote_ts"])
        )
        for col in _QUOTE_COLUMNS:
            out[col] = out[col].where(~use, candle[col])
        too_old = [pd.notna(q) and self._too_old(q.value, ns(ts)) for q in out["quote_ts"].tolist()]
        for col in _QUOTE_COLUMNS:
            out[col] = out[col].mask(pd.Series(too_old, index=out.index, dtype=bool))
        out = out.set_index("ticker")
        out["yes_ask"] = 100.0 - out["no_bid"]
        out["no_ask"] = 100.0 - out["yes_bid"]
        return out.drop(columns="ts")

    def codes(self, tickers: Sequence[str]) -> np.ndarray:
        """As QuoteIndex.codes: a code per ticker known to a book or candle, else -1."""
        return np.array([self._code.get(t, -1) for t in tickers], dtype=np.int64)

    def top_columns(self, codes: np.ndarray, ts: pd.Timestamp) -> dict[str, object]:
        """As QuoteIndex.top_columns: the columns of :meth:`top` as arrays."""
        tickers = [self._names[c] if c >= 0 else None for c in codes.tolist()]
        top = self.top(tickers, ts)
        return {column: top[column].array for column in top.columns}

    frame = staticmethod(QuoteIndex.frame)

    def times(self, ticker: str) -> np.ndarray:
        """As QuoteIndex.times: every candle end and snapshot time, sorted, each once."""
        snaps, candles = self._snapshots.get(ticker), self._candles.get(ticker)
        book_times = _NO_TIMES if snaps is None else snaps.times
        candle_times = _NO_TIMES if candles is None else candles.times
        return np.array(sorted({*book_times.tolist(), *candle_times.tolist()}), dtype=np.int64)

    def levels(
        self, ticker: str, ts_ns: int, book_side: str
    ) -> tuple[str, int, list[Level]] | None:
        """Source, quote time and bid levels (best first) of one side at ``ts_ns``, or None.

        The fresher of the latest snapshot and the latest candle ended at or before ``ts_ns``
        (the snapshot at a tie); None without either or when it is older than
        max_quote_age_hours.
        """
        snaps, candles = self._snapshots.get(ticker), self._candles.get(ticker)
        k = None if snaps is None else _index_at(snaps.times, ts_ns)
        j = None if candles is None else _index_at(candles.times, ts_ns)
        book_ns = None if k is None else int(snaps.times[k])
        candle_ns = None if j is None else int(candles.times[j])
        if book_ns is not None and (candle_ns is None or book_ns >= candle_ns):
            if self._too_old(book_ns, ts_ns):
                return None
            prices, sizes = snaps.bids(k, book_side)
            levels = [
                (
                    int(bid),
                    (ticker, "book", k, book_side, int(bid)),
                    math.floor(self.max_fill_share * size + _EPS),
                )
                for bid, size in zip(prices[::-1], sizes[::-1], strict=True)
            ]
            return "book", book_ns, levels
        if candle_ns is None or self._too_old(candle_ns, ts_ns):
            return None
        bid = candles.bid(j, book_side)
        levels = [(bid, (ticker, "candle", j), int(candles.cap[j]))] if bid > 0 else []
        return "candle", candle_ns, levels


@dataclass(frozen=True)
class _Snapshots:
    """All snapshots of one market; rows of snapshot k are ``starts[k]:starts[k + 1]``."""

    times: np.ndarray  # int64 ns, ascending, unique
    starts: np.ndarray  # row offsets, len(times) + 1
    is_yes: np.ndarray  # per row: a YES bid (else a NO bid)
    price: np.ndarray  # per row: int cents, ascending within a side
    size: np.ndarray  # per row: displayed contracts (float)

    def bids(self, k: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Bids of one side at snapshot k, ascending: the best bid is the LAST element."""
        rows = slice(self.starts[k], self.starts[k + 1])
        mask = self.is_yes[rows] if side == "yes" else ~self.is_yes[rows]
        return self.price[rows][mask], self.size[rows][mask]


@dataclass(frozen=True)
class _Candles:
    """The quoting candles of one market, one per end time (see _prepare_candles)."""

    times: np.ndarray  # int64 ns of end_period_ts, ascending, unique
    yes_bid: np.ndarray  # int cents, 0 without a bid
    no_bid: np.ndarray  # int cents (100 - YES ask), 0 without a YES ask
    cap: np.ndarray  # int contracts all orders together may fill against the candle

    def bid(self, k: int, side: str) -> int:
        """The bid of one side at candle k, 0 without one."""
        return int(self.yes_bid[k] if side == "yes" else self.no_bid[k])


def _as_of(left: pd.DataFrame, quotes: pd.DataFrame) -> pd.DataFrame:
    """Per row of ``left`` (ticker, ts), the latest row of ``quotes`` with quote_ts <= ts."""
    return pd.merge_asof(
        left,
        quotes[quotes["ticker"].isin(left["ticker"])],
        left_on="ts",
        right_on="quote_ts",
        by="ticker",
        direction="backward",
    )


def _prepare_orderbook(orderbook: pd.DataFrame) -> pd.DataFrame:
    """One row per price level in integer cents, by ticker, snapshot, side and ascending price.

    Rows repeating a level are summed, so a level's depth is consumed in one place.
    """
    missing = {"ticker", "snapshot_ts", "side", "price", "count"} - set(orderbook.columns)
    if missing:
        raise DataError(f"orderbook table lacks columns {sorted(missing)}")
    if not orderbook["side"].isin(["yes", "no"]).all():
        raise DataError("orderbook side must be yes or no")
    cents = cents_on_grid(orderbook["price"], "orderbook", orderbook["ticker"])
    book = pd.DataFrame(
        {
            "ticker": orderbook["ticker"].astype(str).to_numpy(dtype=object),
            "snapshot_ts": pd.to_datetime(orderbook["snapshot_ts"], utc=True).dt.as_unit("ns"),
            "ts_ns": utc_ns(orderbook["snapshot_ts"]),
            "is_yes": (orderbook["side"] == "yes").to_numpy(),
            "price": cents,
            "size": orderbook["count"].to_numpy(dtype=float),
        }
    )
    book = book[(book["size"] > 0) & book["price"].between(1, 99)]
    book = book.astype({"price": np.int64})
    keys = ["ticker", "snapshot_ts", "ts_ns", "is_yes", "price"]
    return book.groupby(keys, as_index=False, sort=True)["size"].sum()


def _prepare_candles(candles: pd.DataFrame, max_volume_share: float) -> pd.DataFrame:
    """One quoting candle per (ticker, end time), by ticker and time, prices in float cents.

    Where candles of several periods end at the same time the shortest period is kept, the
    freshest: its close and volume describe the last hour (or minute), a daily one's the whole
    day. A bid outside 1..99 cents (Kalshi's 0 for "no bid", 1.00 for "no offer") is no quote
    (NaN). ``cap`` is ``floor(max_volume_share * volume)`` contracts, 0 without volume.
    """
    needed = {
        "ticker",
        "period_minutes",
        "end_period_ts",
        "yes_bid_close",
        "yes_ask_close",
        "volume",
    }
    missing = needed - set(candles.columns)
    if missing:
        raise DataError(f"candles table lacks columns {sorted(missing)}")
    yes_bid = cents_on_grid(candles["yes_bid_close"], "candles", candles["ticker"])
    no_bid = 100.0 - cents_on_grid(candles["yes_ask_close"], "candles", candles["ticker"])
    volume = np.nan_to_num(candles["volume"].to_numpy(dtype=float), nan=0.0)
    frame = pd.DataFrame(
        {
            "ticker": candles["ticker"].astype(str).to_numpy(dtype=object),
            "quote_ts": pd.to_datetime(candles["end_period_ts"], utc=True).dt.as_unit("ns"),
            "ts_ns": utc_ns(candles["end_period_ts"]),
            "period": candles["period_minutes"].to_numpy(dtype=np.int64),
            "yes_bid": np.where((yes_bid >= 1) & (yes_bid <= 99), yes_bid, np.nan),
            "no_bid": np.where((no_bid >= 1) & (no_bid <= 99), no_bid, np.nan),
            "cap": np.floor(max_volume_share * np.maximum(volume, 0.0) + _EPS).astype(np.int64),
        }
    )
    frame = frame.sort_values(
        ["ticker", "ts_ns", "period"], ascending=[True, True, False], kind="stable"
    )
    return frame.drop_duplicates(["ticker", "ts_ns"], keep="last").reset_index(drop=True)


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


def _split_candles(candles: pd.DataFrame) -> dict[str, _Candles]:
    out = {}
    for ticker, rows in candles.groupby("ticker", sort=False):
        out[ticker] = _Candles(
            times=rows["ts_ns"].to_numpy(),
            yes_bid=np.nan_to_num(rows["yes_bid"].to_numpy(), nan=0.0).astype(np.int64),
            no_bid=np.nan_to_num(rows["no_bid"].to_numpy(), nan=0.0).astype(np.int64),
            cap=rows["cap"].to_numpy(),
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
    top = top.reset_index().rename(columns={"snapshot_ts": "quote_ts"})
    top["source"] = "book"
    return top.sort_values("quote_ts", kind="stable").reset_index(drop=True)[
        ["ticker", *_QUOTE_COLUMNS]
    ]


def _candle_top(candles: pd.DataFrame) -> pd.DataFrame:
    """The candles as quotes (the columns of _top_of_book), by time."""
    cap = candles["cap"].astype(float)
    top = pd.DataFrame(
        {
            "ticker": candles["ticker"],
            "quote_ts": candles["quote_ts"],
            "source": "candle",
            "yes_bid": candles["yes_bid"],
            "no_bid": candles["no_bid"],
            "yes_bid_size": cap,
            "no_bid_size": cap,
        }
    )
    return top.sort_values("quote_ts", kind="stable").reset_index(drop=True)
