"""Account: integer-cent cash that never goes negative, settlement, marks at the bid."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_lab.execution.account import KalshiAccount, OverdraftError
from kalshi_lab.execution.decision import Fill

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def fill(side="yes", action="buy", count=10, price=40, fee=2, ticker="A") -> Fill:
    return Fill(T0, T0, ticker, side, action, count, count * price, fee, "book")


def quotes(yes_bid: float, no_bid: float, ticker: str = "A") -> pd.DataFrame:
    return pd.DataFrame({"yes_bid": [yes_bid], "no_bid": [no_bid]}, index=[ticker])


def test_buy_pays_cost_and_fee_and_opens_a_position():
    acct = KalshiAccount(1000)
    acct.apply(fill(), "E")
    pos = acct.positions["A"]
    assert acct.cash_cents == 1000 - 400 - 2 and acct.fees_paid_cents == 2
    assert (pos.contracts, pos.cost_cents, pos.fees_cents, pos.basis_cents) == (10, 400, 2, 402)
    assert acct.equity_cents == 598 + 400  # marked at the fill price until quoted


def test_cash_never_goes_negative():
    acct = KalshiAccount(401)
    with pytest.raises(OverdraftError):
        acct.apply(fill(), "E")
    assert acct.cash_cents == 401 and not acct.positions


def test_never_both_sides_and_never_short():
    acct = KalshiAccount(10_000)
    acct.apply(fill(), "E")
    with pytest.raises(ValueError, match="holding yes"):
        acct.apply(fill(side="no"), "E")
    with pytest.raises(ValueError, match="not held"):
        acct.apply(fill(action="sell", count=11), "E")


@pytest.mark.parametrize(("side", "result", "payout"), [("yes", "yes", 1000), ("no", "yes", 0)])
def test_settlement_pays_100_cents_per_winning_contract(side, result, payout):
    acct = KalshiAccount(1000)
    acct.apply(fill(side=side), "E")
    assert acct.settle("A", result, T0)
    assert acct.cash_cents == 598 + payout and not acct.positions
    closed = acct.closed[0]
    assert closed.how == "settled" and closed.pnl_cents == payout - 402
    assert not acct.settle("A", result, T0)  # nothing held any more


def test_void_returns_the_price_paid():
    acct = KalshiAccount(1000)
    acct.apply(fill(), "E")
    acct.settle("A", "void", T0)
    assert acct.cash_cents == 998 and acct.closed[0].pnl_cents == -2


def test_mark_at_the_bid_of_the_held_side_not_the_mid():
    acct = KalshiAccount(10_000)
    acct.apply(fill(side="no", price=50), "E")
    acct.mark(quotes(yes_bid=45, no_bid=30))  # NO bid 30, NO ask 55, mid 42.5
    assert acct.positions_value_cents == 10 * 30
    acct.mark(quotes(yes_bid=45, no_bid=np.nan))  # no NO bid: keep the last mark
    assert acct.positions_value_cents == 10 * 30
    acct.mark(quotes(yes_bid=45, no_bid=31, ticker="B"))  # no quote for A
    assert acct.positions_value_cents == 10 * 30


def test_partial_sell_releases_basis_pro_rata_and_realizes_pnl():
    acct = KalshiAccount(10_000)
    acct.apply(fill(count=10, price=40, fee=3), "E")
    acct.apply(fill(action="sell", count=4, price=60, fee=1), "E")
    pos = acct.positions["A"]
    assert (pos.contracts, pos.cost_cents, pos.fees_cents) == (6, 240, 2)
    assert acct.realized_pnl_cents == 240 - 1 - 160 - 1
    acct.apply(fill(action="sell", count=6, price=30, fee=1), "E")
    assert not acct.positions
    assert acct.closed[0].how == "sold"
    assert acct.closed[0].pnl_cents == acct.realized_pnl_cents == 78 + (180 - 1 - 240 - 2)
    assert acct.cash_cents == 10_000 + acct.realized_pnl_cents


# --- the ledger identity, under any sequence of events ---------------------------------------

TICKERS = ("A", "B", "C")
events = st.lists(
    st.one_of(
        st.tuples(
            st.just("buy"),
            st.sampled_from(TICKERS),
            st.sampled_from(("yes", "no")),
            st.integers(1, 50),  # contracts
            st.integers(1, 99),  # price, cents
            st.integers(0, 9),  # fee, cents
        ),
        st.tuples(
            st.just("sell"),
            st.sampled_from(TICKERS),
            st.integers(1, 60),
            st.integers(1, 99),
            st.integers(0, 9),
        ),
        st.tuples(
            st.just("settle"), st.sampled_from(TICKERS), st.sampled_from(("yes", "no", "void"))
        ),
        st.tuples(
            st.just("mark"), st.sampled_from(TICKERS), st.integers(0, 100), st.integers(0, 100)
        ),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20_000), events)
def test_the_ledger_identity_holds_after_every_event(initial, sequence):
    acct = KalshiAccount(initial)
    for event in sequence:
        kind, ticker = event[0], event[1]
        held = acct.positions.get(ticker)
        try:
            if kind == "buy":
                _, _, side, count, price, fee = event
                acct.apply(fill(side=side, count=count, price=price, fee=fee, ticker=ticker), "E")
            elif kind == "sell" and held is not None:
                _, _, count, price, fee = event
                count = min(count, held.contracts)
                acct.apply(
                    fill(
                        side=held.side,
                        action="sell",
                        count=count,
                        price=price,
                        fee=fee,
                        ticker=ticker,
                    ),
                    "E",
                )
            elif kind == "settle":
                acct.settle(ticker, event[2], T0)
            elif kind == "mark":
                acct.mark(quotes(event[2], event[3], ticker))
        except (OverdraftError, ValueError):
            pass  # refused events change nothing (checked below like any other)
        assert acct.cash_cents >= 0
        assert initial + acct.realized_pnl_cents == acct.cash_cents + acct.open_basis_cents
        assert acct.equity_cents == initial + acct.realized_pnl_cents + acct.unrealized_pnl_cents
        assert acct.realized_pnl_cents == sum(c.pnl_cents for c in acct.closed) + sum(
            p.realized_cents for p in acct.positions.values()
        )
    payouts = sum(s.payout_cents for s in acct.settlements)
    assert payouts == sum(s.contracts * 100 for s in acct.settlements if s.result == s.side) + sum(
        s.payout_cents for s in acct.settlements if s.result == "void"
    )


def test_average_cost_and_unrealized_pnl():
    acct = KalshiAccount(10_000)
    acct.apply(fill(count=10, price=40, fee=2), "E")
    acct.apply(fill(count=10, price=50, fee=2), "E")
    pos = acct.positions["A"]
    assert pos.avg_cost_cents == 45
    acct.mark(quotes(60, 38))
    assert pos.unrealized_cents == 20 * 60 - (900 + 4)
    assert acct.unrealized_pnl_cents == pos.unrealized_cents
    acct.settle("A", "yes", T0)
    (settled,) = acct.settlements
    assert (settled.result, settled.contracts, settled.payout_cents) == ("yes", 20, 2000)
