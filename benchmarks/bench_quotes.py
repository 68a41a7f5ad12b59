"""Benchmark: QuoteIndex against the straightforward lookups it replaced, on a year of markets.

Run on demand (not a test)::

    uv run python benchmarks/bench_quotes.py --raw /tmp/raw10k [--markets 10000]
        [--start 2025-01-01] [--end 2025-12-31] [--tables DIR] [--repeat 3]

If ``--raw`` does not exist, the simulator writes it there first (about a minute at 10,000
markets), and the parquet stage's tables are written to ``--tables`` (default: ``<raw>-tables``)
if that does not exist (another 15 s). Then each implementation runs in a process of its own:

* ``reference``: ``tests/reference_quotes.py``'s ``ReferenceQuotes`` (a pandas groupby per
  market, a ``merge_asof`` per call: what the exchange did before the index);
* ``index``: ``QuoteIndex(...)`` and ``top(tickers, ts)``.

Each reads the tables, builds (timed; the peak RSS of the build is measured from a reset of
the process's high-water mark, where the kernel allows it), then replays every decision time
of the backtest, in order: the end of each daily candle of a market before its close (the rows
of the feature table, 274,695 market-days at 10,000 markets), asking for the quotes of the
markets decided there (``--repeat`` times, the best replay counts), and the price levels
(``levels``) of both sides of each of them. The run fails unless both gave equal
quotes and equal levels.

On the project VM (2 cores, shared with other jobs, so times vary by +-30 %), 10,000 markets
over 2025 (8.3 M book levels in 1.1 M snapshots, 0.28 M candles, 364 decision times with 755
markets each on average); see benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from common import ROOT, data_args, prepare_data, run_child
from kalshi_lab.compose_params import compose
from kalshi_lab.data.tables import read_table
from kalshi_lab.execution.quotes import QUOTE_COLUMNS, QuoteIndex
from kalshi_lab.params import params_from_dict
from reference_quotes import ReferenceQuotes

IMPLEMENTATIONS = ("reference", "index")
SIDES = ("yes", "no")


def _status(field: str) -> float:
    """A field of /proc/self/status in MB (VmRSS: now, VmHWM: peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def decisions(candles: pd.DataFrame, markets: pd.DataFrame) -> list[tuple[pd.Timestamp, list]]:
    """(as_of, tickers) of the backtest: the rows of the feature table (a market's daily
    candle ends before its close), by time."""
    daily = candles.loc[candles["period_minutes"] == 1440, ["ticker", "end_period_ts"]]
    daily = daily.merge(markets[["ticker", "close_time"]], on="ticker")
    daily = daily[daily["end_period_ts"] < daily["close_time"]].sort_values(
        ["end_period_ts", "ticker"]
    )
    return [(ts, list(t)) for ts, t in daily.groupby("end_period_ts", sort=True)["ticker"]]


def _levels_digest(quotes: Iterable) -> str:
    """One hash of every answer of levels, as (source, ns, [(bid, key, cap)])."""
    h = hashlib.sha256()
    for q in quotes:
        h.update(repr(q).encode())
    return h.hexdigest()


def worker(impl: str, tables: Path, out: Path, repeat: int) -> None:
    """Child process: build one implementation, replay the quotes; prints its figures as JSON."""
    backtest = params_from_dict(compose([], ROOT / "conf")).backtest
    began = time.perf_counter()
    orderbook, candles = read_table("orderbook", tables), read_table("candles", tables)
    markets = read_table("markets", tables)
    read_s = time.perf_counter() - began
    schedule = decisions(candles, markets)
    gc.collect()
    rss_before = _status("VmRSS")
    peak_reset = _reset_peak()

    began = time.perf_counter()
    shares = (backtest.max_fill_share, backtest.max_volume_share, backtest.max_quote_age_hours)
    if impl == "reference":
        venue = ReferenceQuotes(orderbook, candles, *shares)

        def top(tickers: list, ts: pd.Timestamp) -> pd.DataFrame:
            return venue.top(tickers, ts)[QUOTE_COLUMNS]

        levels = venue.levels
    else:
        venue = QuoteIndex(orderbook, candles, *shares)
        top, levels = venue.top, venue.levels
    build_s = time.perf_counter() - began
    build_peak = _status("VmHWM") if peak_reset else float("nan")
    rss_built = _status("VmRSS")

    replays = []
    for _ in range(repeat):
        frames = []
        began = time.perf_counter()
        for ts, tickers in schedule:
            frames.append(top(tickers, ts))
        replays.append(time.perf_counter() - began)
    asks = [(t, ts.value, side) for ts, tickers in schedule for t in tickers for side in SIDES]
    began = time.perf_counter()
    for ask in asks:
        levels(*ask)
    levels_s = time.perf_counter() - began
    peak = _status("VmHWM")
    digest = _levels_digest(levels(*ask) for ask in asks)

    n_days = sum(len(t) for _, t in schedule)
    replay = pd.concat(frames, keys=[ts for ts, _ in schedule], names=["as_of", "ticker"])
    replay.reset_index().to_parquet(out)
    result = {
        "read_s": read_s,
        "build_s": build_s,
        "replay_s": min(replays),
        "calls": len(schedule),
        "market_days": n_days,
        "levels_s": levels_s,
        "levels_calls": len(asks),
        "levels_digest": digest,
        "rss_before_build_mb": rss_before,
        "build_peak_mb": build_peak,
        "rss_built_mb": rss_built,
        "peak_after_reset_mb": peak,
    }
    if impl == "index":
        result["index_mb"] = venue.nbytes / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw directory (made if absent)")
    parser.add_argument("--tables", type=Path, help="parquet tables (default: <raw>-tables)")
    parser.add_argument("--repeat", type=int, default=3, help="replays; the best one counts")
    data_args(parser)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    tables = args.tables or args.raw.with_name(args.raw.name + "-tables")
    if args.worker:
        worker(args.worker, tables, args.out, args.repeat)
        return

    prepare_data(args, tables)

    with tempfile.TemporaryDirectory(prefix="bench-quotes-") as tmp:
        results = {}
        for impl in IMPLEMENTATIONS:
            out = Path(tmp) / f"{impl}.parquet"
            script_args = ["--raw", str(args.raw), "--tables", str(tables)]
            script_args += ["--repeat", str(args.repeat), "--worker", impl, "--out", str(out)]
            results[impl] = r = run_child(Path(__file__), script_args)
            print(
                f"{impl:>8}: build {r['build_s']:6.2f} s (peak {r['build_peak_mb']:5.0f} MB from "
                f"{r['rss_before_build_mb']:5.0f} MB, holds {r['rss_built_mb']:5.0f} MB)  "
                f"replay {r['replay_s']:6.2f} s = {r['calls'] / r['replay_s']:7.1f} calls/s, "
                f"{r['market_days'] / r['replay_s']:9,.0f} market-days/s  levels "
                f"{r['levels_calls'] / r['levels_s']:9,.0f} calls/s  "
                f"process peak RSS {r['peak_rss_mb']:5.0f} MB"
            )
        same_quotes = True
        try:
            pd.testing.assert_frame_equal(
                pd.read_parquet(Path(tmp) / "index.parquet"),
                pd.read_parquet(Path(tmp) / "reference.parquet"),
            )
        except AssertionError as error:
            print(error)
            same_quotes = False
    old, new = results["reference"], results["index"]
    same_levels = old["levels_digest"] == new["levels_digest"]
    print(
        f"{new['calls']} decision times, {new['market_days']:,} market-days; the index holds "
        f"{new['index_mb']:.0f} MB of arrays"
    )
    print(
        f"speed-up: build {old['build_s'] / new['build_s']:.1f}x, quotes "
        f"{old['replay_s'] / new['replay_s']:.1f}x, levels {old['levels_s'] / new['levels_s']:.1f}x"
    )
    print(f"quotes: {'identical' if same_quotes else 'DIFFERENT'}")
    print(f"levels: {'identical' if same_levels else 'DIFFERENT'}")
    if not (same_quotes and same_levels):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
