"""Typed, validated view of params.yaml.

Stages never call ``@hydra.main``: DVC composes ``conf/`` into ``params.yaml`` and every stage
reads that file through :func:`load_params`. Validation happens here, before a stage computes or
writes anything, so a bad value stops the run with one message naming the parameter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kalshi_lab.errors import ParamError
from kalshi_lab.paths import PARAMS

MODEL_NAMES = ("lightgbm", "logreg", "hist_gb")
TARGETS = ("settlement", "direction")
DATA_SOURCES = ("synthetic", "kalshi")
EXECUTORS = ("simple", "nested")


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ParamError(f"{key} {rule}, got {value!r}")


def _in_open_unit(key: str, value: float) -> None:
    _require(0.0 < value < 1.0, key, "must be in (0, 1)", value)


def _in_half_open_unit(key: str, value: float) -> None:
    _require(0.0 < value <= 1.0, key, "must be in (0, 1]", value)


def _positive(key: str, value: float) -> None:
    _require(value > 0, key, "must be > 0", value)


def _non_negative(key: str, value: float) -> None:
    _require(value >= 0, key, "must be >= 0", value)


@dataclass(frozen=True)
class SyntheticParams:
    """Knobs of the offline market simulator (``data.synthetic``)."""

    seed: int
    n_markets: int
    max_strikes: int
    binary_event_share: float
    min_duration_days: int
    max_duration_days: int
    information_rate: float
    news_floor_hours: float
    price_lag_hours: float
    price_noise: float
    price_noise_close: float
    longshot_bias: float
    longshot_bias_close: float
    accuracy_horizon_days: float
    half_spread_cents: float
    depth_contracts: float
    book_levels: int
    trades_per_day: float
    informed_share: float
    longshot_taker_share: float

    def __post_init__(self) -> None:
        p = "data.synthetic."
        _require(self.n_markets >= 1, p + "n_markets", "must be >= 1", self.n_markets)
        _require(self.n_markets <= 100_000, p + "n_markets", "must be <= 100000", self.n_markets)
        _require(self.max_strikes >= 2, p + "max_strikes", "must be >= 2", self.max_strikes)
        _require(
            0.0 <= self.binary_event_share <= 1.0,
            p + "binary_event_share",
            "must be in [0, 1]",
            self.binary_event_share,
        )
        _require(
            self.min_duration_days >= 2,
            p + "min_duration_days",
            "must be >= 2",
            self.min_duration_days,
        )
        _require(
            self.max_duration_days >= self.min_duration_days,
            p + "max_duration_days",
            "must be >= data.synthetic.min_duration_days",
            self.max_duration_days,
        )
        for name in (
            "information_rate",
            "news_floor_hours",
            "price_lag_hours",
            "accuracy_horizon_days",
            "depth_contracts",
            "trades_per_day",
        ):
            _positive(p + name, getattr(self, name))
        for name in ("price_noise", "price_noise_close", "half_spread_cents"):
            _non_negative(p + name, getattr(self, name))
        _in_half_open_unit(p + "longshot_bias", self.longshot_bias)
        _in_half_open_unit(p + "longshot_bias_close", self.longshot_bias_close)
        _require(self.book_levels >= 1, p + "book_levels", "must be >= 1", self.book_levels)
        _require(
            0.0 <= self.informed_share <= 1.0,
            p + "informed_share",
            "must be in [0, 1]",
            self.informed_share,
        )
        _require(
            0.0 <= self.longshot_taker_share <= 1.0,
            p + "longshot_taker_share",
            "must be in [0, 1]",
            self.longshot_taker_share,
        )


@dataclass(frozen=True)
class RateLimitParams:
    """Kalshi's request budget (``data.rate_limit``): one token bucket per tier and direction."""

    tier: str
    tiers: dict[str, Any]

    def __post_init__(self) -> None:
        _require(
            self.tier in self.tiers,
            "data.rate_limit.tier",
            f"must be one of {sorted(self.tiers)}",
            self.tier,
        )
        for name, limits in self.tiers.items():
            key = f"data.rate_limit.tiers.{name}"
            _require(
                isinstance(limits, Mapping) and set(limits) == {"reads_per_s", "writes_per_s"},
                key,
                "must have exactly reads_per_s and writes_per_s",
                limits,
            )
            for direction in ("reads_per_s", "writes_per_s"):
                value = limits[direction]
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
                _require(ok, f"{key}.{direction}", "must be a number > 0", value)

    @property
    def reads_per_s(self) -> float:
        return float(self.tiers[self.tier]["reads_per_s"])

    @property
    def writes_per_s(self) -> float:
        return float(self.tiers[self.tier]["writes_per_s"])


