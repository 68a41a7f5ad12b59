"""Strategies: fee-inclusive edges against the ask, Kelly sizing on the available capital, one side
per market, exits at the bid, directional trades, extension points, building from config, and no
look-ahead. Caps on what may be held are the RiskManager's (tests/test_execution_risk.py)."""

import functools
import math
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.execution import (
    BaseMarketStrategy,
    BasePositionSizer,
    ContractOrder,
    ContractPosition,
    DecisionGenerator,
    DirectionalStrategy,
    EdgeBasedStrategy,
    KalshiAccount,
    KalshiExecutor,
    KellyPositionSizer,
    LadderArbitrageStrategy,
    PredictionMarketDecision,
    RiskManager,
    SimulatedKalshiExchange,
    build_signals,
    build_strategy,
    signal_tickers,
)
from kalshi_lab.execution.signals import (
    DUPLICATE,
    OTHER_STRUCTURE,
    STRUCTURE_COLUMNS,
    check_predictions,
)
from kalshi_lab.execution.strategy import (
    HELD_OPPOSITE,
    NO_ARBITRAGE,
    NO_DEPTH,
    NOT_LADDER,
    ROUNDED,
    SMALL,
    TAKEN,
)
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import RiskParams, StrategyParams

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only
T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
CAPITAL = 10_000.0  # available capital, dollars
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
BOOK_COLUMNS = ["ticker", "snapshot_ts", "side", "price", "count"]
EDGE = "kalshi_lab.execution.EdgeBasedStrategy"
DIRECTIONAL = "kalshi_lab.execution.DirectionalStrategy"


def fee(p: float) -> float:
    """Kalshi's taker fee per contract at p dollars (rate 0.07, before the cent ceiling)."""
    return 0.07 * p * (1 - p)


def markets(tickers, close=T0 + 10 * DAY) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": list(tickers),
            "event_ticker": "E",
            "series_ticker": "S",
            "close_time": close,
            "settlement_ts": pd.NaT,
            "result": None,
        }
    )


def exchange(
    quotes: dict[str, tuple[float, float]], unquoted: tuple[str, ...] = (), cash: int = 0
) -> SimulatedKalshiExchange:
    """Markets with one deep level per side: ticker -> (best YES bid, best NO bid) in dollars, so
    the YES ask is 1 - NO bid and the NO ask 1 - YES bid; ``unquoted`` markets have no quote.

    Without cash the exchange only quotes (nobody trades on it): one is built per set of quotes.
    """
    if cash:
        return _exchange(tuple(quotes.items()), unquoted, cash)
    return _quoting_exchange(tuple(quotes.items()), unquoted)


def _exchange(quotes, unquoted, cash) -> SimulatedKalshiExchange:
    rows = []
    for t, (yes_bid, no_bid) in quotes:
        for ts in (T0, T0 + DAY):
            rows += [(t, ts, "yes", yes_bid, 1e6), (t, ts, "no", no_bid, 1e6)]
    book = pd.DataFrame(rows, columns=BOOK_COLUMNS)
    tickers = [t for t, _ in quotes] + list(unquoted)
    return SimulatedKalshiExchange(book, NO_CANDLES, markets(tickers), SERIES, 0.07, 1.0, 0.1, cash)


@functools.cache
def _quoting_exchange(quotes, unquoted) -> SimulatedKalshiExchange:
    return _exchange(quotes, unquoted, 0)


def predictions(
    probs: dict[str, float], at=T0, mid: float = 0.5, known_close=None, events=None
) -> pd.DataFrame:
    events = events or {}
    out = pd.DataFrame(
        {
            "ticker": pd.Series(list(probs), dtype=object),
            "event_ticker": pd.Series([events.get(t, "E" + t) for t in probs], dtype=object),
            "as_of": pd.Series([at] * len(probs), dtype="datetime64[ns, UTC]"),
            "prob": pd.Series(list(probs.values()), dtype=float),
            "mid": pd.Series([mid] * len(probs), dtype=float),
        }
    )
    if known_close is not None:
        out["known_close"] = pd.Series([known_close] * len(probs), dtype="datetime64[ns, UTC]")
    return out


def signals(ex, probs=None, at=T0, positions=None, working=(), skipped=None, **kw) -> pd.DataFrame:
    """The signals the Trader would build at ``at``."""
    preds, positions = predictions(probs or {}, at=at, **kw), positions or {}
    return build_signals(
        preds,
        ex.quotes(signal_tickers(preds, positions), at),
        positions,
        set(working),
        Counter() if skipped is None else skipped,
    )


def held(ticker="A", side="yes", contracts=100, cost=4000, fees=100, opened=T0) -> dict:
    """A position as the account keeps it: by default 100 YES at 40 cents + 1 cent fee each."""
    pos = ContractPosition(ticker, "E" + ticker, side, opened, contracts, cost, fees)
    return {ticker: pos}


def kelly(**kw) -> EdgeBasedStrategy:
    return EdgeBasedStrategy(**({"min_edge": 0.03, "kelly_fraction": 0.5} | kw))


def rows(decision: PredictionMarketDecision) -> list[tuple]:
    """The decision's orders as comparable values."""
    return [
        (o.ticker, o.event_ticker, o.side, o.action, o.count, o.limit_cents, o.max_cost_cents)
        for o in decision.orders
    ]


# --- entries: edges at the fee-inclusive ask --------------------------------------------------


def test_signals_are_in_dollars_indexed_by_ticker():
    sig = signals(exchange({"A": (0.38, 0.60)}), {"A": 0.6})
    assert list(sig.index) == ["A"]
    assert sig.loc["A", ["yes_bid", "yes_ask", "no_bid", "no_ask"]].tolist() == pytest.approx(
        [0.38, 0.40, 0.60, 0.62]
    )


def test_edge_buys_the_better_side_with_the_highest_limit_whose_edge_beats_min_edge():
    ex = exchange({"A": (0.38, 0.60), "B": (0.70, 0.28)})  # A: YES ask 40; B: NO ask 30
    strat = kelly()
    sig = signals(ex, {"A": 0.6, "B": 0.2})
    cand = strat.generator.candidates(sig, {})
    assert cand.loc["A", "cost"] == pytest.approx(0.40 + fee(0.40))
    assert cand.loc["B", "cost"] == pytest.approx(0.30 + fee(0.30))
    assert cand.loc["B", "edge"] == pytest.approx(0.8 - 0.30 - fee(0.30))
    d = strat.generate_trade_decision(sig, {}, CAPITAL, T0)
    by = {o.ticker: o for o in d.orders}
    assert [(by[t].side, by[t].action) for t in "AB"] == [("yes", "buy"), ("no", "buy")]
    # limits: the highest price whose own edge q - (P + fee(P)) still beats 0.03
    # A: 0.6 - (0.55 + 0.0173) = 0.0327, 0.6 - (0.56 + 0.0172) = 0.0228
    # B (NO, q = 0.8): 0.8 - (0.75 + 0.0131) = 0.0369, 0.8 - (0.76 + 0.0128) = 0.0272
    assert (by["A"].limit_cents, by["B"].limit_cents) == (55, 75)
    assert all(o.decided_at == T0 for o in d.orders) and d.decided_at == T0


