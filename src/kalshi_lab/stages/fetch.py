"""fetch: raw API documents into data/raw/ from the source chosen by ``data.source``."""

from kalshi_lab import paths
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    params = load_params()
    with StagedOutputs() as out:
        raw_dir = out.path(paths.RAW_DIR, directory=True)
        counts = write_synthetic_raw(params.data, raw_dir)
    logger.info("wrote %s to %s", counts, paths.RAW_DIR)


if __name__ == "__main__":
    run_stage("fetch", main)
