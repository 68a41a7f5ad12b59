"""data=kalshi: record Kalshi API responses into data/raw (in progress)."""

from pathlib import Path

from kalshi_lab.params import DataParams


def write_kalshi_raw(data: DataParams, raw_dir: Path) -> dict[str, int]:
    raise NotImplementedError("data=kalshi fetch is being written")
