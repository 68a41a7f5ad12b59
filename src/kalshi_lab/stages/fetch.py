"""fetch: raw API documents into data/raw/ from the source chosen by ``data.source``.

Every source writes the same recorded-response files (see kalshi_lab.data.raw_store), so the
stages after this one cannot tell simulated from real data. Both write them partitioned by
series and month: the simulator on the cores ``compute`` gives it, the Kalshi fetch (bound by
the API's rate limit rather than by cores) from its response cache. Order-book streams recorded by
``kalshi-lab record`` live in data/recorded/, not here: this stage replaces data/raw whole.
Recordings an older version kept in data/raw/orderbook_deltas are moved there first, once.
"""

from collections.abc import Callable
from pathlib import Path

from kalshi_lab import paths
from kalshi_lab.data.stream_store import move_recordings, stream_dir
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import DATA_SOURCES, Params, load_params
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.stages.runner import logger, run_stage


def _kalshi(params: Params, raw_dir: Path) -> dict[str, int]:
    # imported here: the API client (requests, pandas) is this source's alone, and a simulated
    # fetch, whose worker processes import this module too, need not load it
    from kalshi_lab.fetch.kalshi import write_kalshi_raw

    return write_kalshi_raw(params.data, raw_dir)


#: data.source -> writer of raw documents into a directory; returns record counts per kind
SOURCES: dict[str, Callable[[Params, Path], dict[str, int]]] = {
    "synthetic": lambda params, raw_dir: write_synthetic_raw(params.data, raw_dir, params.compute),
    "kalshi": _kalshi,
}
assert tuple(SOURCES) == DATA_SOURCES, "params.DATA_SOURCES and the fetch sources must agree"


def main() -> None:
    params = load_params()
    moved = move_recordings(paths.RAW_DIR, paths.RECORDED_DIR)
    if moved:
        logger.warning(
            "moved the %d recorded order-book segments of %s to %s, where recordings live now "
            "(the fetch replaces %s whole)",
            moved,
            stream_dir(paths.RAW_DIR),
            stream_dir(paths.RECORDED_DIR),
            paths.RAW_DIR,
        )
    with StagedOutputs() as out:
        raw_dir = out.path(paths.RAW_DIR, directory=True)
        counts = SOURCES[params.data.source](params, raw_dir)
    logger.info("wrote %s to %s", counts, paths.RAW_DIR)


if __name__ == "__main__":
    run_stage("fetch", main)
