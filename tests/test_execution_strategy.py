"""Strategies: fee-inclusive edges against the ask, Kelly sizing, caps, exits, one side per market."""

import dataclasses

import pandas as pd
import pytest

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.errors import ParamError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import Fill
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.execution.strategy import (
    DirectionalStrategy,
    EdgeBasedStrategy,
    make_strategy,
)
from kalshi_lab.params import StrategyParams

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only

T0 = pd.Timestamp("2025-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
EQUITY = 1_000_000  # cents
KELLY = StrategyParams("edge_kelly", 0.03, 0.05, 0.10, kelly_fraction=0.5, exit_edge=-0.02)
DIRECTIONAL = StrategyParams("directional", 0.05, 0.05, 0.10, stake_fraction=0.5, holding_days=1)


def exchange(quotes: dict[str, tuple[float, float]], unquoted: tuple[str, ...] = ()):
    """Markets with one deep level per side: ticker -> (best YES bid, best NO bid) in dollars;
    ``unquoted`` markets have neither book nor candle."""
    rows = []
    for t, (yes_bid, no_bid) in quotes.items():
        for ts in (T0, T0 + DAY):
            rows += [(t, ts, "yes", yes_bid, 1e6), (t, ts, "no", no_bid, 1e6)]
    book = pd.DataFrame(rows, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    markets = pd.DataFrame(
        {"ticker": [*quotes, *unquoted], "series_ticker": "S", "close_time": T0 + 10 * DAY}
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    return SimulatedKalshiExchange(book, NO_CANDLES, markets, series, 0.07, 1.0, 0.1)


def signals(probs: dict[str, float], events: dict[str, str] | None = None, mid: float = 0.5):
    events = events or {}
    return pd.DataFrame(
        {
            "ticker": list(probs),
            "event_ticker": [events.get(t, "E" + t) for t in probs],
            "prob": list(probs.values()),
            "mid": mid,
        }
    )


def test_edge_kelly_buys_the_side_with_the_fee_inclusive_edge():
    ex = exchange({"A": (0.38, 0.60), "B": (0.70, 0.28)})  # A: YES ask 40; B: NO ask 30
    d = EdgeBasedStrategy(KELLY).generate_trade_decision(
        T0, signals({"A": 0.6, "B": 0.2}), ex, KalshiAccount(EQUITY)
    )
    by = {o.ticker: o for o in d.orders}
    assert (by["A"].side, by["B"].side) == ("yes", "no")
    # limit: the highest price whose own edge 0.6 - (P + 0.07 P (1 - P)) still beats 0.03
    assert by["A"].limit_cents == 55
    assert all(o.limit_cents >= 40 for o in d.orders)


def test_edge_below_min_edge_or_against_the_ask_trades_nothing():
    ex = exchange({"A": (0.38, 0.60)})
    # p = 0.43: 0.43 - (0.40 + 0.0168) = 0.013 < 0.03 (against the mid 0.39 it would look like 4 pts)
    d = EdgeBasedStrategy(KELLY).generate_trade_decision(
        T0, signals({"A": 0.43}), ex, KalshiAccount(EQUITY)
    )
    assert d.orders == ()


def test_kelly_fraction_changes_the_size():
    ex = exchange({"A": (0.38, 0.60)})
    counts = []
    for kf in (0.25, 0.5):
        params = dataclasses.replace(
            KELLY, kelly_fraction=kf, max_position_frac=1.0, max_event_frac=1.0
        )
        d = EdgeBasedStrategy(params).generate_trade_decision(
            T0, signals({"A": 0.5}), ex, KalshiAccount(EQUITY)
        )
        counts.append(d.orders[0].count)
    # f* = (0.5 - 0.4168) / 0.5832 = 0.1427; stake kf * f* * $10,000 at 41.68 cents a contract
    assert counts == [855, 1711]


def test_caps_per_market_and_event_hold_whatever_the_probability():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.38, 0.60), "D": (0.38, 0.60)})
    sig = signals(
        {"A": 0.99, "B": 0.99, "C": 0.99, "D": 0.99}, events={"A": "E1", "B": "E1", "C": "E1"}
    )
    params = dataclasses.replace(
        KELLY, kelly_fraction=1.0, max_position_frac=0.05, max_event_frac=0.08
    )
    acct = KalshiAccount(EQUITY)
    d = EdgeBasedStrategy(params).generate_trade_decision(T0, sig, ex, acct)
    spend = {o.ticker: o.max_cost_cents for o in d.orders}
    assert all(v <= 0.05 * EQUITY for v in spend.values())
    assert sum(v for t, v in spend.items() if t in "ABC") <= 0.08 * EQUITY
    assert spend["D"] == 0.05 * EQUITY
    for o in d.orders:  # what the exchange fills stays within the budget too
        fill = ex.execute(o, T0)
        assert fill.cost_cents + fill.fee_cents <= o.max_cost_cents


