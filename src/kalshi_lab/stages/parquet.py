"""parquet: raw API documents -> typed parquet tables in data/parquet/."""

import pyarrow.parquet as pq

from kalshi_lab import paths
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.tables import TABLES
from kalshi_lab.errors import DataError
from kalshi_lab.io import StagedOutputs
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    if not paths.RAW_DIR.is_dir():
        raise DataError(f"{paths.RAW_DIR} does not exist: run the fetch stage first")
    parsed = parse_raw(paths.RAW_DIR)
    with StagedOutputs() as out:
        root = out.path(paths.PARQUET_DIR, directory=True)
        for name, table in parsed.items():
            pq.write_table(
                table.cast(TABLES[name]), paths.parquet_table(name, root), compression="zstd"
            )
    logger.info("tables: %s", {name: t.num_rows for name, t in parsed.items()})


if __name__ == "__main__":
    run_stage("parquet", main)
