"""Executors: own order lifecycles; simple (immediate-or-cancel or resting with a time-to-live)
and nested (TWAP children on a fixed inner calendar); none looks ahead."""

import pandas as pd
import pytest

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.executor import KalshiExecutor, NestedKalshiExecutor, TWAPStrategy
from kalshi_lab.execution.factory import make_executor
from kalshi_lab.params import BacktestParams

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
SNAPS = [T0 + k * 6 * H for k in range(5)]


def exchange(no_bid_sizes: list[float], rows: list | None = None) -> SimulatedKalshiExchange:
    """Market A with a YES ask of 45 (NO bid 55) of the given size at each 6-hourly snapshot."""
    if rows is None:
        rows = [("A", ts, "no", 0.55, n) for ts, n in zip(SNAPS, no_bid_sizes, strict=False)]
        rows += [("A", ts, "yes", 0.40, 100.0) for ts in SNAPS[: len(no_bid_sizes)]]
    book = pd.DataFrame(rows, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    markets = pd.DataFrame(
        {
            "ticker": ["A"],
            "event_ticker": ["E"],
            "series_ticker": ["S"],
            "close_time": [T0 + 48 * H],
            "settlement_ts": [pd.NaT],
            "result": [None],
        }
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    return SimulatedKalshiExchange(book, NO_CANDLES, markets, series, 0.07, 1.0, 0.1, 10**7)


def decision(count: int, at=T0, limit: int = 45, **kw) -> PredictionMarketDecision:
    return PredictionMarketDecision([ContractOrder("A", "E", "yes", "buy", count, limit, at, **kw)])


def test_simple_sends_once_books_the_fill_and_cancels_the_rest():
    acct = KalshiAccount(100_000)
    (order,) = KalshiExecutor(exchange([5, 5]), acct).execute(decision(8))
    assert (order.filled, order.status) == (5, "partial")
    assert acct.positions["A"].contracts == 5
    assert acct.cash_cents == 100_000 - 5 * 45 - order.fee_cents


def test_buys_are_cut_to_the_cash_the_account_has():
    acct = KalshiAccount(200)  # 4 contracts cost 180 + 7 fee; 5 would cost 225 + 9
    (order,) = KalshiExecutor(exchange([50]), acct).execute(decision(10))
    assert order.filled == 4 and acct.cash_cents == 200 - 180 - order.fee_cents >= 0


def test_a_time_to_live_rests_the_rest_fills_it_as_maker_and_cancels_it_on_time():
    # the ask is 45 with 2 contracts at T0; at T0 + 6h a NO bid of 58 offers YES at 42, through
    # the resting limit of 45; at T0 + 12h at 40, after the time-to-live
    rows = [
        ("A", T0, "no", 0.55, 2.0),
        ("A", T0 + 6 * H, "no", 0.58, 3.0),
        ("A", T0 + 12 * H, "no", 0.60, 50.0),
    ]
    acct = KalshiAccount(100_000)
    executor = KalshiExecutor(exchange([], rows), acct, ttl=pd.Timedelta(hours=8))
    (order,) = executor.execute(decision(10))
    assert (order.filled, order.status) == (2, "open")
    assert executor.working == [order] and executor.working_tickers() == {"A"}
    assert executor.committed_cents() == 8 * (45 + 2)  # the rest may still cost this
    assert executor.next_time == T0 + 8 * H
    assert executor.advance(T0 + 5 * H) == []  # nothing traded through yet
    (same,) = executor.advance(T0 + 24 * H)
    assert same is order and (order.filled, order.status) == (5, "partial")
    maker = order.fills[1]
    assert (maker.ts, maker.count, maker.cost_cents, maker.liquidity) == (
        T0 + 6 * H,
        3,
        135,
        "maker",
    )
    assert executor.working == [] and executor.next_time is None
    assert acct.positions["A"].contracts == 5  # the T0 + 12h offer came after the cancel


def test_nested_twap_children_follow_the_inner_calendar_and_carry_the_remainder():
    ex, acct = exchange([1, 5, 5, 5, 5]), KalshiAccount(100_000)
    nested = NestedKalshiExecutor(ex, acct, TWAPStrategy(4), step=6 * H)
    (order,) = nested.execute(decision(8))
    # the first child (8 / 4 = 2) meets the T0 book, which has 1 contract
    assert [f.ts for f in order.fills] == [T0] and order.status == "open"
    assert nested.next_time == T0 + 6 * H and nested.working_tickers() == {"A"}
    assert nested.advance(T0 + 5 * H) == []  # nothing due before the next step
    (same,) = nested.advance(T0 + 24 * H)
    assert same is order and order.status == "filled"
    assert [f.ts for f in order.fills] == SNAPS[:4]
    assert [f.count for f in order.fills] == [1, 3, 2, 2]  # ceil(7/3), ceil(4/2), 2
    assert acct.positions["A"].contracts == 8


def test_nested_children_on_an_hourly_calendar_meet_the_book_they_find():
    ex, acct = exchange([3, 5]), KalshiAccount(100_000)
    nested = NestedKalshiExecutor(ex, acct, TWAPStrategy(4))  # hourly by default
    (order,) = nested.execute(decision(8))
    nested.advance(T0 + 24 * H)
    # T0: 2 of the 3 shown; T0 + 1h: the same snapshot has 1 left; + 2h, + 3h: nothing left
    assert [f.count for f in order.fills] == [2, 1] and order.status == "partial"


EXECUTORS = {
    "simple": lambda ex, acct: KalshiExecutor(ex, acct),
    "resting": lambda ex, acct: KalshiExecutor(ex, acct, ttl=pd.Timedelta(hours=20)),
    "nested": lambda ex, acct: NestedKalshiExecutor(ex, acct, TWAPStrategy(6), step=3 * H),
}


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_what_an_executor_does_up_to_t_ignores_everything_after_t(name):
    """Truncation: drop or alter every snapshot after t; the fills up to t do not change."""
    rng = pd.Series(range(40)).sample(frac=1.0, random_state=3).tolist()
    times = [T0 + k * 2 * H for k in range(20)]
    rows = []
    for k, ts in enumerate(times):
        rows += [("A", ts, "no", (50 + rng[k] % 9) / 100, 1.0 + rng[k] % 4)]
        rows += [("A", ts, "yes", 0.30, 10.0)]
    cutoff = T0 + 13 * H
    kept = [r for r in rows if r[1] <= cutoff]
    altered = [("A", ts, "no", 0.90, 1000.0) for ts in times if ts > cutoff][::2]

    def run(book):
        acct = KalshiAccount(100_000)
        executor = EXECUTORS[name](exchange([], book), acct)
        (order,) = executor.execute(decision(40, limit=48))
        executor.advance(cutoff)
        return [(f.ts, f.count, f.cost_cents, f.fee_cents, f.liquidity) for f in order.fills]

    full = run(rows)
    assert full and full == run(kept) == run(kept + altered)
    assert all(f[0] <= cutoff for f in full)


def test_make_executor_by_name():
    def params(executor: str, ttl: float = 0.0) -> BacktestParams:
        return BacktestParams(1000.0, executor, ttl, 3, 30, 0.07, 1.0, 0.1, 24.0, 200, 0, ())

    ex, acct = exchange([5]), KalshiAccount(100)
    nested = make_executor(params("nested"), ex, acct)
    assert isinstance(nested, NestedKalshiExecutor)
    assert (nested.inner_strategy.slices, nested.step) == (3, pd.Timedelta(minutes=30))
    simple = make_executor(params("simple"), ex, acct)
    assert isinstance(simple, KalshiExecutor) and simple.ttl is None
    assert make_executor(params("simple", 2.5), ex, acct).ttl == pd.Timedelta(hours=2.5)
