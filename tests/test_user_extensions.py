"""The extension contract, as a user meets it: a strategy and a sizer of one's own, built from
``_target_`` as the backtest builds them, owe the base classes nothing (not even a
``super().__init__()``), and the risk limits hold whatever they order, markets being worked
included."""

from __future__ import annotations

import logging

import pandas as pd

from kalshi_lab.backtest import run_backtest
from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution import (
    BaseMarketStrategy,
    BasePositionSizer,
    ContractOrder,
    KalshiAccount,
    KalshiExecutor,
    PredictionMarketDecision,
    RiskManager,
    SimulatedKalshiExchange,
)
from kalshi_lab.execution.risk import CONTRACTS
from kalshi_lab.execution.trader import Trader
from kalshi_lab.params import BacktestParams, RiskParams, StrategyParams

D0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
#: A: YES bid 38, YES ask 40 (the NO bid at 60), deep
BOOK = pd.DataFrame(
    [("A", D0, "yes", 0.38, 1000.0), ("A", D0, "no", 0.60, 1000.0)],
    columns=["ticker", "snapshot_ts", "side", "price", "count"],
)
MARKETS = pd.DataFrame(
    {
        "ticker": ["A"],
        "event_ticker": ["EA"],
        "series_ticker": ["S"],
        "close_time": [D0 + 10 * H],
        "settlement_ts": [D0 + 12 * H],
        "result": ["yes"],
    }
)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
NO_CANDLES = CANDLES.empty_table().to_pandas()
LOOSE = RiskParams(10**9, 1.0, 1.0, 1.0, 1.0, kill_switch=False)


def predictions(*times: pd.Timestamp, prob: float = 0.7) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": "A",
            "event_ticker": "EA",
            "series_ticker": "S",
            "as_of": list(times),
            "prob": prob,
            "mid": 0.39,
        }
    )


class CheapYes(BaseMarketStrategy):
    """README's example strategy, minus the ``super().__init__()`` a user may well forget."""

    def __init__(self, gap: float, contracts: int) -> None:
        self.gap, self.contracts = gap, contracts

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        decision = PredictionMarketDecision()
        for ticker, row in signals[signals["prob"] - signals["yes_ask"] > self.gap].iterrows():
            if ticker not in current_positions:
                decision.add(
                    ContractOrder(
                        ticker,
                        row["event_ticker"],
                        "yes",
                        "buy",
                        self.contracts,
                        round(row["yes_ask"] * 100),
                        current_time,
                    )
                )
        return decision


class FixedCount(BasePositionSizer):
    """A user's sizer: always ``count`` contracts."""

    def __init__(self, count: int) -> None:
        self.count = count

    def size_position(self, edge, price, available_capital, model_prob):
        return self.count, self.count * price


def backtest(strategy: StrategyParams):
    params = BacktestParams(1000.0, "simple", 0.0, 4, 60, 0.07, 1.0, 0.1, 24.0, 200, 0, ())
    return run_backtest(
        predictions(D0), BOOK, NO_CANDLES, MARKETS, SERIES, strategy, LOOSE, params, "settlement"
    )


def test_a_strategy_that_skips_super_init_runs_a_backtest_to_the_end(caplog):
    caplog.set_level(logging.INFO, logger="kalshi_lab.backtest.loop")
    result = backtest(StrategyParams(f"{__name__}.CheapYes", {"gap": 0.1, "contracts": 12}))
    assert result.fills[["ticker", "side", "count", "price"]].values.tolist() == [
        ["A", "yes", 12, 0.40]
    ]
    assert result.summary["n_settled"] == 1  # ran past the last decision to the settlement
    assert "exits decided: none" in caplog.text


def test_a_users_sizer_sizes_the_edge_strategy_built_from_config():
    sizer = {"_target_": f"{__name__}.FixedCount", "count": 25}  # fee 42 cents, exact
    edge = StrategyParams(
        "kalshi_lab.execution.EdgeBasedStrategy", {"min_edge": 0.03, "sizer": sizer}
    )
    result = backtest(edge)
    assert result.fills[["ticker", "side", "count"]].values.tolist() == [["A", "yes", 25]]


class Reorder(BaseMarketStrategy):
    """Buys ``count`` of A below its ask at every decision, whatever is already working there
    (signals leave out markets being worked; a user's strategy need not read them)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def generate_trade_decision(self, signals, current_positions, available_capital, current_time):
        order = ContractOrder("A", "EA", "yes", "buy", self.count, 30, current_time)
        return PredictionMarketDecision([order], decided_at=current_time)


def _reorder_twice(cap: int) -> tuple[Trader, list[ContractOrder]]:
    """Two decisions an hour apart; the first buy rests (limit 30 under the ask of 40)."""
    exchange = SimulatedKalshiExchange(BOOK, NO_CANDLES, MARKETS, SERIES, 0.07, 1.0, 0.1, 10**6)
    account = KalshiAccount(10**6)
    risk = RiskManager(RiskParams(cap, 1.0, 1.0, 1.0, 1.0, kill_switch=False), MARKETS)
    executor = KalshiExecutor(exchange, account, ttl=6 * H)
    trader = Trader(Reorder(100), risk, executor, exchange, account)
    first = trader.step(D0, predictions(D0)).orders
    second = trader.step(D0 + H, predictions(D0 + H)).orders
    return trader, first + second


def test_contracts_per_market_count_the_buys_being_worked_there():
    trader, kept = _reorder_twice(cap=100)
    assert [(o.count, o.status) for o in kept] == [(100, "open")]
    assert [(o.count, o.status) for o in trader.refused] == [(100, "unfilled")]
    assert dict(trader.risk.refused) == {CONTRACTS: 1}


def test_a_buy_is_cut_to_the_contracts_a_working_buy_leaves():
    trader, kept = _reorder_twice(cap=150)
    assert [o.count for o in kept] == [100, 50]
    assert sum(o.remaining for o in trader.executor.working) == 150
    assert dict(trader.risk.reduced) == {CONTRACTS: 1}


def test_the_bot_counts_through_a_strategy_that_skips_super_init():
    from kalshi_lab.bot.session import ObservedStrategy

    inner = CheapYes(gap=0.1, contracts=1)
    observed = ObservedStrategy(inner)
    inner.skipped["no edge"] += 2
    assert observed.skipped is inner.skipped and observed.exits is inner.exits
    assert observed.skipped == {"no edge": 2}
