"""Benchmark: rebuilding a day of recorded order-book deltas of 200 markets, vectorised
against the message-by-message replay, and the recorder's own cost per message.

Run on demand (not a test)::

    uv run python benchmarks/bench_book_rebuild.py [--markets 200] [--deltas 10000]
        [--sessions 4] [--intervals 60 5] [--out /tmp/bookbench]

Writes one UTC day of a consistent ``orderbook_delta`` stream (tests/book_messages.py shapes:
a snapshot per market, then deltas of random levels that never go below zero;
``--deltas`` per market, arrival times spread over the day) as ``--sessions`` recording
sessions (each starting with fresh snapshots, as a restarted recorder does) into the segments
of a recordings directory. Then, for each ``--intervals`` (minutes): ``read_stream`` (the JSON parse,
once), ``rebuild`` (the vectorised rebuild) and ``tests/book_replay.py``'s ``replay`` (a dict
book per market, sampled at each boundary); the run fails unless both give identical rows.
Then, in a process each (for its own peak RSS), the first interval's parse and rebuild as the
parquet stage runs them, ``rebuild_segments`` (a segment at a time), and all segments at once
(``read_stream`` then ``rebuild``); the run fails unless their rows are identical.
Last, ``record`` (the recorder: envelope, gzip, flush thread) is fed the same messages from
memory, which says how many messages a second one core can record, network aside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import random
import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import common
from book_messages import stream, tickers
from book_replay import replay
from kalshi_lab.data.book_rebuild import read_stream, rebuild, rebuild_segments
from kalshi_lab.data.stream_store import SegmentWriter, stream_dir
from kalshi_lab.record.recorder import record

DAY = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def day_of_messages(markets: int, deltas: int, sessions: int, seed: int = 0):
    """(session, arrival time, message) over one day, sessions of equal length."""
    names = tickers(markets)
    total = markets * deltas
    rng = random.Random(seed)
    per_session = total // sessions
    for k in range(sessions):
        start = DAY + dt.timedelta(days=k / sessions)
        span = 86_400 / sessions
        offsets = sorted(rng.uniform(0, span) for _ in range(per_session + markets))
        messages = stream(names, seed=seed + k, limit=per_session + markets)
        books = (m for m in messages if m["type"] != "trade")
        for offset, message in zip(offsets, books, strict=False):
            yield k, start + dt.timedelta(seconds=offset), message


def child(how: str, raw: Path, minutes: int, out: Path) -> None:
    """Parse and rebuild ``raw`` ``how`` (segments: one at a time; whole: all at once), write
    the rows to ``out`` and print the seconds it took as JSON (common.run_child)."""
    interval = minutes * 60 * 1_000_000_000
    t = time.perf_counter()
    if how == "segments":
        rows = rebuild_segments(raw, interval).rows
    else:
        rows = rebuild(read_stream(raw), interval).rows
    seconds = time.perf_counter() - t
    pq.write_table(rows, out)
    # VmHWM, not ru_maxrss: this process's own peak, without its parent's pages before exec
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    print(json.dumps({"seconds": seconds, "peak_gb": peak_kb / 2**20}))


def at_once_or_by_segment(raw: Path, minutes: int, out: Path) -> None:
    """The parquet stage's way (a segment at a time) against all at once, a process each."""
    results = {}
    for how in ("whole", "segments"):
        args = ["--child", how, "--raw", str(raw), "--intervals", str(minutes)]
        results[how] = common.run_child(Path(__file__), [*args, "--out", str(out / how)])
    assert pq.read_table(out / "whole").equals(pq.read_table(out / "segments"))
    for how, what in (("whole", "all segments at once"), ("segments", "a segment at a time")):
        r = results[how]
        print(
            f"parse + rebuild every {minutes} min, {what:>20}: {r['seconds']:6.2f} s, "
            f"peak RSS {r['peak_gb']:.2f} GB"
        )
    print("identical rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", type=int, default=200)
    parser.add_argument("--deltas", type=int, default=10_000, help="per market and day")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--intervals", type=int, nargs="+", default=[60, 5])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bookbench"))
    parser.add_argument("--child", choices=["whole", "segments"], help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.raw, args.intervals[0], args.out)
        return
    shutil.rmtree(args.out, ignore_errors=True)
    raw = args.out / "raw"
    started = time.perf_counter()
    writer, session, n = None, None, 0
    for k, at, message in day_of_messages(args.markets, args.deltas, args.sessions):
        if k != session:
            if writer is not None:
                writer.close()
            writer, session = SegmentWriter(stream_dir(raw), {"channels": ["orderbook_delta"]}), k
        writer.write(message, at)
        n += 1
    writer.close()
    size = sum(p.stat().st_size for p in stream_dir(raw).iterdir())
    print(
        f"wrote {n:,} messages ({args.markets} markets, {args.sessions} sessions, "
        f"{size / 1e6:.1f} MB gzipped) in {time.perf_counter() - started:.1f} s"
    )
    t = time.perf_counter()
    parsed = read_stream(raw)
    print(f"read_stream (parse): {time.perf_counter() - t:.2f} s, {len(parsed.qty):,} level rows")
    for minutes in args.intervals:
        interval = minutes * 60 * 1_000_000_000
        t = time.perf_counter()
        built = rebuild(parsed, interval)
        fast = time.perf_counter() - t
        t = time.perf_counter()
        reference = replay(parsed, interval)
        slow = time.perf_counter() - t
        pd.testing.assert_frame_equal(built.rows.to_pandas(), reference)
        print(
            f"interval {minutes:>4} min: {built.rows.num_rows:>10,} rows  rebuild {fast:6.2f} s  "
            f"replay {slow:7.2f} s  ({slow / fast:5.1f}x)  identical"
        )
    del parsed, built, reference
    at_once_or_by_segment(raw, args.intervals[0], args.out)
    messages = [m for _, _, m in itertools.islice(day_of_messages(args.markets, 1000, 1), 200_000)]
    now = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    stats = record(
        iter(messages), args.out / "recorded", {"channels": ["orderbook_delta"]}, clock=lambda: now
    )
    spent = time.perf_counter() - t
    recorded = sum(stats.recorded.values())
    print(f"record: {recorded:,} messages in {spent:.2f} s: {recorded / spent:,.0f} messages/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