@pytest.mark.parametrize(("prob", "trades"), [(0.44, False), (0.45, True)])
def test_the_edge_is_priced_at_the_ask_plus_fee_never_the_mid(prob, trades):
    # YES bid 30, ask 40 (mid 35): 0.44 - (0.40 + 0.0168) = 0.023 does not beat 0.03 although the
    # ask without its fee (0.04) and the mid (0.44 - 0.35 - 0.016 = 0.074) would; 0.45 does
    sig = signals(exchange({"A": (0.30, 0.60)}), {"A": prob}, mid=0.35)
    strat = kelly()
    d = strat.generate_trade_decision(sig, {}, CAPITAL, T0)
    assert [o.side for o in d.orders] == (["yes"] if trades else [])
    assert dict(strat.skipped) == ({} if trades else {"edge at the ask not above min_edge 0.03": 1})


@pytest.mark.parametrize(
    ("kelly_fraction", "capital", "count", "budget"),
    [(0.25, 10_000.0, 855, 35_636), (0.5, 10_000.0, 1711, 71_314), (0.5, 5_000.0, 855, 35_636)],
)
def test_kelly_sizes_on_the_available_capital(kelly_fraction, capital, count, budget):
    # c = 0.40 + 0.0168 = 0.4168, f* = (0.5 - c) / (1 - c) = 0.1427; contracts = floor(kf f* K / c)
    sig = signals(exchange({"A": (0.38, 0.60)}), {"A": 0.5})
    (o,) = kelly(kelly_fraction=kelly_fraction).generate_trade_decision(sig, {}, capital, T0)
    c = 0.40 + fee(0.40)
    assert o.count == count == math.floor(kelly_fraction * (0.5 - c) / (1 - c) * capital / c)
    assert o.max_cost_cents == budget == math.floor(count * c * 100)  # cost + fees, in cents


def test_each_buy_is_sized_on_the_capital_the_earlier_ones_left():
    ex = exchange({"A": (0.38, 0.60), "B": (0.70, 0.28)})
    d = kelly().generate_trade_decision(signals(ex, {"A": 0.6, "B": 0.2}), {}, CAPITAL, T0)
    # by decreasing edge: B (NO at 0.3147, q 0.8) on $10,000, then A (YES at 0.4168) on the rest
    assert [o.ticker for o in d.orders] == ["B", "A"]
    c_b, c_a = 0.30 + fee(0.30), 0.40 + fee(0.40)
    n_b = math.floor(0.5 * (0.8 - c_b) / (1 - c_b) * CAPITAL / c_b)
    left = CAPITAL - math.floor(n_b * c_b * 100) / 100
    n_a = math.floor(0.5 * (0.6 - c_a) / (1 - c_a) * left / c_a)
    assert [o.count for o in d.orders] == [n_b, n_a] == [11_251, 2434]
    assert sum(o.max_cost_cents for o in d.orders) <= CAPITAL * 100


def test_a_users_strategy_gets_the_same_buys_from_candidates_and_orders():
    """DecisionGenerator's public face (a candidates frame, then orders) decides what
    EdgeBasedStrategy decides (it passes the candidates on as arrays)."""
    ex = exchange({"A": (0.38, 0.60), "B": (0.70, 0.28), "C": (0.20, 0.75)})
    pos = held("C", contracts=100, cost=2_000, fees=0)
    sig = signals(ex, {"A": 0.6, "B": 0.2, "C": 0.35}, positions=pos)
    strat = kelly()
    candidates = strat.generator.candidates(sig, pos)
    assert list(candidates.columns) == [
        "side",
        "q",
        "price",
        "cost",
        "edge",
        "limit",
        "event_ticker",
    ]
    mine = strat.generator.orders(candidates, strat.sizer, pos, 900.0, T0)
    theirs = kelly().generate_trade_decision(sig, pos, 900.0, T0)
    assert len(mine) == 3 and rows(PredictionMarketDecision(mine)) == rows(theirs)
    assert strat.generator.orders(candidates.iloc[:0], strat.sizer, pos, 900.0, T0) == []


@pytest.mark.parametrize(
    ("q", "c", "fraction", "capital"),
    [(0.6, 0.4168, 0.5, 10_000.0), (0.9, 0.2112, 1.0, 250.0), (0.51, 0.5, 0.25, 1e6)],
)
def test_kelly_sizer_stakes_the_fraction_of_f_star_of_the_capital(q, c, fraction, capital):
    contracts, cost = KellyPositionSizer(fraction).size_position(q - c, c, capital, q)
    stake = fraction * (q - c) / (1 - c) * capital  # f* = (q - c) / (1 - c)
    assert contracts == math.floor(stake / c) and contracts >= 1
    assert cost == pytest.approx(contracts * c)
    assert cost <= stake < cost + c


@pytest.mark.parametrize(("q", "c"), [(0.4, 0.4), (0.3, 0.4168), (0.0, 0.02)])
def test_kelly_sizer_buys_nothing_without_an_edge(q, c):
    assert KellyPositionSizer(0.5).size_position(q - c, c, 10_000.0, q) == (0, 0.0)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_kelly_fraction_must_be_in_the_unit_interval(fraction):
    with pytest.raises(ParamError, match="kelly_fraction"):
        KellyPositionSizer(fraction)


def test_a_held_position_counts_against_the_size_and_its_other_side_is_never_bought():
    ex = exchange({"A": (0.38, 0.60)})
    pos = held(contracts=1250, cost=50_000, fees=0)  # $500 in A already
    (o,) = kelly().generate_trade_decision(
        signals(ex, {"A": 0.99}, positions=pos), pos, CAPITAL, T0
    )
    # Kelly wants floor(0.5 x 0.9829 x $10,000 / 0.4168) = 11,790 contracts = $4,914.07; $500 held
    c = 0.40 + fee(0.40)
    assert (o.side, o.count) == ("yes", math.floor((11_790 * c - 500) / c)) == ("yes", 10_590)
    assert o.max_cost_cents == math.floor((11_790 * c - 500) * 100)
    # the model now favours NO (edge 0.7 - 0.636 = 0.064 at the NO ask): NO is never bought
    strat = kelly()
    d = strat.generate_trade_decision(signals(ex, {"A": 0.30}, positions=pos), pos, CAPITAL, T0)
    assert d.orders == []
    assert dict(strat.skipped) == {"edge at the ask not above min_edge 0.03": 1}


