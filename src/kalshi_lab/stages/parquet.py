"""parquet: raw API documents -> typed parquet tables in data/parquet/.

The order-book table holds the fetched snapshots and the books rebuilt from recorded streams
(``kalshi-lab record``), sampled every ``data.book_interval`` minutes.

Tables are written part by part as the parser hands them over, so the biggest (the
orderbook) is never whole in memory; all of them go to a temporary directory that replaces
data/parquet only when every table has been written.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_lab import paths
from kalshi_lab.data.book_rebuild import DEFAULT_INTERVAL_MINUTES
from kalshi_lab.data.parse import parse_into
from kalshi_lab.data.tables import TABLES
from kalshi_lab.errors import DataError
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.stages.runner import logger, run_stage


def write_tables(
    raw_dir: Path,
    root: Path,
    *,
    fast: bool = True,
    book_interval: int = DEFAULT_INTERVAL_MINUTES,
) -> dict[str, int]:
    """Parse ``raw_dir`` into ``root/<table>.parquet``; returns rows written per table.

    ``fast=False`` reads every file record by record: the reference that
    benchmarks/bench_parquet.py times the columnar reader against.
    """
    rows: dict[str, int] = {}

    def write(name: str, parts: Iterator[pa.Table]) -> None:
        rows[name] = 0  # a second call for the same table starts it afresh
        with pq.ParquetWriter(
            paths.parquet_table(name, root), TABLES[name], compression="zstd"
        ) as writer:
            for part in parts:
                writer.write_table(part)
                rows[name] += part.num_rows

    parse_into(raw_dir, write, fast=fast, book_interval=book_interval)
    return rows


def main() -> None:
    if not paths.RAW_DIR.is_dir():
        raise DataError(f"{paths.RAW_DIR} does not exist: run the fetch stage first")
    book_interval = load_params().data.book_interval
    with StagedOutputs() as out:
        rows = write_tables(
            paths.RAW_DIR, out.path(paths.PARQUET_DIR, directory=True), book_interval=book_interval
        )
    logger.info("tables: %s", rows)


if __name__ == "__main__":
    run_stage("parquet", main)
