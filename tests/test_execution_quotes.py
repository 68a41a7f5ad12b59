"""QuoteIndex answers exactly as the straightforward lookups it replaced (tests/reference_quotes.py):
top of book, levels and change times; the exchange quotes through it.

Random books and candles (seeded numpy): several markets, repeated levels, fractional and
missing sizes, prices outside 1..99 cents, snapshots at the same times across markets, candles
of several periods ending at the same time, markets with only candles, only a book, both, and
tickers nobody knows; rows grouped by market, sorted as books are written, or shuffled. Then the default simulator's data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.tables import CANDLES, ORDERBOOK, read_table
from kalshi_lab.errors import DataError
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.quotes import QUOTE_COLUMNS, QuoteIndex, _capacity, _level_cents
from kalshi_lab.params import params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from reference_quotes import ReferenceQuotes

ROOT = Path(__file__).resolve().parents[1]
T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
NS = pd.Timedelta(nanoseconds=1)
US = pd.Timedelta(microseconds=1)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
GRID = [T0 + k * H for k in range(8)]  # snapshot and candle times, shared by the markets
BOOK_ONLY, CANDLES_ONLY, BOTH = ["B1", "B2"], ["C1", "C2"], ["X1", "X2", "X3"]
KNOWN = BOOK_ONLY + CANDLES_ONLY + BOTH
UNKNOWN = ["ZZ", "B1-"]  # not in any table ("B1-" sorts between known tickers)
#: prices in cents: a few common ones repeat levels; 0 and 100 are no price
CENTS = [0, 1, 2, 40, 41, 42, 55, 98, 99, 100]
#: sizes: fractional ones sum inexactly in floats; 0, negative and missing are no level
SIZES = [0.0, -1.0, np.nan, 0.1, 0.2, 0.3, 1.0, 2.5, 3.0, 7.0, 10.0, 100.0, 1234.0]


def markets(tickers: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": tickers,
            "event_ticker": "E",
            "series_ticker": "S",
            "close_time": T0 + 100 * H,
            "settlement_ts": pd.NaT,
            "result": None,
        }
    )


def typed(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    """Rows typed as the parquet stage writes them (missing columns are null)."""
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def written_order(row: dict) -> tuple:
    """Market, time, YES bids before NO bids, prices ascending; rows without a time last."""
    at = pd.Timestamp.max.tz_localize("UTC") if row["snapshot_ts"] is None else row["snapshot_ts"]
    return row["ticker"], at, row["side"] != "yes", row["price"]


def random_tables(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    book = []
    for ticker in BOOK_ONLY + BOTH:
        for at in rng.choice(GRID, size=rng.integers(1, len(GRID) + 1), replace=False):
            for _ in range(rng.integers(0, 9)):  # 0 rows: no snapshot at all
                book.append(
                    {
                        "ticker": ticker,
                        "snapshot_ts": at + US * int(rng.random() < 0.1),
                        "side": str(rng.choice(["yes", "no"])),
                        "price": int(rng.choice(CENTS)) / 100,
                        "count": float(rng.choice(SIZES)),
                    }
                )
    if rng.random() < 0.5:  # a row without a time is no snapshot
        book.append({"ticker": "X1", "snapshot_ts": None, "side": "yes", "price": 0.5, "count": 9})
    candles = []
    for ticker in CANDLES_ONLY + BOTH:
        for end in rng.choice(GRID, size=rng.integers(1, len(GRID) + 1), replace=False):
            for _ in range(rng.integers(1, 4)):  # several periods ending together, or repeated
                bid, ask = rng.choice(CENTS + [None], size=2)
                candles.append(
                    {
                        "ticker": ticker,
                        "period_minutes": int(rng.choice([1, 60, 1440])),
                        "end_period_ts": end - H / 2 * int(rng.random() < 0.2),
                        "yes_bid_close": None if bid is None else bid / 100,
                        "yes_ask_close": None if ask is None else ask / 100,
                        "volume": float(rng.choice([0.0, np.nan, 5.0, 30.0, 0.7, 100.0, 1e4])),
                    }
                )
    order = rng.integers(3)
    if order == 1:  # sorted as the simulator writes books: the index skips its sort
        book.sort(key=written_order)
    elif order == 2:  # in any order
        book = [book[i] for i in rng.permutation(len(book))]
        candles = [candles[i] for i in rng.permutation(len(candles))]
    return typed(book, ORDERBOOK), typed(candles, CANDLES)


def query_times() -> list[pd.Timestamp]:
    at = [GRID[0] - H, GRID[-1] + H]
    for t in GRID:
        at += [t - H / 2, t - US, t - NS, t, t + NS, t + US]
    return at


def assert_same_quotes(
    book: pd.DataFrame,
    candles: pd.DataFrame,
    tickers: list[str],
    times: list[pd.Timestamp],
    fill_share: float = 1.0,
    volume_share: float = 0.1,
    level_tickers: list[str] | None = None,
    max_age: float | None = None,
) -> None:
    known = sorted(set(book["ticker"]) | set(candles["ticker"]))
    reference = ReferenceQuotes(book, candles, fill_share, volume_share, max_age)
    index = QuoteIndex(book, candles, fill_share, volume_share, max_age)
    exchange = SimulatedKalshiExchange(
        book, candles, markets(known), SERIES, 0.07, fill_share, volume_share, 0, max_age
    )
    for ts in times:
        got = index.top(tickers, ts)
        pd.testing.assert_frame_equal(got, reference.top(tickers, ts)[QUOTE_COLUMNS])
        pd.testing.assert_frame_equal(got, exchange.quotes(tickers, ts)[QUOTE_COLUMNS])
    for ticker in dict.fromkeys(tickers if level_tickers is None else level_tickers):
        for ts in times:
            for side in ("yes", "no"):
                got = index.levels(ticker, ts.value, side)
                assert got == reference.levels(ticker, ts.value, side), (ticker, ts, side)
        got = index.times(ticker)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, reference.times(ticker))


@pytest.mark.parametrize("seed", range(24))
def test_random_books_and_candles_quote_as_the_exchange(seed):
    book, candles = random_tables(seed)
    rng = np.random.default_rng(1000 + seed)
    tickers = [str(t) for t in rng.permutation(KNOWN + UNKNOWN)]
    tickers += [str(t) for t in rng.choice(tickers, size=3)]  # a ticker asked twice
    # 0.29 x 100 = 28.999999999999996: capacities are floored with the exchange's slack
    fill_share, volume_share = rng.choice([1.0, 0.5, 0.29]), rng.choice([1.0, 0.1, 0.29])
    # any age, or ages that drop some quotes: an hour (the grid's step) exactly, or between
    max_age = [None, 1.0, 0.5, 2.25][seed % 4]
    assert_same_quotes(
        book, candles, tickers, query_times(), fill_share, volume_share, None, max_age
    )


def test_the_random_tables_cover_the_cases():
    """The generator makes what the comparison above is meant to exercise: both sources, a
    candle fresher than a snapshot and a snapshot fresher than a candle, quotes too old."""
    book, candles = random_tables(0)
    ex = SimulatedKalshiExchange(book, candles, markets(KNOWN), SERIES, 0.07, 1.0, 0.1)
    aged = SimulatedKalshiExchange(book, candles, markets(KNOWN), SERIES, 0.07, 1.0, 0.1, 0, 0.5)
    sources, fresher, dropped = set(), set(), 0
    for ts in query_times():
        q = ex.quotes(BOTH, ts)
        sources |= set(ex.quotes(KNOWN + UNKNOWN, ts)["source"].dropna())
        for ticker in BOTH:
            book_at = book[(book["ticker"] == ticker) & (book["snapshot_ts"] <= ts)]
            candle_at = candles[(candles["ticker"] == ticker) & (candles["end_period_ts"] <= ts)]
            if len(book_at) and len(candle_at):
                fresher.add(q.loc[ticker, "source"])
        dropped += int((q["quote_ts"].notna() & aged.quotes(BOTH, ts)["quote_ts"].isna()).sum())
    assert sources == {"book", "candle"}
    assert fresher == {"book", "candle"}  # markets with both: each source quoted sometimes
    assert dropped > 0
    assert book.duplicated(["ticker", "snapshot_ts", "side", "price"]).any()
    assert candles.duplicated(["ticker", "end_period_ts"]).any()
    assert book.groupby("snapshot_ts")["ticker"].nunique().max() > 1


def test_asking_for_no_tickers_or_only_unknown_ones():
    book, candles = random_tables(1)
    assert_same_quotes(book, candles, [], query_times()[:3], level_tickers=UNKNOWN)
    assert_same_quotes(book, candles, UNKNOWN, query_times()[:3])
    assert QuoteIndex(book, candles, 1.0, 0.1).levels("ZZ", T0.value, "yes") is None


def test_empty_tables():
    book, candles = random_tables(2)
    empty_book = ORDERBOOK.empty_table().to_pandas()
    empty_candles = CANDLES.empty_table().to_pandas()
    times = query_times()[::5]
    assert_same_quotes(empty_book, candles, KNOWN + UNKNOWN, times)
    assert_same_quotes(book, empty_candles, KNOWN + UNKNOWN, times)
    assert_same_quotes(empty_book, empty_candles, KNOWN + UNKNOWN, times)


def test_a_book_side_without_bids_and_a_snapshot_with_no_usable_level():
    rows = [
        {"ticker": "A", "snapshot_ts": T0, "side": "yes", "price": 0.4, "count": 2.0},
        {"ticker": "A", "snapshot_ts": T0 + H, "side": "no", "price": 0.4, "count": 0.0},
        {"ticker": "A", "snapshot_ts": T0 + 2 * H, "side": "no", "price": 0.3, "count": 0.1},
        {"ticker": "A", "snapshot_ts": T0 + 2 * H, "side": "no", "price": 0.3, "count": 0.2},
    ]
    book = typed(rows, ORDERBOOK)
    candles = CANDLES.empty_table().to_pandas()
    assert_same_quotes(book, candles, ["A"], [T0, T0 + H, T0 + 2 * H])
    index = QuoteIndex(book, candles, 1.0, 0.1)
    assert index.n_snapshots == 2  # the one with a zero size only is no snapshot
    q = index.top(["A"], T0 + H).loc["A"]
    assert (q["quote_ts"], q["yes_bid"], q["no_ask"]) == (T0, 40, 60)
    assert pd.isna(q["no_bid"]) and pd.isna(q["yes_ask"]) and pd.isna(q["no_bid_size"])
    # 0.1 + 0.2 in floats, as the exchange sums it
    assert index.top(["A"], T0 + 2 * H).loc["A", "no_bid_size"] == 0.1 + 0.2


def test_levels_are_best_first_with_their_keys_and_capacities():
    rows = [
        {"ticker": "A", "snapshot_ts": T0, "side": side, "price": p, "count": n}
        for side, p, n in [("no", 0.50, 3.0), ("no", 0.55, 4.0), ("yes", 0.42, 5.0)]
    ]
    index = QuoteIndex(typed(rows, ORDERBOOK), CANDLES.empty_table().to_pandas(), 0.5, 0.1)
    assert index.levels("A", (T0 + H).value, "no") == (
        "book",
        T0.value,
        [(55, ("A", "book", 0, "no", 55), 2), (50, ("A", "book", 0, "no", 50), 1)],
    )
    assert index.levels("A", (T0 - NS).value, "no") is None
    np.testing.assert_array_equal(index.times("A"), [T0.value])


def test_the_shortest_candle_quotes_at_a_tie():
    rows = [
        {"ticker": "A", "period_minutes": p, "end_period_ts": T0, "yes_bid_close": b,
         "yes_ask_close": b + 0.05, "volume": 100.0}
        for p, b in [(60, 0.30), (1, 0.20), (1440, 0.40)]
    ]  # fmt: skip
    index = QuoteIndex(ORDERBOOK.empty_table().to_pandas(), typed(rows, CANDLES), 1.0, 0.1)
    q = index.top(["A"], T0).loc["A"]
    assert (q["source"], q["yes_bid"], q["yes_ask"], q["yes_bid_size"]) == ("candle", 20, 25, 10)
    assert index.levels("A", T0.value, "no") == ("candle", T0.value, [(75, ("A", "candle", 0), 10)])
    assert index.n_candles == 1 and index.n_candle_markets == 1 and index.n_book_markets == 0


# --- validation: the exchange's errors ----------------------------------------------------------


def build_error(book: pd.DataFrame, candles: pd.DataFrame, shares=(1.0, 0.1)) -> tuple[type, str]:
    """The error QuoteIndex raises, checked to be the reference's (type and message)."""
    with pytest.raises((DataError, ValueError)) as ours:
        QuoteIndex(book, candles, *shares)
    with pytest.raises((DataError, ValueError)) as theirs:
        ReferenceQuotes(book, candles, *shares)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
    return type(ours.value), str(ours.value)