def test_signals_without_an_order_are_counted_by_reason():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.49, 0.49)}, unquoted=("D",))
    # A trades; B is being worked; C has no edge; D no quote; Z is no market of the exchange
    skipped: Counter[str] = Counter()
    probs = {"A": 0.6, "B": 0.6, "C": 0.5, "D": 0.9, "Z": 0.9}
    sig = signals(ex, probs, working={"B"}, skipped=skipped)
    assert list(sig.index) == ["A", "C", "D"]
    strat = kelly()
    d = strat.generate_trade_decision(sig, {}, CAPITAL, T0)
    assert [o.ticker for o in d.orders] == ["A"]
    assert dict(skipped) == {
        "market closed (or unknown to the exchange)": 1,
        "an order is still being worked in the market": 1,
    }
    assert dict(strat.skipped) == {
        "edge at the ask not above min_edge 0.03": 1,
        "no ask to buy at (no book snapshot or candle quote, or one older than max_quote_age_hours)": 1,
    }
    poor = kelly()
    assert poor.generate_trade_decision(sig.loc[["A"]], {}, 1.0, T0).orders == []
    assert dict(poor.skipped) == {"under one contract after sizing": 1}


@pytest.mark.parametrize(
    "kw",
    [
        {"min_edge": 1.0, "kelly_fraction": 0.5},
        {"min_edge": -0.01, "kelly_fraction": 0.5},
        {"min_edge": 0.03},  # no sizer and no kelly_fraction
        {"min_edge": 0.03, "kelly_fraction": 0.5, "stop_loss": 0.0},
        {"min_edge": 0.03, "kelly_fraction": 0.5, "stop_loss": 1.5},
        {"min_edge": 0.03, "kelly_fraction": 0.5, "profit_target": 0.0},
        {"min_edge": 0.03, "kelly_fraction": 0.5, "holding_days": 0},
        {"min_edge": 0.03, "kelly_fraction": 0.5, "exit_hours_before_close": -1},
    ],
)
def test_bad_strategy_arguments_are_param_errors(kw):
    with pytest.raises(ParamError, match=r"^strategy\."):
        EdgeBasedStrategy(**kw)


def test_a_negative_exit_hours_before_close_is_reported_as_given():
    with pytest.raises(ParamError, match="got -3"):
        kelly(exit_hours_before_close=-3)


# --- exits: judged at the bid, against the close known at the decision ----------------------


@pytest.mark.parametrize(("yes_bid", "sells"), [(0.35, False), (0.34, True), (0.20, True)])
def test_stop_loss_fires_on_the_net_bid_against_the_basis(yes_bid, sells):
    # basis 0.41 a contract; stop 20 %: exit once bid - fee <= 0.328 (0.35 nets 0.3341 and
    # 0.34 nets 0.3243: the gross bids 0.35 and 0.34 are both above 0.328)
    ex = exchange({"A": (yes_bid, round(0.98 - yes_bid, 2))})
    pos = held()
    strat = kelly(stop_loss=0.2)
    d = strat.generate_trade_decision(signals(ex, positions=pos), pos, CAPITAL, T0)
    want = [("A", "EA", "yes", "sell", 100, 1, None)] if sells else []
    assert rows(d) == want  # everything, at any bid
    assert dict(strat.exits) == ({"stop loss": 1} if sells else {})


def test_profit_target_is_judged_at_the_net_bid_not_the_mid():
    pos = held()  # basis 0.41; target 25 %: net 0.5125
    strat = kelly(profit_target=0.25)
    wide = exchange({"A": (0.50, 0.40)})  # bid 0.50 nets 0.4825; mid 0.55 nets 0.5327
    assert (
        strat.generate_trade_decision(signals(wide, positions=pos), pos, CAPITAL, T0).orders == []
    )
    ex = exchange({"A": (0.56, 0.40)})
    d = strat.generate_trade_decision(signals(ex, positions=pos), pos, CAPITAL, T0)
    # walks down the bids only while the target holds: 0.53 nets 0.5126, 0.52 nets 0.5025
    assert rows(d) == [("A", "EA", "yes", "sell", 100, 53, None)]
    assert dict(strat.exits) == {"profit target": 1}


def test_time_exit_counts_to_the_close_known_at_the_decision():
    ex = exchange({"A": (0.38, 0.60)})  # the exchange's close: 10 days away
    pos = held()
    strat = kelly(exit_hours_before_close=4.0)
    close = T0 + 10 * H
    # at T0 the prediction (no edge either way) says the market closes in 10 h: keep
    sig = signals(ex, {"A": 0.40}, positions=pos, known_close=close)
    assert sig.loc["A", "known_close"] == close
    assert strat.generate_trade_decision(sig, pos, CAPITAL, T0).orders == []
    # later, without a new prediction, the close known from the last one still counts
    at = T0 + 5 * H + 59 * pd.Timedelta(minutes=1)  # 4 h 01 min to go
    later = signals(ex, at=at, positions=pos, known_close=pd.NaT)  # no prediction now
    assert strat.generate_trade_decision(later, pos, CAPITAL, at).orders == []
    at = T0 + 6 * H + pd.Timedelta(minutes=1)  # 3 h 59 min to go
    later = signals(ex, at=at, positions=pos, known_close=pd.NaT)
    d = strat.generate_trade_decision(later, pos, CAPITAL, at)
    assert rows(d) == [("A", "EA", "yes", "sell", 100, 1, None)]
    assert d.decided_at == at and dict(strat.exits) == {"close near": 1}


def test_a_time_exit_without_known_closes_in_the_signals_is_refused():
    pos = held()
    sig = signals(exchange({"A": (0.38, 0.60)}), positions=pos)  # predictions without known_close
    assert "known_close" not in sig.columns
    with pytest.raises(ParamError, match="known_close"):
        kelly(exit_hours_before_close=4.0).generate_trade_decision(sig, pos, CAPITAL, T0)


def test_a_time_exit_with_predictions_lacking_known_close_is_refused():
    pos = held()
    sig = signals(exchange({"A": (0.38, 0.60)}), {"A": 0.40}, positions=pos)
    with pytest.raises((ParamError, DataError), match="known_close"):
        kelly(exit_hours_before_close=4.0).generate_trade_decision(sig, pos, CAPITAL, T0)