def test_buys_still_being_worked_keep_their_budget_committed():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60)})
    params = dataclasses.replace(
        KELLY, kelly_fraction=1.0, max_position_frac=0.05, max_event_frac=0.08
    )
    strat, acct = EdgeBasedStrategy(params), KalshiAccount(EQUITY)
    (a,) = strat.generate_trade_decision(T0, signals({"A": 0.99}, {"A": "E"}), ex, acct).orders
    # a first TWAP child fills a quarter of A; the rest of its budget is still to be spent
    fill = ex.execute(dataclasses.replace(a, count=a.count // 4, fills=[]), T0)
    acct.apply(fill, "E")
    a.record(fill)
    assert not a.done
    d = strat.generate_trade_decision(T0, signals({"B": 0.99}, {"B": "E"}), ex, acct)
    (b,) = d.orders
    committed = acct.event_basis_cents("E") + a.remaining_budget_cents + b.max_cost_cents
    assert committed <= 0.08 * acct.equity_cents
    assert b.max_cost_cents <= acct.cash_cents - a.remaining_budget_cents


def test_held_position_is_not_rebought_beyond_the_cap_nor_the_other_side_bought():
    ex = exchange({"A": (0.38, 0.60)})
    acct = KalshiAccount(EQUITY)
    acct.apply(Fill(T0, T0, "A", "yes", "buy", 1250, 50_000, 0, "book"), "EA")  # $500 = the 5% cap
    strat = EdgeBasedStrategy(KELLY)
    assert strat.generate_trade_decision(T0, signals({"A": 0.99}), ex, acct).orders == ()
    # the model now favours NO: NO is never bought while YES is held
    d = strat.generate_trade_decision(T0, signals({"A": 0.30}), ex, acct)
    assert all(not (o.action == "buy" and o.side == "no") for o in d.orders)


def test_exit_when_the_edge_at_the_bid_turns():
    ex = exchange({"A": (0.38, 0.60)})  # YES bid 38
    acct = KalshiAccount(EQUITY)
    acct.apply(Fill(T0, T0, "A", "yes", "buy", 100, 4000, 0, "book"), "EA")
    strat = EdgeBasedStrategy(KELLY)
    # hold: 0.40 - (0.38 - fee) = 0.036 > -0.02
    assert strat.generate_trade_decision(T0, signals({"A": 0.40}), ex, acct).orders == ()
    # exit: 0.30 - (0.38 - 0.0165) = -0.0635 < -0.02; sells everything at the bid or lower
    (sell,) = strat.generate_trade_decision(T0, signals({"A": 0.30}), ex, acct).orders
    assert (sell.action, sell.side, sell.count) == ("sell", "yes", 100)
    assert sell.limit_cents <= 38


def test_directional_sides_sizes_and_exits_after_holding_days():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.38, 0.60)})
    acct = KalshiAccount(EQUITY)
    strat = DirectionalStrategy(DIRECTIONAL, "direction")
    d = strat.generate_trade_decision(T0, signals({"A": 0.7, "B": 0.3, "C": 0.52}), ex, acct)
    by = {o.ticker: o for o in d.orders}
    assert set(by) == {"A", "B"} and (by["A"].side, by["B"].side) == ("yes", "no")
    assert (by["A"].limit_cents, by["B"].limit_cents) == (40, 62)  # the best asks
    # stake 0.5 * min(1, 0.2 / 0.5) * 0.05 * $10,000 = $100
    assert by["A"].max_cost_cents == 10_000
    strat.receive(list(d.orders))
    for o in d.orders:
        o.finish()
    strat.receive(list(d.orders))
    acct.apply(Fill(T0, T0, "A", "yes", "buy", 10, 400, 1, "book"), "EA")
    assert all(
        o.ticker != "A"
        for o in strat.generate_trade_decision(T0, signals({"A": 0.9}), ex, acct).orders
    )
    (sell,) = strat.generate_trade_decision(T0 + DAY, signals({}), ex, acct).orders
    assert (sell.action, sell.ticker, sell.limit_cents) == ("sell", "A", 38)


