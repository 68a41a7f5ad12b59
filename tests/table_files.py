"""Tables in the parquet stage's on-disk form for the readers' tests: written by hand, or from a
small simulation."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_lab.data.tables import TABLE_FILES, TABLES
from kalshi_lab.paths import parquet_table


def write_table_files(root: Path, name: str, table: pa.Table | pd.DataFrame) -> None:
    """Replace table ``name`` under ``root`` by ``table`` as it is (its own columns), one file
    without partitions, or none when it has no rows; the other tables stay listed as they were."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    listing = Path(root) / TABLE_FILES
    files = (
        orjson.loads(listing.read_bytes())["tables"]
        if listing.exists()
        else {n: [] for n in TABLES}
    )
    directory = parquet_table(name, root)
    shutil.rmtree(directory, ignore_errors=True)
    files[name] = []
    if table.num_rows:
        directory.mkdir(parents=True)
        pq.write_table(table, directory / "part-0.parquet")
        files[name] = ["part-0.parquet"]
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_bytes(orjson.dumps({"tables": files}))


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): the parquet stage's whole output."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def simulated_tables(base: Path) -> Path:
    """The tables of a small simulation (60 markets, 2025-Q1: 5 series, several months) under
    ``base/parquet``, its raw partitions under ``base/raw``; parsed in this process."""
    from kalshi_lab.compose_params import compose
    from kalshi_lab.data.parquet_build import write_tables
    from kalshi_lab.params import ComputeParams, params_from_dict
    from kalshi_lab.simulator import write_synthetic_raw

    overrides = ["data.synthetic.n_markets=60", "data.start=2025-01-01", "data.end=2025-03-31"]
    data = params_from_dict(compose(overrides, Path(__file__).resolve().parents[1] / "conf")).data
    write_synthetic_raw(data, base / "raw")
    write_tables(base / "raw", base / "parquet", compute=ComputeParams(workers=1))
    return base / "parquet"