def test_holding_period_exit_sells_at_the_best_bid():
    ex = exchange({"A": (0.38, 0.60)})
    pos = held(opened=T0)
    strat = kelly(holding_days=1)
    at = T0 + 23 * H
    assert (
        strat.generate_trade_decision(signals(ex, at=at, positions=pos), pos, CAPITAL, at).orders
        == []
    )
    at = T0 + DAY
    d = strat.generate_trade_decision(signals(ex, at=at, positions=pos), pos, CAPITAL, at)
    assert rows(d) == [("A", "EA", "yes", "sell", 100, 38, None)]
    assert dict(strat.exits) == {"holding period over": 1}


def test_edge_reversal_exits_at_the_net_bid_and_walks_down_only_while_it_holds():
    ex = exchange({"A": (0.38, 0.60)})  # YES bid 38
    pos = held()
    strat = kelly(exit_edge=-0.02)
    # hold: 0.40 - (0.38 - 0.0165) = 0.0365 > -0.02, and 0.35 - 0.3635 = -0.0135 (the gross
    # bid would say 0.35 - 0.38 = -0.03: sell)
    for prob in (0.40, 0.35):
        sig = signals(ex, {"A": prob}, positions=pos)
        assert strat.generate_trade_decision(sig, pos, CAPITAL, T0).orders == []
    # no prediction now: no edge to judge, no edge exit
    assert strat.generate_trade_decision(signals(ex, positions=pos), pos, CAPITAL, T0).orders == []
    # exit: 0.30 - (0.38 - 0.0165) = -0.0635 < -0.02; down to 0.34 (nets 0.3243 > 0.32), not
    # 0.33 (nets 0.3145: selling there would no longer beat holding by 0.02)
    sig = signals(ex, {"A": 0.30}, positions=pos)
    d = strat.generate_trade_decision(sig, pos, CAPITAL, T0)
    assert rows(d) == [("A", "EA", "yes", "sell", 100, 34, None)]
    assert dict(strat.exits) == {"edge reversal": 1}


def test_edge_reversal_of_a_no_position_uses_the_probability_of_no():
    ex = exchange({"A": (0.60, 0.38)})  # NO bid 38, YES ask 62
    pos = held(side="no")
    strat = kelly(exit_edge=-0.02)
    # P(YES) 0.60: q of NO 0.40 - (0.38 - 0.0165) = 0.0365 > -0.02, and no YES is bought
    sig = signals(ex, {"A": 0.60}, positions=pos)
    assert strat.generate_trade_decision(sig, pos, CAPITAL, T0).orders == []
    (sell,) = strat.generate_trade_decision(
        signals(ex, {"A": 0.70}, positions=pos), pos, CAPITAL, T0
    ).orders
    assert (sell.side, sell.action, sell.limit_cents) == ("no", "sell", 34)


def test_a_market_being_exited_is_not_bought_again_and_sells_come_first():
    ex = exchange({"A": (0.20, 0.78), "B": (0.38, 0.60)})  # A's YES ask 22: a huge edge at 0.99
    pos = held()
    strat = kelly(stop_loss=0.2)
    d = strat.generate_trade_decision(
        signals(ex, {"A": 0.99, "B": 0.6}, positions=pos), pos, CAPITAL, T0
    )
    assert [(o.ticker, o.action) for o in d.orders] == [("A", "sell"), ("B", "buy")]


# --- directional --------------------------------------------------------------------------


def directional(target="direction", **kw) -> DirectionalStrategy:
    args = {"min_edge": 0.05, "stake_fraction": 0.05, "holding_days": 1, "target": target}
    return DirectionalStrategy(**(args | kw))


def test_directional_sides_sizes_and_limits_at_the_best_ask():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.38, 0.60)})
    strat = directional()
    d = strat.generate_trade_decision(signals(ex, {"A": 0.7, "B": 0.3, "C": 0.52}), {}, CAPITAL, T0)
    by = {o.ticker: o for o in d.orders}
    assert set(by) == {"A", "B"} and (by["A"].side, by["B"].side) == ("yes", "no")
    assert (by["A"].limit_cents, by["B"].limit_cents) == (40, 62)  # the best asks only
    # conviction |p - 0.5| / 0.5 = 0.4: stake 0.05 x 0.4 of the capital left at ask + fee,
    # strongest signal first (B: |0.3 - 0.5| is a hair above |0.7 - 0.5| in floats)
    c_b, c_a = 0.62 + fee(0.62), 0.40 + fee(0.40)
    n_b = math.floor(0.05 * 0.4 * CAPITAL / c_b)
    n_a = math.floor(0.05 * 0.4 * (CAPITAL - n_b * c_b) / c_a)
    assert [(o.ticker, o.count) for o in d.orders] == [("B", n_b), ("A", n_a)]
    assert (n_b, n_a) == (314, 470)
    assert (by["B"].max_cost_cents, by["A"].max_cost_cents) == (
        math.floor(n_b * c_b * 100),
        math.floor(n_a * c_a * 100),
    )
    assert dict(strat.skipped) == {"signal not above min_edge 0.05": 1}


def test_directional_counts_held_markets_and_exits_after_holding_days():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60)})
    pos = held(opened=T0)
    strat = directional()
    sig = signals(ex, {"A": 0.9, "B": 0.52}, positions=pos)
    assert strat.generate_trade_decision(sig, pos, CAPITAL, T0).orders == []
    assert dict(strat.skipped) == {
        "a position is already held in the market": 1,
        "signal not above min_edge 0.05": 1,
    }
    at = T0 + DAY
    d = strat.generate_trade_decision(signals(ex, at=at, positions=pos), pos, CAPITAL, at)
    assert rows(d) == [("A", "EA", "yes", "sell", 100, 38, None)]  # at the best bid
    assert dict(strat.exits) == {"holding period over": 1}


@pytest.mark.parametrize(("target", "sides"), [("settlement", ["yes"]), ("direction", [])])
def test_directional_settlement_target_compares_with_the_mid(target, sides):
    # settlement: 0.45 - mid 0.39 = 0.06 > 0.05 buys YES; direction: 0.45 - 0.5 is too weak
    sig = signals(exchange({"A": (0.38, 0.60)}), {"A": 0.45}, mid=0.39)
    d = directional(target).generate_trade_decision(sig, {}, CAPITAL, T0)
    assert [o.side for o in d.orders] == sides


def test_directional_refuses_an_unknown_target():
    with pytest.raises(ParamError, match="strategy.target"):
        directional("price")


# --- the design's extension points ------------------------------------------------------------