def test_directional_settlement_target_compares_with_the_mid():
    ex = exchange({"A": (0.38, 0.60)})
    strat = DirectionalStrategy(DIRECTIONAL, "settlement")
    d = strat.generate_trade_decision(T0, signals({"A": 0.45}, mid=0.39), ex, KalshiAccount(EQUITY))
    assert d.orders[0].side == "yes"


def test_working_orders_block_new_orders_in_their_market():
    ex = exchange({"A": (0.38, 0.60)})
    strat = EdgeBasedStrategy(KELLY)
    first = strat.generate_trade_decision(T0, signals({"A": 0.6}), ex, KalshiAccount(EQUITY))
    assert (
        strat.generate_trade_decision(T0, signals({"A": 0.6}), ex, KalshiAccount(EQUITY)).orders
        == ()
    )
    first.orders[0].finish()
    strat.receive(list(first.orders))
    assert strat.generate_trade_decision(T0, signals({"A": 0.6}), ex, KalshiAccount(EQUITY)).orders


def test_make_strategy_picks_by_name_and_refuses_kelly_on_direction():
    assert isinstance(make_strategy(KELLY, "settlement"), EdgeBasedStrategy)
    assert isinstance(make_strategy(DIRECTIONAL, "direction"), DirectionalStrategy)
    with pytest.raises(ParamError, match="settlement"):
        make_strategy(KELLY, "direction")


def test_signals_without_an_order_are_counted_by_reason():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.49, 0.49)}, unquoted=("D",))
    strat = EdgeBasedStrategy(KELLY)
    # A trades; B's order is then being worked; C has no edge; D no quote; Z no market
    probs = {"A": 0.6, "C": 0.5, "D": 0.9, "Z": 0.9}
    strat.generate_trade_decision(T0, signals({"B": 0.6}), ex, KalshiAccount(EQUITY))
    d = strat.generate_trade_decision(T0, signals(probs | {"B": 0.6}), ex, KalshiAccount(EQUITY))
    assert [o.ticker for o in d.orders] == ["A"]
    assert strat.n_signals == 6
    assert dict(strat.skipped) == {
        "market closed (or not in the markets table)": 1,
        "an order is still being worked in the market": 1,
        "edge at the ask not above min_edge 0.03": 1,
        "no ask to buy at (no book snapshot or candle quote)": 1,
    }
    poor = EdgeBasedStrategy(KELLY)
    assert (
        poor.generate_trade_decision(T0, signals({"A": 0.6}), ex, KalshiAccount(100)).orders == ()
    )
    assert dict(poor.skipped) == {"under one contract after the position, event and cash caps": 1}


