"""Typed, validated view of params.yaml.

Stages never call ``@hydra.main``: DVC composes ``conf/`` into ``params.yaml`` and every stage
reads that file through :func:`load_params`. Validation happens here, before a stage computes or
writes anything, so a bad value stops the run with one message naming the parameter.

The sections are pydantic dataclasses: pydantic checks types, bounds, choices and unknown keys,
while the classes stay plain frozen dataclasses to the code that uses them (positional
construction, ``dataclasses.replace``). Numbers and flags are pydantic's ``Strict*`` types, so
YAML's ``true`` is not a count and ``"0.5"`` is not a fraction; dates also come as YAML strings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs, InitErrorDetails, PydanticCustomError

from kalshi_lab.errors import ParamError
from kalshi_lab.paths import PARAMS

ModelName = Literal["lightgbm", "logreg", "hist_gb", "lightgbm_offset", "anchored_logit"]
Target = Literal["settlement", "direction"]
DataSource = Literal["synthetic", "kalshi"]
ExecutorName = Literal["simple", "nested"]
ComputeEngine = Literal["local", "dask"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
#: models whose prediction starts from the market's price of YES: no meaning for ``direction``
SETTLEMENT_ONLY_MODELS: tuple[str, ...] = ("lightgbm_offset", "anchored_logit")
TARGETS: tuple[str, ...] = get_args(Target)
DATA_SOURCES: tuple[str, ...] = get_args(DataSource)
EXECUTORS: tuple[str, ...] = get_args(ExecutorName)
T = TypeVar("T")

#: a Kalshi series, event or market ticker as a list item: no spaces, no commas (the API joins
#: lists with commas)
Ticker = Annotated[str, Field(pattern=r"^[^\s,]+$")]

#: every section: unknown keys are errors, values never change after validation
SECTION = ConfigDict(extra="forbid", frozen=True)


def section(key: str, config: ConfigDict = SECTION) -> Callable[[type[T]], type[T]]:
    """A section of params.yaml at ``key``: a frozen pydantic dataclass.

    Built from params.yaml, a section is validated as part of :class:`Params`; built in code
    (the simulator's tests, the analyzer's command line, ``dataclasses.replace`` in the bot) it
    raises the same :class:`ParamError` naming the key, not pydantic's multi-line error.
    """

    def wrap(cls: type[T]) -> type[T]:
        cls = dataclass(config=config)(cls)
        validate = cls.__init__
        names = [f.name for f in dataclasses.fields(cls)]

        @functools.wraps(validate)
        def __init__(self: T, *args: Any, **kwargs: Any) -> None:
            by_position = names[: len(args)]
            if len(args) <= len(names) and not set(by_position) & set(kwargs):
                # by name, so that an error names the key, not [0]
                args, kwargs = (), dict(zip(by_position, args, strict=True)) | kwargs
            try:
                validate(self, *args, **kwargs)
            except ValidationError as exc:
                raise _param_error(exc, key) from None

        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return wrap


def _broken_rule(model: str, key: str | None, message: str, value: Any) -> ValidationError:
    """A rule spanning fields, reported at ``key`` (pydantic prefixes the section's location),
    or at the section itself when ``key`` is None (a rule on all its fields alike).

    A plain ``ValueError`` from a model validator would name only the section.
    """
    loc = () if key is None else (key,)
    error = InitErrorDetails(type=PydanticCustomError("rule", message), loc=loc, input=value)
    return ValidationError.from_exception_data(model, [error])


#: the three ways a Kalshi event lists its markets, in the order of ``event_shares``
EVENT_STRUCTURES: tuple[str, ...] = ("ladder", "bracket", "binary")
#: a bracket set lists both open tails and at least one range between them
MIN_BRACKET_STRIKES = 3
#: how far from 1 the shares may sum (in floating point 0.7 + 0.2 + 0.1 is 0.9999999999999999)
SHARES_TOLERANCE = 1e-9


@section("data.synthetic.event_shares")
class EventShares:
    """Share of simulated events of each structure (``data.synthetic.event_shares``).

    Kalshi lists an event's outcomes in one of three ways: a threshold *ladder* ("above X" for
    several X; several resolve YES, the event is not mutually exclusive), a *bracket* set of
    exclusive ranges (exactly one resolves YES) or a single YES/NO *binary* market.
    """

    ladder: Annotated[StrictFloat, Field(ge=0)]
    bracket: Annotated[StrictFloat, Field(ge=0)]
    binary: Annotated[StrictFloat, Field(ge=0)]

    @model_validator(mode="after")
    def _sum_to_one(self) -> EventShares:
        total = self.ladder + self.bracket + self.binary
        if abs(total - 1.0) > SHARES_TOLERANCE:
            # reported at the mapping itself: no one share is the wrong one
            raise _broken_rule(
                "EventShares",
                None,
                f"must sum to 1 (they sum to {total:g})",
                dataclasses.asdict(self),
            )
        return self

    def ordered(self) -> tuple[float, float, float]:
        """The shares in the order of :data:`EVENT_STRUCTURES`."""
        return (self.ladder, self.bracket, self.binary)


@section("data.synthetic")
class SyntheticParams:
    """Knobs of the offline market simulator (``data.synthetic``)."""

    seed: StrictInt
    n_markets: Annotated[StrictInt, Field(ge=1, le=100_000)]
    max_strikes: Annotated[StrictInt, Field(ge=2)]
    event_shares: EventShares
    min_duration_days: Annotated[StrictInt, Field(ge=2)]
    max_duration_days: Annotated[StrictInt, Field(ge=2)]
    information_rate: Annotated[StrictFloat, Field(gt=0)]
    news_floor_hours: Annotated[StrictFloat, Field(gt=0)]
    price_lag_hours: Annotated[StrictFloat, Field(gt=0)]
    price_noise: Annotated[StrictFloat, Field(ge=0)]
    price_noise_close: Annotated[StrictFloat, Field(ge=0)]
    longshot_bias: Annotated[StrictFloat, Field(gt=0, le=1)]
    longshot_bias_close: Annotated[StrictFloat, Field(gt=0, le=1)]
    accuracy_horizon_days: Annotated[StrictFloat, Field(gt=0)]
    half_spread_cents: Annotated[StrictFloat, Field(ge=0)]
    depth_contracts: Annotated[StrictFloat, Field(gt=0)]
    book_levels: Annotated[StrictInt, Field(ge=1)]
    trades_per_day: Annotated[StrictFloat, Field(gt=0)]
    informed_share: Annotated[StrictFloat, Field(ge=0, le=1)]
    longshot_taker_share: Annotated[StrictFloat, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _durations_ordered(self) -> SyntheticParams:
        if self.max_duration_days < self.min_duration_days:
            raise _broken_rule(
                "SyntheticParams",
                "max_duration_days",
                f"must be >= data.synthetic.min_duration_days ({self.min_duration_days})",
                self.max_duration_days,
            )
        if self.event_shares.bracket > 0 and self.max_strikes < MIN_BRACKET_STRIKES:
            raise _broken_rule(
                "SyntheticParams",
                "max_strikes",
                f"must be >= {MIN_BRACKET_STRIKES} when data.synthetic.event_shares.bracket > 0 "
                "(a bracket set lists two open tails and at least one range)",
                self.max_strikes,
            )
        return self


@section("data.rate_limit.tiers")
class RequestRates:
    """One tier of Kalshi's request budget: a token bucket per direction."""

    reads_per_s: Annotated[StrictFloat, Field(gt=0)]
    writes_per_s: Annotated[StrictFloat, Field(gt=0)]


