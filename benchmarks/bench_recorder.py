"""Benchmark: the order-book recorder (``kalshi-lab record``) against the local server's
WebSocket stream with 200+ markets open, at Kalshi-like message rates and above, and its
message path against a straightforward recorder on the same frames.

Run on demand (not a test)::

    uv run python benchmarks/bench_recorder.py [--markets 1000] [--speeds 600 6000 60000]
        [--seconds 20] [--out /tmp/recbench]

Part 1, live: ``LocalKalshiServer`` (this process, pinned to the first core) serves a
simulated two months of ``--markets`` markets (hourly book snapshots, 5 levels a side) with its
clock at ``--now``, when 300+ markets are open, running ``--speeds`` server seconds per wall
second: the faster the clock, the more book changes a second it publishes. For each speed a
``kalshi-lab record`` process (pinned to the second core) records every open market for
``--seconds``. Reported: messages the server published and the recorder recorded, seq gaps
(messages lost), the recorder's CPU seconds while recording (its process, from /proc, minus
its start-up) and so the messages a second one core sustains at that load, and the lag of each
delta: its receipt time less the wall time at which the server's clock reached the delta's
``ts_ms`` (this includes the server's own polling, up to 20 ms). It keeps up when nothing is
lost and the lag neither exceeds a second nor grows from the first quarter to the last.

Part 2, capacity, on the frames part 1 recorded at its fastest speed: a replay server sends
them as fast as it can to each of two recorders in a process of its own (pinned): the
project's path (``KalshiStream`` and ``record``: sequencer, envelope, gzip, flush thread) and
a straightforward one (websockets ``connect``, ``json.loads`` per frame, an envelope written by
``json.dumps`` to ``gzip.open``). Each one's messages per CPU second and per wall second while
recording; the run fails unless both recorded exactly the frames sent, in order.

Measured on 2026-12-07 (shared 2-core VM under ~98 % CPU pressure from other work, a plain
Python loop at 0.58 s), defaults: at 600x (770 msg/s, Kalshi-like for 372 markets) and 6000x
(6,100 msg/s) the recorder lost nothing, left 0 and 83 messages unrecorded at its stop, and
used 4 % and 20 % of its core (20,500 and 30,800 msg per CPU second); at 60000x the server
published only 9,000 msg/s (440 markets) and fell 20 s behind its own clock, while the
recorder still kept up (129 messages backlog, 22 % of its core). Replayed as fast as possible:
the recorder's path 64,600 msg per CPU second, the straightforward one 43,600 (47,200 before
the recorder's hot path was changed: gzip level 6, 64 KiB batches, orjson, isoformat). Wall
rates on this VM are the scheduler's (the recorder's threads waited on the run queue longer
than they ran), so the CPU rates are the figures; details in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
from kalshi_lab.data.stream_store import iter_stream

SCRIPT = Path(__file__).resolve()
SERVER_CORE, RECORDER_CORE = 0, 1
RECORDED = ("orderbook_snapshot", "orderbook_delta", "trade")
CHANNELS = ["orderbook_delta", "trade"]
CLOCK_HZ = os.sysconf("SC_CLK_TCK")


# --- part 1: the recorder against the local server -------------------------------------------


def simulate(raw: Path, markets: int) -> None:
    """Two months of markets with hourly book snapshots, unless ``raw`` is there already."""
    from kalshi_lab.compose_params import compose
    from kalshi_lab.params import params_from_dict
    from kalshi_lab.simulator import write_synthetic_raw

    if raw.exists():
        return
    overrides = [
        f"data.synthetic.n_markets={markets}",
        "data.start=2025-01-01",
        "data.end=2025-02-28",
        "data.orderbook_snapshots_per_day=24",
    ]
    write_synthetic_raw(params_from_dict(compose(overrides, common.ROOT / "conf")).data, raw)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_HZ


def clock_epoch(clock: Any, speed: float) -> tuple[int, float]:
    """(server second t1, the Unix time at which the server's clock reached it): the clock
    floors, so the moment it ticks over maps server time to wall time exactly."""
    start = clock.now()
    while (t1 := clock.now()) == start:
        pass
    return t1, time.time()


def lag_stats(records: list[dict[str, Any]], t1: int, epoch1: float, speed: float) -> dict:
    """Receipt lag of each delta behind the moment the server's clock reached its ts (the
    server's own delay in publishing included), and its trend: the median of the last
    quarter less that of the first."""
    lags = []
    for r in records:
        msg = r["response"]
        if msg["type"] != "orderbook_delta":
            continue
        published = epoch1 + (msg["msg"]["ts_ms"] / 1000 - t1) / speed
        received = dt.datetime.fromisoformat(r["received_at"].replace("Z", "+00:00"))
        lags.append(received.timestamp() - published)
    if not lags:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "trend": 0.0}
    quarter = max(1, len(lags) // 4)
    ordered = sorted(lags)
    return {
        "p50": ordered[len(lags) // 2],
        "p99": ordered[min(len(lags) - 1, int(len(lags) * 0.99))],
        "max": ordered[-1],
        "trend": statistics.median(lags[-quarter:]) - statistics.median(lags[:quarter]),
    }


def seq_gaps(records: list[dict[str, Any]]) -> int:
    """Messages missing between consecutive seq numbers of each subscription."""
    last: dict[int, int] = {}
    missing = 0
    for r in records:
        msg = r["response"]
        sid, seq = msg["sid"], msg["seq"]
        if sid in last and seq > last[sid] + 1:
            missing += seq - last[sid] - 1
        last[sid] = max(seq, last.get(sid, 0))
    return missing


def live_run(dataset: Any, now: dt.datetime, speed: float, seconds: float, out: Path) -> dict:
    """One ``kalshi-lab record`` session against the server at ``speed``."""
    from kalshi_lab.server import LocalKalshiServer, ServerConfig

    shutil.rmtree(out, ignore_errors=True)
    config = ServerConfig(rate_limit=False, now=now, clock_speed=speed)
    with LocalKalshiServer(dataset, config) as srv:
        series = sorted({m.series_ticker for m in dataset.markets.values()})
        argv = [sys.executable, "-m", "kalshi_lab.cli", "--log-level", "WARNING", "record",
                "--series", *series, "--base-url", srv.base_url, "--ws-url", srv.ws_url, "--out", str(out),
                "--duration", str(seconds)]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {RECORDER_CORE}),
        )
        first = proc.stdout.readline()  # "recording N markets ...": start-up is over
        started = cpu_s(proc.pid)
        t1, epoch1 = clock_epoch(srv.clock, speed)
        rest = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"kalshi-lab record failed: {first}{rest}")
        published = srv.stats.published
    records = [r for *_, r in iter_stream(out)]
    recording_cpu = usage.ru_utime + usage.ru_stime - started
    return {
        "speed": speed,
        "markets": int(first.split()[1]),
        "published": sum(published.values()),
        "recorded": len(records),
        "lost": seq_gaps(records),
        "cpu_s": recording_cpu,
        "lag": lag_stats(records, t1, epoch1, speed),
        "records": records,
    }


# --- part 2: the message path against a straightforward recorder, on the same frames --------


class Replay:
    """A websockets server that answers the subscribe command with the captured sids, then
    sends every captured frame as fast as it can; later commands (snapshot probes) are read
    and left unanswered."""

    def __init__(self, frames: list[str], sids: dict[str, int]) -> None:
        from websockets.sync.server import serve

        self.frames, self.sids = frames, sids
        self.server = serve(self._session, "127.0.0.1", 0, compression=None, max_queue=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/trade-api/ws/v2"

    def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        command = json.loads(ws.recv())
        for channel in command["params"]["channels"]:
            answer = {"channel": channel, "sid": self.sids[channel]}
            ws.send(json.dumps({"id": command["id"], "type": "subscribed", "msg": answer}))
        try:
            for frame in self.frames:
                ws.send(frame)
            while True:
                ws.recv()
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()


class Stamps:
    """When the first and the last message were recorded: the wall time of the recording
    proper (opening the segment fsyncs its directory, which a busy disk makes slow)."""

    def __init__(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0

    def tick(self) -> int:
        self.last = time.perf_counter()
        if not self.count:
            self.first = self.last
        self.count += 1
        return self.count


def child_project(url: str, out: Path, tickers: list[str], count: int) -> dict:
    """The recorder's own path: KalshiStream into record()."""
    from kalshi_lab.cli import open_stream
    from kalshi_lab.record.recorder import record

    stream = open_stream(url, tickers)
    stamps = Stamps()
    before = resource.getrusage(resource.RUSAGE_SELF)
    stats = record(stream, out, {"channels": CHANNELS}, should_stop=lambda: stamps.tick() >= count)
    stream.close()
    return _timing(before, stamps, sum(stats.recorded.values()))


def child_plain(url: str, out: Path, tickers: list[str], count: int) -> dict:
    """The straightforward recorder: one json.loads and one json.dumps line per message."""
    from websockets.sync.client import connect

    before = resource.getrusage(resource.RUSAGE_SELF)
    stamps = Stamps()
    out.mkdir(parents=True)
    subscribe = {"id": 1, "cmd": "subscribe",
                 "params": {"channels": CHANNELS, "market_tickers": tickers}}  # fmt: skip
    with connect(url, compression=None) as ws, gzip.open(out / "plain.jsonl.gz", "wt") as f:
        ws.send(json.dumps(subscribe))
        while stamps.count < count:
            message = json.loads(ws.recv())
            if message["type"] not in RECORDED:
                continue
            envelope = {
                "method": "WS",
                "path": "/trade-api/ws/v2",
                "params": {"channels": CHANNELS},
                "received_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "response": message,
            }
            f.write(json.dumps(envelope) + "\n")
            stamps.tick()
    return _timing(before, stamps, stamps.count)


def _timing(before: Any, stamps: Stamps, recorded: int) -> dict:
    """CPU seconds from ``before`` to the file closed (run_child's cpu_s is the whole
    process's, imports included) and wall seconds from the first message to the last."""
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"recorded": recorded, "recording_cpu_s": cpu, "wall_s": stamps.last - stamps.first}


