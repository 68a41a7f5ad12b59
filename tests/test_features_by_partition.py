"""The features stage builds the built-in features partition by partition of the tables, on
worker processes or not: the same table as built from the whole tables at once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data.tables import partition_filters, read_table
from kalshi_lab.features import build_features
from kalshi_lab.features.partitioned import builtin_parts
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import ComputeParams, params_from_dict
from table_files import simulated_tables

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return simulated_tables(tmp_path_factory.mktemp("simulated"))


@pytest.mark.parametrize("workers", [1, 2])
def test_features_by_partition_are_the_features_of_the_whole_tables(tables, workers):
    params = params_from_dict(compose([], ROOT / "conf")).features
    whole = build_features(
        read_table("markets", tables),
        read_table("candles", tables),
        read_table("trades", tables),
        params,
    )
    assert len(partition_filters(tables)) >= 6 and len(whole) > 1000
    with builtin_parts(tables, params, ComputeParams(workers=workers)) as parts:
        got = parts.to_pandas()
    assert not list(tables.parent.glob(".features-*"))  # the parts removed
    # bit for bit: the partitions read only the columns the features use, some of them as
    # Categoricals, and their parts go through Arrow IPC files
    pd.testing.assert_frame_equal(got, whole, check_exact=True)


def test_an_event_with_fewer_rows_than_lags_builds_alone_as_among_the_others(tables):
    """A partition may hold fewer rows than ``features.n_lags``: its lags are all unknown."""
    params = params_from_dict(compose(["features.n_lags=60"], ROOT / "conf")).features
    markets, candles, trades = (read_table(n, tables) for n in ("markets", "candles", "trades"))
    whole = build_features(markets, candles, trades, params)
    sizes = whole["event_ticker"].value_counts()
    event = sizes.index[-1]
    assert sizes.iloc[-1] < params.n_lags
    mine = markets["event_ticker"] == event
    tickers = set(markets.loc[mine, "ticker"])
    alone = build_features(
        markets[mine].reset_index(drop=True),
        candles[candles["ticker"].isin(tickers)].reset_index(drop=True),
        trades[trades["ticker"].isin(tickers)].reset_index(drop=True),
        params,
    )
    expected = whole[whole["event_ticker"] == event].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, expected)
    assert alone[[f"RET_{k}" for k in range(len(alone), params.n_lags + 1)]].isna().all().all()


def test_the_stage_s_file_is_the_bytes_of_the_table_written_from_pandas(tables, tmp_path):
    """Without user features the stage writes the parts straight to the file; with them it
    writes the whole table from pandas: the same table must give the same bytes (DVC and the
    later stages hash them), here with the built-in features' real columns and types."""
    params = params_from_dict(compose([], ROOT / "conf")).features
    with builtin_parts(tables, params, ComputeParams(workers=1)) as parts:
        parts.write(tmp_path / "direct.parquet")
        whole = parts.to_pandas()
    with StagedOutputs() as out:
        out.write_parquet(tmp_path / "pandas.parquet", whole)
    assert (tmp_path / "direct.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