@section("data.rate_limit")
class RateLimitParams:
    """Kalshi's request budget (``data.rate_limit``): the tier this account has, of ``tiers``."""

    tier: str
    tiers: dict[str, RequestRates]

    @model_validator(mode="after")
    def _tier_is_listed(self) -> RateLimitParams:
        if self.tier not in self.tiers:
            raise _broken_rule(
                "RateLimitParams", "tier", f"must be one of {sorted(self.tiers)}", self.tier
            )
        return self

    @property
    def reads_per_s(self) -> float:
        return self.tiers[self.tier].reads_per_s

    @property
    def writes_per_s(self) -> float:
        return self.tiers[self.tier].writes_per_s


#: keys each source needs; the others may stay null (the Hydra group ``data`` swaps them)
REQUIRED_BY_SOURCE: dict[str, tuple[str, ...]] = {
    "synthetic": ("orderbook_snapshots_per_day", "synthetic"),
    "kalshi": (
        "base_url",
        "series",
        "orderbook_depth",
        "concurrency",
        "timeout_s",
        "max_retries",
        "rate_limit",
    ),
}


@section("data")
class DataParams:
    """Where raw data comes from and which UTC days it covers (``data``).

    ``start``/``end`` mean the same for every source: the markets open on at least one day of
    ``[start, end]``. The remaining keys belong to one source each (the Hydra group ``data``
    swaps them together): ``orderbook_snapshots_per_day`` and ``synthetic`` to the simulator,
    ``base_url`` through ``rate_limit`` to Kalshi's API (or a server that speaks it).
    """

    source: DataSource
    start: dt.date
    end: dt.date
    hourly_candles: StrictBool
    # minutes between the samples of order books rebuilt from recorded streams (kalshi-lab
    # record), at the same clock times every UTC day: a divisor of 1440
    book_interval: StrictInt = Field(default=60, ge=1, le=1440)
    # synthetic: snapshots divide the day evenly
    orderbook_snapshots_per_day: Literal[1, 2, 3, 4, 6, 8, 12, 24] | None = None
    synthetic: SyntheticParams | None = None
    # kalshi
    base_url: str | None = Field(default=None, pattern=r"^https?://\S+/trade-api/v2")
    series: list[Ticker] | None = Field(default=None, min_length=1)
    events: list[Ticker] | None = None
    tickers: list[Ticker] | None = None
    orderbook_depth: StrictInt | None = Field(default=None, ge=0, le=100)  # 0 = the whole book
    concurrency: StrictInt | None = Field(default=None, ge=1, le=32)
    timeout_s: StrictFloat | None = Field(default=None, gt=0)
    max_retries: StrictInt | None = Field(default=None, ge=0)
    rate_limit: RateLimitParams | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DataParams:
        if self.end < self.start:
            raise _broken_rule(
                "DataParams", "end", f"must be on or after data.start ({self.start})", str(self.end)
            )
        for key in REQUIRED_BY_SOURCE[self.source]:
            if getattr(self, key) is None:
                raise _broken_rule("DataParams", key, f"is required by data={self.source}", None)
        if 1440 % self.book_interval:
            raise _broken_rule(
                "DataParams",
                "book_interval",
                "must divide a day (1440 minutes): 1, 5, 15, 30, 60, 240, ...",
                str(self.book_interval),
            )
        days = (self.end - self.start).days + 1
        if self.synthetic is not None and days <= self.synthetic.min_duration_days:
            raise _broken_rule(
                "DataParams",
                "end",
                f"leaves {days} days: a market needs data.synthetic.min_duration_days + 1 "
                f"({self.synthetic.min_duration_days + 1}) calendar days",
                str(self.end),
            )
        return self