CHILDREN = {"plain": child_plain, "project": child_project}


def capacity(records: list[dict[str, Any]], tickers: list[str], out: Path) -> dict[str, dict]:
    """Both recorders on the same frames; fails unless both recorded exactly those frames."""
    messages = [r["response"] for r in records]
    sids = {("trade" if m["type"] == "trade" else "orderbook_delta"): m["sid"] for m in messages}
    sids.setdefault("trade", max(sids.values()) + 1)  # a run without trades
    replay = Replay([json.dumps(m) for m in messages], sids)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tickers.json").write_text(json.dumps(tickers))
    results = {}
    try:
        for name in CHILDREN:
            target = out / name
            shutil.rmtree(target, ignore_errors=True)
            args = ["--child", name, "--url", replay.url, "--out", str(target),
                    "--count", str(len(messages))]  # fmt: skip
            results[name] = common.run_child(SCRIPT, args)
    finally:
        replay.close()
    project = [r["response"] for *_, r in iter_stream(out / "project")]
    with gzip.open(out / "plain" / "plain.jsonl.gz", "rt") as f:
        plain = [json.loads(line)["response"] for line in f]
    assert project == messages, "the recorder's path did not record the frames sent"
    assert plain == messages, "the plain recorder did not record the frames sent"
    return results


