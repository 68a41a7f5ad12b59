"""The seed's notebook face: ``KalshiAnalyzer`` and ``KalshiFeatureEngineer`` over a client.

Thin wrappers over the pipeline's own code, so a notebook and the DVC stages can never
disagree: a market's responses are recorded exactly as the fetch stage records them
(:class:`~kalshi_lab.data.raw_store.RawWriter`), parsed by the parquet stage's
:func:`~kalshi_lab.data.parse.parse_raw`, and turned into daily series and features by the
features stage's functions. Two differences from the seed's original code, both deliberate:

* days are keyed by ``as_of``, the END of the daily candle (00:00 UTC after the day), and a
  day's traded value sits on the same key as its price (the seed filed them one day apart);
* the target ``y`` is the pipeline's ``direction`` label: does the NEXT day's price rise
  (NaN when the next day had no trade), not the same day's return the features already show.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kalshi_lab.client import KalshiClient
from kalshi_lab.client.records import Market
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.features import TARGET_COLUMNS, build_features
from kalshi_lab.features.candles import DailyCandles, daily_candles
from kalshi_lab.features.columns import lag_columns
from kalshi_lab.features.flow import daily_flow
from kalshi_lab.features.panel import DAY_NS, Panel
from kalshi_lab.features.prices import daily_prices
from kalshi_lab.params import FeatureParams, SplitParams
from kalshi_lab.split import chronological_split

logger = logging.getLogger(__name__)

DEFAULT_FEATURES = FeatureParams(n_lags=10, volatility_window=7, min_price=0.01)


class KalshiAnalyzer:
    """Daily price and traded-value series of Kalshi markets, fetched through ``client``."""

    def __init__(self, client: KalshiClient) -> None:
        self.client = client
        self._tables: dict[str, dict[str, pd.DataFrame]] = {}

    def market_tables(self, ticker: str) -> dict[str, pd.DataFrame]:
        """The parquet stage's tables (series, events, markets, candles, trades) of one market.

        Fetched once per analyzer: the market, its event and series, its daily candles and
        all its trades over its whole life (live or archived, as the cutoff says).
        """
        if ticker not in self._tables:
            with tempfile.TemporaryDirectory() as raw:
                self._record(ticker, Path(raw))
                tables = parse_raw(Path(raw))
            self._tables[ticker] = {name: t.to_pandas() for name, t in tables.items()}
        return self._tables[ticker]

    def _record(self, ticker: str, raw_dir: Path) -> None:
        client = self.client
        pages = list(client.market_responses(tickers=[ticker]))
        docs = [d for p in pages for d in p.body.get("markets") or [] if d.get("ticker") == ticker]
        if not docs:
            client.get_market(ticker)  # raises NotFoundError naming the ticker
        market = Market.model_validate(docs[-1])
        event = client.event_response(market.event_ticker)
        series_ticker = event.body["event"]["series_ticker"]
        end = pd.Timestamp(market.close_time).ceil("D")
        responses = {
            "series": [client.series_response(series_ticker)],
            "events": [event],
            "markets": pages,
            "candlesticks": client.candlestick_responses(
                series_ticker,
                ticker,
                int(market.open_time.timestamp()),
                int(end.timestamp()),
                1440,
                settled_at=market.settlement_ts,
            ),
            "trades": client.trade_responses(
                ticker, int(market.open_time.timestamp()), int(market.close_time.timestamp())
            ),
        }
        with RawWriter(raw_dir, may_be_empty=("orderbooks",)) as writer:  # prices need none
            for kind, answers in responses.items():
                for r in answers:
                    writer.write(kind, r.path, r.params, r.received_at, r.body)

    def _daily(
        self, ticker: str
    ) -> tuple[dict[str, pd.DataFrame], Panel, DailyCandles, pd.DatetimeIndex]:
        """The market's tables, its daily grid and candles, and the grid's as_of times."""
        tables = self.market_tables(ticker)
        tickers = pd.Index([ticker])
        panel, candle = daily_candles(tables["candles"], tickers)
        as_of = pd.DatetimeIndex((panel.day * DAY_NS).view("datetime64[ns]"), name="as_of")
        return tables, panel, candle, as_of.tz_localize("UTC")

    def get_price_data(self, ticker: str) -> pd.Series:
        """Daily mean trade price in CENTS, forward-filled over days without trades.

        Indexed by ``as_of`` (UTC), the end of each daily candle; NaN before the first trade.
        """
        _, panel, candle, as_of = self._daily(ticker)
        prices = daily_prices(candle.price_mean, panel.groups, DEFAULT_FEATURES.min_price)
        return pd.Series(prices.price * 100.0, index=as_of, name=ticker)

    def get_trades_data(self, ticker: str) -> pd.DataFrame:
        """Daily traded value in dollars by taker side: ``yes`` (count x yes_price of YES
        takers) and ``no`` (count x no_price of NO takers), indexed by ``as_of``."""
        tables, panel, _, as_of = self._daily(ticker)
        flow = daily_flow(tables["trades"], pd.Index([ticker]), panel)
        return pd.DataFrame({"yes": flow.yes_value, "no": flow.no_value}, index=as_of)

    def get_orderbook_data(self, ticker: str, depth: int = 0) -> pd.DataFrame:
        """The book now: one row per bid level (side, price in dollars, contracts).

        Bids only, as the API sends them, each side ascending, so the BEST bid of a side is
        its LAST row; a YES ask is 1 minus the best NO bid.
        """
        book = self.client.get_orderbook(ticker, depth)
        rows = [
            (side, float(p), float(n)) for side in ("yes", "no") for p, n in getattr(book, side)
        ]
        return pd.DataFrame(rows, columns=["side", "price", "count"])


class KalshiFeatureEngineer(KalshiAnalyzer):
    """The seed's dataset: ``X = TS, RET_1..n, VOLUME_1..n`` and ``y`` per market-day.

    Built by the features stage's :func:`~kalshi_lab.features.build_features`, so the numbers
    are the pipeline's; ``split_data`` is the pipeline's chronological split with an embargo.
    """

    def __init__(self, client: KalshiClient, params: FeatureParams = DEFAULT_FEATURES) -> None:
        super().__init__(client)
        self.params = params
        self.features: pd.DataFrame | None = None

    @property
    def x_columns(self) -> list[str]:
        n = self.params.n_lags
        return ["TS", *lag_columns("RET", n), *lag_columns("VOLUME", n)]

    def build_dataset(self, tickers: list[str]) -> tuple[pd.DataFrame, pd.Series]:
        """``(X, y)`` of the markets, rows with a known label only, sorted by as_of."""
        parts = [self.market_tables(t) for t in tickers]
        tables = {
            name: pd.concat([p[name] for p in parts], ignore_index=True)
            for name in ("markets", "candles", "trades")
        }
        features = build_features(
            tables["markets"], tables["candles"], tables["trades"], self.params
        )
        target = TARGET_COLUMNS["direction"]
        labelled = features[target].notna()
        logger.info(
            "%d of %d market-days have a direction label (the next day traded before the close)",
            int(labelled.sum()),
            len(features),
        )
        self.features = (
            features[labelled]
            .sort_values(["as_of", "ticker"], kind="stable")
            .reset_index(drop=True)
        )
        return self.features[self.x_columns], self.features[target].astype(int)

    def split_data(
        self, train_size: float = 0.8, embargo_days: int = 1
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """``X_train, X_val, y_train, y_val``: chronological by as_of, never shuffled.

        A training row's label (the next day) is known before validation starts minus the
        embargo, so no training label peeks into the validation period.
        """
        if self.features is None:
            raise ValueError("call build_dataset(tickers) first")
        split = chronological_split(
            self.features,
            SplitParams(train_size=train_size, embargo_days=embargo_days),
            "direction",
        )
        x, y = self.features[self.x_columns], self.features[TARGET_COLUMNS["direction"]].astype(int)
        train, valid = np.asarray(split.train), np.asarray(split.valid)
        return x[train], x[valid], y[train], y[valid]
