"""Risk limits hold whatever a strategy decides; exits always pass; refused orders are finished."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.risk import (
    CAPITAL,
    CONTRACTS,
    DAILY_LOSS,
    FEE_BOUND_CENTS,
    KILL_SWITCH,
    RiskManager,
    cost_bound_cents,
)
from kalshi_lab.params import RiskParams

T0 = pd.Timestamp("2025-03-01 00:00", tz="UTC")
LOOSE = RiskParams(10**9, 1.0, 1.0, kill_switch=False)


def order(ticker="A", count=100, limit=40, action="buy", side="yes", at=T0) -> ContractOrder:
    return ContractOrder(ticker, "E", side, action, count, limit, at)


def decide(*orders: ContractOrder, at=T0) -> PredictionMarketDecision:
    return PredictionMarketDecision(decided_at=at, orders=tuple(orders))


def holding(cash: int, ticker="A", contracts=0, price=40) -> KalshiAccount:
    acct = KalshiAccount(cash)
    if contracts:
        acct.apply(Fill(T0, T0, ticker, "yes", "buy", contracts, contracts * price, 0, "book"), "E")
    return acct


def test_contracts_per_market_count_what_is_held():
    gate = RiskManager(RiskParams(150, 1.0, 1.0, kill_switch=False))
    acct = holding(100_000, contracts=100)
    kept, refused = gate.check(decide(order(count=80), order(ticker="B", count=80)), acct)
    assert [o.count for o in kept.orders] == [50, 80]  # A: 100 held + 50 = 150
    assert not refused and gate.reduced[CONTRACTS] == 1


def test_capital_deployed_keeps_a_cash_reserve():
    gate = RiskManager(RiskParams(10**9, 0.5, 1.0, kill_switch=False))
    acct = holding(10_000)
    (big,) = gate.check(decide(order(count=1000, limit=40)), acct)[0].orders
    # half of 10,000 cents at 42 cents a contract (40 + the fee bound): 119 contracts
    assert big.count == 5000 // (40 + FEE_BOUND_CENTS) and gate.reduced[CAPITAL] == 1


def test_working_buys_count_as_deployed_capital():
    gate = RiskManager(RiskParams(10**9, 0.5, 1.0, kill_switch=False))
    acct = holding(10_000)
    working = order(count=100, limit=40)  # 4,200 cents may still be spent
    kept, refused = gate.check(decide(order(ticker="B", count=100)), acct, working=[working])
    assert kept.orders[0].count == (5000 - 4200) // 42


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (RiskParams(10**9, 1.0, 1.0, kill_switch=True), KILL_SWITCH),
        (RiskParams(10**9, 0.01, 1.0, kill_switch=False), CAPITAL),  # 100 cents: not 1 contract
    ],
)
def test_refused_buys_are_finished_and_sells_always_pass(params, reason):
    gate = RiskManager(params)
    acct = holding(10_000, contracts=5)
    buy, sell = order(ticker="B", count=10), order(count=5, action="sell", limit=30)
    kept, refused = gate.check(decide(buy, sell), acct)
    assert kept.orders == (sell,) and refused == [buy]
    assert buy.done and buy.status == "unfilled" and gate.refused[reason] == 1


def test_a_daily_loss_halts_buys_until_the_next_utc_day():
    gate = RiskManager(RiskParams(10**9, 1.0, 0.05, kill_switch=False))
    acct = holding(10_000, contracts=100, price=40)  # 6,000 cash + 100 contracts
    acct.mark(pd.DataFrame({"yes_bid": [40.0], "no_bid": [55.0]}, index=["A"]))
    assert gate.check(decide(order(ticker="B", count=1)), acct)[0].orders  # day opens at 10,000
    acct.mark(pd.DataFrame({"yes_bid": [34.0], "no_bid": [60.0]}, index=["A"]))  # 9,400: -6 %
    later = T0 + pd.Timedelta(hours=6)
    kept, refused = gate.check(decide(order(ticker="B", count=1, at=later), at=later), acct)
    assert not kept.orders and gate.refused[DAILY_LOSS] == 1
    acct.mark(pd.DataFrame({"yes_bid": [40.0], "no_bid": [55.0]}, index=["A"]))  # recovered
    evening = T0 + pd.Timedelta(hours=20)
    assert not gate.check(decide(order(ticker="B", count=1, at=evening), at=evening), acct)[
        0
    ].orders
    tomorrow = T0 + pd.Timedelta(days=1)
    assert gate.check(decide(order(ticker="B", count=1, at=tomorrow), at=tomorrow), acct)[0].orders


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 500),  # max contracts per market
    st.floats(0.05, 1.0),  # max capital share
    st.integers(0, 200),  # contracts held in A
    st.lists(
        st.tuples(st.sampled_from("ABC"), st.integers(1, 400), st.integers(1, 99)),
        max_size=3,
        unique_by=lambda b: b[0],
    ),
)
def test_limits_hold_for_any_decision(max_contracts, capital_frac, held, buys):
    params = RiskParams(max_contracts, capital_frac, 1.0, kill_switch=False)
    acct = holding(50_000, contracts=held)
    orders = [order(ticker=t, count=n, limit=p) for t, n, p in buys]
    kept, refused = RiskManager(params).check(decide(*orders), acct)
    per_market = {t: acct.positions[t].contracts if t in acct.positions else 0 for t in "ABC"}
    for o in kept.orders:
        per_market[o.ticker] += o.count
        assert o.count >= 1
    assert all(n <= max(max_contracts, held if t == "A" else 0) for t, n in per_market.items())
    deployed = acct.open_basis_cents + sum(cost_bound_cents(o) for o in kept.orders)
    assert deployed <= max(capital_frac * acct.equity_cents, acct.open_basis_cents) + 1e-9
    assert len(kept.orders) + len(refused) == len(orders)