@dataclass(frozen=True)
class DataParams:
    """Where raw data comes from and which UTC days it covers (``data``).

    ``start``/``end`` mean the same for every source: the markets open on at least one day of
    ``[start, end]``. The remaining keys belong to one source each (the Hydra group ``data``
    swaps them together): ``orderbook_snapshots_per_day`` and ``synthetic`` to the simulator,
    ``base_url`` through ``rate_limit`` to Kalshi's API (or a server that speaks it).
    """

    source: str
    start: dt.date
    end: dt.date
    hourly_candles: bool
    # synthetic
    orderbook_snapshots_per_day: int | None = None
    synthetic: SyntheticParams | None = None
    # kalshi
    base_url: str | None = None
    series: list[str] | None = None
    events: list[str] | None = None
    tickers: list[str] | None = None
    orderbook_depth: int | None = None
    concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    rate_limit: RateLimitParams | None = None

    def __post_init__(self) -> None:
        _require(
            self.source in DATA_SOURCES,
            "data.source",
            f"must be one of {DATA_SOURCES}",
            self.source,
        )
        _require(
            self.end >= self.start,
            "data.end",
            f"must be on or after data.start ({self.start})",
            str(self.end),
        )
        if self.source == "synthetic":
            self._check_synthetic()
        else:
            self._check_kalshi()

    def _check_synthetic(self) -> None:
        _require(
            self.orderbook_snapshots_per_day in (1, 2, 3, 4, 6, 8, 12, 24),
            "data.orderbook_snapshots_per_day",
            "must divide 24 hours evenly (1, 2, 3, 4, 6, 8, 12 or 24)",
            self.orderbook_snapshots_per_day,
        )
        _require(
            self.synthetic is not None,
            "data.synthetic",
            "is required when data.source is synthetic",
            None,
        )
        assert self.synthetic is not None
        days = (self.end - self.start).days + 1
        _require(
            days > self.synthetic.min_duration_days,
            "data.end",
            f"leaves {days} days: a market needs data.synthetic.min_duration_days + 1 "
            f"({self.synthetic.min_duration_days + 1}) calendar days",
            str(self.end),
        )

    def _check_kalshi(self) -> None:
        for name in ("base_url", "series", "orderbook_depth", "concurrency", "timeout_s"):
            _require(
                getattr(self, name) is not None, f"data.{name}", "is required by data=kalshi", None
            )
        _require(self.rate_limit is not None, "data.rate_limit", "is required by data=kalshi", None)
        _require(self.max_retries is not None, "data.max_retries", "is required", None)
        assert self.base_url is not None and self.series is not None
        _require(
            self.base_url.startswith(("http://", "https://")) and "/trade-api/v2" in self.base_url,
            "data.base_url",
            "must be an http(s) URL ending in /trade-api/v2",
            self.base_url,
        )
        _require(len(self.series) >= 1, "data.series", "must name at least one series", [])
        for name in ("series", "events", "tickers"):
            values = getattr(self, name) or []
            bad = [v for v in values if not v or v != v.strip() or "," in v]
            _require(not bad, f"data.{name}", "must be tickers without spaces or commas", bad)
        _require(
            0 <= (self.orderbook_depth or 0) <= 100,
            "data.orderbook_depth",
            "must be in [0, 100] (0 = the whole book)",
            self.orderbook_depth,
        )
        _require(
            1 <= (self.concurrency or 0) <= 32,
            "data.concurrency",
            "must be in [1, 32]",
            self.concurrency,
        )
        _positive("data.timeout_s", self.timeout_s)
        _non_negative("data.max_retries", self.max_retries)


@dataclass(frozen=True)
class FeatureParams:
    """Daily panel and lag features (``features``)."""

    n_lags: int
    volatility_window: int
    min_price: float

    def __post_init__(self) -> None:
        _require(1 <= self.n_lags <= 60, "features.n_lags", "must be in [1, 60]", self.n_lags)
        _require(
            self.volatility_window >= 2,
            "features.volatility_window",
            "must be >= 2",
            self.volatility_window,
        )
        _in_open_unit("features.min_price", self.min_price)


@dataclass(frozen=True)
class SplitParams:
    """Chronological train/validation split (``split``)."""

    train_size: float
    embargo_days: int

    def __post_init__(self) -> None:
        _in_open_unit("split.train_size", self.train_size)
        _non_negative("split.embargo_days", self.embargo_days)


@dataclass(frozen=True)
class ModelParams:
    """The classifier, its target and its hyper-parameters (``model``)."""

    name: str
    target: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.name in MODEL_NAMES, "model.name", f"must be one of {MODEL_NAMES}", self.name)
        _require(self.target in TARGETS, "model.target", f"must be one of {TARGETS}", self.target)


