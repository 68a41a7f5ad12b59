"""Benchmark: the backtest engine on a year of 10,000 markets, against the straightforward one.

Run on demand (not a test)::

    uv run python benchmarks/bench_backtest.py --raw /tmp/raw10k [--markets 10000]
        [--start 2025-01-01] [--end 2025-12-31] [--tables DIR] [--repeat 3]

If ``--raw`` does not exist the simulator writes it (about a minute at 10,000 markets) and the
parquet stage its tables (``--tables``, default ``<raw>-tables``). Each engine then runs in a
process of its own (its own peak RSS), on the same inputs:

* ``engine``: ``run_backtest`` as the backtest stage runs it (QuoteIndex quotes, one quote
  request per decision step, strategy/risk/executor vectorised across markets);
* ``reference``: the same loop over the straightforward quote lookups it replaced
  (tests/reference_quotes.py: a pandas groupby per market to build, a ``merge_asof`` over all
  quotes per request, a Python object per price level).

The predictions are one per market-day, as the features stage has rows (a market's daily
candle that ends before its close): ``prob`` is the candle's mid moved by a seeded noise of
0.08, so that edges of both signs exist and the strategy trades (the benchmark measures speed,
not skill). Strategy, risk and backtest parameters are conf/'s defaults. The run fails unless
both engines give identical equity curves, trade logs and summaries. Reported: seconds to build
the exchange, seconds to replay, market-days per second of the whole run (build included),
and peak RSS. The engine runs ``--repeat`` times, each in a fresh process (on a shared VM one
run can take half as long again as the next): its best and median runs are reported; the
reference, 20 times slower, runs once. The time of a plain Python loop, before and after,
says how fast the machine was meanwhile.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import ROOT, data_args, prepare_data, python_loop_s, run_child
from kalshi_lab.backtest import run_backtest
from kalshi_lab.compose_params import compose
from kalshi_lab.data.tables import read_table
from kalshi_lab.execution import exchange as exchange_module
from kalshi_lab.execution.quotes import BOOK_COLUMNS, CANDLE_COLUMNS
from kalshi_lab.params import params_from_dict
from reference_quotes import ReferenceQuotes

ENGINES = ("reference", "engine")
NOISE = 0.08


def market_day_predictions(candles: pd.DataFrame, markets: pd.DataFrame) -> pd.DataFrame:
    """One prediction per market and daily candle ended before the market's close."""
    daily = candles.loc[
        candles["period_minutes"] == 1440,
        ["ticker", "end_period_ts", "yes_bid_close", "yes_ask_close"],
    ].merge(markets[["ticker", "event_ticker", "series_ticker", "close_time"]], on="ticker")
    daily = daily[daily["end_period_ts"] < daily["close_time"]]
    daily = daily.sort_values(["end_period_ts", "ticker"], kind="stable").reset_index(drop=True)
    mid = ((daily["yes_bid_close"] + daily["yes_ask_close"]) / 2).fillna(0.5).to_numpy()
    noise = np.random.default_rng(0).normal(0.0, NOISE, size=len(daily))
    return pd.DataFrame(
        {
            "ticker": daily["ticker"],
            "event_ticker": daily["event_ticker"],
            "series_ticker": daily["series_ticker"],
            "as_of": daily["end_period_ts"],
            "prob": np.clip(mid + noise, 0.01, 0.99),
            "mid": mid,
            "known_close": daily["close_time"],
        }
    )