#: a model input's name: upper case, as the built-in features (``RET_1``, ``DAYS_TO_CLOSE``);
#: keys, context and targets are lower case, so a user feature can never take one's place
FeatureName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]


@section("features.extra", SECTION | ConfigDict(validate_by_name=True))
class UserFeatureParams:
    """One entry of ``features.extra``: a function ``f(tables, rows, **kwargs) -> DataFrame``
    (Hydra's ``_target_``), the model inputs it returns (``columns``) and its keyword
    arguments (every other key).

    The columns are declared, not only returned, so that every stage knows the model's inputs
    from params.yaml alone (``feature_columns``) without running or even importing user code;
    the features stage checks that the function returns exactly these. Only the shape is
    checked here: the function is imported by the stages that run it
    (:mod:`kalshi_lab.features.user`).
    """

    target: str = Field(alias="_target_", pattern=r"^\w+(\.\w+)+$")
    columns: tuple[FeatureName, ...] = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_config(cls, data: Any) -> Any:
        """The config's flat mapping ``{_target_, columns, **kwargs}`` (a constructor call
        passes through)."""
        if isinstance(data, ArgsKwargs) or not isinstance(data, Mapping):
            return data
        own = ("_target_", "columns")
        return {k: data[k] for k in own if k in data} | {
            "kwargs": {k: v for k, v in data.items() if k not in own}
        }

    @model_validator(mode="after")
    def _distinct_columns(self) -> UserFeatureParams:
        if len(set(self.columns)) < len(self.columns):
            raise _broken_rule(
                "UserFeatureParams", "columns", "must not repeat a name", list(self.columns)
            )
        return self


@section("features.leak_check")
class LeakCheckParams:
    """The features stage's look-ahead check of the user features (``features.leak_check``,
    :mod:`kalshi_lab.features.leak_check`); the defaults are conf/features/base.yaml's."""

    enabled: StrictBool = True
    cutoffs: Annotated[StrictInt, Field(ge=1)] = 3  # sampled times the tables are truncated at
    seed: StrictInt = 0  # of the sampling
    min_rows: Annotated[StrictInt, Field(ge=1)] = 100  # rows a cut-off must already have