def test_categorical_columns_as_the_backtest_reads_them_give_the_same_index():
    book, candles = random_tables(4)
    plain = QuoteIndex(book, candles, 0.5, 0.1)
    # an unused category is no error; the codes, not the labels, are compared
    side = pd.Categorical(book["side"], categories=["no", "maybe", "yes"])
    as_read = book.assign(side=side, ticker=book["ticker"].astype("category"))
    categorical = QuoteIndex(as_read, candles.astype({"ticker": "category"}), 0.5, 0.1)
    tickers = sorted(set(book["ticker"]))
    for ts in sorted(set(book["snapshot_ts"]))[::3]:
        pd.testing.assert_frame_equal(categorical.top(tickers, ts), plain.top(tickers, ts))
        for t in tickers:
            for book_side in ("yes", "no"):
                assert categorical.levels(t, ts.value, book_side) == plain.levels(
                    t, ts.value, book_side
                )


def test_invalid_tables_raise_the_exchanges_errors():
    book, candles = random_tables(3)
    kind, message = build_error(book.drop(columns=["count", "side"]), candles)
    assert kind is DataError and "['count', 'side']" in message
    kind, message = build_error(book, candles.drop(columns="volume"))
    assert kind is DataError and "candles table lacks" in message
    bad_side = book.assign(side=book["side"].where(book.index != 3, "YES"))
    assert build_error(bad_side, candles) == (DataError, "orderbook side must be yes or no")
    missing_side = book.assign(side=book["side"].where(book.index != 3, None))
    assert build_error(missing_side, candles)[0] is DataError
    for bad in (bad_side, missing_side):  # as the backtest reads them: categorical sides
        as_read = bad.astype({"side": "category", "ticker": "category"})
        with pytest.raises(DataError, match="^orderbook side must be yes or no$"):
            QuoteIndex(as_read, candles, 1.0, 0.1)
    subpenny = book.assign(price=book["price"].where(book.index != 5, 0.425))
    kind, message = build_error(subpenny, candles)
    assert kind is DataError and "orderbook prices off the one-cent grid" in message
    assert book["ticker"].iloc[5] in message
    subpenny = candles.assign(
        yes_ask_close=candles["yes_ask_close"].where(candles.index != 0, 0.5001)
    )
    kind, message = build_error(book, subpenny)
    assert kind is DataError and "candles prices off the one-cent grid" in message
    assert build_error(book, candles, (0.0, 0.1))[0] is ValueError
    assert build_error(book, candles, (1.0, 1.5))[0] is ValueError