class MyStrategy(BaseMarketStrategy):
    """The design's custom strategy, as written: start from an empty decision and add orders."""

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        decision = PredictionMarketDecision()
        for ticker, row in signals.iterrows():
            if ticker not in current_positions and row["prob"] > row["yes_ask"] + 0.1:
                limit = round(row["yes_ask"] * 100)
                decision.add(
                    ContractOrder(
                        ticker, row["event_ticker"], "yes", "buy", 10, limit, current_time
                    )
                )
        return decision


class MyPositionSizer(BasePositionSizer):
    """The design's custom sizer, as written: ``(quantity, quantity * price)``."""

    def __init__(self, quantity: int = 7) -> None:
        self.quantity = quantity
        self.calls: list[tuple[float, float, float, float]] = []

    def size_position(self, edge, price, available_capital, model_prob):
        self.calls.append((edge, price, available_capital, model_prob))
        quantity = self.quantity
        return quantity, quantity * price


def test_a_custom_strategy_runs_in_the_trader():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60)}, cash=1_000_000)
    account = KalshiAccount(1_000_000)
    loose = RiskParams(10**9, 1.0, 1.0, 1.0, 1.0, kill_switch=False)
    trader = Trader(MyStrategy(), RiskManager(loose), KalshiExecutor(ex, account), ex, account)
    d = trader.step(T0, predictions({"A": 0.7, "B": 0.45}))
    assert [(o.ticker, o.status, o.filled) for o in d.orders] == [("A", "filled", 10)]
    assert account.positions["A"].contracts == 10 and d.decided_at == T0
    later = T0 + H  # nothing to do: the empty decision is stamped with the time it was asked at
    d = trader.step(later, predictions({"A": 0.7}, at=later))
    assert d.orders == [] and d.decided_at == later


def test_a_custom_sizer_replaces_kelly():
    ex = exchange({"A": (0.38, 0.60), "B": (0.70, 0.28)})
    sizer = MyPositionSizer()
    strat = EdgeBasedStrategy(min_edge=0.03, sizer=sizer)
    d = strat.generate_trade_decision(signals(ex, {"A": 0.6, "B": 0.2}), {}, CAPITAL, T0)
    c_b, c_a = 0.30 + fee(0.30), 0.40 + fee(0.40)
    assert [(o.ticker, o.count, o.max_cost_cents) for o in d.orders] == [
        ("B", 7, math.floor(7 * c_b * 100)),
        ("A", 7, math.floor(7 * c_a * 100)),
    ]
    # called with the edge, the fee-inclusive price, the capital left and P(side bought)
    left = CAPITAL - math.floor(7 * c_b * 100) / 100
    assert sizer.calls == [
        pytest.approx((0.8 - c_b, c_b, CAPITAL, 0.8)),
        pytest.approx((0.6 - c_a, c_a, left, 0.6)),
    ]


# --- built from config ----------------------------------------------------------------------


def test_build_strategy_builds_the_configured_classes():
    params = StrategyParams(EDGE, {"min_edge": 0.04, "kelly_fraction": 0.25, "stop_loss": 0.3})
    strat = build_strategy(params, "settlement")
    assert isinstance(strat, EdgeBasedStrategy)
    assert (strat.generator.min_edge, strat.sizer.kelly_fraction) == (0.04, 0.25)
    assert strat.exit.stop_loss == 0.3
    kw = {"min_edge": 0.05, "stake_fraction": 0.1, "holding_days": 2, "target": "direction"}
    strat = build_strategy(StrategyParams(DIRECTIONAL, kw), "direction")
    assert isinstance(strat, DirectionalStrategy)
    assert (strat.sizer.stake_fraction, strat.exit.max_holding_days) == (0.1, 2)


def test_build_strategy_builds_the_shipped_edge_config():
    import yaml

    with open("conf/strategy/edge_kelly.yaml") as f:
        params = StrategyParams.from_config("strategy", yaml.safe_load(f))
    strat = build_strategy(params, "settlement")
    assert isinstance(strat, EdgeBasedStrategy) and strat.exit.exit_edge == -0.02


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        ("collections.Counter", {}, r"strategy\._target_ collections\.Counter is not"),
        ("kalshi_lab.execution.NoSuchStrategy", {}, r"strategy\._target_"),
        ("no_such_module.Strategy", {}, r"strategy\._target_"),
        (EDGE, {"min_edge": 1.5, "kelly_fraction": 0.5}, r"strategy\.min_edge"),
        (EDGE, {"min_edge": 0.03, "kelly": 0.5}, r"(?s)strategy.*kelly"),
    ],
)
def test_build_strategy_refuses_what_is_not_a_valid_strategy(target, kwargs, match):
    with pytest.raises(ParamError, match=match):
        build_strategy(StrategyParams(target, kwargs), "settlement")


def test_build_strategy_refuses_the_direction_target_for_settlement_strategies():
    params = StrategyParams(EDGE, {"min_edge": 0.03, "kelly_fraction": 0.5})
    with pytest.raises(ParamError, match="settlement"):
        build_strategy(params, "direction")


