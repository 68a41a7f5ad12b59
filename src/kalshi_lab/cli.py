"""``kalshi-lab``: the project's command line, one subcommand per job.

Each subcommand is a function ``run(args) -> exit code`` registered by an ``add_*`` function on
the shared parser; the texts users see (``--help``) are :data:`DESCRIPTION`, :data:`EPILOG` and
each subcommand's own, written for users, with examples and without these internals.

Errors the user can fix (a bad option, an unreadable raw directory or key, a port in use) are
one line, ``error: <command>: <message>``, and exit code 2, as the pipeline stages report them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kalshi_lab import paths
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.server import FaultConfig, LocalKalshiServer, ServerConfig
from kalshi_lab.server.auth import load_public_key
from kalshi_lab.server.config import DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT_S
from kalshi_lab.summary import write_summary

Command = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
Tools around the kalshi-lab pipeline (the pipeline itself runs with "dvc repro"):

  serve    serve recorded market data as a local Kalshi Trade API, to try the bot or the
           fetch without touching Kalshi (with a test key, it also takes orders);
  record   record the live order books (and trades) of open markets into data/recorded, for
           the pipeline to rebuild and backtest on: Kalshi keeps no order-book history;
  summary  write reports/summary.md, the results of the last pipeline run in one page;
  experiments
           the experiments table: each run's headline metrics and the -S overrides that
           made it, fitted to the terminal.

Run "kalshi-lab COMMAND --help" for the options of each."""

EPILOG = """\
examples:
  kalshi-lab serve --raw data/raw --port 8765
  kalshi-lab record --series KXU3 --duration 8h
  kalshi-lab summary --ref main
  kalshi-lab experiments

exit codes: 0 done; 2 bad input (an option, a file, a port in use), one "error:" line."""

SERVE_DESCRIPTION = """\
Serve the market data the fetch stage recorded (data/raw) through Kalshi's Trade API v2
paths at http://127.0.0.1:PORT/trade-api/v2, until Ctrl-C. Its clock starts inside the
data, so markets are open, books move and orders fill as they did then. With --public-key
and --key-id it also serves the portfolio endpoints (balance, orders, fills, positions)
for that key.

It also streams, as Kalshi's WebSocket API does, at ws://127.0.0.1:WS-PORT/trade-api/ws/v2
(printed on the second line): order books (a snapshot, then deltas as the clock moves),
trades, tickers and, for the key, its fills and orders. With a key, every connection must
be signed like a portfolio request; without one, only the public channels are served."""

SERVE_EPILOG = """\
examples:
  kalshi-lab serve --raw data/raw --port 8765
  kalshi-lab serve --raw data/raw --now 2025-01-15T06:00 --clock-speed 60 \\
      --public-key key.pub --key-id 5f0c0e1e-0000-4000-8000-00000000b07e
  kalshi-lab serve --raw data/raw --port 0 --fault-429 0.1 --fault-reset 0.05
  kalshi-lab serve --raw data/raw --ws-port 8766 --clock-speed 60 \
      --fault-stream-gap 0.01 --fault-stream-duplicate 0.01 --fault-stream-drop 0.001

Then point a client at http://127.0.0.1:PORT/trade-api/v2, e.g.
  kalshi-bot --mode paper --base-url http://127.0.0.1:8765/trade-api/v2 --once"""

RECORD_DESCRIPTION = """\
Record the order books of a series' open markets as Kalshi streams them (WebSocket channel
orderbook_delta: a snapshot of each book, then every change; and the trade channel) into
DIR/orderbook_deltas, one file per session, until Ctrl-C, SIGTERM or --duration. The
parquet stage rebuilds the order-book table from data/recorded every data.book_interval
minutes, so that "dvc repro" backtests on these books where they exist (it re-runs from the
parquet stage on; recordings still being written are left out until closed). A session that
is killed loses at most its last second; run the command again to go on (each session starts
with fresh snapshots). No stage writes data/recorded and no dvc command deletes it; git
ignores the recordings: back them up yourself.
Kalshi's stream needs an API key: KALSHI_API_KEY_ID with KALSHI_PRIVATE_KEY_PATH (or
KALSHI_PRIVATE_KEY); without one the stream is opened unsigned (a local server)."""

