"""Candles on the exchange: recorded history has no books, so candles quote and fill.

A candle is known from its END (``end_period_ts``, inclusive) on; of it and the latest book
snapshot the fresher quotes (the snapshot at a tie), neither when older than
``max_quote_age_hours``; its fills are capped at a share of its traded volume, shared by all
orders against it.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_lab.data.tables import CANDLES, ORDERBOOK
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SimulatedKalshiExchange

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
MINUTE = pd.Timedelta(minutes=1)
US = pd.Timedelta(microseconds=1)
MARKETS = pd.DataFrame(
    {
        "ticker": ["A", "B"],
        "event_ticker": "E",
        "series_ticker": "S",
        "close_time": [T0 + 48 * H, T0 + 48 * H],
        "settlement_ts": pd.NaT,
        "result": None,
    }
)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})


def candle(ticker: str, end: pd.Timestamp, bid: float, ask: float, volume: float, period=60):
    return {
        "ticker": ticker,
        "period_minutes": period,
        "end_period_ts": end,
        "yes_bid_close": bid,
        "yes_ask_close": ask,
        "volume": volume,
    }


def table(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    """Rows typed as the parquet stage writes them (missing columns are null)."""
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def book_row(ticker: str, at: pd.Timestamp, side: str, price: float, count: float) -> dict:
    return {"ticker": ticker, "snapshot_ts": at, "side": side, "price": price, "count": count}


CANDLE_ROWS = [
    candle("A", T0, 0.40, 0.45, 500.0, period=1440),  # a daily candle ending at T0 ...
    candle("A", T0, 0.41, 0.44, 30.0),  # ... and an hourly one: the fresher quote wins the tie
    candle("A", T0 + H, 0.60, 0.62, 1000.0),  # known only from T0 + 1h on
    candle("B", T0 - H, 0.20, 0.25, 100.0),
]
BOOK_ROWS = [  # B has a book from T0 + 2h on: from then the book quotes, not the candles
    book_row("B", T0 + 2 * H, "yes", 0.30, 50.0),
    book_row("B", T0 + 2 * H, "no", 0.65, 50.0),
]


CASH = 10_000_000  # the venue's balance in cents


def exchange(
    candles=CANDLE_ROWS, book=BOOK_ROWS, volume_share=0.1, markets=MARKETS, max_age=None
) -> SimulatedKalshiExchange:
    return SimulatedKalshiExchange(
        table(book, ORDERBOOK),
        table(candles, CANDLES),
        markets,
        SERIES,
        0.07,
        1.0,
        volume_share,
        CASH,
        max_age,
    )


def holding(ex: SimulatedKalshiExchange, holdings: dict[str, str], count: int = 10_000):
    """The venue holds ``count`` contracts of the given side per ticker (bought a day earlier)."""
    for ticker, side in holdings.items():
        before = T0 - 24 * H
        bought = Fill(before, before, ticker, side, "buy", count, 50 * count, 0, "book")
        ex._ledger.apply(bought, "E")
    return ex


def take(ex: SimulatedKalshiExchange, o: ContractOrder, ts: pd.Timestamp) -> Fill | None:
    """The taker fill of an ioc order sent at ts, or None."""
    fills = ex.submit(o, ts)
    return fills[0] if fills else None


def order(ticker="A", side="yes", action="buy", count=10, limit=99, **kw) -> ContractOrder:
    return ContractOrder(ticker, "E", side, action, count, limit, T0, **kw)


def test_the_latest_ended_candle_quotes_a_market_without_a_snapshot():
    q = exchange().quotes(["A", "B"], T0 + H - US).loc["A"]
    assert (q["source"], q["quote_ts"]) == ("candle", T0)  # the hourly candle, not the daily
    assert q[["yes_bid", "no_bid", "yes_ask", "no_ask"]].tolist() == [41, 56, 44, 59]
    assert q["yes_bid_size"] == q["no_bid_size"] == 3  # floor(0.1 x 30 contracts)
    at_end = exchange().quotes(["A"], T0 + H).loc["A"]  # the END is inclusive
    assert (at_end["quote_ts"], at_end["yes_bid"]) == (T0 + H, 60)
    before = exchange().quotes(["A"], T0 - US).loc["A"]
    assert pd.isna(before["quote_ts"]) and pd.isna(before["yes_ask"]) and pd.isna(before["source"])


def test_a_snapshot_fresher_than_the_latest_candle_quotes():
    ex = exchange()
    q = ex.quotes(["B"], T0 + 2 * H - US).loc["B"]
    assert (q["source"], q["yes_bid"]) == ("candle", 20)
    q = ex.quotes(["B"], T0 + 2 * H).loc["B"]
    assert (q["source"], q["quote_ts"], q["yes_bid"], q["yes_ask"]) == ("book", T0 + 2 * H, 30, 35)
    fill = take(ex, order("B", count=5), T0 + 3 * H)
    assert (fill.source, fill.quote_ts, fill.cost_cents) == ("book", T0 + 2 * H, 5 * 35)


def test_a_candle_fresher_than_the_latest_snapshot_quotes_and_a_tie_is_the_snapshot_s():
    later = [
        candle("B", T0 + 2 * H, 0.10, 0.12, 900.0),  # ends with the snapshot: the book quotes
        candle("B", T0 + 3 * H, 0.50, 0.53, 900.0),  # an hour after it: the candle quotes
    ]
    ex = exchange(CANDLE_ROWS + later)
    q = ex.quotes(["B"], T0 + 3 * H - US).loc["B"]
    assert (q["source"], q["quote_ts"], q["yes_bid"]) == ("book", T0 + 2 * H, 30)
    assert take(ex, order("B", count=5), T0 + 2 * H).source == "book"
    q = ex.quotes(["B"], T0 + 3 * H).loc["B"]
    assert (q["source"], q["quote_ts"], q["yes_bid"], q["yes_ask"]) == (
        "candle",
        T0 + 3 * H,
        50,
        53,
    )
    fill = take(ex, order("B", count=5), T0 + 4 * H)
    assert (fill.source, fill.quote_ts, fill.cost_cents) == ("candle", T0 + 3 * H, 5 * 53)


def test_hourly_candles_quote_between_daily_ones():
    """With hourly candles in the table (``data.hourly_candles``) a send in the afternoon is
    quoted by the hour that just ended, not by the day that ended at midnight."""
    days = [candle("A", T0 + h * H, 0.40, 0.45, 5000.0, period=1440) for h in (0, 24)]
    hours = [candle("A", T0 + h * H, 0.40 + h / 100, 0.45 + h / 100, 300.0) for h in range(1, 24)]
    q = exchange(days, book=[]).quotes(["A"], T0 + 15 * H + 20 * MINUTE).loc["A"]
    assert (q["quote_ts"], q["yes_ask"], q["yes_bid_size"]) == (T0, 45, 500)
    ex = exchange(days + hours, book=[])
    q = ex.quotes(["A"], T0 + 15 * H + 20 * MINUTE).loc["A"]
    assert (q["quote_ts"], q["yes_ask"], q["yes_bid_size"]) == (T0 + 15 * H, 60, 30)
    fill = take(ex, order(count=50), T0 + 15 * H + 20 * MINUTE)
    assert (fill.quote_ts, fill.count, fill.cost_cents) == (T0 + 15 * H, 30, 30 * 60)


def test_a_quote_older_than_max_quote_age_hours_is_no_quote_and_fills_nothing():
    ex = exchange(max_age=6.0)  # A's last candle ends at T0 + 1h, B has a book at T0 + 2h
    q = ex.quotes(["A", "B"], T0 + 7 * H).loc["A"]
    assert (q["source"], q["quote_ts"], q["yes_ask"]) == ("candle", T0 + H, 62)  # 6 h: still
    assert take(ex, order(count=1), T0 + 7 * H).quote_ts == T0 + H
    stale = ex.quotes(["A", "B"], T0 + 7 * H + US)
    assert pd.isna(stale.loc["A", "source"]) and pd.isna(stale.loc["A", "yes_ask"])
    assert stale.loc["B", "source"] == "book"  # 5 h old
    assert take(ex, order(count=1), T0 + 7 * H + US) is None
    assert take(ex, order(count=1), T0 - H) is None
    assert ex.unfilled == {
        "the latest book snapshot or candle is older than max_quote_age_hours": 1,
        "no book snapshot or candle at or before the send": 1,
    }
    assert take(exchange(), order(count=1), T0 + 7 * H + US).quote_ts == T0 + H  # any age
    # a stale book does not let an older candle quote either
    assert exchange(max_age=6.0).quotes(["B"], T0 + 8 * H + US).loc["B", "quote_ts"] is pd.NaT


def test_candle_fills_at_the_ask_or_bid_of_their_side_with_the_taker_fee():
    buy_yes = take(exchange(), order(count=2), T0)
    assert (buy_yes.source, buy_yes.quote_ts, buy_yes.count) == ("candle", T0, 2)
    assert buy_yes.cost_cents == 2 * 44  # the YES ask, never the mid
    assert buy_yes.fee_cents == 4  # ceil(0.07 x 2 x 44 x 56 / 100) = ceil(3.45)
    buy_no = take(exchange(), order(side="no", count=2), T0)
    assert buy_no.cost_cents == 2 * 59  # 1 - YES bid
    sell_yes = take(holding(exchange(), {"A": "yes"}), order(action="sell", count=2, limit=1), T0)
    assert sell_yes.cost_cents == 2 * 41  # the YES bid
    sell_no = take(
        holding(exchange(), {"A": "no"}), order(side="no", action="sell", count=2, limit=1), T0
    )
    assert sell_no.cost_cents == 2 * 56  # the NO bid: 1 - YES ask
    assert take(exchange(), order(count=2, limit=43), T0) is None  # the limit stops it


def test_the_volume_cap_is_shared_by_all_orders_against_one_candle():
    ex = exchange()
    assert take(ex, order(count=10), T0).count == 3  # floor(0.1 x 30)
    sell = order(action="sell", count=1, limit=1)  # the other side of the same candle
    assert take(ex, sell, T0 + 30 * MINUTE) is None
    assert ex.unfilled == {"candle: what the candle allowed was taken by earlier orders": 1}
    assert take(ex, order(count=500), T0 + H).count == 100  # the next candle is fresh
    assert take(exchange(volume_share=1.0), order(count=50), T0).count == 30


def test_no_bid_or_no_volume_is_no_fill_and_is_counted():
    ex = exchange([candle("A", T0, 0.0, 1.0, 10.0), candle("B", T0, 0.3, 0.4, 5.0)], book=[])
    q = ex.quotes(["A"], T0).loc["A"]
    assert q[["yes_bid", "no_bid", "yes_ask", "no_ask"]].isna().all()  # 0 and 1: no quote
    assert take(ex, order(count=1), T0) is None
    assert take(ex, order("B", count=1), T0) is None  # floor(0.1 x 5) = 0
    assert take(ex, order("B", count=1), T0 - H) is None
    assert ex.unfilled == {
        "candle: no price on the side to take": 1,
        "candle: under one contract after max_volume_share (no or little volume)": 1,
        "no book snapshot or candle at or before the send": 1,
    }


def test_an_early_close_is_not_known_before_it_happens_and_stops_fills():
    closes_early = MARKETS.assign(close_time=T0 + 30 * MINUTE)
    assert take(exchange(markets=closes_early), order(count=1), T0 + H) is None
    ex = exchange(markets=closes_early)
    take(ex, order(count=1), T0 + H)
    assert ex.unfilled == {"market closed": 1}


def test_max_volume_share_must_be_a_share():
    with pytest.raises(ValueError, match="max_volume_share"):
        exchange(volume_share=0.0)


def _random_market_data(seed: int) -> tuple[list[dict], list[dict]]:
    """Hourly and daily candles of A and B, and 6-hourly books of B from hour 12 on."""
    rng = np.random.default_rng(seed)
    candles, book = [], []
    for ticker in ("A", "B"):
        for hour in range(-3, 40):
            bid = int(rng.integers(5, 90))
            ask = bid + int(rng.integers(1, 8))
            volume = float(rng.integers(0, 300))
            candles.append(candle(ticker, T0 + hour * H, bid / 100, ask / 100, volume))
            if hour % 24 == 0:
                candles.append(candle(ticker, T0 + hour * H, 0.5, 0.55, 4000.0, period=1440))
    for hour in range(12, 40, 6):
        for level in range(3):
            bid = int(rng.integers(5, 45))
            book.append(book_row("B", T0 + hour * H, "yes", (bid + level) / 100, 20.0))
            book.append(book_row("B", T0 + hour * H, "no", (50 - bid + level) / 100, 20.0))
    return candles, book


def _orders_until(ex: SimulatedKalshiExchange, cutoff: pd.Timestamp) -> tuple[list, pd.DataFrame]:
    """Fills of a fixed sequence of orders sent up to ``cutoff``, and the quotes at each send."""
    fills, quotes = [], []
    held = {"A": "yes", "B": "no"}  # YES asks and bids of A, NO asks and bids of B
    holding(ex, held)
    for k, at in enumerate(pd.date_range(T0 - 2 * H, cutoff, freq="50min")):
        action = "sell" if k % 3 == 2 else "buy"
        limit = 99 if action == "buy" else 1
        for ticker, side in held.items():
            fills.append(take(ex, order(ticker, side, action, 40, limit), at))
        quotes.append(ex.quotes(["A", "B"], at).assign(at=at))
    return fills, pd.concat(quotes)


def test_fills_and_quotes_at_t_ignore_every_candle_and_book_after_t():
    candles, book = _random_market_data(seed=11)
    cutoff = T0 + 20 * H + 30 * MINUTE
    fills, quotes = _orders_until(exchange(candles, book), cutoff)
    later = [r for r in candles if r["end_period_ts"] > cutoff]
    altered = [
        {**r, "yes_bid_close": 0.01, "yes_ask_close": 0.02, "volume": 1e6} for r in later[::2]
    ]
    kept = [r for r in candles if r["end_period_ts"] <= cutoff]
    late_book = [r for r in book if r["snapshot_ts"] > cutoff][::2]
    changed_book = [{**r, "price": 0.02, "count": 1e6} for r in late_book] + [
        book_row("A", cutoff + US, "no", 0.98, 1e6)  # A's first book, just after t
    ]
    fills_after, quotes_after = _orders_until(
        exchange(kept + altered, [r for r in book if r["snapshot_ts"] <= cutoff] + changed_book),
        cutoff,
    )
    assert sum(f is not None and f.source == "candle" for f in fills) > 5
    assert sum(f is not None and f.source == "book" for f in fills) > 2
    assert fills_after == fills
    pd.testing.assert_frame_equal(quotes_after, quotes)
