"""ContractOrder, Fill and PredictionMarketDecision validate what the user sets and track what the system fills."""

import pandas as pd
import pytest

from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def order(**kw) -> ContractOrder:
    args = dict(
        ticker="A",
        event_ticker="E",
        side="yes",
        action="buy",
        count=10,
        limit_cents=45,
        decided_at=T0,
    )
    return ContractOrder(**(args | kw))


def fill(count: int, cost: int, fee: int = 1) -> Fill:
    return Fill(T0, T0, "A", "yes", "buy", count, cost, fee, "book")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"side": "maybe"}, "side"),
        ({"action": "hold"}, "action"),
        ({"count": 0}, "count"),
        ({"limit_cents": 100}, "limit_cents"),
        ({"limit_cents": 0}, "limit_cents"),
        ({"decided_at": pd.Timestamp("2025-01-01")}, "tz-aware"),
        ({"action": "sell", "max_cost_cents": 100}, "buys only"),
    ],
)
def test_order_validates_what_the_strategy_sets(kw, message):
    with pytest.raises(ValueError, match=message):
        order(**kw)


def test_order_tracks_fills_and_finishes():
    o = order(max_cost_cents=1000)
    o.record(fill(4, 180))
    assert (o.filled, o.remaining, o.cost_cents, o.fee_cents, o.status) == (4, 6, 180, 1, "open")
    assert o.remaining_budget_cents == 1000 - 181
    o.finish()
    assert o.status == "partial" and o.done
    with pytest.raises(ValueError, match="exceeds"):
        order(count=2).record(fill(3, 135))
    empty = order()
    empty.finish()
    assert empty.status == "unfilled"


def test_fill_cannot_use_a_later_quote():
    with pytest.raises(ValueError, match="after"):
        Fill(T0, T0 + pd.Timedelta(hours=1), "A", "yes", "buy", 1, 45, 1, "book")
    assert fill(4, 180).avg_price_cents == 45
    assert fill(4, 180, 7).cash_delta_cents == -187
    assert Fill(T0, T0, "A", "no", "sell", 2, 80, 3, "candle").cash_delta_cents == 77


def test_decision_holds_one_order_per_market_at_its_own_time():
    decision = PredictionMarketDecision([order(), order(ticker="B")], decided_at=T0)
    assert [o.ticker for o in decision] == ["A", "B"] and len(decision) == 2
    with pytest.raises(ValueError, match="one order per market"):
        PredictionMarketDecision([order(), order(side="no")])
    with pytest.raises(ValueError, match="decided at"):
        PredictionMarketDecision([order()], decided_at=T0 + pd.Timedelta(days=1))


def test_an_empty_decision_takes_the_time_of_its_first_order():
    decision = PredictionMarketDecision()  # the design's example starts like this
    assert decision.decided_at is None and len(decision) == 0
    decision.add(order())
    assert decision.decided_at == T0
    with pytest.raises(ValueError, match="one order per market"):
        decision.add(order(action="sell"))


def test_client_order_ids_are_derived_from_the_decision_unless_given():
    assert order().client_order_id == order().client_order_id  # tests/test_execution_order_ids.py
    assert order(client_order_id="mine").client_order_id == "mine"
    assert order(ticker="B").client_order_id != order().client_order_id