def test_an_unused_side_category_is_not_an_error():
    book, candles = random_tables(4)
    tickers = sorted(set(book["ticker"]))
    plain = QuoteIndex(book, candles, 1.0, 0.1)
    sides = pd.Categorical(book["side"], categories=["no", "maybe", "yes"])  # "maybe": unused
    odd = QuoteIndex(book.assign(side=sides), candles, 1.0, 0.1)
    for ts in sorted(set(book["snapshot_ts"]))[::4]:
        pd.testing.assert_frame_equal(odd.top(tickers, ts), plain.top(tickers, ts))


def test_book_prices_and_capacities_are_the_same_whatever_the_chunk():
    """The build converts millions of rows a chunk at a time: chunk edges change nothing, and an
    off-grid price in a later chunk is still found and named."""
    rng = np.random.default_rng(5)
    dollars = pd.Series(np.append(rng.integers(-2, 103, 1000) / 100.0, np.nan))
    tickers = pd.Series([f"M{k % 7}" for k in range(len(dollars))])
    whole = _level_cents(dollars, tickers, chunk=len(dollars))
    expected = np.where((dollars >= 0.01) & (dollars <= 0.99), np.rint(dollars * 100), 0)
    np.testing.assert_array_equal(whole, expected.astype(np.int8))
    np.testing.assert_array_equal(_level_cents(dollars, tickers, chunk=7), whole)
    with pytest.raises(DataError, match=r"orderbook prices off the one-cent grid.*\['M1'\]"):
        _level_cents(dollars.where(dollars.index != 995, 0.425), tickers, chunk=7)

    size = rng.integers(1, 40_000, 1000) + rng.random(1000).round(1)
    for share in (1.0, 0.3):
        capacity = _capacity(size, share, chunk=7)
        np.testing.assert_array_equal(capacity, np.floor(share * size + 1e-9))
        assert capacity.dtype == (np.int16 if share == 0.3 else np.int32)


