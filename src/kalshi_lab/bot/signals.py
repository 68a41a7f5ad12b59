"""Predictions for "now": the trained model applied to features built exactly as the pipeline
builds them.

One cycle records, with the client, what the fetch stage would record for the markets traded:
the open markets of the series, every market of their events (the event features read all of an
event's strikes), each one's daily candles since it opened and its trades of the
``features.n_lags`` days up to ``as_of`` (with user features, ``features.extra``, every trade
of every one of those markets since it opened: a user feature may read any). The responses go into a temporary raw directory
(:class:`~kalshi_lab.data.raw_store.RawWriter`), are parsed by the parquet stage's
:func:`~kalshi_lab.data.parse.parse_raw` and turned into features by the features stage's
:func:`~kalshi_lab.features.build_features`, as :mod:`kalshi_lab.analyzer` does for a notebook.

A market's row at ``as_of`` (the end of the latest daily candle, 00:00 UTC of the decision's
day) is then the pipeline's row of that market and day: prices are forward-filled over its whole
life, the volume lags see the trades of their days. The model is applied as the evaluate stage
applies it, and a prediction's ``known_close`` is ``as_of + DAYS_TO_CLOSE``, the close known in
advance.

User features are computed by the features stage's code on the tables the cycle recorded. A
cycle records no order book history and only daily candles: a user feature that reads the
``orderbook`` table (or ``candles``, when the pipeline's data has hourly ones) is refused with
an error naming it, since its value for now could differ from the one the model learnt from.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from kalshi_lab import paths
from kalshi_lab.client import ApiResponse, KalshiClient
from kalshi_lab.client.records import Market
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.errors import DataError
from kalshi_lab.evaluation.blocks import PREDICTION_CONTEXT
from kalshi_lab.execution.live import is_open
from kalshi_lab.features import build_features, feature_columns
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.user import compute_user_features, user_features
from kalshi_lab.params import FeatureParams, Params

logger = logging.getLogger(__name__)
#: the temporary directory a cycle records the API's answers in
SCRATCH_PREFIX = ".cycle-"

#: daily candles, as the features stage reads them
DAILY = 1440
#: the columns of a prediction frame: the evaluate stage's context (the feature-table columns
#: a prediction carries), prob and the close known in advance, without its label
PREDICTION_COLUMNS = [*PREDICTION_CONTEXT, "prob", "known_close"]


@dataclass(frozen=True)
class TrainedModel:
    """The model kalshi-bot trades (``models/live.joblib``, fit on every labelled row) and what
    it was trained on (``model.json``)."""

    estimator: Any
    name: str
    target: str
    columns: list[str]  # feature columns, in the order it was trained on
    path: Path


def load_model(models_dir: Path, params: Params) -> TrainedModel:
    """The model in ``models_dir``; a DataError names the file that is missing or does not
    fit params.yaml (another feature set, another target)."""
    model_path = Path(models_dir) / paths.MODEL_LIVE.name
    meta_path = Path(models_dir) / paths.MODEL_META.name
    for path in (model_path, meta_path):
        if not path.exists():
            raise DataError(f"{path} does not exist: train a model first (dvc repro train)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{meta_path} cannot be read: {exc}") from None
    expected = feature_columns(params.features)
    trained = meta.get("features")
    if trained != expected:
        trained = trained if isinstance(trained, list) else []
        missing = [c for c in expected if c not in trained]
        extra = [c for c in trained if c not in expected]
        detail = f"missing {missing[:5]}, extra {extra[:5]}" if missing or extra else "order"
        raise DataError(
            f"{meta_path}: the model was trained on another feature set than params.yaml's "
            f"features give ({detail}): retrain it (dvc repro train) or restore the features "
            "config it was trained with"
        )
    if meta.get("target") != params.model.target:
        raise DataError(
            f"{meta_path}: the model predicts target {meta.get('target')!r}, params.yaml "
            f"model.target is {params.model.target!r}: retrain it (dvc repro train)"
        )
    try:
        estimator = joblib.load(model_path)
    except Exception as exc:  # unpickling fails in many ways; each is an unusable file
        raise DataError(f"{model_path} cannot be loaded: {exc}") from None
    if not hasattr(estimator, "predict_proba"):
        raise DataError(f"{model_path} is not a classifier (it has no predict_proba)")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and list(names) != expected:
        raise DataError(f"{model_path} was fitted on other columns than {meta_path} lists")
    return TrainedModel(estimator, str(meta.get("model")), meta["target"], expected, model_path)


@dataclass(frozen=True)
class MarketSnapshot:
    """What one cycle read: the parsed tables and the markets open at ``now``."""

    now: pd.Timestamp
    as_of: pd.Timestamp  # the end of the latest daily candle at or before now
    open_markets: dict[str, Market]  # ticker -> market, open at now
    tables: dict[str, pd.DataFrame]  # the parquet stage's tables of what was read (none: none open)


def _unix(ts: pd.Timestamp) -> int:
    return int(ts.timestamp())


def record_markets(
    client: KalshiClient,
    series: Sequence[str],
    now: pd.Timestamp,
    features: FeatureParams,
    scratch: Path | None = None,
) -> MarketSnapshot:
    """Read the open markets of ``series`` and what their features need, as the fetch stage
    records it (see the module docstring).

    The responses are recorded in a temporary directory under ``scratch`` (the session's
    report directory: a bot killed meanwhile leaves it there, where the next start removes
    it; ``SCRATCH_PREFIX``), or under the system's temporary directory."""
    as_of = now.floor("D")
    now_s = _unix(now)
    open_markets: dict[str, Market] = {}
    for series_ticker in series:
        for market in client.get_markets(
            series_ticker=series_ticker, status="open", historical=False
        ):
            if is_open(market, now):
                open_markets[market.ticker] = market
    if not open_markets:
        logger.info("no market of %s is open at %s", ",".join(series), now.isoformat())
        return MarketSnapshot(now, as_of, {}, {})
    events = sorted({m.event_ticker for m in open_markets.values()})
    prefix = "kalshi-bot-" if scratch is None else SCRATCH_PREFIX
    with tempfile.TemporaryDirectory(prefix=prefix, dir=scratch) as tmp:
        raw = Path(tmp)
        with RawWriter(raw, may_be_empty=("orderbooks",)) as writer:  # features need none

            def keep(kind: str, responses: Iterable[ApiResponse]) -> None:
                for r in responses:
                    writer.write(kind, r.path, r.params, r.received_at, r.body)

            series_of: dict[str, str] = {}
            markets: list[Market] = []
            for event in events:
                response = client.event_response(event)
                keep("events", [response])
                series_of[event] = response.body["event"]["series_ticker"]
                pages = list(client.market_responses(event_ticker=event, historical=False))
                keep("markets", pages)
                markets += [Market.model_validate(d) for p in pages for d in p.body["markets"]]
            for series_ticker in sorted(set(series_of.values())):
                keep("series", [client.series_response(series_ticker)])
            # every market with a row at as_of, for the event features
            with_rows = [m for m in markets if m.open_time < now and m.close_time > as_of]
            for m in with_rows:
                keep(
                    "candlesticks",
                    client.candlestick_responses(
                        series_of[m.event_ticker],
                        m.ticker,
                        _unix(pd.Timestamp(m.open_time)),
                        now_s,
                        DAILY,
                    ),
                )
            until = _unix(as_of)
            if features.extra:  # a user feature may read any trade up to as_of, as in the stage
                for m in with_rows:
                    since = _unix(pd.Timestamp(m.open_time))
                    keep("trades", client.trade_responses(m.ticker, since, until))
            else:  # the built-in features at as_of see the trades of the n_lags days ending then
                since = _unix(as_of - pd.Timedelta(days=features.n_lags))
                for ticker in sorted(open_markets):
                    keep("trades", client.trade_responses(ticker, since, until))
        tables = {name: t.to_pandas() for name, t in parse_raw(raw).items()}
    return MarketSnapshot(now, as_of, open_markets, tables)


