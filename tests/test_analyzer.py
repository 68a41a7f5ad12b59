"""The seed's notebook face gives the pipeline's own numbers on the same data.

A simulated dataset is served by the local Kalshi-compatible server; the analyzer fetches
markets through the client, while the features stage's function reads the same raw data
directly. Prices, traded value, features and labels must agree exactly.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kalshi_lab import KalshiAnalyzer, KalshiClient, KalshiFeatureEngineer
from kalshi_lab.analyzer import DEFAULT_FEATURES
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.features import TARGET_COLUMNS, build_features
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw

CUTOFF = dt.datetime(2025, 1, 12, tzinfo=dt.UTC)
NOW = dt.datetime(2025, 1, 10, 6, tzinfo=dt.UTC)  # the server's clock: some markets are open


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return write_simulated_raw(tmp_path_factory.mktemp("served") / "raw")


@pytest.fixture(scope="module")
def stage_features(served) -> pd.DataFrame:
    t = {name: table.to_pandas() for name, table in parse_raw(served).items()}
    return build_features(t["markets"], t["candles"], t["trades"], DEFAULT_FEATURES)


@pytest.fixture(scope="module")
def client(served):
    with LocalKalshiServer(served, ServerConfig(rate_limit=False, cutoff=CUTOFF, now=NOW)) as srv:
        yield KalshiClient(srv.base_url)


def busiest(features: pd.DataFrame, n: int) -> list[str]:
    return list(features.groupby("ticker")["N_TRADES"].sum().nlargest(n).index)


def test_price_and_traded_value_are_the_feature_stage_s(client, stage_features):
    analyzer = KalshiAnalyzer(client)
    for ticker in busiest(stage_features, 3):
        rows = stage_features[stage_features["ticker"] == ticker].set_index("as_of")
        prices = analyzer.get_price_data(ticker)
        assert prices.index.name == "as_of" and str(prices.index.tz) == "UTC"
        np.testing.assert_array_equal(prices.loc[rows.index].to_numpy(), rows["price"] * 100)
        assert prices.ffill().equals(
            prices.loc[prices.first_valid_index() :].reindex(prices.index).ffill()
        )
        flow = analyzer.get_trades_data(ticker)
        np.testing.assert_array_equal(flow.loc[rows.index, "yes"], rows["VOLUME_1"])
        np.testing.assert_array_equal(flow.loc[rows.index, "no"], rows["NO_VOLUME"])


def test_the_dataset_and_split_are_the_pipeline_s(client, stage_features):
    tickers = busiest(stage_features, 6)
    fe = KalshiFeatureEngineer(client)
    x, y = fe.build_dataset(tickers)
    assert list(x.columns) == [
        "TS",
        *[f"RET_{k}" for k in range(1, 11)],
        *[f"VOLUME_{k}" for k in range(1, 11)],
    ]
    target = TARGET_COLUMNS["direction"]
    expected = (
        stage_features[stage_features["ticker"].isin(tickers) & stage_features[target].notna()]
        .sort_values(["as_of", "ticker"], kind="stable")
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(x, expected[x.columns])
    np.testing.assert_array_equal(y, expected[target].astype(int))
    x_train, x_val, y_train, y_val = fe.split_data(train_size=0.7)
    assert len(x_train) == len(y_train) > 0 and len(x_val) == len(y_val) > 0
    last_train_label = fe.features.loc[x_train.index, "as_of"].max() + pd.Timedelta(days=1)
    assert last_train_label < fe.features.loc[x_val.index, "as_of"].min()  # chronological


def test_orderbook_rows_keep_the_best_bid_last(client, served):
    tables = parse_raw(served)
    books, markets = tables["orderbook"].to_pandas(), tables["markets"].to_pandas()
    live = markets.loc[markets["settlement_ts"] >= CUTOFF, "ticker"]  # not archived
    at = books[(books["snapshot_ts"] <= NOW) & books["ticker"].isin(live)]
    latest = at[at["snapshot_ts"] == at["snapshot_ts"].max()]
    ticker = latest["ticker"].iloc[0]
    book = KalshiAnalyzer(client).get_orderbook_data(ticker)
    assert list(book.columns) == ["side", "price", "count"]
    served_book = latest[latest["ticker"] == ticker]
    for side in ("yes", "no"):
        levels = book[book["side"] == side]
        assert len(levels) > 0 and levels["price"].is_monotonic_increasing
        assert (
            levels["price"].iloc[-1] == served_book.loc[served_book["side"] == side, "price"].max()
        )
