"""parquet: raw API documents -> typed, hive-partitioned parquet datasets in data/parquet/
(:mod:`kalshi_lab.data.parquet_build`: a worker per raw partition, each writing its rows into
their markets' partitions, ``<table>/series=<S>/month=<YYYY-MM>/part-<n>.parquet``).

The order-book table holds the fetched snapshots and the books rebuilt from the streams
``kalshi-lab record`` recorded into data/recorded/ (closed segments only: one a recorder is
still writing is left out, and counted, so that a result never depends on when it ran),
sampled every ``data.book_interval`` minutes, each market's in its partition; books of
markets not in the markets data are counted and left out.

Everything goes to a temporary directory that replaces data/parquet only when every table has
been written.
"""

from __future__ import annotations

from kalshi_lab import paths
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.stream_store import segment_files, stream_dir
from kalshi_lab.errors import DataError
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.stages.runner import logger, run_stage


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
    params = load_params()
    with StagedOutputs() as out:
        rows = write_tables(
            paths.RAW_DIR,
            out.path(paths.PARQUET_DIR, directory=True),
            book_interval=params.data.book_interval,
            recorded_dir=paths.RECORDED_DIR,
            compute=params.compute,
        )
    logger.info("tables: %s", rows)


if __name__ == "__main__":
    run_stage("parquet", main)