RECORD_EPILOG = """\
examples:
  kalshi-lab record --series KXU3 --duration 8h
  kalshi-lab record --series KXU3 KXCPI --tickers KXU3-26DEC-T4.5
  kalshi-lab record --series KXU3 --base-url http://127.0.0.1:8765/trade-api/v2 --duration 10m

Then: dvc repro (the backtest reports n_fills_recorded_book, the fills these books quoted)."""

SUMMARY_DESCRIPTION = """\
Write reports/summary.md from the reports the pipeline wrote: the model against its
baselines with intervals, the test period, the backtest, the figures and, with --ref, the
metrics that changed since that git ref."""

SUMMARY_EPILOG = """\
examples:
  kalshi-lab summary
  kalshi-lab summary --ref main --out /tmp/summary.md"""

EXPERIMENTS_DESCRIPTION = """\
Print the experiments of the current commit (as "dvc exp show" lists them): the four headline
metrics as columns, and each run's parameters written as what to pass to "dvc exp run -S" to
get them again (the config groups that are not conf/'s defaults, then the values that differ
from what those groups compose to). The overrides wrap, so the table fits the terminal."""

EXPERIMENTS_EPILOG = """\
examples:
  kalshi-lab experiments
  kalshi-lab experiments -n 2 --width 160"""


