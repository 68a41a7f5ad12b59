"""Build the configured strategy and executor: Hydra's ``_target_`` for strategies, a name for
executors. Backtest and the bot build them here, so both trade the same objects."""

from __future__ import annotations

import os
import sys

import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from kalshi_lab.errors import ParamError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.exchange import BaseKalshiExchange
from kalshi_lab.execution.executor import (
    BaseExecutor,
    KalshiExecutor,
    NestedKalshiExecutor,
    TWAPStrategy,
)
from kalshi_lab.execution.strategy import BaseMarketStrategy
from kalshi_lab.params import BacktestParams, StrategyParams


def build_strategy(params: StrategyParams, target: str) -> BaseMarketStrategy:
    """Instantiate ``strategy._target_`` with its keys; ParamError naming what is wrong.

    The working directory (the repository root) is importable, so a user's ``my_strategies.py``
    there is found without installing it. A strategy that reads settlement probabilities
    (``signal_target``) refuses a model of another target.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        strategy = instantiate({"_target_": params.target, **params.kwargs})
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ParamError):
            raise exc.__cause__ from None
        cause = exc.__cause__ or exc
        raise ParamError(f"strategy._target_ {params.target}: {cause}") from None
    if not isinstance(strategy, BaseMarketStrategy):
        raise ParamError(
            f"strategy._target_ {params.target} is not a kalshi_lab.execution.BaseMarketStrategy"
        )
    if strategy.signal_target is not None and strategy.signal_target != target:
        raise ParamError(
            f"model.target must be {strategy.signal_target} for {params.name} (it reads "
            f"{strategy.signal_target} probabilities), got {target!r}; use strategy=directional "
            "for the direction target"
        )
    return strategy


def make_executor(
    params: BacktestParams, exchange: BaseKalshiExchange, account: KalshiAccount
) -> BaseExecutor:
    """The executor named by ``params.executor``."""
    if params.executor == "nested":
        return NestedKalshiExecutor(
            exchange,
            account,
            TWAPStrategy(params.nested_slices),
            step=pd.Timedelta(minutes=params.nested_step_minutes),
        )
    ttl = pd.Timedelta(hours=params.order_ttl_hours) if params.order_ttl_hours > 0 else None
    return KalshiExecutor(exchange, account, ttl)