@section("features")
class FeatureParams:
    """Daily panel and lag features (``features``), and the user's own (``extra``)."""

    n_lags: Annotated[StrictInt, Field(ge=1, le=60)]
    volatility_window: Annotated[StrictInt, Field(ge=2)]
    min_price: Annotated[StrictFloat, Field(gt=0, lt=1)]
    extra: tuple[UserFeatureParams, ...] = ()
    leak_check: LeakCheckParams = Field(default_factory=LeakCheckParams)

    @model_validator(mode="after")
    def _distinct_user_columns(self) -> FeatureParams:
        seen: set[str] = set()
        for i, entry in enumerate(self.extra):
            again = sorted(seen.intersection(entry.columns))
            if again:
                raise _broken_rule(
                    "FeatureParams",
                    "extra",
                    f"entry {i} ({entry.target}) returns {again}, which an earlier entry returns",
                    [e.target for e in self.extra],
                )
            seen.update(entry.columns)
        return self


@section("split")
class SplitParams:
    """Chronological train / validation / test periods and walk-forward folds (``split``).

    The defaults of ``test_size`` and ``n_folds`` give the plain train/validation split that
    callers outside the pipeline (the analyzer) ask for. ``min_train_events`` and
    ``min_scored_events`` are the least a period must hold to be scored rather than skipped
    (:mod:`kalshi_lab.guards`): fewer events make artifacts, not evidence.
    """

    train_size: Annotated[StrictFloat, Field(gt=0, lt=1)]
    embargo_days: Annotated[StrictInt, Field(ge=0)]
    test_size: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.0
    n_folds: Annotated[StrictInt, Field(ge=1)] = 1
    min_train_events: Annotated[StrictInt, Field(ge=1)] = 20
    min_scored_events: Annotated[StrictInt, Field(ge=1)] = 10

    @model_validator(mode="after")
    def _periods_fit(self) -> SplitParams:
        if self.test_size >= 1.0 - self.train_size:
            raise _broken_rule(
                "SplitParams",
                "test_size",
                f"must be in [0, 1 - split.train_size) = [0, {1.0 - self.train_size:g})",
                self.test_size,
            )
        return self


@section("evaluation")
class EvaluationParams:
    """Uncertainty and plots of the evaluate stage (``evaluation``)."""

    bootstrap_samples: Annotated[StrictInt, Field(ge=100)]
    bootstrap_seed: StrictInt
    reliability_bins: Annotated[StrictInt, Field(ge=2)]


@section("model")
class ModelParams:
    """The classifier, its target and its hyper-parameters (``model``).

    ``params`` go to the estimator as they are, so the estimator's own rules check them
    (names, types, ranges: :func:`kalshi_lab.models.check_model_params`, which the validate and
    train stages run; it needs LightGBM and scikit-learn, which this module does not import).
    ``lightgbm_offset`` and ``anchored_logit`` start from the market's probability of YES, so
    they predict only the ``settlement`` target.
    """

    name: ModelName
    target: Target
    seed: StrictInt
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _offset_needs_settlement(self) -> ModelParams:
        if self.name in SETTLEMENT_ONLY_MODELS and self.target != "settlement":
            raise _broken_rule(
                "ModelParams",
                "target",
                f"must be settlement for model.name={self.name} (it starts from the market's "
                "probability of YES); use model=lightgbm for direction",
                self.target,
            )
        return self


