"""parquet: raw API documents -> typed parquet tables in data/parquet/.

The order-book table holds the fetched snapshots and the books rebuilt from the streams
``kalshi-lab record`` recorded into data/recorded/ (closed segments only: one a recorder is
still writing is left out, and counted, so that a result never depends on when it ran),
sampled every ``data.book_interval`` minutes.

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
from kalshi_lab.data.stream_store import segment_files, stream_dir
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
    recorded_dir: Path | None = None,
) -> dict[str, int]:
    """Parse ``raw_dir`` (and the recordings of ``recorded_dir``, if given) into
    ``root/<table>.parquet``; returns rows written per table.

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

    parse_into(raw_dir, write, fast=fast, book_interval=book_interval, recorded_dir=recorded_dir)
    return rows


def main() -> None:
    if not paths.RAW_DIR.is_dir():
        raise DataError(f"{paths.RAW_DIR} does not exist: run the fetch stage first")
    stranded = segment_files(stream_dir(paths.RAW_DIR))
    if stranded:  # recorded before recordings had a directory of their own
        raise DataError(
            f"{stream_dir(paths.RAW_DIR)}: {len(stranded)} recorded segments in the fetch's "
            f"output, which is no place for them (the fetch replaces it): move them with "
            f"`mv {stream_dir(paths.RAW_DIR)} {paths.RECORDED_DIR}/` (the fetch stage does it "
            f"when it runs)"
        )
    book_interval = load_params().data.book_interval
    with StagedOutputs() as out:
        rows = write_tables(
            paths.RAW_DIR,
            out.path(paths.PARQUET_DIR, directory=True),
            book_interval=book_interval,
            recorded_dir=paths.RECORDED_DIR,
        )
    logger.info("tables: %s", rows)


if __name__ == "__main__":
    run_stage("parquet", main)
