"""Orders are tracked until the venue says they are done: fills listed late are booked in their
order and the account, a venue that keeps an order's outcome waiting blocks its market and
commits its cost, past a bound it stops trading, and a fill of an order nobody placed stops
trading before anything is decided.

The venue is the simulator (its own ledger is what the account is reconciled against) with
what a real venue adds: an answer that lists none of an order's fills, which the following
listings report (``late``), and fills the next listing reports from nowhere (``strangers``).
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.executor import KalshiExecutor, NestedKalshiExecutor, TWAPStrategy
from kalshi_lab.execution.lifecycle import ListingLagError, UnknownFillError
from kalshi_lab.execution.reconcile import ReconciliationError, reconcile
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.strategy import BaseMarketStrategy
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import RiskParams

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
LOOSE = RiskParams(10**9, 1.0, 1.0, 1.0, 1.0, kill_switch=False)


class LateVenue(SimulatedKalshiExchange):
    """The simulator, whose answers to the sends named in ``late`` list none of the fills
    made: the venue lists them ``late[id]`` decision steps later (``resolve``), and calls them
    overdue after ``bound`` steps. ``strangers`` are reported by the next listing."""

    def __init__(self, *args, late: dict[str, int] | None = None, bound: int = 3, **kw):
        super().__init__(*args, **kw)
        self.late = dict(late or {})
        self.bound = bound
        self.held: dict[str, tuple[str, list[Fill], int]] = {}  # id -> (ticker, fills, steps)
        self.strangers: list[Fill] = []

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        fills = super().submit(order, ts)
        if order.client_order_id not in self.late:
            return fills
        self.held[order.client_order_id] = (order.ticker, fills, 0)
        return []

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        out, self.strangers = [*self.strangers, *super().fills(until)], []
        return out

    def unresolved(self) -> dict[str, str]:
        return {key: ticker for key, (ticker, _, _) in self.held.items()}

    def resolve(self, until: pd.Timestamp) -> list[Fill]:
        out = []
        for key, (ticker, fills, steps) in list(self.held.items()):
            if steps + 1 >= self.late[key]:
                out += fills
                del self.held[key]
            else:
                self.held[key] = (ticker, fills, steps + 1)
        return out

    def overdue(self) -> list[str]:
        return [
            f"{key}: {steps} steps"
            for key, (_, _, steps) in self.held.items()
            if steps > self.bound
        ]


def venue(**kw) -> LateVenue:
    """Markets A and B, each with a YES ask of 45 (NO bid 55) x 100 every hour for a day."""
    rows = [
        (t, T0 + k * H, side, price, 100.0)
        for t in ("A", "B")
        for k in range(24)
        for side, price in (("no", 0.55), ("yes", 0.40))
    ]
    book = pd.DataFrame(rows, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    markets = pd.DataFrame(
        {
            "ticker": ["A", "B"],
            "event_ticker": ["EA", "EB"],
            "series_ticker": ["S", "S"],
            "close_time": [T0 + 48 * H] * 2,
            "settlement_ts": [pd.NaT] * 2,
            "result": [None, None],
        }
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    candles = CANDLES.empty_table().to_pandas()
    return LateVenue(book, candles, markets, series, 0.07, 1.0, 0.1, 10**6, **kw)


def buy(count: int, at=T0, ticker: str = "A", limit: int = 45, **kw) -> ContractOrder:
    return ContractOrder(ticker, "E" + ticker, "yes", "buy", count, limit, at, **kw)


class BuyEveryMarket(BaseMarketStrategy):
    """Buys 10 YES in every market it gets a signal of; remembers what it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[list[str]] = []

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        self.shown.append(sorted(signals.index))
        decision = PredictionMarketDecision(decided_at=current_time)
        for ticker in signals.index:
            decision.add(ContractOrder(ticker, "E" + ticker, "yes", "buy", 10, 45, current_time))
        return decision


def predictions(at: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": pd.Series(["A", "B"], dtype=object),
            "event_ticker": pd.Series(["EA", "EB"], dtype=object),
            "as_of": pd.Series([at, at], dtype="datetime64[ns, UTC]"),
            "prob": [0.9, 0.9],
            "mid": [0.45, 0.45],
        }
    )


def trader(
    ex: LateVenue, account: KalshiAccount, executor: KalshiExecutor | None = None
) -> tuple[Trader, BuyEveryMarket]:
    strategy = BuyEveryMarket()
    executor = executor or KalshiExecutor(ex, account)
    return Trader(strategy, RiskManager(LOOSE), executor, ex, account), strategy


