"""Risk limits hold whatever a strategy decides: contracts and cost basis per market, per event
(working buys included) and overall, the daily loss halt and the kill switch; exits always pass;
refused orders are finished."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution import (
    EdgeBasedStrategy,
    SimulatedKalshiExchange,
    build_signals,
    signal_tickers,
)
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import (
    FEE_BOUND_CENTS,
    ContractOrder,
    Fill,
    PredictionMarketDecision,
)
from kalshi_lab.execution.risk import (
    CAPITAL,
    CONTRACTS,
    DAILY_LOSS,
    EVENT,
    KILL_SWITCH,
    POSITION,
    RiskManager,
)
from kalshi_lab.params import RiskParams

T0 = pd.Timestamp("2025-03-01 00:00", tz="UTC")
BIG = 10**9


def limits(contracts=BIG, position=1.0, event=1.0, capital=1.0, daily_loss=1.0, kill=False):
    return RiskParams(contracts, position, event, capital, daily_loss, kill_switch=kill)


def order(ticker="A", count=100, limit=40, action="buy", side="yes", at=T0, event="E", **kw):
    return ContractOrder(ticker, event, side, action, count, limit, at, **kw)


def decide(*orders: ContractOrder, at=T0) -> PredictionMarketDecision:
    return PredictionMarketDecision(orders=list(orders), decided_at=at)


def holding(cash: int, ticker="A", contracts=0, price=40, event="E") -> KalshiAccount:
    """An account that started with ``cash`` cents and bought ``contracts`` at ``price``."""
    acct = KalshiAccount(cash)
    if contracts:
        fill = Fill(T0, T0, ticker, "yes", "buy", contracts, contracts * price, 0, "book")
        acct.apply(fill, event)
    return acct


def bound(o: ContractOrder) -> int:
    """The most an order may still cost, fees included."""
    return o.cost_bound_cents


# --- per market -------------------------------------------------------------------------------


def test_contracts_per_market_count_what_is_held():
    gate = RiskManager(limits(contracts=150))
    acct = holding(100_000, contracts=100)
    kept, refused = gate.check(decide(order(count=80), order(ticker="B", count=80)), acct)
    assert [o.count for o in kept.orders] == [50, 80]  # A: 100 held + 50 = 150
    assert not refused and dict(gate.reduced) == {CONTRACTS: 1}


def test_cost_basis_per_market_counts_what_is_held():
    gate = RiskManager(limits(position=0.05))
    acct = holding(100_000, contracts=40)  # 1,600 cents in A; equity 100,000: cap 5,000
    a, b = order(count=200, limit=40), order(ticker="B", count=100, limit=40)
    kept, refused = gate.check(decide(a, b), acct)
    # A: (5,000 - 1,600) // (40 + the 2 cent fee bound) = 80; B: 100 x 42 = 4,200 fits
    assert [(o.ticker, o.count) for o in kept.orders] == [("A", 80), ("B", 100)]
    assert a.limit_cents == 40 and 1600 + bound(a) <= 5000
    assert not refused and dict(gate.reduced) == {POSITION: 1}


def test_cost_basis_per_market_counts_buys_being_worked_there():
    gate = RiskManager(limits(position=0.05))
    acct = holding(100_000)
    working = order(count=100, limit=40)  # may still spend 4,200 cents in A
    kept, _ = gate.check(decide(order(count=100, limit=40)), acct, working=[working])
    assert sum(bound(o) for o in kept.orders) + bound(working) <= 5000


# --- per event --------------------------------------------------------------------------------


def test_event_basis_counts_positions_working_buys_and_earlier_buys_of_the_decision():
    gate = RiskManager(limits(event=0.10))
    acct = holding(100_000, ticker="B", contracts=50)  # 2,000 cents in event E; cap 10,000
    working = [
        order(ticker="C", count=50, limit=40),  # 2,100 cents may still be spent in E
        order(ticker="W", count=100, limit=40, event="F"),  # another event
        order(ticker="S", count=100, limit=40, action="sell"),  # sells spend nothing
        order(ticker="X", count=100, limit=40),  # done: spends nothing any more
    ]
    working[-1].finish()
    a, d, f = order(count=100), order(ticker="D", count=100), order(ticker="G", event="F")
    kept, refused = gate.check(decide(a, d, f), acct, working=working)
    # room 10,000 - 2,000 - 2,100 = 5,900: A takes 100 x 42 = 4,200; D the 1,700 left = 40
    assert [(o.ticker, o.count) for o in kept.orders] == [("A", 100), ("D", 40), ("G", 100)]
    assert 2000 + bound(working[0]) + bound(a) + bound(d) <= 10_000
    assert not refused and dict(gate.reduced) == {EVENT: 1}


def test_a_partly_filled_working_buy_counts_its_fills_and_its_remaining_budget():
    gate = RiskManager(limits(event=0.10))
    acct = KalshiAccount(100_000)
    working = order(ticker="C", count=200, limit=40, max_cost_cents=6000)
    fill = Fill(T0, T0, "C", "yes", "buy", 50, 2000, 40, "book")  # a first TWAP child
    acct.apply(fill, "E")
    working.record(fill)
    assert (working.done, bound(working)) == (False, 6000 - 2040)
    (b,) = gate.check(decide(order(ticker="D", count=500)), acct, working=[working])[0].orders
    # equity 99,960 + 2,000 held - 2,040 paid: cap 9,996 - (2,040 held + 3,960 budget) = 3,996
    room = (acct.equity_cents // 10) - acct.event_basis_cents("E") - bound(working)
    assert room == 3996 and b.count == room // (40 + FEE_BOUND_CENTS) == 95


def test_caps_hold_whatever_the_probability_and_fills_stay_within_the_budget():
    """Kelly at 0.99 wants more than the caps allow in every market; the gate cuts each buy."""
    no_bid = 0.60
    markets = pd.DataFrame(
        {
            "ticker": list("ABCD"),
            "event_ticker": ["E1", "E1", "E1", "E2"],
            "series_ticker": "S",
            "close_time": T0 + pd.Timedelta(days=10),
            "settlement_ts": pd.NaT,
            "result": None,
        }
    )
    book = pd.DataFrame(
        [(t, T0, side, p, 1e6) for t in "ABCD" for side, p in (("yes", 0.38), ("no", no_bid))],
        columns=["ticker", "snapshot_ts", "side", "price", "count"],
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    equity = 1_000_000
    ex = SimulatedKalshiExchange(
        book, CANDLES.empty_table().to_pandas(), markets, series, 0.07, 1.0, 0.1, equity
    )
    preds = pd.DataFrame(
        {
            "ticker": list("ABCD"),
            "event_ticker": ["E1", "E1", "E1", "E2"],
            "as_of": T0,
            "prob": 0.99,
            "mid": 0.39,
        }
    )
    sig = build_signals(preds, ex.quotes(signal_tickers(preds, {}), T0), {}, set(), Counter())
    wanted = EdgeBasedStrategy(min_edge=0.03, kelly_fraction=0.1).generate_trade_decision(
        sig, {}, equity / 100, T0
    )
    assert len(wanted) == 4 and all(bound(o) > 0.07 * equity for o in wanted.orders)
    acct = KalshiAccount(equity)
    gate = RiskManager(limits(position=0.05, event=0.08))
    kept, refused = gate.check(wanted, acct)
    spend = {o.ticker: bound(o) for o in kept.orders}
    assert all(v <= 0.05 * equity for v in spend.values())
    assert spend["A"] + spend.get("B", 0) + spend.get("C", 0) <= 0.08 * equity
    # D is alone in its event: cut to the market cap, within one contract of it
    (d,) = [o for o in kept.orders if o.ticker == "D"]
    assert 0.05 * equity - (d.limit_cents + FEE_BOUND_CENTS) < spend["D"] <= 0.05 * equity
    assert gate.reduced[POSITION] >= 1 and gate.reduced[EVENT] >= 1
    for o in kept.orders:  # what the exchange fills stays within the budget too
        (fill,) = ex.submit(o, T0)
        assert fill.cost_cents + fill.fee_cents <= o.max_cost_cents
    assert len(kept.orders) + len(refused) == 4


# --- capital deployed -------------------------------------------------------------------------


def test_capital_deployed_keeps_a_cash_reserve():
    gate = RiskManager(limits(capital=0.5))
    acct = holding(10_000)
    (big,) = gate.check(decide(order(count=1000, limit=40)), acct)[0].orders
    # half of 10,000 cents at 42 cents a contract (40 + the fee bound): 119 contracts
    assert big.count == 5000 // (40 + FEE_BOUND_CENTS) == 119
    assert big.limit_cents == 40 and bound(big) <= 5000
    assert dict(gate.reduced) == {CAPITAL: 1}


def test_capital_counts_open_positions_and_working_buys():
    gate = RiskManager(limits(capital=0.5))
    acct = holding(10_000, contracts=20)  # 800 cents held, equity 10,000
    working = order(ticker="W", count=50, limit=40)  # 2,100 cents may still be spent
    kept, _ = gate.check(decide(order(ticker="B", count=100)), acct, working=[working])
    assert kept.orders[0].count == (5000 - 800 - 2100) // 42 == 50


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (limits(kill=True), KILL_SWITCH),
        (limits(capital=0.01), CAPITAL),  # 100 cents: not 1 contract at 42
        (limits(position=0.004), POSITION),  # 40 cents
        (limits(event=0.004), EVENT),
    ],
)
def test_refused_buys_are_finished_and_sells_always_pass(params, reason):
    gate = RiskManager(params)
    acct = holding(10_000, contracts=5)
    buy, sell = order(ticker="B", count=10), order(count=5, action="sell", limit=30)
    kept, refused = gate.check(decide(buy, sell), acct)
    assert kept.orders == [sell] and refused == [buy] and kept.decided_at == T0
    assert buy.done and buy.status == "unfilled" and dict(gate.refused) == {reason: 1}
    assert sell.count == 5 and not sell.done


def test_a_daily_loss_halts_buys_until_the_next_utc_day():
    gate = RiskManager(limits(daily_loss=0.05))
    acct = holding(10_000, contracts=100, price=40)  # 6,000 cash + 100 contracts
    acct.mark(pd.DataFrame({"yes_bid": [40.0], "no_bid": [55.0]}, index=["A"]))
    assert gate.check(decide(order(ticker="B", count=1)), acct)[0].orders  # day opens at 10,000
    acct.mark(pd.DataFrame({"yes_bid": [35.0], "no_bid": [60.0]}, index=["A"]))  # 9,500: -5 %
    noon = T0 + pd.Timedelta(hours=3)
    assert gate.check(decide(order(ticker="B", count=1, at=noon), at=noon), acct)[0].orders
    acct.mark(pd.DataFrame({"yes_bid": [34.0], "no_bid": [60.0]}, index=["A"]))  # 9,400: -6 %
    later = T0 + pd.Timedelta(hours=6)
    sell = order(count=100, action="sell", limit=30, at=later)
    kept, refused = gate.check(decide(order(ticker="B", count=1, at=later), sell, at=later), acct)
    assert kept.orders == [sell] and dict(gate.refused) == {DAILY_LOSS: 1}
    acct.mark(pd.DataFrame({"yes_bid": [40.0], "no_bid": [55.0]}, index=["A"]))  # recovered
    evening = T0 + pd.Timedelta(hours=20)
    assert not gate.check(decide(order(ticker="B", count=1, at=evening), at=evening), acct)[
        0
    ].orders
    tomorrow = T0 + pd.Timedelta(days=1)
    assert gate.check(decide(order(ticker="B", count=1, at=tomorrow), at=tomorrow), acct)[0].orders


# --- any decision -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 500),  # max contracts per market
    st.floats(0.01, 1.0),  # max position share
    st.floats(0.01, 1.0),  # max event share
    st.floats(0.05, 1.0),  # max capital share
    st.integers(0, 200),  # contracts held in A (event E)
    st.lists(  # buys being worked: market W (event E) or V (event F)
        st.tuples(st.sampled_from("WV"), st.integers(1, 300), st.integers(1, 99)),
        max_size=2,
        unique_by=lambda b: b[0],
    ),
    st.lists(  # the decision's buys: A, B in event E, C in event F
        st.tuples(st.sampled_from("ABC"), st.integers(1, 400), st.integers(1, 99), st.booleans()),
        max_size=3,
        unique_by=lambda b: b[0],
    ),
)
def test_limits_hold_for_any_decision(
    max_contracts, position_frac, event_frac, capital_frac, held, working_buys, buys
):
    events = {"A": "E", "B": "E", "C": "F", "W": "E", "V": "F"}
    acct = holding(50_000, contracts=held)
    working = [order(t, n, p, event=events[t]) for t, n, p in working_buys]
    orders = [
        order(t, n, p, event=events[t], max_cost_cents=n * p if budgeted else None)
        for t, n, p, budgeted in buys
    ]
    params = limits(max_contracts, position_frac, event_frac, capital_frac)
    kept, refused = RiskManager(params).check(decide(*orders), acct, working=working)
    equity = acct.equity_cents
    assert len(kept.orders) + len(refused) == len(orders)
    assert all(o.done and o.status == "unfilled" for o in refused)
    assert all(o.count >= 1 and not o.done for o in kept.orders)
    for o in kept.orders:
        pos = acct.positions.get(o.ticker)
        assert (pos.contracts if pos else 0) + o.count <= max_contracts
        assert (pos.basis_cents if pos else 0) + bound(o) <= position_frac * equity
    for event in ("E", "F"):
        new = [bound(o) for o in kept.orders if o.event_ticker == event]
        if new:
            used = acct.event_basis_cents(event)
            used += sum(bound(o) for o in working if o.event_ticker == event)
            assert used + sum(new) <= event_frac * equity
    if kept.orders:
        deployed = acct.open_basis_cents + sum(bound(o) for o in working)
        assert deployed + sum(bound(o) for o in kept.orders) <= capital_frac * equity