def test_build_strategy_finds_a_users_module_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "kl_user_strategies_t.py").write_text(
        "from kalshi_lab.execution import BaseMarketStrategy, PredictionMarketDecision\n"
        "class Mine(BaseMarketStrategy):\n"
        "    def __init__(self, size):\n"
        "        super().__init__()\n"
        "        self.size = size\n"
        "    def generate_trade_decision(self, signals, current_positions, available_capital,\n"
        "                                current_time):\n"
        "        return PredictionMarketDecision()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "kl_user_strategies_t", raising=False)
    strat = build_strategy(StrategyParams("kl_user_strategies_t.Mine", {"size": 3}), "direction")
    assert isinstance(strat, BaseMarketStrategy) and strat.size == 3
    sys.modules.pop("kl_user_strategies_t", None)


# --- no look-ahead ----------------------------------------------------------------------------

TRUNC_T = T0 + 6 * H
AFTER = TRUNC_T + pd.Timedelta(seconds=1)
TRUNC_TIMES = {  # A..C have a snapshot at t; D..F's last is 2 h before t, the next 1 s after
    **dict.fromkeys("ABC", [T0, T0 + 3 * H, TRUNC_T, AFTER, T0 + 9 * H, T0 + DAY]),
    **dict.fromkeys("DEF", [T0, TRUNC_T - 2 * H, AFTER, T0 + 9 * H, T0 + DAY]),
}


def truncation_book() -> pd.DataFrame:
    """Snapshots of A..F before, at and after TRUNC_T, two levels a side; G has candles only."""
    rng = np.random.default_rng(7)
    out = []
    for t, times in TRUNC_TIMES.items():
        for ts in times:
            yes = int(rng.integers(10, 80))
            no = int(rng.integers(5, 97 - yes))
            for side, best in (("yes", yes), ("no", no)):
                out += [(t, ts, side, (best - 2) / 100, 50.0), (t, ts, side, best / 100, 300.0)]
    return pd.DataFrame(out, columns=BOOK_COLUMNS)


def truncation_candles() -> pd.DataFrame:
    ends = ((T0 + 5 * H, 0.30), (TRUNC_T + pd.Timedelta(minutes=1), 0.70), (T0 + 7 * H, 0.80))
    rows = [
        {
            "ticker": "G",
            "period_minutes": 60,
            "end_period_ts": ts,
            "yes_bid_close": bid,
            "yes_ask_close": bid + 0.03,
            "volume": 1000.0,
        }
        for ts, bid in ends
    ]
    return pd.DataFrame(rows).reindex(columns=NO_CANDLES.columns).astype(NO_CANDLES.dtypes)


def truncation_decision(book, candles, result, strategy):
    mk = markets("ABCDEFG", close=T0 + 2 * DAY)
    mk["result"], mk["settlement_ts"] = result, T0 + 2 * DAY
    ex = SimulatedKalshiExchange(book, candles, mk, SERIES, 0.07, 1.0, 0.1)
    positions = {
        **held("A", "yes", 200, 6000, 100, opened=T0 - DAY),
        **held("B", "no", 50, 1000, 20, opened=T0),
    }
    probs = {"A": 0.2, "C": 0.9, "D": 0.1, "E": 0.55, "F": 0.8, "G": 0.75}
    sig = signals(ex, probs, at=TRUNC_T, positions=positions, known_close=T0 + DAY, mid=0.45)
    return sig, rows(strategy().generate_trade_decision(sig, positions, CAPITAL, TRUNC_T))


@pytest.mark.parametrize(
    "strategy",
    [
        lambda: kelly(exit_edge=-0.02, stop_loss=0.5, profit_target=0.2),
        lambda: directional("settlement", stop_loss=0.5, exit_hours_before_close=2.0),
    ],
    ids=["edge", "directional"],
)
def test_the_decision_at_t_ignores_everything_after_t(strategy):
    book, candles = truncation_book(), truncation_candles()
    sig, decision = truncation_decision(book, candles, "yes", strategy)
    assert len(decision) >= 3
    assert {r[3] for r in decision} == {"buy", "sell"}  # both paths are exercised
    later = book["snapshot_ts"] > TRUNC_T
    altered = book.copy()
    altered.loc[later, "price"] = 1.0 - altered.loc[later, "price"]
    altered.loc[later, "count"] = 1.0
    future_candles = candles["end_period_ts"] > TRUNC_T
    shifted = candles.copy()
    shifted.loc[future_candles, "yes_bid_close"] = 0.01
    shifted.loc[future_candles, "yes_ask_close"] = 0.02
    for new_book, new_candles, result in [
        (altered, shifted, "no"),
        (book[~later], candles[~future_candles], None),
    ]:
        new_sig, new_decision = truncation_decision(new_book, new_candles, result, strategy)
        pd.testing.assert_frame_equal(new_sig, sig)
        assert new_decision == decision
    # ... while the snapshot AT t is what the decision reads
    at_t = book["snapshot_ts"] == TRUNC_T
    moved = book.copy()
    moved.loc[at_t, "price"] = 1.0 - moved.loc[at_t, "price"]
    assert truncation_decision(moved, candles, "yes", strategy)[1] != decision


# --- event structure: signals skip "other", ladder arbitrage ----------------------------------

NAN = float("nan")


def structured(
    places: dict[str, tuple[str, str | None, str | None, float, float]], at=T0
) -> pd.DataFrame:
    """Predictions (prob 0.5) with their market's place in its event, as the evaluate stage
    writes them: ticker -> (event_ticker, structure, strike_type, floor_strike, cap_strike)."""
    out = predictions(dict.fromkeys(places, 0.5), at=at)
    out["event_ticker"] = [p[0] for p in places.values()]
    for k, column in enumerate(STRUCTURE_COLUMNS, start=1):
        out[column] = pd.Series([p[k] for p in places.values()], dtype=object if k < 3 else float)
    return out


def above(event: str, *strikes: float) -> list[tuple]:
    """The places of an "above" ladder's strikes."""
    return [(event, "ladder", "greater", x, NAN) for x in strikes]


def below(event: str, *strikes: float) -> list[tuple]:
    """The places of a "below" ladder's strikes."""
    return [(event, "ladder", "less", NAN, x) for x in strikes]


def sized_exchange(levels: dict[str, tuple[float, float, float, float]]) -> SimulatedKalshiExchange:
    """One level a side: ticker -> (YES bid, its size, NO bid, its size); the YES ask's size is
    the NO bid's and the NO ask's the YES bid's."""
    rows = [
        row
        for t, (yes, yes_size, no, no_size) in levels.items()
        for row in ((t, T0, "yes", yes, yes_size), (t, T0, "no", no, no_size))
    ]
    book = pd.DataFrame(rows, columns=BOOK_COLUMNS)
    return SimulatedKalshiExchange(book, NO_CANDLES, markets(levels), SERIES, 0.07, 1.0, 0.1, 0)


def structured_signals(ex, preds, positions=None, skipped=None) -> pd.DataFrame:
    positions = positions or {}
    return build_signals(
        preds,
        ex.quotes(signal_tickers(preds, positions), T0),
        positions,
        set(),
        Counter() if skipped is None else skipped,
    )


def test_signals_carry_the_structure_and_the_sizes_at_the_asks():
    ex = sized_exchange({"L": (0.48, 30.0, 0.50, 70.0), "H": (0.20, 5.0, 0.75, 9.0)})
    preds = structured({"L": ("E", "ladder", "greater_or_equal", 4.0, NAN)})
    pos = held("H", "no", 10, 700, 10)
    sig = structured_signals(ex, preds, pos)
    assert list(sig.index) == ["L", "H"]
    place = sig.loc["L", list(STRUCTURE_COLUMNS)].tolist()
    assert place[:3] == ["ladder", "greater_or_equal", 4.0] and np.isnan(place[3])
    assert sig.loc["L", ["yes_ask", "yes_ask_size", "no_ask", "no_ask_size"]].tolist() == (
        pytest.approx([0.50, 70.0, 0.52, 30.0])
    )
    # a held market without a prediction: its place is not known here
    assert sig.loc["H", ["structure", "strike_type"]].tolist() == [None, None]
    assert sig.loc["H", ["floor_strike", "cap_strike"]].isna().all()
    # predictions without the columns (a user's own): every market of unknown structure
    plain = structured_signals(ex, preds.drop(columns=list(STRUCTURE_COLUMNS)), pos)
    assert plain[["structure", "strike_type"]].isna().all().all()
    assert plain[["floor_strike", "cap_strike"]].isna().all().all()
    pd.testing.assert_frame_equal(
        plain.drop(columns=list(STRUCTURE_COLUMNS)), sig.drop(columns=list(STRUCTURE_COLUMNS))
    )


def test_markets_of_structure_other_are_skipped_counted_and_not_quoted():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60), "C": (0.38, 0.60)})
    preds = structured(
        {
            "A": ("EA", "binary", None, NAN, NAN),
            "B": ("EB", "other", "custom", NAN, NAN),  # a scalar or candidate list
            "C": ("EC", "other", "functional", NAN, NAN),
        }
    ).assign(prob=0.9)  # a wide edge everywhere
    pos = held("C", "yes", 10, 400, 10)
    assert signal_tickers(preds, pos) == ["A", "C"]  # B is not even quoted
    skipped: Counter[str] = Counter()
    sig = structured_signals(ex, preds, pos, skipped)
    assert dict(skipped) == {OTHER_STRUCTURE: 2}
    # C stays as a held market without a prediction: its exits still apply, nothing is bought
    assert list(sig.index) == ["A", "C"] and np.isnan(sig.loc["C", "prob"])
    assert sig.loc["C", "structure"] is None
    d = kelly().generate_trade_decision(sig, pos, CAPITAL, T0)
    assert [(o.ticker, o.action) for o in d.orders] == [("A", "buy")]


