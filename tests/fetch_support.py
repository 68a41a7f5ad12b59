"""What the data=kalshi tests share: the parameters of a fetch from the local server, and a
byte-for-byte comparison of two fetched (partitioned) raw directories."""

from __future__ import annotations

import datetime as dt
import filecmp
from pathlib import Path

from kalshi_lab.data.raw_store import KINDS, MANIFEST, PARTITIONS, raw_partitions
from kalshi_lab.params import DataParams, RateLimitParams

#: the range write_simulated_raw (tests/server_support.py) simulates
START, END = dt.date(2025, 1, 1), dt.date(2025, 1, 20)
SERIES = ["KXSIMA", "KXSIMB", "KXSIMC", "KXSIMD", "KXSIME"]


def kalshi_params(base_url: str, **overrides) -> DataParams:
    """``data`` for a fetch of the simulated series from ``base_url``, fast and patient."""
    values = dict(
        source="kalshi",
        start=START,
        end=END,
        hourly_candles=True,
        base_url=base_url,
        series=SERIES,
        events=[],
        tickers=[],
        orderbook_depth=0,
        concurrency=4,
        timeout_s=1.0,
        max_retries=8,
        rate_limit=RateLimitParams(
            tier="test", tiers={"test": {"reads_per_s": 2000, "writes_per_s": 2000}}
        ),
    )
    values.update(overrides)
    return DataParams(**values)


def assert_same_partitions(a: Path, b: Path) -> None:
    """``a`` and ``b`` are the same partitioned raw directory, byte for byte: the same
    partition list, and the same files (six and a manifest) in each partition."""
    names = [p.relative_to(a) for p in raw_partitions(a)]
    assert names == [p.relative_to(b) for p in raw_partitions(b)]
    assert (a / PARTITIONS).read_bytes() == (b / PARTITIONS).read_bytes()
    for name in names:
        for file in (*KINDS.values(), MANIFEST):
            assert filecmp.cmp(a / name / file, b / name / file, shallow=False), name / file