def test_fills_listed_after_an_ioc_order_is_done_are_booked_in_it_and_block_its_market_meanwhile():
    late = buy(10, T0)
    ex = venue(late={late.client_order_id: 2})
    account = KalshiAccount(10**6)
    executor = KalshiExecutor(ex, account)
    executor.execute(PredictionMarketDecision([late]))
    # done here (the answer listed nothing), but the venue filled it and has not told us yet
    assert (late.status, late.filled) == ("unfilled", 0)
    assert ex.positions() == {"A": ("yes", 10)} and account.positions == {}
    assert executor.working == [late] and executor.working_tickers() == {"A"}
    assert executor.committed_cents() == late.cost_bound_cents > 0
    reconcile(account, ex, check_cash=False, skip={"A"})  # the others agree meanwhile
    with pytest.raises(ReconciliationError, match="A: ours nothing, exchange 10 YES"):
        reconcile(account, ex)

    t, strategy = trader(ex, account, executor)
    t.step(T0 + H, predictions(T0 + H))  # first step: still not listed, A gets no new order
    assert strategy.shown[-1] == ["B"] and [o.ticker for o in t.orders] == ["B"]
    assert late.filled == 0
    t.step(T0 + 2 * H, predictions(T0 + 2 * H))  # listed now: booked in its order
    assert (late.status, late.filled, len(late.fills)) == ("filled", 10, 1)
    assert strategy.shown[-1] == ["A", "B"]  # A is free again: the step bought 10 more
    assert account.positions["A"].contracts == 20
    assert executor.working == [] and ex.unresolved() == {}
    reconcile(account, ex)  # the account is the venue's again, cash included


def test_a_resting_fill_listed_after_the_time_to_live_cancel_is_booked():
    ex = venue()
    account = KalshiAccount(10**6)
    executor = KalshiExecutor(ex, account, ttl=2 * H)
    order = buy(10, T0, limit=40, time_in_force="gtc")  # below the ask: it rests
    executor.execute(PredictionMarketDecision([order]))
    assert order.status == "open" and order.filled == 0
    executor.advance(T0 + 3 * H)  # cancelled at T0 + 2h
    assert order.status == "unfilled" and executor.working == []
    # the venue lists a maker fill of it that it made before the cancel
    fill = Fill(
        T0 + H, T0 + H, "A", "yes", "buy", 4, 160, 0, "book", order.client_order_id, "maker"
    )
    ex._ledger.apply(fill, "EA")  # the venue's books have it
    ex.strangers = [fill]
    executor.advance(T0 + 4 * H)
    assert (order.status, order.filled, order.fills) == ("partial", 4, [fill])
    reconcile(account, ex)


def test_a_fill_of_an_order_nobody_placed_stops_the_step_before_anything_is_decided():
    ex = venue()
    account = KalshiAccount(10**6)
    t, strategy = trader(ex, account)
    mine = buy(5, T0, ticker="B")
    t.executor.execute(PredictionMarketDecision([mine]))
    # the next listing: a late fill of ours, and one of an order this bot never placed
    theirs = Fill(T0, T0, "A", "yes", "buy", 2, 90, 0, "book", "someone-else")
    ours = dataclasses.replace(
        theirs, ticker="B", count=1, cost_cents=45, order_id=mine.client_order_id
    )
    mine.count += 1  # room for the late one (the venue filled 5 + 1 of 6)
    ex.strangers = [theirs, ours]
    with pytest.raises(UnknownFillError, match=r"buy 2 YES A \(order someone-else\)"):
        t.step(T0 + H, predictions(T0 + H))
    assert strategy.shown == [] and t.orders == []  # nothing decided, nothing sent
    assert mine.filled == 6  # the known fill of the same listing is booked


def test_a_listing_that_lags_past_its_bound_stops_trading():
    late = buy(10, T0)
    ex = venue(late={late.client_order_id: 10}, bound=2)
    account = KalshiAccount(10**6)
    t, _ = trader(ex, account)
    t.executor.execute(PredictionMarketDecision([late]))
    for k in (1, 2):  # tolerated for two steps
        t.step(T0 + k * H, predictions(T0 + k * H))
    with pytest.raises(ListingLagError, match=f"{late.client_order_id}: 3 steps"):
        t.step(T0 + 3 * H, predictions(T0 + 3 * H))


def test_a_child_s_late_fill_reaches_its_parent_and_the_next_child_waits_for_it():
    parent = buy(20, T0)
    child_ids = [f"{parent.client_order_id}-{k}" for k in range(2)]
    ex = venue(late={child_ids[0]: 2})
    account = KalshiAccount(10**6)
    executor = NestedKalshiExecutor(ex, account, TWAPStrategy(2))
    executor.execute(PredictionMarketDecision([parent]))
    assert parent.filled == 0 and ex.unresolved() == {child_ids[0]: "A"}
    assert executor.decision_of(child_ids[0]) == parent.client_order_id
    executor.resolve(T0 + H)  # not listed yet
    executor.advance(T0 + H)  # the second child waits: its size depends on the first's fills
    assert ex.held.keys() == {child_ids[0]} and ex.positions() == {"A": ("yes", 10)}
    # the parent had its last step; the child still counts as working, its market blocked
    assert [o.client_order_id for o in executor.working] == [child_ids[0]]
    assert executor.working_tickers() == {"A"}
    executor.resolve(T0 + 2 * H)  # listed: the child's 10 fills are the parent's
    assert (parent.filled, parent.status) == (10, "partial")
    assert ex.unresolved() == {} and executor.working == []
    reconcile(account, ex)