def test_directional_counts_held_markets_and_weak_signals():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60)})
    acct = KalshiAccount(EQUITY)
    acct.apply(Fill(T0, T0, "A", "yes", "buy", 10, 400, 1, "book"), "EA")
    strat = DirectionalStrategy(DIRECTIONAL, "direction")
    assert strat.generate_trade_decision(T0, signals({"A": 0.9, "B": 0.52}), ex, acct).orders == ()
    assert dict(strat.skipped) == {
        "a position is already held in the market": 1,
        "signal not above min_edge 0.05": 1,
    }


# --- exits: judged at the bid, against the close known at the decision ----------------------


def holding_yes(price_cents: int = 40, contracts: int = 100, fee: int = 100) -> KalshiAccount:
    acct = KalshiAccount(EQUITY)
    fill = Fill(T0, T0, "A", "yes", "buy", contracts, contracts * price_cents, fee, "book")
    acct.apply(fill, "EA")  # basis 0.41 a contract
    return acct


@pytest.mark.parametrize(("yes_bid", "sells"), [(0.35, False), (0.34, True), (0.20, True)])
def test_stop_loss_fires_on_the_net_bid_against_the_basis(yes_bid, sells):
    # stop 20 %: exit once bid - fee <= 0.8 x 0.41 = 0.328 (0.35 nets 0.334, 0.34 nets 0.324)
    params = dataclasses.replace(KELLY, stop_loss=0.2, exit_edge=-1.0)
    ex = exchange({"A": (yes_bid, 1 - yes_bid - 0.02)})
    strat = EdgeBasedStrategy(params)
    d = strat.generate_trade_decision(T0, signals({}), ex, holding_yes())  # no signal needed
    assert [(o.action, o.limit_cents) for o in d.orders] == ([("sell", 1)] if sells else [])
    assert dict(strat.exits) == ({"stop loss": 1} if sells else {})


def test_profit_target_is_judged_at_the_bid_not_the_mid():
    params = dataclasses.replace(KELLY, profit_target=0.25, exit_edge=-1.0)  # target net 0.5125
    wide = exchange({"A": (0.50, 0.40)})  # bid 0.50 (net 0.4825), ask 0.60: the mid says +34 %
    assert (
        EdgeBasedStrategy(params)
        .generate_trade_decision(T0, signals({}), wide, holding_yes())
        .orders
        == ()
    )
    ex = exchange({"A": (0.56, 0.40)})
    (sell,) = (
        EdgeBasedStrategy(params).generate_trade_decision(T0, signals({}), ex, holding_yes()).orders
    )
    # walks down the bids only while the target holds: 0.53 nets 0.5126, 0.52 nets 0.5025
    assert (sell.action, sell.count, sell.limit_cents) == ("sell", 100, 53)


def test_time_exit_counts_to_the_close_known_at_the_decision():
    params = dataclasses.replace(KELLY, exit_hours_before_close=4.0, exit_edge=-1.0)
    ex = exchange({"A": (0.38, 0.60)})  # the exchange's close: 10 days away
    strat, acct = EdgeBasedStrategy(params), holding_yes()
    sig = signals({"A": 0.40}).assign(known_close=T0 + pd.Timedelta(hours=10))  # no entry
    assert strat.generate_trade_decision(T0, sig, ex, acct).orders == ()  # 10 h to go
    later = T0 + pd.Timedelta(hours=6, minutes=1)  # 3 h 59 min to go, no new signal
    no_signal = signals({}).assign(known_close=pd.Series(dtype="datetime64[ns, UTC]"))
    (sell,) = strat.generate_trade_decision(later, no_signal, ex, acct).orders
    assert (sell.action, sell.limit_cents, dict(strat.exits)) == ("sell", 1, {"close near": 1})


def test_a_time_exit_without_known_closes_is_refused_clearly():
    from kalshi_lab.errors import DataError

    params = dataclasses.replace(KELLY, exit_hours_before_close=4.0)
    with pytest.raises(DataError, match="known_close"):
        EdgeBasedStrategy(params).generate_trade_decision(
            T0, signals({"A": 0.5}), exchange({"A": (0.38, 0.60)}), holding_yes()
        )