@section("strategy", SECTION | ConfigDict(validate_by_name=True))
class StrategyParams:
    """The strategy class (``strategy._target_``, Hydra's key) and its keyword arguments.

    Any importable subclass of ``kalshi_lab.execution.BaseMarketStrategy`` works, the user's own
    included (``conf/strategy/<name>.yaml`` with its ``_target_``; ``dvc exp run -S
    strategy=<name>``). The class checks its own arguments when the backtest builds it
    (:func:`kalshi_lab.execution.build_strategy`); here only the shape is checked, so that
    stages that never trade do not import strategy code.
    """

    target: str = Field(alias="_target_", pattern=r"^\w+(\.\w+)+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_config(cls, data: Any) -> Any:
        """The config's flat mapping ``{_target_, **kwargs}`` (a constructor call passes through)."""
        if isinstance(data, ArgsKwargs) or not isinstance(data, Mapping):
            return data
        kwargs = {k: v for k, v in data.items() if k != "_target_"}
        return {"kwargs": kwargs} | ({"_target_": data["_target_"]} if "_target_" in data else {})

    @classmethod
    def from_config(cls, key: str, mapping: Any) -> StrategyParams:
        """Validate a strategy config on its own; errors name keys under ``key``."""
        try:
            return TypeAdapter(cls).validate_python(mapping)
        except ValidationError as exc:
            raise _param_error(exc, key) from None

    @property
    def name(self) -> str:
        """The class name, for reports."""
        return self.target.rsplit(".", 1)[-1]


@section("risk")
class RiskParams:
    """Hard limits on every buy, whatever the strategy decides (``risk``)."""

    max_contracts_per_market: Annotated[StrictInt, Field(ge=1)]
    max_position_frac: Annotated[StrictFloat, Field(gt=0, le=1)]
    max_event_frac: Annotated[StrictFloat, Field(gt=0, le=1)]
    max_capital_frac: Annotated[StrictFloat, Field(gt=0, le=1)]
    max_daily_loss_frac: Annotated[StrictFloat, Field(gt=0, le=1)]
    kill_switch: StrictBool


@section("backtest")
class BacktestParams:
    """Account, exchange and executor settings (``backtest``)."""

    initial_cash: Annotated[StrictFloat, Field(gt=0)]
    executor: ExecutorName
    order_ttl_hours: Annotated[StrictFloat, Field(ge=0)]  # 0: an order rests until filled or closed
    nested_slices: Annotated[StrictInt, Field(ge=1)]
    nested_step_minutes: Annotated[StrictInt, Field(ge=1)]
    taker_fee_rate: Annotated[StrictFloat, Field(ge=0, lt=1)]
    max_fill_share: Annotated[StrictFloat, Field(gt=0, le=1)]
    max_volume_share: Annotated[StrictFloat, Field(gt=0, le=1)]
    # the oldest a book snapshot or candle may be at a send and still quote (hours)
    max_quote_age_hours: Annotated[StrictFloat, Field(gt=0)]
    bootstrap_samples: Annotated[StrictInt, Field(ge=100)]  # event resamples of the P&L
    bootstrap_seed: StrictInt
    # the same decisions acted on this many hours later: each a backtest of its own
    latency_hours: tuple[Annotated[StrictFloat, Field(gt=0)], ...]


@section("compute")
class ComputeParams:
    """Where the stages' per-partition work runs (``compute``; :mod:`kalshi_lab.compute`).

    Never what it computes: every engine and number of workers gives the same outputs, so no
    stage lists this section in dvc.yaml but validate, and switching it re-runs nothing.
    ``workers``: worker processes (``local``) or the workers of the ``LocalCluster`` a stage
    starts (``dask`` without ``address``); null, the cores this process may use. ``address``: a
    running ``dask.distributed`` scheduler (``tcp://host:8786``) to send the work to instead.
    """

    engine: ComputeEngine = "local"
    workers: Annotated[StrictInt, Field(ge=1)] | None = None
    address: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _address_is_dask(self) -> ComputeParams:
        if self.address is not None and self.engine != "dask":
            raise _broken_rule(
                "ComputeParams",
                "address",
                "is a Dask scheduler's: set compute=dask (or remove the address)",
                self.address,
            )
        return self


@section("")
class Params:
    """The whole of params.yaml, validated section by section."""

    data: DataParams
    features: FeatureParams
    split: SplitParams
    evaluation: EvaluationParams
    model: ModelParams
    strategy: StrategyParams
    risk: RiskParams
    backtest: BacktestParams
    #: optional: where work runs never changes a result
    compute: ComputeParams = Field(default_factory=ComputeParams)


def _location(loc: tuple[str | int, ...]) -> str:
    """pydantic's error location as the user writes it: ``data.series[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _param_error(exc: ValidationError, prefix: str = "") -> ParamError:
    """pydantic's first error as one line, ``<dotted.key>: <reason>, got <value>``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = _location(((prefix,) if prefix else ()) + tuple(first["loc"]))
    message = f"{key}: {first['msg']}" if key else first["msg"]
    if first["type"] != "missing":
        message += f", got {first['input']!r}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return ParamError(message)


_PARAMS = TypeAdapter(Params)


def params_from_dict(raw: Mapping[str, Any]) -> Params:
    """Validate a composed config (a plain dict, as in params.yaml)."""
    try:
        return _PARAMS.validate_python(raw)
    except ValidationError as exc:
        raise _param_error(exc) from None


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml; a missing, unreadable or invalid file is a ParamError."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {exc}") from None
    try:
        return params_from_dict(raw or {})
    except ParamError as exc:
        raise ParamError(f"{path}: {exc}") from None
