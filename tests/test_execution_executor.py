"""Executors: simple sends once at the decision; TWAP children meet successive snapshots."""

import pandas as pd

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.executor import KalshiExecutor, TWAPExecutor, make_executor
from kalshi_lab.params import BacktestParams

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
SNAPS = [T0 + k * 6 * H for k in range(5)]


def exchange(no_bid_sizes: list[float]) -> SimulatedKalshiExchange:
    """Market A with a YES ask of 45 (NO bid 55) of the given size at each 6-hourly snapshot."""
    rows = [("A", ts, "no", 0.55, size) for ts, size in zip(SNAPS, no_bid_sizes, strict=False)]
    rows += [("A", ts, "yes", 0.40, 100.0) for ts in SNAPS[: len(no_bid_sizes)]]
    book = pd.DataFrame(rows, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    markets = pd.DataFrame({"ticker": ["A"], "series_ticker": ["S"], "close_time": [T0 + 48 * H]})
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    return SimulatedKalshiExchange(book, NO_CANDLES, markets, series, 0.07, 1.0, 0.1)


def decision(count: int, at=T0, **kw) -> PredictionMarketDecision:
    return PredictionMarketDecision(
        at, (ContractOrder("A", "E", "yes", "buy", count, 45, at, **kw),)
    )


def test_simple_sends_once_books_the_fill_and_cancels_the_rest():
    acct = KalshiAccount(100_000)
    (order,) = KalshiExecutor().execute(decision(8), exchange([5, 5]), acct)
    assert (order.filled, order.status) == (5, "partial")
    assert acct.positions["A"].contracts == 5
    assert acct.cash_cents == 100_000 - 5 * 45 - order.fee_cents


def test_buys_are_cut_to_the_cash_the_account_has():
    acct = KalshiAccount(200)  # 4 contracts cost 180 + 7 fee; 5 would cost 225 + 9
    (order,) = KalshiExecutor().execute(decision(10), exchange([50]), acct)
    assert order.filled == 4 and acct.cash_cents == 200 - 180 - order.fee_cents >= 0


def test_twap_children_meet_successive_snapshots_and_carry_the_remainder():
    ex, acct = exchange([1, 5, 5, 5, 5]), KalshiAccount(100_000)
    twap = TWAPExecutor(4)
    (order,) = twap.execute(decision(8), ex, acct)
    # the first child (8 / 4 = 2) meets the T0 book, which has 1 contract
    assert [f.ts for f in order.fills] == [T0] and order.status == "open"
    assert twap.advance(T0 + 5 * H, ex, acct) == []  # nothing due before the next snapshot
    (same,) = twap.advance(T0 + 24 * H, ex, acct)
    assert same is order and order.status == "filled"
    assert [f.ts for f in order.fills] == SNAPS[:4]
    assert [f.quote_ts for f in order.fills] == SNAPS[:4]
    assert [f.count for f in order.fills] == [1, 3, 2, 2]  # ceil(7/3), ceil(4/2), 2


def test_twap_starts_at_the_first_snapshot_at_or_after_the_decision():
    ex, acct = exchange([5, 5, 5]), KalshiAccount(100_000)
    twap = TWAPExecutor(2)
    (order,) = twap.execute(decision(4, at=T0 + H), ex, acct)
    assert order.filled == 0 and order.status == "open"
    twap.advance(T0 + 100 * H, ex, acct)
    assert [f.ts for f in order.fills] == SNAPS[1:3] and order.status == "filled"


def test_twap_without_snapshots_leaves_the_order_unfilled():
    (order,) = TWAPExecutor(3).execute(
        decision(4, at=T0 + 47 * H), exchange([5]), KalshiAccount(10**6)
    )
    assert order.status == "unfilled"


def test_make_executor_by_name():
    params = BacktestParams(1000.0, "twap", 3, 0.07, 1.0, 0.1)
    assert isinstance(make_executor(params), TWAPExecutor)
    assert make_executor(params).slices == 3
    simple = BacktestParams(1000.0, "simple", 3, 0.07, 1.0, 0.1)
    assert isinstance(make_executor(simple), KalshiExecutor)