# --- the simulator's data -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default simulator, small, with hourly candles (they quote before the first book)."""
    overrides = [
        "data.synthetic.n_markets=40",
        "data.start=2025-01-01",
        "data.end=2025-02-20",
        "data.hourly_candles=true",
    ]
    data = params_from_dict(compose(overrides, ROOT / "conf")).data
    raw, tables = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("parquet")
    write_synthetic_raw(data, raw)
    write_tables(raw, tables)
    return read_table("orderbook", tables), read_table("candles", tables)


def test_the_simulators_data_quotes_as_the_exchange(simulated):
    book, candles = simulated
    daily = candles[candles["period_minutes"] == 1440]
    decisions = sorted(daily["end_period_ts"].unique())
    tickers = sorted(set(book["ticker"]) | set(candles["ticker"]))
    # every decision time, and a few hours later (between snapshots, after hourly candles)
    times = [pd.Timestamp(t) + dt for t in decisions for dt in (pd.Timedelta(0), 3 * H + NS)]
    rng = np.random.default_rng(0)
    sample = [str(t) for t in rng.choice(tickers, size=8, replace=False)]
    assert_same_quotes(book, candles, tickers + UNKNOWN, times, 0.3, 0.1, level_tickers=sample)
    index = QuoteIndex(book, candles, 0.3, 0.1)
    sources = {s for t in times for s in index.top(tickers, t)["source"].dropna()}
    assert sources == {"book", "candle"}