# --- the report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", type=int, default=1000)
    parser.add_argument("--now", default="2025-01-31T00:00:00+00:00", help="the server's clock")
    parser.add_argument("--speeds", type=float, nargs="+", default=[600, 6000, 60000])
    parser.add_argument("--seconds", type=float, default=20.0, help="each live recording")
    parser.add_argument("--out", type=Path, default=Path("/tmp/recbench"))
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.sched_setaffinity(0, {RECORDER_CORE})
        tickers = json.loads((args.out.parent / "tickers.json").read_text())
        print(json.dumps(CHILDREN[args.child](args.url, args.out, tickers, args.count)))
        return

    from kalshi_lab.server.dataset import Dataset

    os.sched_setaffinity(0, {SERVER_CORE})  # the server's threads inherit it
    raw = args.out / "raw"
    simulate(raw, args.markets)
    dataset = Dataset.load(raw)
    print(f"machine: a plain Python loop of 10 M additions takes {common.python_loop_s():.2f} s")
    now = dt.datetime.fromisoformat(args.now)
    print(
        f"{'speed':>6} {'markets':>7} {'published':>9} {'recorded':>9} {'lost':>4} "
        f"{'backlog':>7} {'msg/s':>7} {'rec CPU':>7} {'core':>5} {'msg/CPU s':>9}  "
        f"clock lag p50 / p99 / max, trend   keeps up"
    )
    runs = []
    for speed in args.speeds:
        run = live_run(dataset, now, speed, args.seconds, args.out / f"live-{speed:g}")
        runs.append(run)
        lag, rate = run["lag"], run["recorded"] / args.seconds
        # sent but not recorded when the recorder stopped: in the socket, or queued for it
        backlog = run["published"] - run["recorded"] - run["lost"]
        keeps_up = run["lost"] == 0 and backlog <= rate / 4 and run["cpu_s"] < args.seconds
        print(
            f"{speed:>6g} {run['markets']:>7} {run['published']:>9,} {run['recorded']:>9,} "
            f"{run['lost']:>4} {backlog:>7,} {rate:>7,.0f} {run['cpu_s']:>6.2f}s "
            f"{run['cpu_s'] / args.seconds:>5.0%} {run['recorded'] / run['cpu_s']:>9,.0f}  "
            f"{lag['p50']:>7.2f} / {lag['p99']:.2f} / {lag['max']:.2f} s, {lag['trend']:+.2f} s"
            f"   {'yes' if keeps_up else 'NO'}"
        )
    fastest = max(runs, key=lambda r: r["recorded"])
    tickers = sorted({r["response"]["msg"]["market_ticker"] for r in fastest["records"]})
    results = capacity(fastest["records"], tickers, args.out / "capacity")
    n = len(fastest["records"])
    print(
        f"\ncapacity: {n:,} frames of the {fastest['speed']:g}x run, replayed as fast as possible"
    )
    for name, r in results.items():
        cpu = r["recording_cpu_s"]
        print(
            f"{name:>8}: {cpu:6.2f} CPU s {n / cpu:>9,.0f} msg/CPU s   "
            f"{r['wall_s']:6.2f} s {n / r['wall_s']:>9,.0f} msg/s"
        )
    print("identical: both recorded every frame sent, in order")


if __name__ == "__main__":
    main()
