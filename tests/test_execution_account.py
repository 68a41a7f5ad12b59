"""Account: integer-cent cash that never goes negative, settlement, marks at the bid."""

import numpy as np
import pandas as pd
import pytest

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
    assert acct.event_basis_cents("E") == 402


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