def worker(engine: str, tables: Path, out: Path) -> None:
    """Child process: one backtest; writes its outputs, prints its figures as JSON."""
    logging.basicConfig(level=logging.WARNING)
    params = params_from_dict(compose([], ROOT / "conf"))
    began = time.perf_counter()
    # read as the backtest stage reads them (MarketTables.read): the columns used, tickers as
    # categoricals; every market is predicted here, so its filter to the predicted markets
    # would keep every row
    orderbook = read_table("orderbook", tables, BOOK_COLUMNS, categorical=("ticker", "side"))
    candles = read_table("candles", tables, CANDLE_COLUMNS, categorical=("ticker",))
    markets, series = read_table("markets", tables), read_table("series", tables)
    predictions = market_day_predictions(candles, markets)
    read_s = time.perf_counter() - began
    if engine == "reference":
        exchange_module.QuoteIndex = ReferenceQuotes  # the same loop on the old quote lookups
    build = {}
    real_init = exchange_module.SimulatedKalshiExchange.__init__

    def timed_init(self, *args, **kwargs) -> None:
        start = time.perf_counter()
        real_init(self, *args, **kwargs)
        build["s"] = time.perf_counter() - start

    exchange_module.SimulatedKalshiExchange.__init__ = timed_init
    began = time.perf_counter()
    result = run_backtest(
        predictions,
        orderbook,
        candles,
        markets,
        series,
        params.strategy,
        params.risk,
        params.backtest,
        "settlement",
    )
    total_s = time.perf_counter() - began
    result.equity.to_parquet(out / f"{engine}-equity.parquet")
    result.fills.to_parquet(out / f"{engine}-fills.parquet")
    (out / f"{engine}-summary.json").write_text(json.dumps(result.summary, sort_keys=True))
    print(
        json.dumps(
            {
                "read_s": read_s,
                "build_s": build["s"],
                "total_s": total_s,
                "replay_s": total_s - build["s"],
                "market_days": len(predictions),
                "decision_times": int(predictions["as_of"].nunique()),
                "orders": result.summary["n_orders"],
                "fills": len(result.fills),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw directory (made if absent)")
    parser.add_argument("--tables", type=Path, help="parquet tables (default: <raw>-tables)")
    data_args(parser)
    parser.add_argument("--repeat", type=int, default=3, help="engine runs (default 3)")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    tables = args.tables or args.raw.with_name(args.raw.name + "-tables")
    if args.worker:
        worker(args.worker, tables, args.out)
        return
    prepare_data(args, tables)

    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    loop_before = python_loop_s()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        results = {}
        for engine in ENGINES:
            script_args = ["--raw", str(args.raw), "--tables", str(tables)]
            script_args += ["--worker", engine, "--out", tmp]
            runs = [
                run_child(Path(__file__), script_args)
                for _ in range(args.repeat if engine == "engine" else 1)
            ]
            runs.sort(key=lambda r: r["total_s"])
            results[engine] = runs[0]
            shown = [("best", runs[0]), ("median", runs[len(runs) // 2])] if len(runs) > 1 else []
            for label, r in shown or [("", runs[0])]:
                print(
                    f"{engine:>9} {label:>6}: build {r['build_s']:5.2f} s  "
                    f"replay {r['replay_s']:6.2f} s  total {r['total_s']:6.2f} s = "
                    f"{r['market_days'] / r['total_s']:9,.0f} market-days/s (replay alone "
                    f"{r['market_days'] / r['replay_s']:9,.0f})  peak RSS "
                    f"{r['peak_rss_mb']:5.0f} MB (tables read in {r['read_s']:.1f} s)"
                )
            if len(runs) > 1:
                peak = max(r["peak_rss_mb"] for r in runs)
                print(f"{engine:>9}: {len(runs)} runs, the highest peak RSS {peak:.0f} MB")
        same = True
        for part in ("equity", "fills"):
            try:
                pd.testing.assert_frame_equal(
                    pd.read_parquet(Path(tmp) / f"engine-{part}.parquet"),
                    pd.read_parquet(Path(tmp) / f"reference-{part}.parquet"),
                )
            except AssertionError as error:
                print(f"{part} differ: {error}")
                same = False
        summaries = [(Path(tmp) / f"{e}-summary.json").read_text() for e in ENGINES]
        same = same and summaries[0] == summaries[1]
    new, old = results["engine"], results["reference"]
    print(
        f"{new['market_days']:,} market-days over {new['decision_times']} decision times; "
        f"{new['orders']:,} orders, {new['fills']:,} fills"
    )
    print(f"speed-up: {old['total_s'] / new['total_s']:.1f}x")
    print(
        f"machine: a 10 M-step Python loop took {loop_before:.2f} s before the runs and "
        f"{python_loop_s():.2f} s after (best of 3 each)"
    )
    print(f"results: {'identical' if same else 'DIFFERENT'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
