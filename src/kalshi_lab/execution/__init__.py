"""The execution layer of the design (Qlib's ``backtest/`` split), shared by backtest and trading.

One concept per module: ``decision`` (ContractOrder, Fill, PredictionMarketDecision) <- ``fees``
<- ``account`` (cash and positions) <- ``exchange`` (market rules: quotes, depth, fills, fees,
settlement; simulated here, live in ``live``) <- ``signals`` (predictions joined with quotes)
-> ``strategy`` (signals -> a decision) -> ``risk`` (limits; an event's worst-case loss from
its structure in ``exposure``) -> ``executor`` (a decision -> the exchange -> the account). Money
is integer cents inside. ``LiveKalshiExchange`` (``live``: the exchange of paper and live
trading) is imported when first asked for.
"""

from kalshi_lab.execution.account import (
    ClosedPosition,
    ContractPosition,
    KalshiAccount,
    OverdraftError,
    Settlement,
)
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.exchange import BaseKalshiExchange, SettledMarket, SimulatedKalshiExchange
from kalshi_lab.execution.executor import (
    BaseExecutor,
    KalshiExecutor,
    NestedKalshiExecutor,
    TWAPStrategy,
)
from kalshi_lab.execution.factory import build_strategy, make_executor
from kalshi_lab.execution.fees import FeeSchedule, fee_per_contract, quadratic_units
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.signals import build_signals, signal_tickers
from kalshi_lab.execution.strategy import (
    BaseMarketStrategy,
    BasePositionSizer,
    DecisionGenerator,
    DirectionalStrategy,
    EdgeBasedStrategy,
    ExitStrategy,
    FixedFractionSizer,
    KellyPositionSizer,
    LadderArbitrageStrategy,
)


def __getattr__(name: str) -> object:
    """``LiveKalshiExchange`` on first use (PEP 562): it imports the HTTP client (requests,
    cryptography; about 0.12 s), which the backtest and the other stages never use."""
    if name == "LiveKalshiExchange":
        from kalshi_lab.execution.live import LiveKalshiExchange

        return LiveKalshiExchange
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BaseExecutor",
    "BaseKalshiExchange",
    "BaseMarketStrategy",
    "BasePositionSizer",
    "ClosedPosition",
    "ContractOrder",
    "ContractPosition",
    "DecisionGenerator",
    "DirectionalStrategy",
    "EdgeBasedStrategy",
    "ExitStrategy",
    "FeeSchedule",
    "Fill",
    "FixedFractionSizer",
    "KalshiAccount",
    "KalshiExecutor",
    "KellyPositionSizer",
    "LadderArbitrageStrategy",
    "LiveKalshiExchange",
    "NestedKalshiExecutor",
    "OverdraftError",
    "PredictionMarketDecision",
    "RiskManager",
    "Settlement",
    "SettledMarket",
    "SimulatedKalshiExchange",
    "TWAPStrategy",
    "build_signals",
    "build_strategy",
    "fee_per_contract",
    "make_executor",
    "quadratic_units",
    "signal_tickers",
]