def test_predictions_of_an_unknown_structure_are_refused():
    preds = structured({"A": ("EA", "binary", None, NAN, NAN), "B": ("EB", None, None, NAN, NAN)})
    assert check_predictions(preds)["structure"].tolist() == ["binary", None]
    with pytest.raises(DataError, match=r"structure must be one of .* got \['ladders'\]"):
        check_predictions(preds.assign(structure=["ladders", None]))


#: an "above" ladder, strikes 1 to 4: (YES bid, NO bid); YES ask = 1 - NO bid, NO ask = 1 - YES bid
ABOVE_QUOTES = {
    "S1": (0.48, 0.50),  # YES ask 0.50
    "S2": (0.53, 0.45),  # YES ask 0.55, NO ask 0.47
    "S3": (0.65, 0.33),  # YES ask 0.67, NO ask 0.35
    "S4": (0.75, 0.23),  # NO ask 0.25
}
ABOVE_LADDER = dict(zip(ABOVE_QUOTES, above("E", 1.0, 2.0, 3.0, 4.0), strict=True))


def pairs_of(quotes, places, min_profit=0.01, positions=None) -> tuple[pd.DataFrame, Counter]:
    generator = DecisionGenerator(min_profit=min_profit)
    sig = structured_signals(exchange(quotes), structured(places), positions)
    return generator.ladder_pairs(sig, positions or {}), generator.skipped


def test_an_above_ladder_s_mispriced_pairs_each_market_in_one_pair():
    pairs, skipped = pairs_of(ABOVE_QUOTES, ABOVE_LADDER)
    # YES on the lower strike at its ask, NO on the higher at 1 - its YES bid; profit per pair
    # 1 - (ask + 0.07 ask (1 - ask)) - (no_ask + 0.07 no_ask (1 - no_ask)):
    # (S1, S4): 1 - (0.50 + 0.0175) - (0.25 + 0.013125) = 0.219375, the best
    # (S2, S4) 0.16955 and (S1, S3) 0.116575 share a market with it; then
    # (S2, S3): 1 - (0.55 + 0.017325) - (0.35 + 0.015925) = 0.06675; (S3, S4) 0.051398 shares;
    # (S1, S2): 1 - 0.5175 - (0.47 + 0.017437) = -0.004937, no arbitrage after the fees
    assert pairs[["yes_ticker", "no_ticker"]].values.tolist() == [["S1", "S4"], ["S2", "S3"]]
    assert pairs["profit"].tolist() == pytest.approx([0.219375, 0.06675])
    assert pairs.loc[0, ["yes_price", "no_price", "yes_fee", "no_fee", "cost"]].tolist() == (
        pytest.approx([0.50, 0.25, 0.0175, 0.013125, 0.780625])
    )
    assert pairs["event_ticker"].tolist() == ["E", "E"] and pairs["depth"].tolist() == [10**6] * 2
    assert not skipped


def test_a_below_ladder_mirrors_the_legs():
    # P(below 10) <= P(below 20): L10's YES bid 0.60 above L20's YES ask 0.50 is the gap
    quotes = {"L10": (0.60, 0.38), "L20": (0.45, 0.50)}
    generator = DecisionGenerator(min_profit=0.01)
    places = dict(zip([*quotes, "L30"], below("E", 10.0, 20.0, 30.0), strict=True))
    sig = structured_signals(exchange(quotes, unquoted=("L30",)), structured(places))
    pairs = generator.ladder_pairs(sig, {})
    assert pairs[["yes_ticker", "no_ticker"]].values.tolist() == [["L20", "L10"]]
    # 1 - (0.50 + 0.0175) - (0.40 + 0.0168)
    assert pairs["profit"].tolist() == pytest.approx([0.0657])
    assert dict(generator.skipped) == {NO_DEPTH: 1}  # L30: no quote to buy at
    # the same prices as an "above" ladder are no arbitrage: YES 10 at 0.62 + NO 20 at 0.55
    pairs, skipped = pairs_of(quotes, dict(zip(quotes, above("E", 10.0, 20.0), strict=True)))
    assert pairs.empty and dict(skipped) == {NO_ARBITRAGE: 2}


@pytest.mark.parametrize(("min_profit", "found"), [(0.0, True), (0.065, True), (0.066, False)])
def test_a_pair_must_beat_min_profit_after_both_fees(min_profit, found):
    quotes = {"L10": (0.60, 0.38), "L20": (0.45, 0.50)}  # profit 0.0657 a pair, as above
    pairs, _ = pairs_of(quotes, dict(zip(quotes, below("E", 10.0, 20.0), strict=True)), min_profit)
    assert len(pairs) == int(found)


def test_no_pair_when_the_fees_eat_the_gap():
    # S2's YES bid 0.56 is a cent above S1's YES ask 0.55: YES S1 + NO S2 cost 0.99 before fees,
    # 0.99 + 0.017325 + 0.017248 = 1.024573 after
    quotes = {"S1": (0.50, 0.45), "S2": (0.56, 0.40)}
    pairs, skipped = pairs_of(quotes, dict(zip(quotes, above("E", 1.0, 2.0), strict=True)), 0.0)
    assert pairs.empty and dict(skipped) == {NO_ARBITRAGE: 2}


