"""QuoteIndex: every quote the backtest exchange can show, in flat numpy arrays.

The same inputs, validation and answers as the quote side of
:class:`~kalshi_lab.execution.exchange.SimulatedKalshiExchange` (see its module for the rules:
ORDERBOOK holds bids only; of the latest snapshot at or before ``ts`` and the latest candle
that ENDED at or before ``ts`` (the shortest period at a tie), the fresher quotes, the snapshot
at a tie; neither if it is older than ``max_quote_age_hours``), built once without a Python
loop over markets or rows and answered by binary search:

* markets are integer codes (a dict from ticker to code);
* book levels are sorted once by (market, snapshot time, side, price), repeated levels summed;
  a snapshot's levels are one contiguous run (its YES bids ascending, then its NO bids
  ascending), its best bids and their sizes are precomputed;
* snapshots (and candles) are sorted by (market, time); market ``c``'s are the rows
  ``start[c]:start[c + 1]``. Each also has a search key ``c * n_times + rank of its time among
  all distinct times``, ascending, so that one ``np.searchsorted`` finds, for many markets at
  once, the latest snapshot (candle) at or before a time.

Only numpy arrays are stored (and the ticker dict), in the narrowest exact dtype: prices int8,
capacities in the narrowest integer type that holds them, sizes float32 when that is exact. For
10,000 simulated markets over a year (8.3 M book levels, 1.1 M snapshots, 0.28 M candles) that
is 65 MB; building it takes 0.45 - 0.75 s and 0.15 GB beyond the tables
(benchmarks/bench_backtest.py, bench_quotes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError

#: the columns of :meth:`QuoteIndex.top`, in order
QUOTE_COLUMNS = [
    "quote_ts",
    "source",
    "yes_bid",
    "no_bid",
    "yes_bid_size",
    "no_bid_size",
    "yes_ask",
    "no_ask",
]
#: the columns of the order book and candle tables a QuoteIndex reads: the backtest reads no
#: others from the parquet tables
BOOK_COLUMNS = ["ticker", "snapshot_ts", "side", "price", "count"]
CANDLE_COLUMNS = [
    "ticker",
    "period_minutes",
    "end_period_ts",
    "yes_bid_close",
    "yes_ask_close",
    "volume",
]
_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds
NEVER = np.iinfo(np.int64).max  # a missing time that means "not yet": a close that is not set
_EPS = 1e-9  # slack for float sizes such as 0.3 * 10 = 2.9999999999999996
_PRICE_BITS = 7  # a price level's cents (1..99) in the low bits of its sort key
_NO_TIMES = np.empty(0, dtype=np.int64)

#: one price level an order may take: (bid in cents, consumption key, capacity in contracts)
Level = tuple[int, tuple[object, ...], int]


def max_age_ns(hours: float | None) -> int:
    """``max_quote_age_hours`` in nanoseconds (NEVER for None: any age); ValueError unless > 0."""
    if hours is None:
        return NEVER
    if not hours > 0:
        raise ValueError(f"max_quote_age_hours must be > 0, got {hours}")
    return min(round(hours * 3_600_000_000_000), NEVER)


def oldest_ns(ts_ns: int, age_ns: int) -> int:
    """The earliest quote time usable at ``ts_ns`` with a maximum age ``age_ns`` (no overflow:
    with any age allowed, every time is usable)."""
    return max(ts_ns - age_ns, _NAT + 1)


def ns(ts: pd.Timestamp) -> int:
    """Nanoseconds since the epoch of a tz-aware timestamp; ValueError for a naive one."""
    if ts.tzinfo is None:
        raise ValueError(f"timestamps must be tz-aware (UTC), got {ts!r}")
    return int(ts.as_unit("ns").value)


def utc_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a UTC timestamp column; NaT becomes NEVER."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):  # tz-aware columns need no parsing
        values = pd.to_datetime(values, utc=True)
    ts = values.dt.tz_convert(None).dt.as_unit("ns")
    return np.where(ts.isna().to_numpy(), NEVER, ts.to_numpy().astype(np.int64))


def cents_on_grid(dollars: pd.Series, name: str, tickers: pd.Series) -> np.ndarray:
    """Dollar prices as float cents on the one-cent grid (NaN stays NaN); off-grid: DataError."""
    cents = dollars.to_numpy(dtype=float) * 100.0
    rounded = np.rint(cents)
    np.subtract(cents, rounded, out=cents)  # in place: order books have millions of rows
    off_grid = np.abs(cents, out=cents) > 1e-6  # NaN compares False
    del cents
    if off_grid.any():
        examples = sorted(tickers[off_grid].astype(str).unique())[:5]
        raise DataError(f"{name} prices off the one-cent grid (subpenny markets): {examples}")
    return rounded


_SOURCES = np.array([np.nan, "book", "candle"], dtype=object)  # what quoted: none, book, candle


class QuoteIndex:
    """Top of book, price levels and quote-change times of many markets, from flat arrays.

    ``orderbook`` and ``candles`` are the typed ORDERBOOK and CANDLES tables as
    SimulatedKalshiExchange receives them; ``max_fill_share`` caps what all orders together may
    take of a level per snapshot, ``max_volume_share`` of a candle's volume;
    ``max_quote_age_hours`` is the oldest a quote may be at the time asked (None: any age).
    """

    def __init__(
        self,
        orderbook: pd.DataFrame,
        candles: pd.DataFrame,
        max_fill_share: float,
        max_volume_share: float,
        max_quote_age_hours: float | None = None,
    ) -> None:
        self._settings(max_fill_share, max_volume_share, max_quote_age_hours)
        self._build(_BookRows.read(orderbook), _CandleRows.read(candles, max_volume_share))

    @classmethod
    def from_parts(
        cls,
        orderbook: Iterable[pd.DataFrame],
        candles: Iterable[pd.DataFrame],
        max_fill_share: float,
        max_volume_share: float,
        max_quote_age_hours: float | None = None,
    ) -> QuoteIndex:
        """The index of the tables given in parts (e.g. a partition of the datasets at a
        time, each market's rows in one part): the same index as of the parts concatenated,
        but each part is turned into compact per-row arrays (14 bytes a book level instead of
        a frame's 30) before the next is read, so that the whole order book never is a frame.
        """
        index = cls.__new__(cls)
        index._settings(max_fill_share, max_volume_share, max_quote_age_hours)
        book = _BookRows.concat([_BookRows.read(part) for part in orderbook])
        candle = _CandleRows.concat([_CandleRows.read(part, max_volume_share) for part in candles])
        index._build(book, candle)
        return index

    def _settings(
        self, max_fill_share: float, max_volume_share: float, max_quote_age_hours: float | None
    ) -> None:
        if not 0.0 < max_fill_share <= 1.0:
            raise ValueError(f"max_fill_share must be in (0, 1], got {max_fill_share}")
        if not 0.0 < max_volume_share <= 1.0:
            raise ValueError(f"max_volume_share must be in (0, 1], got {max_volume_share}")
        self.max_fill_share = max_fill_share
        self.max_volume_share = max_volume_share
        self.max_quote_age_hours = max_quote_age_hours
        self._max_age_ns = max_age_ns(max_quote_age_hours)

    def _build(self, book: _BookRows, candle: _CandleRows) -> None:
        # codes in order of appearance: books written market by market are then sorted already
        names = pd.unique(np.concatenate([book.names, candle.names]))
        #: ticker -> integer code
        self._code: dict[str, int] = {str(t): c for c, t in enumerate(names.tolist())}
        n = len(names)
        self._build_book(book, pd.Index(names).get_indexer(book.names), n)
        del book
        self._build_candles(candle, pd.Index(names).get_indexer(candle.names), n)

    # --- build --------------------------------------------------------------------------------

    def _build_book(self, rows: _BookRows, name_code: np.ndarray, n_markets: int) -> None:
        """Levels and snapshots from the rows; frees the rows' arrays as it goes."""
        n_times = max(len(rows.times), 1)
        if n_markets * n_times >= 2**62 >> (_PRICE_BITS + 1):
            raise DataError("orderbook too large to index (markets x distinct snapshot times)")
        # one int64 sort key per row: (market, snapshot time, side, price), YES before NO
        key = np.repeat(name_code[rows.run_name].astype(np.int64), rows.run_length)
        key *= n_times
        key += rows.rank
        key <<= 1
        key += rows.is_no
        key <<= _PRICE_BITS
        key += rows.price
        # the key's parts that later steps read, kept apart (narrower than the key)
        size, price, is_no = rows.size, rows.price, rows.is_no
        used = (rows.rank >= 0) & (price > 0) & (size > 0)  # a time, a price, a size
        rows.rank = rows.is_no = rows.price = rows.size = None
        if not used.all():
            key, size, price, is_no = key[used], size[used], price[used], is_no[used]
        del used
        if len(key) > 1 and not np.all(key[1:] >= key[:-1]):  # else sorted as books are written
            order = np.argsort(key, kind="stable")  # repeated levels keep their row order
            key, size, price, is_no = key[order], size[order], price[order], is_no[order]
            del order
        n_rows = len(key)

        # levels: runs of one key; their sizes summed
        if n_rows < 2 or (key[1:] != key[:-1]).all():  # no level repeated
            level_key, level_size = key, size
        else:
            first = _run_starts(key)
            level_key, level_size = key[first], _sum_runs(size, first)
            price, is_no = price[first], is_no[first]
        del key, size
        n_levels = len(level_key)
        self._level_price = price
        self._level_cap = _capacity(level_size, self.max_fill_share)
        level_key >>= _PRICE_BITS + 1  # now the snapshot's key: market * n_times + time's rank

        # snapshots: runs of one (market, time) among the levels
        first = _run_starts(level_key)
        self._snap_key = level_key[first]
        del level_key
        self._snap_ns = rows.times[self._snap_key % n_times]
        self._book_times = rows.times
        self._book_n_times = n_times
        self._book_start = np.searchsorted(self._snap_key // n_times, np.arange(n_markets + 1))
        starts = np.append(first, n_levels)
        n_yes = np.add.reduceat(~is_no, first, dtype=np.int64) if len(first) else first
        del is_no
        mid = first + n_yes  # YES bids are starts[s]:mid[s], NO bids mid[s]:starts[s + 1]
        self._snap_start = _narrow_int(starts, at_least=np.int32)
        self._snap_mid = _narrow_int(mid, at_least=np.int32)
        # the best bid of a side is the last of its ascending run: 0 (no bid) for an empty run
        has_yes, has_no = mid > first, starts[1:] > mid
        best_yes, best_no = np.maximum(mid - 1, 0), np.maximum(starts[1:] - 1, 0)
        price = self._level_price if n_levels else np.zeros(1, dtype=np.int8)
        self._top_yes = np.where(has_yes, price[best_yes], 0).astype(np.int8)
        self._top_no = np.where(has_no, price[best_no], 0).astype(np.int8)
        sizes = level_size if n_levels else np.zeros(1)
        self._top_yes_size = _narrow_float(np.where(has_yes, sizes[best_yes], np.nan))
        self._top_no_size = _narrow_float(np.where(has_no, sizes[best_no], np.nan))

    def _build_candles(self, rows: _CandleRows, name_code: np.ndarray, n_markets: int) -> None:
        code = name_code[rows.ticker].astype(np.int64)
        # by market and end time, the longest period first: the last of a run is the shortest
        order = np.lexsort((-rows.period, rows.ts_ns, code))
        code, ts_ns = code[order], rows.ts_ns[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (code[1:] != code[:-1]) | (ts_ns[1:] != ts_ns[:-1])
        keep = order[last]
        code, ts_ns = code[last], ts_ns[last]
        times, rank = np.unique(ts_ns, return_inverse=True)
        n_times = max(len(times), 1)
        self._candle_key = code * n_times + rank.reshape(-1)
        self._candle_ns = ts_ns
        self._candle_times = times
        self._candle_n_times = n_times
        self._candle_start = np.searchsorted(code, np.arange(n_markets + 1))
        self._candle_yes = np.nan_to_num(rows.yes_bid[keep], nan=0.0).astype(np.int8)
        self._candle_no = np.nan_to_num(rows.no_bid[keep], nan=0.0).astype(np.int8)
        self._candle_cap = _narrow_int(rows.cap[keep])

    # --- sizes --------------------------------------------------------------------------------

    @property
    def n_book_markets(self) -> int:
        """Markets with at least one book snapshot."""
        return int(np.count_nonzero(np.diff(self._book_start)))

    @property
    def n_snapshots(self) -> int:
        """Book snapshots with at least one level."""
        return len(self._snap_key)

    @property
    def n_candle_markets(self) -> int:
        """Markets with at least one candle."""
        return int(np.count_nonzero(np.diff(self._candle_start)))

    @property
    def n_candles(self) -> int:
        """Quoting candles: one per market and end time."""
        return len(self._candle_key)

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays (the ticker dict aside)."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    # --- queries ------------------------------------------------------------------------------

    def codes(self, tickers: Sequence[str]) -> np.ndarray:
        """Integer codes of ``tickers`` (int64), -1 for a ticker without book or candle."""
        lookup = map(self._code.get, tickers, repeat(-1))
        return np.fromiter(lookup, dtype=np.int64, count=len(tickers))

    def top(self, tickers: list[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes of ``tickers`` at ``ts``: SimulatedKalshiExchange.quotes without
        is_open and taker_rate.

        Indexed by ticker in the given order; columns QUOTE_COLUMNS: quote_ts (the snapshot, or
        the end of the candle, quoted; NaT without either), source ("book", "candle" or NaN),
        yes_bid, no_bid, yes_bid_size, no_bid_size, yes_ask, no_ask (float cents, NaN for a
        missing side; a candle's sizes are its volume cap).
        """
        return self.frame(tickers, self.top_columns(self.codes(tickers), ts))

    @staticmethod
    def frame(tickers: list[str], columns: dict[str, object]) -> pd.DataFrame:
        """``columns`` (of top_columns, plus any the caller adds) indexed by ``tickers``."""
        names = np.array(tickers, dtype=object).reshape(-1)
        index = pd.Index(names, dtype=object, name="ticker", copy=False)
        return pd.DataFrame(columns, index=index, copy=False)

    def top_columns(self, codes: np.ndarray, ts: pd.Timestamp) -> dict[str, object]:
        """The columns of :meth:`top` as arrays, for the markets of :meth:`codes` ``codes``."""
        ts_ns = ns(ts)
        n = len(codes)
        quote_ns = np.full(n, _NAT, dtype=np.int64)
        yes_bid = np.zeros(n, dtype=np.int8)
        no_bid = np.zeros(n, dtype=np.int8)
        yes_size = np.full(n, np.nan)
        no_size = np.full(n, np.nan)
        source = np.zeros(n, dtype=np.int8)  # index into _SOURCES

        known = np.flatnonzero(codes >= 0)
        c = codes[known]
        snap = self._find(
            c, ts_ns, self._snap_key, self._book_times, self._book_n_times, self._book_start
        )
        k = self._find(
            c, ts_ns, self._candle_key, self._candle_times, self._candle_n_times, self._candle_start
        )
        book_ns = np.full(len(c), _NAT, dtype=np.int64)
        book_ns[snap >= 0] = self._snap_ns[snap[snap >= 0]]
        candle_ns = np.full(len(c), _NAT, dtype=np.int64)
        candle_ns[k >= 0] = self._candle_ns[k[k >= 0]]
        # the fresher of the two quotes, the snapshot at a tie (it shows depth); none too old
        oldest = oldest_ns(ts_ns, self._max_age_ns)
        by_book = (snap >= 0) & (book_ns >= candle_ns) & (book_ns >= oldest)
        by_candle = (k >= 0) & (candle_ns > book_ns) & (candle_ns >= oldest)

        rows, snap = known[by_book], snap[by_book]
        quote_ns[rows] = book_ns[by_book]
        yes_bid[rows] = self._top_yes[snap]
        no_bid[rows] = self._top_no[snap]
        yes_size[rows] = self._top_yes_size[snap]
        no_size[rows] = self._top_no_size[snap]
        source[rows] = 1

        rows, k = known[by_candle], k[by_candle]
        quote_ns[rows] = candle_ns[by_candle]
        yes_bid[rows] = self._candle_yes[k]
        no_bid[rows] = self._candle_no[k]
        yes_size[rows] = no_size[rows] = self._candle_cap[k]
        source[rows] = 2

        yes = np.where(yes_bid > 0, yes_bid, np.nan)
        no = np.where(no_bid > 0, no_bid, np.nan)
        quote_ts = pd.DatetimeIndex(quote_ns.view("M8[ns]"), tz="UTC")
        return {
            "quote_ts": quote_ts,
            "source": _SOURCES[source],
            "yes_bid": yes,
            "no_bid": no,
            "yes_bid_size": yes_size,
            "no_bid_size": no_size,
            "yes_ask": 100.0 - no,
            "no_ask": 100.0 - yes,
        }

    @staticmethod
    def _find(
        codes: np.ndarray,
        ts_ns: int,
        keys: np.ndarray,
        times: np.ndarray,
        n_times: int,
        start: np.ndarray,
    ) -> np.ndarray:
        """Per market code, the row of its latest snapshot (candle) at or before ``ts_ns``, -1
        if none.

        ``keys`` are ``code * n_times + rank`` of the rows, ascending; with ``r`` the number of
        distinct times at or before ``ts_ns``, the rows of market ``c`` before key ``c * n_times
        + r`` are exactly its rows at or before ``ts_ns``.
        """
        r = int(np.searchsorted(times, ts_ns, side="right"))
        row = np.searchsorted(keys, codes * n_times + r, side="left") - 1
        return np.where(row >= start[codes], row, -1)

    def latest(self, ticker: str, ts_ns: int) -> tuple[str, int, int] | None:
        """The fresher of the market's latest snapshot and latest candle ended at or before
        ``ts_ns`` (the snapshot at a tie), however old: (source, its index among the market's
        snapshots or candles, quote time in int ns); None without either."""
        c = self._code.get(ticker)
        if c is None:
            return None
        lo, hi = self._book_start[c : c + 2].tolist()
        s = int(self._snap_ns[lo:hi].searchsorted(ts_ns, side="right")) - 1
        lo_c, hi_c = self._candle_start[c : c + 2].tolist()
        k = int(self._candle_ns[lo_c:hi_c].searchsorted(ts_ns, side="right")) - 1
        book_ns = int(self._snap_ns[lo + s]) if s >= 0 else None
        candle_ns = int(self._candle_ns[lo_c + k]) if k >= 0 else None
        if book_ns is not None and (candle_ns is None or book_ns >= candle_ns):
            return "book", s, book_ns
        if candle_ns is not None:
            return "candle", k, candle_ns
        return None

    def levels(
        self, ticker: str, ts_ns: int, book_side: str
    ) -> tuple[str, int, list[Level]] | None:
        """Source, quote time (int ns) and bid levels (best first) of one side at ``ts_ns``.

        The quote of :meth:`latest` if it is at most ``max_quote_age_hours`` old, else None. A
        level is (bid cents, consumption key, capacity): book levels are keyed ``(ticker,
        "book", k, book_side, bid)`` with ``k`` the snapshot's index among the market's
        snapshots, a candle ``(ticker, "candle", k)`` with ``k`` its index among the market's
        candles; capacity is ``floor(max_fill_share x size)``, or the candle's volume cap (a
        candle without a bid on the side has no level).
        """
        quote = self.latest(ticker, ts_ns)
        if quote is None or quote[2] < oldest_ns(ts_ns, self._max_age_ns):
            return None
        source, k, quote_ns = quote
        c = self._code[ticker]
        if source == "book":
            s = int(self._book_start[c]) + k
            first, end = self._snap_start[s : s + 2].tolist()
            mid = int(self._snap_mid[s])
            a, b = (first, mid) if book_side == "yes" else (mid, end)
            bids = self._level_price[a:b].tolist()
            caps = self._level_cap[a:b].tolist()
            levels = [
                (bid, (ticker, "book", k, book_side, bid), cap)
                for bid, cap in zip(reversed(bids), reversed(caps), strict=True)
            ]
            return "book", quote_ns, levels
        j = int(self._candle_start[c]) + k
        bid = int(self._candle_yes[j] if book_side == "yes" else self._candle_no[j])
        levels = [(bid, (ticker, "candle", k), int(self._candle_cap[j]))] if bid > 0 else []
        return "candle", quote_ns, levels

    def times(self, ticker: str) -> np.ndarray:
        """Times (int64 ns, ascending) when the market's quote changes: the end times of its
        candles and its snapshot times, each once. Empty if unknown."""
        c = self._code.get(ticker)
        if c is None:
            return _NO_TIMES.copy()
        book = self._snap_ns[self._book_start[c] : self._book_start[c + 1]]
        candles = self._candle_ns[self._candle_start[c] : self._candle_start[c + 1]]
        return np.union1d(candles, book).astype(np.int64, copy=False)


# --- reading the tables -----------------------------------------------------------------------


class _BookRows:
    """The ORDERBOOK table as compact arrays, validated as SimulatedKalshiExchange does.

    Tickers and sides are factorised once per run of equal neighbours (the tables come grouped
    by ticker, snapshot and side), timestamps and prices converted once per distinct value.
    """

    names: np.ndarray  # distinct tickers (str)
    run_name: np.ndarray  # per run of one ticker: index into names
    run_length: np.ndarray  # per run: rows
    times: np.ndarray  # distinct snapshot times, int64 ns, ascending
    rank: np.ndarray  # per row: int32 index into times, -1 without a time
    is_no: np.ndarray  # per row: a NO bid (else a YES bid)
    price: np.ndarray  # per row: int8 cents, 0 unless 1..99
    size: np.ndarray  # per row: float contracts

    @classmethod
    def read(cls, orderbook: pd.DataFrame) -> _BookRows:
        missing = set(BOOK_COLUMNS) - set(orderbook.columns)
        if missing:
            raise DataError(f"orderbook table lacks columns {sorted(missing)}")
        out = cls()
        out.is_no = _is_no(orderbook["side"])
        out.price = _level_cents(orderbook["price"], orderbook["ticker"])
        n = len(orderbook)
        first, run_name, out.names = _factorize_runs(orderbook["ticker"])
        out.names = _as_str(out.names)
        out.run_name, out.run_length = run_name, np.diff(np.append(first, n))
        ts_first, ts_heads = _runs(orderbook["snapshot_ts"])  # a snapshot's rows are neighbours
        head_code, ts_values = pd.factorize(ts_heads)  # NaT: -1
        ts_ns = utc_ns(pd.Series(ts_values))
        known = ts_ns != NEVER
        out.times, rank = np.unique(ts_ns[known], return_inverse=True)
        rank_of = np.full(len(ts_ns) + 1, -1, dtype=np.int32)  # the last entry: NaT
        rank_of[np.flatnonzero(known)] = rank.reshape(-1)
        out.rank = np.repeat(rank_of[head_code], np.diff(np.append(ts_first, n)))
        out.size = orderbook["count"].to_numpy(dtype=float)
        return out

    @classmethod
    def concat(cls, parts: list[_BookRows]) -> _BookRows:
        """The rows of ``parts`` one after the other, as :meth:`read` of their tables
        concatenated reads them (a ticker of several parts one name); frees the parts' arrays
        as it goes."""
        if len(parts) == 1:
            return parts[0]
        out = cls()
        out.names, recode = _merged_names(parts)
        out.run_name = _concat([recode(k, p.run_name) for k, p in enumerate(parts)])
        out.run_length = _concat([p.run_length for p in parts])
        out.times = np.unique(_concat([p.times for p in parts]))
        for p in parts:  # each part's time ranks -> ranks among all times (-1 stays -1)
            rank_of = np.append(np.searchsorted(out.times, p.times), -1).astype(np.int32)
            p.rank = rank_of[p.rank]
        for field, dtype in _BOOK_ROW_FIELDS.items():
            setattr(out, field, _concat([getattr(p, field) for p in parts], dtype))
            for p in parts:
                setattr(p, field, None)
        return out


def _merged_names(
    parts: list[_BookRows] | list[_CandleRows],
) -> tuple[np.ndarray, Callable[[int, np.ndarray], np.ndarray]]:
    """The ticker names of ``parts`` in order of first appearance (a ticker of several parts
    one name), and the map of part ``k``'s ticker codes to codes among them."""
    names = np.concatenate([p.names for p in parts]) if parts else np.empty(0, dtype=object)
    merged = np.asarray(pd.unique(names), dtype=object)
    code = pd.Index(merged).get_indexer(names)
    offsets = np.cumsum([0, *(len(p.names) for p in parts)])
    return merged, lambda k, codes: code[offsets[k] + codes]


class _CandleRows:
    """The CANDLES table as arrays per row, as SimulatedKalshiExchange reads it."""

    names: np.ndarray
    ticker: np.ndarray
    ts_ns: np.ndarray  # end_period_ts, int64 ns (NaT: never)
    period: np.ndarray  # int64 minutes
    yes_bid: np.ndarray  # float cents, NaN outside 1..99
    no_bid: np.ndarray  # float cents (100 - YES ask), NaN outside 1..99
    cap: np.ndarray  # int64 contracts: floor(max_volume_share x volume)

    @classmethod
    def read(cls, candles: pd.DataFrame, max_volume_share: float) -> _CandleRows:
        missing = set(CANDLE_COLUMNS) - set(candles.columns)
        if missing:
            raise DataError(f"candles table lacks columns {sorted(missing)}")
        yes_bid = cents_on_grid(candles["yes_bid_close"], "candles", candles["ticker"])
        no_bid = 100.0 - cents_on_grid(candles["yes_ask_close"], "candles", candles["ticker"])
        volume = np.nan_to_num(candles["volume"].to_numpy(dtype=float), nan=0.0)
        out = cls()
        out.ts_ns = utc_ns(candles["end_period_ts"])
        out.period = candles["period_minutes"].to_numpy(dtype=np.int64)
        out.yes_bid = np.where((yes_bid >= 1) & (yes_bid <= 99), yes_bid, np.nan)
        out.no_bid = np.where((no_bid >= 1) & (no_bid <= 99), no_bid, np.nan)
        out.cap = np.floor(max_volume_share * np.maximum(volume, 0.0) + _EPS).astype(np.int64)
        first, run_name, names = _factorize_runs(candles["ticker"])
        out.ticker = np.repeat(run_name, np.diff(np.append(first, len(candles))))
        out.names = _as_str(names)
        return out

    @classmethod
    def concat(cls, parts: list[_CandleRows]) -> _CandleRows:
        """The rows of ``parts`` one after the other, as :meth:`read` of their tables
        concatenated reads them."""
        if len(parts) == 1:
            return parts[0]
        out = cls()
        out.names, recode = _merged_names(parts)
        out.ticker = _concat([recode(k, p.ticker) for k, p in enumerate(parts)])
        for field, dtype in _CANDLE_ROW_FIELDS.items():
            setattr(out, field, _concat([getattr(p, field) for p in parts], dtype))
        return out


#: the per-row arrays of _BookRows (beside run_name and run_length) and _CandleRows (beside
#: ticker), with their dtypes when there are no rows at all
_BOOK_ROW_FIELDS = {"rank": np.int32, "is_no": np.bool_, "price": np.int8, "size": np.float64}
_CANDLE_ROW_FIELDS = {
    "ts_ns": np.int64,
    "period": np.int64,
    "yes_bid": np.float64,
    "no_bid": np.float64,
    "cap": np.int64,
}


def _concat(arrays: list[np.ndarray], dtype: type = np.int64) -> np.ndarray:
    """``np.concatenate``, an empty ``dtype`` array for no arrays."""
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)


def _level_cents(price: pd.Series, tickers: pd.Series, chunk: int = 1 << 20) -> np.ndarray:
    """Book prices as int8 cents, 0 (no level) for NaN and prices outside 1..99; off the
    one-cent grid: DataError. A chunk at a time: the float temporaries of millions of rows
    at once cost more in fresh memory than in arithmetic."""
    out = np.empty(len(price), dtype=np.int8)
    for lo in range(0, len(price), chunk):
        part = slice(lo, lo + chunk)
        cents = cents_on_grid(price.iloc[part], "orderbook", tickers.iloc[part])
        cents[~((cents >= 1) & (cents <= 99))] = 0
        out[part] = cents
    return out


def _is_no(side: pd.Series) -> np.ndarray:
    """Per row, a NO bid (else YES); DataError for any other side. A categorical column is
    read through its integer codes, a plain one by runs (sides come grouped by snapshot)."""
    if isinstance(side.dtype, pd.CategoricalDtype):
        labels = side.cat.categories.to_numpy(dtype=object)
        codes = side.cat.codes.to_numpy()
        if len(codes):
            low, high = int(codes.min()), int(codes.max())  # every label between: yes or no
            if low < 0 or not set(labels[low : high + 1]) <= {"yes", "no"}:  # -1: missing
                used = np.bincount(codes.astype(np.int64) + 1, minlength=len(labels) + 1) > 0
                if used[0] or not set(labels[used[1:]]) <= {"yes", "no"}:
                    raise DataError("orderbook side must be yes or no")
        no = np.flatnonzero(labels == "no")
        return codes == (no[0] if len(no) else -2)
    first, sides = _runs(side)
    is_no = sides == "no"
    if not (is_no | (sides == "yes")).all():
        raise DataError("orderbook side must be yes or no")
    return np.repeat(is_no, np.diff(np.append(first, len(side))))


def _runs(values: pd.Series) -> tuple[np.ndarray, np.ndarray | pd.api.extensions.ExtensionArray]:
    """Runs of equal neighbours of a column: the first row of each and its value.

    The tables come grouped by ticker, snapshot and side: a few runs per thousand rows (per
    ticker) or per ten rows (per side), so what is done per value is done a lot less often.
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    if isinstance(values.dtype, pd.DatetimeTZDtype):  # compare the integers, not Timestamps
        ints = pd.DatetimeIndex(values).asi8
        first = np.flatnonzero(np.concatenate([[True], ints[1:] != ints[:-1]]))
        return first, values.array[first]
    if isinstance(values.dtype, pd.CategoricalDtype):  # compare the integer codes, not objects
        codes = values.cat.codes.to_numpy()
        first = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        labels = np.append(values.cat.categories.to_numpy(dtype=object), np.nan)  # -1: NaN
        return first, labels[codes[first]]
    arr = values.to_numpy(dtype=object)
    first = np.flatnonzero(np.concatenate([[True], arr[1:] != arr[:-1]]))
    return first, arr[first]


def _factorize_runs(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pd.factorize`` by runs (missing values kept as a value): the first row of each run,
    its code and the distinct values."""
    first, heads = _runs(values)
    codes, uniques = pd.factorize(heads, use_na_sentinel=False)
    return first, codes, np.asarray(uniques, dtype=object)


def _as_str(values: np.ndarray) -> np.ndarray:
    """Tickers as ``str``, as the exchange's ``astype(str)`` makes them."""
    return pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object)


def _run_starts(key: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values of the sorted ``key`` starts."""
    if len(key) == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))


def _sum_runs(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each run starting at ``first``, exactly as pandas' groupby sum.

    Most runs are one row; the others are summed by pandas itself (compensated summation in row
    order), so that fractional sizes give the very floats SimulatedKalshiExchange uses.
    """
    out = values[first]
    lengths = np.diff(np.append(first, len(values)))
    several = lengths > 1
    if several.any():
        runs = np.flatnonzero(several)
        rows = np.flatnonzero(np.repeat(several, lengths))  # the rows of those runs, in order
        sums = pd.Series(values[rows]).groupby(np.repeat(runs, lengths[runs]), sort=True).sum()
        out[sums.index.to_numpy()] = sums.to_numpy()
    return out


def _capacity(size: np.ndarray, share: float, chunk: int = 1 << 20) -> np.ndarray:
    """``floor(share x size)`` (sizes > 0) as the narrowest integer type that holds the largest,
    a chunk at a time (no float temporary of every level)."""
    if len(size) == 0:
        return np.empty(0, dtype=np.int8)
    largest = np.floor(share * size.max(keepdims=True) + _EPS)  # floor(share x size) rises
    out = np.empty(len(size), dtype=_narrow_int(largest).dtype)
    for lo in range(0, len(size), chunk):
        part = size[lo : lo + chunk] * share
        part += _EPS
        out[lo : lo + chunk] = np.floor(part, out=part)
    return out


def _narrow_int(values: np.ndarray, at_least: type = np.int8) -> np.ndarray:
    """Integer ``values`` in the narrowest of int8/16/32/64, at least ``at_least``, that holds
    them."""
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        if np.dtype(dtype).itemsize < np.dtype(at_least).itemsize:
            continue
        info = np.iinfo(dtype)
        if len(values) == 0 or (values.min() >= info.min and values.max() <= info.max):
            return values.astype(dtype)
    return values.astype(np.int64)


def _narrow_float(values: np.ndarray) -> np.ndarray:
    """float32 if that holds every value exactly, else float64."""
    narrow = values.astype(np.float32)
    if np.array_equal(narrow.astype(np.float64), values, equal_nan=True):
        return narrow
    return values
