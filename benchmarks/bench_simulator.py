"""Benchmark: the simulator's fetch (``write_synthetic_raw``) against a straightforward writer.

Run on demand (not a test)::

    uv run python benchmarks/bench_simulator.py [--markets 10000] [--start 2025-01-01]
        [--end 2025-12-31]

Both run in a process of their own (wall time, CPU time and peak RSS are that process's):

* ``reference``: every document a dict, every record ``json.dumps``-ed and written through a
  text-mode gzip file in the producing thread, as the project did before;
* ``current``: :func:`kalshi_lab.simulator.write_synthetic_raw` (orjson, trades and books
  rendered from templates as ``orjson.Fragment``, compression in a background thread).

The run fails unless both wrote the same bytes, file for file.

On the project VM (2 cores, shared with other jobs, so wall times vary by +-20 %), 10,000
markets over 2025 (1.1 M orderbook snapshots, 1.6 M trades; 0.93 GB of JSON, 108 MB
gzipped), ``write_synthetic_raw`` alone (its log line; the process adds ~3 s of imports and
config composition):

===========================================  ===========  ========  ========
                                             wall         CPU       peak RSS
===========================================  ===========  ========  ========
before, commit 8d24af8                       84 - 94 s    88-97 s   1.45 GB
after                                        22.6 - 24 s  38-40 s   1.39 GB
===========================================  ===========  ========  ========

and this script's run::

    reference: wall   61.4 s  CPU   65.2 s  peak RSS  1.38 GB
      current: wall   22.6 s  CPU   38.0 s  peak RSS  1.32 GB
    speed-up: 2.7x wall, 1.7x CPU
    files: identical bytes

(the reference shares the current UUID and time formatting and the cached timestamps, so it
is faster than the code before). Of the 23 s, 5.5 s is ``simulate`` and about 15 s of CPU is
zlib at level 6 on 0.93 GB, which the same bytes require: compression runs on background
threads while documents are rendered. The goal (<= 15 s) was set on a machine where the fetch
before took 46.5 s, about 1.9 times faster than this VM: there this is about 12 s.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import data_args, data_params, run_child
from kalshi_lab.data.raw_store import API_PREFIX, KINDS, format_ts
from kalshi_lab.simulator import documents, emit, simulate, write_synthetic_raw
from kalshi_lab.simulator.formats import count_fp, dollars, timestamps_us, uuids
from kalshi_lab.simulator.paging import page_slices


class ReferenceWriter:
    """The straightforward recorder: ``json.dumps`` and gzip in the producing thread."""

    def __init__(self, raw_dir: Path) -> None:
        raw_dir.mkdir(parents=True, exist_ok=True)
        files = KINDS.items()
        self._raw = {kind: open(raw_dir / name, "wb") for kind, name in files}  # noqa: SIM115
        self._files = {
            kind: io.TextIOWrapper(
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6),
                encoding="utf-8",
                newline="\n",
            )
            for kind, raw in self._raw.items()
        }

    def write(
        self,
        kind: str,
        path: str,
        params: Mapping[str, Any],
        received_at: Any,
        response: Mapping[str, Any],
    ) -> None:
        line = {
            "method": "GET",
            "path": API_PREFIX + path,
            "params": dict(params),
            "received_at": format_ts(received_at),
            "response": response,
        }
        self._files[kind].write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        for kind, f in self._files.items():
            f.close()
            self._raw[kind].close()


def reference_trades(sim, writer: ReferenceWriter) -> None:
    """Each market's tape as dicts, newest first, in the same cursor pages."""
    u, t = sim.universe, sim.trades
    rng = sim.rng("pages")
    ids, times = uuids(t.uuid_bytes), timestamps_us(t.time_us)
    prices, counts, sides = t.yes_price.tolist(), t.count.tolist(), t.taker_yes.tolist()
    for m, rows in enumerate(emit._rows_of(t.market, len(u.ticker))):
        ticker = u.ticker[m]
        tape = [
            {
                "trade_id": ids[i],
                "ticker": ticker,
                "count_fp": count_fp(counts[i]),
                "yes_price_dollars": dollars(prices[i]),
                "no_price_dollars": dollars(100 - prices[i]),
                "taker_side": "yes" if sides[i] else "no",
                "created_time": times[i],
            }
            for i in range(rows.stop - 1, rows.start - 1, -1)
        ]
        slices = page_slices(len(tape), emit.TRADES_PAGE_LIMIT, emit.TRADE_PAGE_REPEAT_SHARE, rng)
        params = {"ticker": ticker, "limit": emit.TRADES_PAGE_LIMIT}
        emit._write_pages(sim, writer, "trades", "/markets/trades", params, tape, slices)


def reference_books(sim, writer: ReferenceWriter) -> None:
    """Every snapshot as nested lists of [price, count] pairs, worst to best."""
    books = sim.books()
    params = {"depth": sim.syn.book_levels}
    for i, m in enumerate(books.market.tolist()):
        body = {}
        for side in ("yes", "no"):
            price = getattr(books, f"{side}_price")[i][::-1].tolist()
            size = getattr(books, f"{side}_size")[i][::-1].tolist()
            body[f"{side}_dollars"] = [
                [dollars(p), count_fp(n)] for p, n in zip(price, size, strict=True) if p > 0
            ]
        path = f"/markets/{sim.universe.ticker[m]}/orderbook"
        writer.write("orderbooks", path, params, emit._at(int(books.ts[i])), {"orderbook_fp": body})


def reference(data, raw_dir: Path) -> None:
    sim = simulate(data)
    writer = ReferenceWriter(raw_dir)
    market_docs = [documents.market_doc(sim, m) for m in range(len(sim.universe.ticker))]
    emit.write_listing(sim, writer, market_docs)
    emit.write_candles(sim, writer, emit.DAILY)
    if sim.data.hourly_candles:
        emit.write_candles(sim, writer, emit.HOURLY)
    reference_trades(sim, writer)
    reference_books(sim, writer)
    writer.close()


WRITERS = {"reference": reference, "current": write_synthetic_raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_args(parser)
    parser.add_argument("--worker", choices=sorted(WRITERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    data = data_params(args.markets, args.start, args.end)
    if args.worker:
        began = time.perf_counter()
        WRITERS[args.worker](data, args.out)
        print(json.dumps({"seconds": time.perf_counter() - began}))
        return

    with tempfile.TemporaryDirectory(prefix="bench-simulator-") as tmp:
        results = {}
        for name in WRITERS:
            out = Path(tmp) / name
            script_args = [*_data_argv(args), "--worker", name, "--out", str(out)]
            results[name] = r = run_child(Path(__file__), script_args)
            print(
                f"{name:>9}: wall {r['seconds']:6.1f} s  CPU {r['cpu_s']:6.1f} s  "
                f"peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB"
            )
        different = [
            n
            for n in KINDS.values()
            if (Path(tmp) / "current" / n).read_bytes()
            != (Path(tmp) / "reference" / n).read_bytes()
        ]
    ref, cur = results["reference"], results["current"]
    print(
        f"speed-up: {ref['seconds'] / cur['seconds']:.1f}x wall, "
        f"{ref['cpu_s'] / cur['cpu_s']:.1f}x CPU"
    )
    print(f"files: {'identical bytes' if not different else 'DIFFERENT: ' + ', '.join(different)}")
    if different:
        raise SystemExit(1)


def _data_argv(args: argparse.Namespace) -> list[str]:
    return ["--markets", str(args.markets), "--start", args.start, "--end", args.end]


if __name__ == "__main__":
    main()