class RecordedTables(Mapping[str, pd.DataFrame]):
    """A cycle's tables, as the user features read them: a table the cycle does not record as
    the features stage's tables hold it is a DataError (see the module docstring)."""

    def __init__(self, tables: Mapping[str, pd.DataFrame], hourly_candles: bool) -> None:
        self.tables = tables
        self.refused = {
            "orderbook": "a cycle records no order book history, the features stage's table "
            "holds every snapshot"
        }
        if hourly_candles:
            self.refused["candles"] = (
                "a cycle records daily candles only, the pipeline's data (data.hourly_candles) "
                "hourly ones too"
            )

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name in self.refused:
            raise DataError(f"kalshi-bot cannot give it the {name} table: {self.refused[name]}")
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)


def features_now(snapshot: MarketSnapshot, params: Params) -> pd.DataFrame:
    """The feature rows of the open markets at ``snapshot.as_of``, as the features stage would
    compute them; markets without one are logged (no daily candle ended by then)."""
    t = snapshot.tables
    if not snapshot.open_markets or t["candles"].empty:
        rows = pd.DataFrame(columns=["ticker", "as_of"])
    else:
        features = build_features(t["markets"], t["candles"], t["trades"], params.features)
        recorded = RecordedTables(t, params.data.hourly_candles)
        values = compute_user_features(
            user_features(params.features), recorded, features[list(KEY_COLUMNS)]
        )
        for column in values:
            features[column] = values[column].to_numpy()
        open_now = features["ticker"].isin(list(snapshot.open_markets))
        rows = features[open_now & (features["as_of"] == snapshot.as_of)]
    missing = sorted(set(snapshot.open_markets) - set(rows["ticker"]))
    if missing:
        logger.info(
            "%d of %d open markets have no feature row at %s (no daily candle ended by then, "
            "e.g. opened since): no prediction, e.g. %s",
            len(missing),
            len(snapshot.open_markets),
            snapshot.as_of.isoformat(),
            missing[0],
        )
    return rows.reset_index(drop=True)


def predict(model: TrainedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Predictions of the rows, with the evaluate stage's columns (PREDICTION_COLUMNS)."""
    if rows.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
        for c in ("as_of", "known_close"):
            frame[c] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame.astype({"prob": float, "mid": float, "market_prob": float})
    prob = model.estimator.predict_proba(rows[model.columns])[:, 1]
    return rows[PREDICTION_CONTEXT].assign(
        prob=prob,
        known_close=rows["as_of"] + pd.to_timedelta(rows["DAYS_TO_CLOSE"], unit="D"),
    )[PREDICTION_COLUMNS]


def predictions_now(
    client: KalshiClient,
    model: TrainedModel,
    params: Params,
    series: Sequence[str],
    now: pd.Timestamp,
    scratch: Path | None = None,
) -> tuple[pd.DataFrame, MarketSnapshot]:
    """The model's predictions for the open markets of ``series`` at ``now`` (``scratch``:
    see :func:`record_markets`)."""
    snapshot = record_markets(client, series, now, params.features, scratch)
    predictions = predict(model, features_now(snapshot, params))
    logger.info(
        "%d open markets of %s; %d predictions from the daily candles ending %s",
        len(snapshot.open_markets),
        ",".join(series),
        len(predictions),
        snapshot.as_of.isoformat(),
    )
    return predictions, snapshot
