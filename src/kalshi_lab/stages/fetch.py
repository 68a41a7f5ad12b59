"""fetch: raw API documents into data/raw/ from the source chosen by ``data.source``.

Every source writes the same recorded-response files (see kalshi_lab.data.raw_store), so the
stages after this one cannot tell simulated from real data. Order-book streams recorded into
data/raw by ``kalshi-lab record`` cannot be fetched again: they are carried into the new
directory (kalshi_lab.data.stream_store.carry_over).
"""

from collections.abc import Callable
from pathlib import Path

from kalshi_lab import paths
from kalshi_lab.data.stream_store import carry_over
from kalshi_lab.fetch.kalshi import write_kalshi_raw
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import DATA_SOURCES, DataParams, load_params
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.stages.runner import logger, run_stage

#: data.source -> writer of raw documents into a directory; returns record counts per kind
SOURCES: dict[str, Callable[[DataParams, Path], dict[str, int]]] = {
    "synthetic": write_synthetic_raw,
    "kalshi": write_kalshi_raw,
}
assert tuple(SOURCES) == DATA_SOURCES, "params.DATA_SOURCES and the fetch sources must agree"


def main() -> None:
    params = load_params()
    with StagedOutputs() as out:
        raw_dir = out.path(paths.RAW_DIR, directory=True)
        counts = SOURCES[params.data.source](params.data, raw_dir)
        carried = carry_over(paths.RAW_DIR, raw_dir)
    logger.info("wrote %s to %s", counts, paths.RAW_DIR)
    if carried:
        logger.info("kept the %d recorded order-book segments of %s", carried, paths.RAW_DIR)


if __name__ == "__main__":
    run_stage("fetch", main)