def _time(text: str) -> dt.datetime:
    """An ISO time; a time without an offset is UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability must be in [0, 1], got {value}")
    return value


def positive_number(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "serve",
        help="serve recorded market data as a local Kalshi Trade API (loopback only)",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--raw",
        type=Path,
        required=True,
        help="the data directory the fetch stage wrote (data/raw)",
    )
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 or localhost; nothing else")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
    p.add_argument(
        "--ws-port",
        type=int,
        default=0,
        help="port of the WebSocket stream; 0 picks a free one (default; printed)",
    )
    p.add_argument("--cutoff", type=_time, help="historical cutoff (default: median settlement)")
    p.add_argument(
        "--now",
        type=_time,
        help="where the server clock starts: market statuses, books and orders as of then "
        "(default: the time of the data's last recorded response)",
    )
    p.add_argument(
        "--clock-speed",
        type=_non_negative,
        default=0.0,
        help="server seconds per wall-clock second: 0 stops the clock (default), 1 is real "
        "time, 60 plays an hour a minute; books, statuses, resting-order fills and "
        "settlements follow it",
    )
    conns = p.add_argument_group("connections")
    conns.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections (threads) at once; the longest-idle one makes room (default %(default)s)",
    )
    conns.add_argument(
        "--read-timeout",
        type=positive_number,
        default=DEFAULT_READ_TIMEOUT_S,
        help="seconds any read waits; idle connections close then (default %(default)g)",
    )
    limits = p.add_argument_group("rate limit (token buckets with a 1 s burst)")
    limits.add_argument("--reads-per-s", type=positive_number, default=20.0)
    limits.add_argument("--writes-per-s", type=positive_number, default=10.0)
    limits.add_argument("--no-rate-limit", action="store_true", help="switch rate limiting off")
    auth = p.add_argument_group("portfolio endpoints (disabled without a key)")
    auth.add_argument("--public-key", type=Path, help="PEM file of the API key's RSA public key")
    auth.add_argument("--key-id", help="the API key id clients send as KALSHI-ACCESS-KEY")
    auth.add_argument(
        "--balance-cents", type=int, default=100_000, help="starting balance (default $1,000)"
    )
    faults = p.add_argument_group("fault injection (probability per request, seeded)")
    faults.add_argument("--fault-429", type=_probability, default=0.0, help="429 too many requests")
    faults.add_argument("--fault-500", type=_probability, default=0.0, help="500 ErrorResponse")
    faults.add_argument("--fault-502", type=_probability, default=0.0, help="502 HTML page")
    faults.add_argument(
        "--fault-slow", type=_probability, default=0.0, help="processed, answered late"
    )
    faults.add_argument(
        "--slow-delay", type=positive_number, default=3.0, help="seconds (default 3)"
    )
    faults.add_argument("--fault-truncate", type=_probability, default=0.0, help="body cut short")
    faults.add_argument("--fault-reset", type=_probability, default=0.0, help="connection reset")
    faults.add_argument("--fault-path", help="only paths under this prefix, e.g. /portfolio")
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument(
        "--fault-late-fill",
        type=_probability,
        default=0.0,
        help="probability (per fill) that GET /portfolio/fills lists a fill late",
    )
    faults.add_argument(
        "--late-fill-delay", type=positive_number, default=2.0, help="seconds (default 2)"
    )
    stream = p.add_argument_group(
        "stream fault injection (probability per streamed message, seeded by --fault-seed)"
    )
    stream.add_argument(
        "--fault-stream-drop",
        type=_probability,
        default=0.0,
        help="the connection drops instead of sending the message",
    )
    stream.add_argument(
        "--fault-stream-gap",
        type=_probability,
        default=0.0,
        help="the message is lost but its seq used up: the client sees a gap",
    )
    stream.add_argument(
        "--fault-stream-duplicate",
        type=_probability,
        default=0.0,
        help="the message is sent twice, same seq",
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Build the server from the options, serve until SIGINT/SIGTERM; returns the exit code."""
    if (args.public_key is None) != (args.key_id is None):
        raise KalshiLabError("--public-key and --key-id go together: give both or neither")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ws_port=args.ws_port,
        cutoff=args.cutoff,
        now=args.now,
        clock_speed=args.clock_speed,
        rate_limit=not args.no_rate_limit,
        reads_per_s=args.reads_per_s,
        writes_per_s=args.writes_per_s,
        faults=FaultConfig(
            rate_limited=args.fault_429,
            server_error=args.fault_500,
            bad_gateway=args.fault_502,
            slow=args.fault_slow,
            truncated=args.fault_truncate,
            reset=args.fault_reset,
            slow_delay_s=args.slow_delay,
            path_prefix=args.fault_path,
            seed=args.fault_seed,
            late_fill=args.fault_late_fill,
            late_fill_delay_s=args.late_fill_delay,
            stream_drop=args.fault_stream_drop,
            stream_gap=args.fault_stream_gap,
            stream_duplicate=args.fault_stream_duplicate,
        ),
        public_key=None if args.public_key is None else load_public_key(args.public_key),
        key_id=args.key_id,
        starting_balance_cents=args.balance_cents,
        max_connections=args.max_connections,
        read_timeout_s=args.read_timeout,
    )
    stop = threading.Event()
    with LocalKalshiServer(args.raw, config) as server:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        print(f"serving {args.raw} at {server.base_url}", flush=True)
        print(f"streaming at {server.ws_url}", flush=True)
        while not stop.wait(0.5):
            pass
    print("stopped", flush=True)
    return 0


