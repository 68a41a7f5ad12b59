"""Risk limits hold whatever a strategy decides: contracts and cost basis per market, the
worst-case loss per event from its structure (the sum of the costs where it is not known),
capital deployed (working buys included), the daily loss halt and the kill switch; exits always
pass; refused orders are finished."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_books import BRACKETS, LADDER, NAN, brute_losses, markets, probe_values, structured_event
from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution import (
    BaseMarketStrategy,
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
from kalshi_lab.execution.exposure import EventPayoffs
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


def holding(cash: int, ticker="A", contracts=0, price=40, event="E", side="yes") -> KalshiAccount:
    """An account that started with ``cash`` cents and bought ``contracts`` at ``price``."""
    acct = KalshiAccount(cash)
    if contracts:
        bought(acct, ticker, contracts, price, event, side)
    return acct


def bought(acct: KalshiAccount, ticker: str, contracts: int, price: int, event: str, side="yes"):
    fill = Fill(T0, T0, ticker, side, "buy", contracts, contracts * price, 0, "book")
    acct.apply(fill, event)


def bound(o: ContractOrder) -> int:
    """The most an order may still cost, fees included."""
    return o.cost_bound_cents


def event_basis(acct: KalshiAccount, event: str) -> int:
    """Cost basis held in the event's markets: what an event not learned may lose."""
    return sum(p.basis_cents for p in acct.positions.values() if p.event_ticker == event)


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


