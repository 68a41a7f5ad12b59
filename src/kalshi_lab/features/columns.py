"""Names and order of the columns of the feature table.

Every other stage codes against these names, so they live in one place. Feature names are
upper case (as in the reference research code, ``RET_1``, ``VOLUME_1``); keys, context and
targets are lower case, so ``feature_columns`` is the only list a model may train on. The
user's features (``features.extra``) follow the same rule, which params.py enforces.
"""

from __future__ import annotations

from kalshi_lab.params import FeatureParams

#: identify a row: one market on one UTC day, keyed by the END of the daily candle
KEY_COLUMNS: tuple[str, ...] = ("ticker", "event_ticker", "series_ticker", "as_of")

#: what was known at as_of and is needed by evaluation and backtest, but is not a model input
CONTEXT_COLUMNS: tuple[str, ...] = (
    # the market's close_time (UTC): its ACTUAL close once closed, which for a market that
    # closed early was not known before; rows exist only before it; never a feature
    "close_time",
    "settlement_ts",  # UTC, null while unsettled: for evaluation only, never a feature
    # what the market pays on, from the markets table (kalshi_lab.data.structure): the
    # event's structure (ladder, bracket, binary, other) and the market's strikes
    "structure",
    "strike_type",
    "floor_strike",
    "cap_strike",
    # a ladder's implied distribution of the underlying at as_of, in the underlying's units
    # (which differ by series: LADDER_Z and LADDER_SD_STEPS are their scale-free features)
    "ladder_mean",
    "ladder_sd",
    "price",  # daily mean trade price, forward-filled over days without trades (dollars)
    "yes_bid",  # close of the daily candle's best YES bid (dollars)
    "yes_ask",  # close of the daily candle's best YES ask (dollars)
    "mid",  # (yes_bid + yes_ask) / 2
    "market_prob",  # = mid: the market's own probability, the baseline for the settlement target
)

#: model target name (params.model.target) -> column
TARGET_COLUMNS: dict[str, str] = {
    "settlement": "target_settlement",
    "direction": "target_direction",
}

#: model target name -> why a row's label is NaN (see features.targets), for the stages' logs
UNLABELLED_BECAUSE: dict[str, str] = {
    "settlement": "the market's result is not yes or no (unresolved, void or scalar)",
    "direction": "no trade on the next day, the next day starts at or after the close, "
    "or no price yet",
}

#: features without a lag, in output order; the comment is the definition at as_of
SNAPSHOT_FEATURES: tuple[str, ...] = (
    "TS",  # market age in days (as_of - open_time): a deterministic time id, not the calendar
    # days from as_of to the close known in advance: close_time, or latest_expiration_time for
    # a market that can close early (its close_time moves to the early close when it happens)
    "DAYS_TO_CLOSE",
    "NO_TRADE",  # 1.0 if the day ending at as_of had no trade (its RET is 0 by forward fill)
    "DAYS_SINCE_TRADE",  # days since the last day with a trade (0 on a trade day)
    "N_TRADES",  # number of trades in the day ending at as_of
    "NO_VOLUME",  # traded value of NO takers in that day (dollars)
    "FLOW_IMBALANCE",  # (YES value - NO value) / (YES value + NO value); NaN without trades
    "VOLATILITY",  # std of RET over the last volatility_window days (at least 2 returns)
    "SPREAD",  # yes_ask - yes_bid (dollars)
    "MID",  # mid quote: price level
    "MID_DIST",  # |mid - 0.5|: distance from a coin flip
    "LOGIT_MID",  # log-odds of mid clipped to [min_price, 1 - min_price]
    "OI_CHANGE",  # open interest now minus a day earlier (contracts)
    # event features by structure (features.event): NaN where the structure has none
    "EVENT_N_OPEN",  # the event's strikes open at as_of (every structure)
    "BRACKET_OVERROUND",  # a bracket set's quoted mids summed, minus 1
    "BRACKET_SHARE",  # mid / the bracket set's sum of mids: the overround removed
    "LADDER_Z",  # a ladder's implied mean minus the strike, toward YES, in implied sds
    "LADDER_SD_STEPS",  # a ladder's implied sd of the underlying, in strike spacings
    "LADDER_ARB_GAP",  # largest "above" bid over an adjacent lower strike's ask (> 0: crossed)
    "LADDER_N_CROSSED",  # the ladder's adjacent strike pairs crossed at executable prices
)


def lag_columns(prefix: str, n_lags: int) -> list[str]:
    """``PREFIX_1 .. PREFIX_n``; ``PREFIX_1`` is the value of the day ending at as_of."""
    return [f"{prefix}_{k}" for k in range(1, n_lags + 1)]


def builtin_feature_columns(params: FeatureParams) -> list[str]:
    """The package's own model inputs, in order: return lags, volume lags, snapshot features."""
    return [
        *lag_columns("RET", params.n_lags),
        *lag_columns("VOLUME", params.n_lags),
        *SNAPSHOT_FEATURES,
    ]


def user_feature_columns(params: FeatureParams) -> list[str]:
    """The columns of ``features.extra``, entry by entry (:mod:`kalshi_lab.features.user`)."""
    return [name for entry in params.extra for name in entry.columns]


def feature_columns(params: FeatureParams) -> list[str]:
    """The model's input columns, in order: the built-in ones, then the user's."""
    return [*builtin_feature_columns(params), *user_feature_columns(params)]


def builtin_output_columns(params: FeatureParams) -> list[str]:
    """The columns ``build_features`` writes, in order: all but the user features."""
    return [
        *KEY_COLUMNS,
        *CONTEXT_COLUMNS,
        *TARGET_COLUMNS.values(),
        *builtin_feature_columns(params),
    ]


def output_columns(params: FeatureParams) -> list[str]:
    """Every column of the feature table, in order."""
    return [*builtin_output_columns(params), *user_feature_columns(params)]