def _duration(text: str) -> float:
    """argparse type: seconds, or a number with a unit: 90s, 30m, 8h, 2d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration (90s, 30m, 8h): {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def add_record(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kalshi_lab.client import PRODUCTION_URL

    p = commands.add_parser(
        "record",
        help="record the live order books of open markets into data/recorded",
        description=RECORD_DESCRIPTION,
        epilog=RECORD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--series", nargs="+", required=True, help="series tickers (e.g. KXU3)")
    p.add_argument(
        "--tickers", nargs="+", help="only these markets of the series (default: every open one)"
    )
    p.add_argument("--base-url", default=PRODUCTION_URL, help="Trade API v2 (default: %(default)s)")
    p.add_argument(
        "--ws-url",
        help="the WebSocket API (default: the base URL's, wss://HOST/trade-api/ws/v2)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=paths.RECORDED_DIR,
        help="recordings directory, the parquet stage's input (default: %(default)s)",
    )
    p.add_argument("--duration", type=_duration, help="stop after this long (90s, 30m, 8h)")
    p.set_defaults(run=run_record)


def open_markets(base_url: str, series: Sequence[str], tickers: Sequence[str] | None) -> list[str]:
    """The open markets of ``series`` (only ``tickers``, each of which must be one of them)."""
    from kalshi_lab.client import KalshiClient

    with KalshiClient(base_url) as client:
        found = [
            m.ticker for s in series for m in client.get_markets(series_ticker=s, status="open")
        ]
    if tickers:
        missing = sorted(set(tickers) - set(found))
        if missing:
            raise KalshiLabError(
                f"--tickers: not open markets of {', '.join(series)}: {', '.join(missing)}"
            )
        found = [t for t in found if t in set(tickers)]
    if not found:
        raise KalshiLabError(f"--series: no open markets in {', '.join(series)}")
    return found


def open_stream(url: str, tickers: list[str]) -> Any:
    """A KalshiStream on the book and trade channels of ``tickers``, signed when the
    environment has a key."""
    from kalshi_lab.client.auth import KEY_ID_VAR, KalshiSigner
    from kalshi_lab.client.ws import KalshiStream  # the WebSocket client: only here

    auth = KalshiSigner.from_env() if os.environ.get(KEY_ID_VAR, "").strip() else None
    return KalshiStream(url, channels=list(CHANNELS), market_tickers=tickers, auth=auth)


#: the stream channels recorded (Kalshi's AsyncAPI spec)
CHANNELS = ("orderbook_delta", "trade")


def run_record(args: argparse.Namespace) -> int:
    """Record until the stream ends, SIGINT/SIGTERM or --duration; returns the exit code."""
    from kalshi_lab.client.ws import ws_url_for
    from kalshi_lab.data.stream_store import stream_dir
    from kalshi_lab.record.recorder import record

    try:
        url = args.ws_url or ws_url_for(args.base_url)
    except ValueError as exc:
        raise KalshiLabError(f"--base-url: {exc}") from None
    tickers = open_markets(args.base_url, args.series, args.tickers)
    stream = open_stream(url, tickers)
    deadline = math.inf if args.duration is None else time.monotonic() + args.duration
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()
        stream.close()  # ends the iteration, even while it waits for a message

    timer = threading.Timer(args.duration or 0, stop)
    if args.duration is not None:
        timer.start()
    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"recording {len(tickers)} markets from {url} into {args.out}", flush=True)
    try:
        stats = record(
            stream,
            args.out,
            # what was asked for, not the market list: it would repeat in every record
            {"channels": list(CHANNELS), "series": args.series, "tickers": args.tickers},
            should_stop=lambda: stopping.is_set() or time.monotonic() >= deadline,
        )
    finally:
        timer.cancel()
        stream.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    total = sum(stats.recorded.values())
    print(f"recorded {total} messages into {stream_dir(args.out) / stats.segment}")
    return 0


def add_summary(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "summary",
        help="write reports/summary.md: the last pipeline run's results in one page",
        description=SUMMARY_DESCRIPTION,
        epilog=SUMMARY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ref", help="git ref to diff the metrics against (dvc metrics diff REF)")
    p.add_argument("--out", type=Path, default=paths.SUMMARY, help="default: %(default)s")
    p.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    write_summary(args.ref, args.out)
    logging.getLogger("kalshi_lab").info("wrote %s", args.out)
    return 0


def add_experiments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "experiments",
        help="the experiments table: headline metrics and each run's -S overrides",
        description=EXPERIMENTS_DESCRIPTION,
        epilog=EXPERIMENTS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-n", "--num", type=int, default=1, help="commits to list experiments of (default: 1)"
    )
    p.add_argument(
        "--width",
        type=int,
        default=shutil.get_terminal_size((120, 24)).columns,
        help="characters per line (default: the terminal's, or COLUMNS)",
    )
    p.set_defaults(run=run_experiments)


def run_experiments(args: argparse.Namespace) -> int:
    from kalshi_lab.experiments import Overrides, read_dvc_experiments, render  # Hydra: only here

    print(render(read_dvc_experiments(args.num), Overrides(), args.width))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kalshi-lab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="DEBUG shows every request",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve(commands)
    add_record(commands)
    add_summary(commands)
    add_experiments(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    run: Command = args.run
    try:
        return run(args)
    except KalshiLabError as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
