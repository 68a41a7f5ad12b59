"""Qlib-style backtest of Kalshi strategies, one concept per module.

decision (orders, fills) <- fees <- exchange (book replay, depth, fees, hours) <- account (cash,
positions) <- strategy (signals -> orders) and executor (orders -> exchange -> account) <- loop
(run_backtest) <- report (BacktestResult). Orders are decided at a prediction's as_of and filled
against the orderbook snapshot at or before their send time, or, for a market without one (as
in recorded history), the latest candle that ended by then; money is integer cents inside.
"""

from kalshi_lab.backtest.account import Account, ClosedPosition, OverdraftError, Position
from kalshi_lab.backtest.decision import Fill, Order, TradeDecision
from kalshi_lab.backtest.exchange import Exchange, SimulatedExchange
from kalshi_lab.backtest.executor import Executor, SimpleExecutor, TWAPExecutor, make_executor
from kalshi_lab.backtest.fees import FeeSchedule, fee_per_contract, quadratic_units
from kalshi_lab.backtest.loop import run_backtest
from kalshi_lab.backtest.report import BacktestResult
from kalshi_lab.backtest.strategy import (
    DirectionalStrategy,
    EdgeKellyStrategy,
    Strategy,
    make_strategy,
)

__all__ = [
    "Account",
    "BacktestResult",
    "ClosedPosition",
    "DirectionalStrategy",
    "EdgeKellyStrategy",
    "Exchange",
    "Executor",
    "FeeSchedule",
    "Fill",
    "Order",
    "OverdraftError",
    "Position",
    "SimpleExecutor",
    "SimulatedExchange",
    "Strategy",
    "TWAPExecutor",
    "TradeDecision",
    "fee_per_contract",
    "make_executor",
    "make_strategy",
    "quadratic_units",
    "run_backtest",
]