@dataclass(frozen=True)
class StrategyParams:
    """The strategy class (``strategy._target_``, Hydra's key) and its keyword arguments.

    Any importable subclass of ``kalshi_lab.execution.BaseMarketStrategy`` works, the user's own
    included (``conf/strategy/<name>.yaml`` with its ``_target_``; ``dvc exp run -S
    strategy=<name>``). The class checks its own arguments when the backtest builds it
    (:func:`kalshi_lab.execution.build_strategy`); here only the shape is checked, so that
    stages that never trade do not import strategy code.
    """

    target: str
    kwargs: dict[str, Any]

    @classmethod
    def from_config(cls, key: str, mapping: Any) -> StrategyParams:
        if not isinstance(mapping, Mapping):
            raise ParamError(f"{key} must be a mapping, got {mapping!r}")
        target = mapping.get("_target_")
        _require(
            isinstance(target, str) and "." in target,
            f"{key}._target_",
            "must name a class as module.Class",
            target,
        )
        return cls(target=target, kwargs={k: v for k, v in mapping.items() if k != "_target_"})

    @property
    def name(self) -> str:
        """The class name, for reports."""
        return self.target.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class RiskParams:
    """Hard limits on every buy, whatever the strategy decides (``risk``)."""

    max_contracts_per_market: int
    max_position_frac: float
    max_event_frac: float
    max_capital_frac: float
    max_daily_loss_frac: float
    kill_switch: bool

    def __post_init__(self) -> None:
        _require(
            self.max_contracts_per_market >= 1,
            "risk.max_contracts_per_market",
            "must be >= 1",
            self.max_contracts_per_market,
        )
        _in_half_open_unit("risk.max_position_frac", self.max_position_frac)
        _in_half_open_unit("risk.max_event_frac", self.max_event_frac)
        _in_half_open_unit("risk.max_capital_frac", self.max_capital_frac)
        _in_half_open_unit("risk.max_daily_loss_frac", self.max_daily_loss_frac)


@dataclass(frozen=True)
class BacktestParams:
    """Account, exchange and executor settings (``backtest``)."""

    initial_cash: float
    executor: str
    order_ttl_hours: float
    nested_slices: int
    nested_step_minutes: int
    taker_fee_rate: float
    max_fill_share: float
    max_volume_share: float

    def __post_init__(self) -> None:
        _positive("backtest.initial_cash", self.initial_cash)
        _require(
            self.executor in EXECUTORS,
            "backtest.executor",
            f"must be one of {EXECUTORS}",
            self.executor,
        )
        _non_negative("backtest.order_ttl_hours", self.order_ttl_hours)
        _require(
            self.nested_slices >= 1, "backtest.nested_slices", "must be >= 1", self.nested_slices
        )
        _require(
            self.nested_step_minutes >= 1,
            "backtest.nested_step_minutes",
            "must be >= 1",
            self.nested_step_minutes,
        )
        _require(
            0.0 <= self.taker_fee_rate < 1.0,
            "backtest.taker_fee_rate",
            "must be in [0, 1)",
            self.taker_fee_rate,
        )
        _in_half_open_unit("backtest.max_fill_share", self.max_fill_share)
        _in_half_open_unit("backtest.max_volume_share", self.max_volume_share)


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml, validated section by section and across sections."""

    data: DataParams
    features: FeatureParams
    split: SplitParams
    model: ModelParams
    strategy: StrategyParams
    risk: RiskParams
    backtest: BacktestParams


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Convert one YAML value to the annotated type, or raise ParamError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(key, args[0], value)
    if hasattr(tp, "from_config"):
        return tp.from_config(key, value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, key, value)
    if value is None:
        raise ParamError(f"{key} is required, got null")
    if tp is bool:
        _require(isinstance(value, bool), key, "must be true or false", value)
        return value
    if tp is int:
        _require(
            isinstance(value, int) and not isinstance(value, bool), key, "must be an integer", value
        )
        return value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _require(ok, key, "must be a number", value)
        return float(value)
    if tp is str:
        _require(isinstance(value, str), key, "must be a string", value)
        return value
    if tp is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ParamError(f"{key} must be a date YYYY-MM-DD, got {value!r}") from None
    if origin is list:
        _require(isinstance(value, list), key, "must be a list", value)
        (item,) = typing.get_args(tp)
        return [_coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if origin is dict:
        _require(isinstance(value, Mapping), key, "must be a mapping", value)
        return dict(value)
    raise TypeError(f"unsupported annotation {tp!r} for {key}")


def _build(cls: type, key: str, mapping: Any) -> Any:
    if not isinstance(mapping, Mapping):
        raise ParamError(f"{key} must be a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ParamError(f"{key} has unknown keys {unknown}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in mapping:
            kwargs[name] = _coerce(sub, hints[name], mapping[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"{sub} is missing")
    return cls(**kwargs)


def params_from_dict(raw: Mapping[str, Any]) -> Params:
    """Validate a composed config (a plain dict, as in params.yaml)."""
    return _build(Params, "", raw)


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml; a missing or unreadable file is a ParamError."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {exc}") from None
    return params_from_dict(raw or {})