@pytest.mark.parametrize(
    ("places", "reason"),
    [
        (
            [("E1", "ladder", "greater", 1.0, NAN), ("E2", "ladder", "greater", 4.0, NAN)],
            NO_ARBITRAGE,
        ),
        (
            [("E", "bracket", "between", 1.0, 2.0), ("E", "bracket", "between", 4.0, 5.0)],
            NOT_LADDER,
        ),
        ([("E1", "binary", None, NAN, NAN), ("E2", "binary", None, NAN, NAN)], NOT_LADDER),
        ([("E", None, "greater", 1.0, NAN), ("E", None, "greater", 4.0, NAN)], NOT_LADDER),
        ([("E", "ladder", "greater", NAN, NAN), ("E", "ladder", "greater", NAN, NAN)], NOT_LADDER),
        (
            [("E", "ladder", "greater", 1.0, NAN), ("E", "ladder", "greater_or_equal", 1.0, NAN)],
            NO_ARBITRAGE,
        ),
    ],
    ids=["two-events", "bracket", "binaries", "unknown-structure", "no-strikes", "one-strike"],
)
def test_no_pair_across_events_or_outside_a_ladder(places, reason):
    # S1 and S4's prices are the best pair of the ladder above, only not one ladder's strikes;
    # nor two markets at one strike (no ladder: YES above 1 and NO at or above 1 both lose at 1)
    quotes = {t: ABOVE_QUOTES[t] for t in ("S1", "S4")}
    pairs, skipped = pairs_of(quotes, dict(zip(quotes, places, strict=True)))
    assert pairs.empty and dict(skipped) == {reason: 2}


def test_a_pair_never_buys_the_side_opposite_a_position_held():
    pos = held("S1", "no", 10, 500, 10)
    pairs, skipped = pairs_of(ABOVE_QUOTES, ABOVE_LADDER, positions=pos)
    # S1 would be bought YES in each of its pairs: the best left is (S2, S4), and S3's pairs
    # share S2 or S4 with it
    assert pairs[["yes_ticker", "no_ticker"]].values.tolist() == [["S2", "S4"]]
    assert dict(skipped) == {HELD_OPPOSITE: 1, TAKEN: 1}


def test_ladder_arbitrage_buys_both_legs_equally_within_depth_and_capital():
    ex = sized_exchange(
        {
            "L10": (0.60, 120.0, 0.38, 1e6),  # NO ask 0.40 for 120 contracts
            "L20": (0.45, 1e6, 0.50, 300.0),  # YES ask 0.50 for 300
        }
    )
    preds = structured(dict(zip(["L10", "L20"], below("E", 10.0, 20.0), strict=True)))
    sig = structured_signals(ex, preds)
    strat = LadderArbitrageStrategy(min_profit=0.01, pair_fraction=0.05)
    # depth: 120 pairs; YES 120 x 50 + ceil(120 x 1.75) = 6210, NO 120 x 40 + ceil(120 x 1.68)
    # = 5002 cents, within 5 % of $10,000
    decision = strat.generate_trade_decision(sig, {}, CAPITAL, T0)
    assert rows(decision) == [
        ("L20", "E", "yes", "buy", 120, 50, 6210),
        ("L10", "E", "no", "buy", 120, 40, 5002),
    ]
    # what the bot logs beside each leg: the pair, not a model's edge
    expected = "ladder pair: YES L20 + NO L10 at 0.9343 a pair after fees, pays at least $1"
    assert [o.note for o in decision.orders] == [expected] * 2
    # capital: 5 % of $1,000 = 5,000 cents; a pair costs 93.43 cents: 53 pairs, whose legs
    # cost 53 x 50 + ceil(92.75) = 2743 and 53 x 40 + ceil(89.04) = 2210, 4953 cents in all
    assert rows(strat.generate_trade_decision(sig, {}, 1000.0, T0)) == [
        ("L20", "E", "yes", "buy", 53, 50, 2743),
        ("L10", "E", "no", "buy", 53, 40, 2210),
    ]
    assert strat.generate_trade_decision(sig, {}, 0.5, T0).orders == []
    assert strat.skipped[SMALL] == 2


@pytest.mark.parametrize(("depth", "pairs"), [(1.0, 0), (1000.0, 1000)])
def test_a_pair_whose_fees_rounded_up_eat_its_profit_is_not_bought(depth, pairs):
    # YES 0.50 + NO 0.46: 0.96 + 0.0175 + 0.017388 = 0.994888, 0.51 cents a pair before the
    # cent ceilings; one pair pays 50 + 2 + 46 + 2 = 100 cents, 1,000 pairs 99,489 for 100,000
    ex = sized_exchange({"A": (0.48, 1e6, 0.50, depth), "B": (0.54, depth, 0.44, 1e6)})
    preds = structured(dict(zip("AB", above("E", 1.0, 2.0), strict=True)))
    strat = LadderArbitrageStrategy(min_profit=0.0, pair_fraction=1.0)
    d = strat.generate_trade_decision(structured_signals(ex, preds), {}, CAPITAL, T0)
    assert [o.count for o in d.orders] == [pairs, pairs][: 2 if pairs else 0]
    assert dict(strat.skipped) == ({} if pairs else {ROUNDED: 2})


@pytest.mark.parametrize(
    "kw", [{"min_profit": 1.0, "pair_fraction": 0.1}, {"min_profit": -0.01, "pair_fraction": 0.1},
           {"min_profit": 0.01, "pair_fraction": 0.0}, {"min_profit": 0.01, "pair_fraction": 1.5}],
)  # fmt: skip
def test_bad_ladder_arbitrage_arguments_are_param_errors(kw):
    with pytest.raises(ParamError, match=r"^strategy\.(min_profit|pair_fraction)"):
        LadderArbitrageStrategy(**kw)


def test_a_duplicated_prediction_counts_once_and_the_last_one_is_used():
    ex = exchange({"A": (0.38, 0.60), "B": (0.38, 0.60)})
    preds = structured(
        {"A": ("EA", "binary", None, NAN, NAN), "B": ("EB", "other", "custom", NAN, NAN)}
    )
    preds = pd.concat([preds, preds.iloc[[0]].assign(prob=0.7, structure="ladder")])
    preds = pd.concat([preds, preds.iloc[[1]]], ignore_index=True)  # B twice, both other
    skipped: Counter[str] = Counter()
    sig = structured_signals(ex, preds, skipped=skipped)
    assert list(sig.index) == ["A"] and sig.loc["A", ["prob", "structure"]].tolist() == [
        0.7,
        "ladder",
    ]
    assert dict(skipped) == {DUPLICATE: 2, OTHER_STRUCTURE: 1}
