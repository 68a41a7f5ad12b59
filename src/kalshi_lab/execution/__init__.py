"""The execution layer of the design (Qlib's ``backtest/`` split), shared by backtest and trading.

One concept per module: ``decision`` (ContractOrder, Fill, PredictionMarketDecision) <- ``fees``
<- ``exchange`` (market rules: quotes, depth, fills, fees, trading hours) <- ``account`` (cash and
positions) <- ``strategy`` (signals -> a decision) and ``executor`` (a decision -> the exchange ->
the account). Money is integer cents inside.
"""

from kalshi_lab.execution.account import (
    ClosedPosition,
    ContractPosition,
    KalshiAccount,
    OverdraftError,
    Settlement,
)
from kalshi_lab.execution.decision import ContractOrder, Fill, PredictionMarketDecision
from kalshi_lab.execution.exchange import BaseKalshiExchange, SimulatedKalshiExchange
from kalshi_lab.execution.executor import BaseExecutor, KalshiExecutor, TWAPExecutor, make_executor
from kalshi_lab.execution.fees import FeeSchedule, fee_per_contract, quadratic_units
from kalshi_lab.execution.risk import RiskManager
from kalshi_lab.execution.strategy import (
    BaseMarketStrategy,
    DirectionalStrategy,
    EdgeBasedStrategy,
    make_strategy,
)

__all__ = [
    "BaseExecutor",
    "BaseKalshiExchange",
    "BaseMarketStrategy",
    "ClosedPosition",
    "ContractOrder",
    "ContractPosition",
    "DirectionalStrategy",
    "EdgeBasedStrategy",
    "FeeSchedule",
    "Fill",
    "KalshiAccount",
    "KalshiExecutor",
    "OverdraftError",
    "PredictionMarketDecision",
    "RiskManager",
    "Settlement",
    "SimulatedKalshiExchange",
    "TWAPExecutor",
    "fee_per_contract",
    "make_executor",
    "make_strategy",
    "quadratic_units",
]