# --- per event, not learned: every cost counts as lost -----------------------------------------


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
    room = (acct.equity_cents // 10) - event_basis(acct, "E") - bound(working)
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


# --- per event, from its structure ------------------------------------------------------------


def test_a_range_bet_on_a_ladder_is_capped_by_its_worst_case_not_by_its_cost():
    """YES above 4.0 held; NO at or above 4.2 loses only from 4.2 up, where that YES wins."""
    gate = RiskManager(limits(event=0.10), LADDER)
    acct = holding(100_000, "U-T4.2", 0)
    bought(acct, "U-T4.0", 100, 40, "U")  # 4,000 lost below 4.0; equity 100,000: cap 10,000
    no_high = order("U-T4.2", count=1000, side="no", event="U")
    kept, refused = gate.check(decide(no_high), acct)
    # from 4.2 up the YES wins 10,000 - 4,000: room 10,000 + 6,000 at 40 + the 2 cent fee bound
    assert kept.orders == [no_high] and no_high.count == 16_000 // 42 == 380
    assert no_high.max_cost_cents == 16_000 and dict(gate.reduced) == {EVENT: 1}
    losses, _ = brute_losses(LADDER, probe_values(LADDER), acct.positions.values(), [no_high])
    # the worst case is the cap to within a contract; the two cost 4,000 + 15,960
    assert 10_000 - 42 < losses.max() == 4000 - 10_000 + bound(no_high) <= 10_000
    as_sum = order("U-T4.2", count=1000, side="no", event="U")
    RiskManager(limits(event=0.10)).check(decide(as_sum), acct)  # no markets: the sum
    assert as_sum.count == (10_000 - 4000) // 42 == 142


def test_payoffs_learned_once_serve_many_gates_each_learning_apart():
    """A backtest learns the markets' payoffs once for its runs: a gate given them caps as one
    given the markets does, and what one gate learns later is its own."""
    learned = EventPayoffs(LADDER)
    caps = []
    for gate in (
        RiskManager(limits(event=0.10), payoffs=learned),
        RiskManager(limits(event=0.10), LADDER),
    ):
        acct = holding(100_000, "U-T4.2", 0)
        bought(acct, "U-T4.0", 100, 40, "U")
        no_high = order("U-T4.2", count=1000, side="no", event="U")
        gate.check(decide(no_high), acct)
        caps.append(no_high.count)
    assert caps == [380, 380]
    gate = RiskManager(limits(event=0.10), payoffs=learned)
    gate.learn(markets(("U-T4.0", "U", "custom", NAN, NAN)))  # U now a binary: two states
    assert gate.payoffs.n_states("U") == 2 and learned.n_states("U") == 5


def test_yes_high_and_no_low_on_a_ladder_lose_together_so_they_are_capped_as_their_sum():
    gate = RiskManager(limits(event=0.10), LADDER)
    acct = holding(100_000, "U-T4.2", 100, event="U")  # YES at or above 4.2
    no_low = order("U-T4.0", count=1000, side="no", event="U")
    gate.check(decide(no_low), acct)
    # NO above 4.0 loses above 4.0; between 4.0 and 4.2 the YES loses its 4,000 too
    assert no_low.count == (10_000 - 4000) // 42 == 142


def test_no_on_two_brackets_never_loses_twice():
    gate = RiskManager(limits(event=0.10), BRACKETS)
    acct = holding(100_000, "N-B78.5", 200, side="no", event="N")  # 8,000
    no_b = order("N-B80.5", count=1000, side="no", event="N")
    gate.check(decide(no_b), acct)
    # NO on 80 to 81 loses only there, where the NO on 78 to 79 wins 20,000 - 8,000
    assert no_b.count == (10_000 + 12_000) // 42 == 523


def test_yes_on_two_brackets_loses_both_outside_them():
    gate = RiskManager(limits(event=0.10), BRACKETS)
    acct = holding(100_000, "N-B78.5", 100, event="N")
    yes_b = order("N-B80.5", count=1000, event="N")
    gate.check(decide(yes_b), acct)
    # below 78, from 79 to 80 and above 81 both lose: the sum
    assert yes_b.count == (10_000 - 4000) // 42 == 142


def test_a_binary_is_capped_by_the_loss_of_its_side():
    gate = RiskManager(limits(event=0.10), markets(("R", "RE", None, NAN, NAN)))
    acct = holding(100_000, "R", 100, event="RE")
    more = order("R", count=1000, event="RE")
    gate.check(decide(more), acct)
    assert more.count == (10_000 - 4000) // 42 == 142


def test_other_events_and_markets_not_in_the_table_keep_the_sum_of_costs():
    other = markets(("F-H0", "F", "custom", NAN, NAN), ("F-C25", "F", "custom", NAN, NAN))
    gate = RiskManager(limits(event=0.10), pd.concat([LADDER, other]))
    acct = holding(100_000, "F-H0", 100, side="no", event="F")
    bought(acct, "U-T4.0", 100, 40, "U")
    no_c = order("F-C25", count=1000, side="no", event="F")
    unlisted = order("U-T9.9", count=1000, side="no", event="U")  # of the ladder, not listed
    gate.check(decide(no_c, unlisted), acct)
    assert no_c.count == unlisted.count == (10_000 - 4000) // 42 == 142


def test_a_hedge_passes_when_the_event_is_at_its_cap():
    gate = RiskManager(limits(event=0.10), LADDER)
    acct = holding(100_000, "U-T4.0", 250, event="U")  # 10,000 lost below 4.0: the cap
    hedge = order("U-T4.2", count=100, side="no", event="U")  # loses only where the YES wins
    kept, refused = gate.check(decide(hedge), acct)
    assert kept.orders == [hedge] and hedge.count == 100 and hedge.max_cost_cents is None
    assert not refused and not gate.reduced
    more = order("U-T4.2", count=1, event="U")  # YES at or above 4.2 loses below 4.0 too
    assert gate.check(decide(more), acct)[1] == [more] and dict(gate.refused) == {EVENT: 1}
    as_sum = order("U-T4.2", count=100, side="no", event="U")
    assert RiskManager(limits(event=0.10)).check(decide(as_sum), acct)[1] == [as_sum]


class AllIn(BaseMarketStrategy):
    """A user's strategy: 100,000 contracts of every market, YES and NO in turn."""

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        decision = PredictionMarketDecision(decided_at=current_time)
        for i, (ticker, row) in enumerate(signals.iterrows()):
            side = ("yes", "no")[i % 2]
            decision.add(
                ContractOrder(ticker, row["event_ticker"], side, "buy", 100_000, 60, current_time)
            )
        return decision


def test_the_event_cap_holds_whatever_a_strategy_asks_for_before_and_after_the_fills():
    ladder = markets(*[(f"U-T{x}", "U", "greater", x, NAN) for x in (4.0, 4.2, 4.4, 4.6)])
    tickers = ladder["ticker"].tolist()
    table = ladder.assign(
        series_ticker="S", close_time=T0 + pd.Timedelta(days=10), settlement_ts=pd.NaT, result=None
    )
    book = pd.DataFrame(
        [(t, T0, side, 0.50, 1e6) for t in tickers for side in ("yes", "no")],
        columns=["ticker", "snapshot_ts", "side", "price", "count"],
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    equity = 1_000_000
    ex = SimulatedKalshiExchange(
        book, CANDLES.empty_table().to_pandas(), table, series, 0.07, 1.0, 0.1, equity
    )
    preds = pd.DataFrame(
        {"ticker": tickers, "event_ticker": "U", "as_of": T0, "prob": 0.5, "mid": 0.5}
    )
    sig = build_signals(preds, ex.quotes(tickers, T0), {}, set(), Counter())
    wanted = AllIn().generate_trade_decision(sig, {}, equity / 100, T0)
    acct = KalshiAccount(equity)
    gate = RiskManager(limits(event=0.08), table)
    kept, refused = gate.check(wanted, acct)
    # YES above 4.0 loses up to 4.0, NO above 4.2 above 4.2: each may lose the whole cap;
    # YES above 4.4 and NO above 4.6 would add to states already there
    cap, unit = 80_000, 60 + FEE_BOUND_CENTS
    assert [(o.ticker, o.side, o.count) for o in kept.orders] == [
        ("U-T4.0", "yes", cap // unit),
        ("U-T4.2", "no", cap // unit),
    ]
    assert [o.ticker for o in refused] == ["U-T4.4", "U-T4.6"]
    values = probe_values(ladder)
    worst = brute_losses(ladder, values, buys=kept.orders)[0].max()
    assert cap - unit < worst <= cap < sum(bound(o) for o in kept.orders)
    for o in kept.orders:
        (fill,) = ex.submit(o, T0)
        acct.apply(fill, o.event_ticker)
    assert brute_losses(ladder, values, acct.positions.values())[0].max() <= cap


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
            used = event_basis(acct, event)
            used += sum(bound(o) for o in working if o.event_ticker == event)
            assert used + sum(new) <= event_frac * equity
    if kept.orders:
        deployed = acct.open_basis_cents + sum(bound(o) for o in working)
        assert deployed + sum(bound(o) for o in kept.orders) <= capital_frac * equity


@settings(max_examples=150, deadline=None)
@given(structured_event(), st.floats(0.01, 1.0), st.data())
def test_no_state_a_kept_buy_loses_in_ends_above_the_event_cap(table, event_frac, data):
    """Held positions, working buys and new buys on any ladder or bracket set (and a market of
    the event the table does not list): whatever passes keeps its losing states within the cap."""
    acct = KalshiAccount(300_000)  # cash for any drawn book: 7 markets x 300 contracts x 99 cents
    working, orders = [], []
    for ticker in [*table["ticker"], "E-UNLISTED"]:
        side = data.draw(st.sampled_from(["yes", "no"]))
        held, n_working, n_buy = data.draw(st.tuples(*[st.integers(0, 300)] * 3))
        price = data.draw(st.integers(1, 99))
        if held:
            bought(acct, ticker, held, price, "E", side)
        if n_working:
            working.append(order(ticker, n_working, price, side=side))
        if n_buy:
            orders.append(order(ticker, n_buy, price, side=side))
    equity = acct.equity_cents
    kept, refused = RiskManager(limits(event=event_frac), table).check(
        decide(*orders), acct, working=working
    )
    assert len(kept.orders) + len(refused) == len(orders)
    losses, loses = brute_losses(
        table, probe_values(table), acct.positions.values(), [*working, *kept.orders]
    )
    for o in kept.orders:
        where = loses.get((o.ticker, o.side), np.ones(len(losses), dtype=bool))
        assert losses[where].max() <= event_frac * equity