@pytest.mark.parametrize("seed", range(8))
def test_an_index_built_from_parts_answers_as_one_built_from_the_whole_tables(seed):
    """QuoteIndex.from_parts (the backtest reads a partition at a time) on the tables cut
    anywhere, a market split between parts, a part empty, each read as categoricals: the very
    answers of the index of the whole tables."""
    book, candles = random_tables(seed)
    rng = np.random.default_rng(2000 + seed)
    fill_share, volume_share = rng.choice([1.0, 0.5, 0.29]), rng.choice([1.0, 0.1, 0.29])
    max_age = [None, 1.0][seed % 2]

    def cut(table: pd.DataFrame) -> list[pd.DataFrame]:
        at = sorted(rng.integers(0, len(table) + 1, size=3))  # repeated cuts: empty parts
        bounds = [0, *at, len(table)]
        parts = [table.iloc[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        return [p.astype({"ticker": "category"}) for p in parts]

    whole = QuoteIndex(book, candles, fill_share, volume_share, max_age)
    parts = QuoteIndex.from_parts(cut(book), cut(candles), fill_share, volume_share, max_age)
    tickers = KNOWN + UNKNOWN
    for ts in query_times():
        pd.testing.assert_frame_equal(parts.top(tickers, ts), whole.top(tickers, ts))
        for ticker in tickers:
            for side in ("yes", "no"):
                got = parts.levels(ticker, ts.value, side)
                assert got == whole.levels(ticker, ts.value, side), (ticker, ts, side)
    for ticker in tickers:
        np.testing.assert_array_equal(parts.times(ticker), whole.times(ticker))
    assert (parts.n_snapshots, parts.n_candles, parts.nbytes) == (
        whole.n_snapshots,
        whole.n_candles,
        whole.nbytes,
    )


def test_an_index_of_no_parts_is_empty():
    index = QuoteIndex.from_parts([], [], 1.0, 0.1)
    assert (index.n_snapshots, index.n_candles, index.n_book_markets) == (0, 0, 0)
    assert index.top(["A"], T0)["source"].isna().all()
