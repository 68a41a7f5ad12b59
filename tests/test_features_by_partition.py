"""The features stage builds the built-in features partition by partition of the tables, on
worker processes or not: the same table as built from the whole tables at once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data.tables import partition_filters, read_table
from kalshi_lab.features import build_features
from kalshi_lab.params import ComputeParams, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.stages.features import builtin_features
from kalshi_lab.stages.parquet import write_tables

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    overrides = ["data.synthetic.n_markets=60", "data.start=2025-01-01", "data.end=2025-03-31"]
    data = params_from_dict(compose(overrides, ROOT / "conf")).data
    raw, root = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("parquet")
    write_synthetic_raw(data, raw)
    write_tables(raw, root, compute=ComputeParams(workers=1))
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_features_by_partition_are_the_features_of_the_whole_tables(tables, tmp_path, workers):
    params = params_from_dict(compose([], ROOT / "conf")).features
    whole = build_features(
        read_table("markets", tables),
        read_table("candles", tables),
        read_table("trades", tables),
        params,
    )
    assert len(partition_filters(tables)) >= 6 and len(whole) > 1000
    got = builtin_features(tables, params, ComputeParams(workers=workers), tmp_path)
    pd.testing.assert_frame_equal(got, whole)
