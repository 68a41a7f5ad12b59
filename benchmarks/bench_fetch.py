"""Benchmark: data=kalshi fetch throughput against a server limited to Kalshi's basic tier.

Run on demand (not a test)::

    uv run python benchmarks/bench_fetch.py [--markets 200] [--reads-per-s 20] [--concurrency 4]

A simulated dataset (all markets closed) is served by the local Kalshi-compatible server with
its token bucket at ``--reads-per-s`` (20/s is Kalshi's basic tier), and fetched three times,
each into its own directory, with identical parsed tables required of all of them:

1. **paced**: the project's fetch, ``--concurrency`` workers sharing one client-side token
   bucket at the same rate. Goal: at least 0.9 of the limit, no 429 left unrecovered;
2. **again**: the same fetch over the same closed range, with its cache. Goal: 0 requests;
3. **unpaced**: the straightforward way, the same fetch with no client-side limit (a bucket
   of 10,000/s) and a new cache, relying on retries with backoff when the server says 429.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from kalshi_lab.client import KalshiClient
from kalshi_lab.compose_params import compose
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.fetch.kalshi import fetch_kalshi
from kalshi_lab.params import DataParams, params_from_dict
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from kalshi_lab.simulator import write_synthetic_raw

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"markets": ["ticker"], "candles": ["ticker", "period_minutes", "end_period_ts"],
        "trades": ["trade_id"]}  # fmt: skip


def simulated(markets: int, start: str, end: str) -> DataParams:
    overrides = [f"data.synthetic.n_markets={markets}", f"data.start={start}", f"data.end={end}"]
    return params_from_dict(compose(overrides, ROOT / "conf")).data


def kalshi(base_url: str, data: DataParams, concurrency: int) -> DataParams:
    series = "[KXSIMA,KXSIMB,KXSIMC,KXSIMD,KXSIME]"
    overrides = [
        "data=kalshi",
        f"data.base_url={base_url}",
        f"data.series={series}",
        f"data.start={data.start}",
        f"data.end={data.end}",
        f"data.concurrency={concurrency}",
    ]
    return params_from_dict(compose(overrides, ROOT / "conf")).data


def tables(raw: Path) -> dict[str, pd.DataFrame]:
    parsed = parse_raw(raw)
    return {n: parsed[n].to_pandas().sort_values(k).reset_index(drop=True) for n, k in KEYS.items()}


def run(name: str, srv: LocalKalshiServer, data: DataParams, out: Path, cache: Path,
        reads_per_s: float) -> dict[str, float]:  # fmt: skip
    before = srv.stats
    client = KalshiClient(data.base_url, reads_per_s=reads_per_s, concurrency=data.concurrency or 1)
    began = time.perf_counter()
    with client:
        fetch_kalshi(data, out, client=client, cache_dir=cache)
    elapsed = time.perf_counter() - began
    after = srv.stats
    stats = client.transport.stats
    row = {
        "seconds": elapsed,
        "requests": stats.requests,
        "per_s": stats.requests / elapsed,
        "answered_429": after.rate_limited - before.rate_limited,
        "retries": stats.retries,
        "useful_per_s": (stats.requests - stats.retries) / elapsed,
    }
    print(
        f"{name:>8}: {row['requests']:5d} requests in {elapsed:6.1f} s = {row['per_s']:5.1f}/s "
        f"({row['useful_per_s']:5.1f}/s not counting retries), "
        f"{row['answered_429']} answered 429, {row['retries']} retries"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=200)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-02-28")
    parser.add_argument("--reads-per-s", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sim = simulated(args.markets, args.start, args.end)
        write_synthetic_raw(sim, root / "served")
        config = ServerConfig(
            reads_per_s=args.reads_per_s, cutoff=dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
        )
        with LocalKalshiServer(root / "served", config) as srv:
            data = kalshi(srv.base_url, sim, args.concurrency)
            print(f"{args.markets} simulated markets, server limit {args.reads_per_s:g} reads/s")
            paced = run("paced", srv, data, root / "paced", root / "cache", args.reads_per_s)
            again = run("again", srv, data, root / "again", root / "cache", args.reads_per_s)
            naive = run("unpaced", srv, data, root / "naive", root / "cache-naive", 10_000)
        reference = tables(root / "served")
        for name in ("paced", "again", "naive"):
            got = tables(root / name)
            for table, frame in reference.items():
                pd.testing.assert_frame_equal(got[table], frame, obj=f"{name}: {table}")
    print("tables: identical to the served data in all three runs")
    share = paced["per_s"] / args.reads_per_s
    print(f"paced throughput: {share:.2f} of the limit (goal >= 0.90); "
          f"unpaced: {naive['per_s'] / args.reads_per_s:.2f}; again: {again['requests']} requests")  # fmt: skip
    if share < 0.9 or again["requests"] != 0:
        raise SystemExit("goal missed")


if __name__ == "__main__":
    main()
