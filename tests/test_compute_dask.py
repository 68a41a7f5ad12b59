"""compute=dask gives what compute=local gives: the per-partition work of the fetch (simulated
raw partitions), the parquet stage (the datasets) and the features stage, each run on a
2-worker Dask LocalCluster, writes the same bytes and builds the same table as in one process;
the evaluate stage's periods, run there, write the same reports and predictions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evaluate_inputs import evaluate_inputs, evaluated
from kalshi_lab.compose_params import compose
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.features.partitioned import builtin_parts
from kalshi_lab.params import ComputeParams, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from table_files import files_of

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ComputeParams(engine="local", workers=1)
DASK = ComputeParams(engine="dask", workers=2)

pytestmark = pytest.mark.slow


def test_fetch_parquet_and_features_on_a_dask_local_cluster_equal_local(tmp_path):
    overrides = ["data.synthetic.n_markets=60", "data.start=2025-01-01", "data.end=2025-03-31"]
    params = params_from_dict(compose(overrides, ROOT / "conf"))
    out = {}
    for name, compute in (("local", LOCAL), ("dask", DASK)):
        raw, tables = tmp_path / name / "raw", tmp_path / name / "parquet"
        write_synthetic_raw(params.data, raw, compute)
        write_tables(raw, tables, compute=compute)
        with builtin_parts(tables, params.features, compute) as parts:
            out[name] = (files_of(raw), files_of(tables), parts.to_pandas())
    (raw_local, tables_local, features_local), (raw_dask, tables_dask, features_dask) = (
        out["local"],
        out["dask"],
    )
    assert len([p for p in raw_local if p.endswith("manifest.json")]) >= 6  # partitions
    assert raw_dask == raw_local
    assert tables_dask == tables_local
    assert len(features_local) > 1000
    pd.testing.assert_frame_equal(features_dask, features_local)


def test_evaluate_on_a_dask_local_cluster_writes_what_it_writes_locally(tmp_path):
    inputs = evaluate_inputs(tmp_path)
    local = evaluated(inputs, ["compute.workers=1"])
    assert evaluated(inputs, ["compute=dask", "compute.workers=2"]) == local
