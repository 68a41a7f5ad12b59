"""Build the configured strategy and executor: Hydra's ``_target_`` for strategies, a name for
executors. Backtest and the bot build them here, so both trade the same objects."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from typing import Any

import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

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
from kalshi_lab.user_code import make_repository_importable


def build_strategy(params: StrategyParams, target: str) -> BaseMarketStrategy:
    """Instantiate ``strategy._target_`` with its keys; ParamError naming what is wrong.

    The working directory (the repository root) is importable, so a user's ``my_strategies.py``
    there is found without installing it. A strategy that reads settlement probabilities
    (``signal_target``) refuses a model of another target.
    """
    make_repository_importable()
    try:
        cls = get_class(params.target)
    except Exception as exc:  # hydra raises ImportError or ValueError, with the cause
        raise ParamError(f"strategy._target_ {params.target} cannot be imported: {exc}") from None
    _check_arguments(cls, params.kwargs)
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


def _check_arguments(cls: type, kwargs: Mapping[str, Any]) -> None:
    """Each key a parameter of ``cls`` and of its annotated type (pydantic), else ParamError.

    Nested ``_target_`` mappings (a sizer) are Hydra's to build and are not checked here.
    """
    init = cls.__init__  # type: ignore[misc]
    signature = inspect.signature(init)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    known = [n for n in signature.parameters if n != "self"]
    unknown = sorted(set(kwargs) - set(known))
    if unknown and not takes_any:
        raise ParamError(f"strategy has unknown keys {unknown}; {cls.__name__} takes {known}")
    hints = typing.get_type_hints(init)
    for key, value in kwargs.items():
        if key not in hints or (isinstance(value, Mapping) and "_target_" in value):
            continue
        try:
            adapter = TypeAdapter(hints[key])
        except PydanticSchemaGenerationError:  # a class pydantic cannot check: leave it
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise ParamError(f"strategy.{key}: {reason}, got {value!r}") from None
