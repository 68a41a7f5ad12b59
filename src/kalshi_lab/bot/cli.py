"""``kalshi-bot``: the trading bot of the design (``example_bot.py``), in three modes.

* ``--mode backtest --capital 10000``: the backtest stage's replay of the validation period
  (``data/predictions/predictions.parquet`` and the parquet tables) with ``--capital`` as the
  initial cash;
* ``--mode paper``: trades Kalshi's demo exchange (or ``--base-url``, e.g. a local
  ``kalshi-lab serve``);
* ``--mode live``: trades the production exchange, only with ``--confirm-live``.

Paper and live need an API key in the environment (``KALSHI_API_KEY_ID`` and
``KALSHI_PRIVATE_KEY_PATH`` or ``KALSHI_PRIVATE_KEY``), never on the command line; no key or
part of one is logged or reported. ``--dry-run`` logs the orders it would send and sends none;
``--stream-url`` keeps the order books and the account's fills from Kalshi's WebSocket stream
(:mod:`kalshi_lab.bot.stream_feed`; REST for a book the stream cannot vouch for, and for all of
them while it is down; the REST listing of fills stays on every cycle, to catch what the
stream lost, and each fill is booked once, from whichever source told it first);
``--once`` runs one cycle, otherwise a cycle runs every ``--interval`` seconds until Ctrl-C
(or SIGTERM), which ends the session after the cycle under way, with its report written (exit
code 0); a second Ctrl-C aborts the cycle, concludes the session the same way and exits with
130, as does Ctrl-C outside the loop (one line ``kalshi-bot: interrupted``, no traceback).

Every session that starts writes ``reports/bot/<mode>-<UTC start>/`` (see
:mod:`kalshi_lab.bot.report`; paper and live keep their order journal there,
:mod:`kalshi_lab.bot.journal`, and continue the previous session's,
:mod:`kalshi_lab.bot.restart`) and prints a short summary. Bad input (an unknown mode, a flag
the mode does not use (:data:`FLAG_MODES`), a missing model or key, a series the venue does
not know, a key it refuses, an unreachable server: refused connection, unknown host and
timeout each said as such) is one line ``error: kalshi-bot: <message naming the flag, file or
variable>`` and exit code 2, as the stages report it, before any report directory is made; a
reconciliation that fails, or an order's life at the venue that contradicts the bot's books
(:mod:`kalshi_lab.execution.lifecycle`), stops trading with an ``error:`` line and exit code
1, after the report is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from kalshi_lab import paths
from kalshi_lab.bot.venue import DEFAULT_URLS, MODES, TIERS
from kalshi_lab.cli import positive_number
from kalshi_lab.client import (
    ConnectRefusedError,
    HostNotFoundError,
    KalshiError,
    KalshiSigner,
    RequestTimedOutError,
)
from kalshi_lab.client.ws import ws_url_for
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.execution.live import LOOKUP_ATTEMPTS
from kalshi_lab.execution.reconcile import ReconciliationError
from kalshi_lab.params import Params, load_params

# the session, the model and the execution layer (scikit-learn, Hydra, ...) are imported when
# a session starts, so that a refusal (bad flag, live without --confirm-live, no key) is quick

PROG = "kalshi-bot"
logger = logging.getLogger("kalshi_lab.bot")
#: the exit code of a session ended by Ctrl-C (KeyboardInterrupt), as shells report SIGINT
INTERRUPTED = 130
TRADING = ("paper", "live")
#: option (its argparse dest) -> the modes that use it; any other mode refuses it
FLAG_MODES: dict[str, tuple[str, ...]] = {
    "capital": MODES,
    "params": MODES,
    "reports": MODES,
    "log_level": MODES,
    "base_url": TRADING,
    "stream_url": TRADING,
    "series": TRADING,
    "once": TRADING,
    "interval": TRADING,
    "dry_run": TRADING,
    "adopt_positions": TRADING,
    "tier": TRADING,
    "timeout": TRADING,
    "max_retries": TRADING,
    "lookups": TRADING,
    "lookup_wait": TRADING,
    "models": TRADING,  # backtest replays the predictions of the evaluate stage
    "confirm_live": ("live",),
}

DESCRIPTION = """\
Run the project's trading strategy, in one of three modes:

  backtest  replay the validation period of the pipeline's predictions (no network);
  paper     trade Kalshi's demo exchange (or a local "kalshi-lab serve") with the live model;
  live      trade the production exchange with real money (needs --confirm-live).

Paper and live read the API key from the environment only: KALSHI_API_KEY_ID, and
KALSHI_PRIVATE_KEY_PATH (a PEM file) or KALSHI_PRIVATE_KEY (the PEM itself). They run a
decision cycle every --interval seconds until Ctrl-C, or one with --once. Every session
writes its report to reports/bot/<mode>-<start time>/ and prints a summary."""

EPILOG = """\
examples:
  kalshi-bot --mode backtest --capital 10000
  kalshi-bot --mode paper --series KXHIGHNY --once --dry-run
  kalshi-bot --mode paper --base-url http://127.0.0.1:8765/trade-api/v2 --interval 60
  kalshi-bot --mode paper --base-url http://127.0.0.1:8765/trade-api/v2 \
      --stream-url ws://127.0.0.1:8766/trade-api/ws/v2 --interval 60
  kalshi-bot --mode live --confirm-live --series KXHIGHNY --capital 200

exit codes: 0 done; 1 trading stopped because the bot's books and the exchange's disagree;
2 bad input (a flag, file, key, series or server), one "error:" line; 130 interrupted."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one ``error: kalshi-bot: ...`` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {PROG}: {message}", file=sys.stderr)
        sys.exit(2)


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _retries(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", required=True, choices=MODES, help="backtest, paper or live")
    common = p.add_argument_group("every mode")
    common.add_argument(
        "--capital",
        type=positive_number,
        help="dollars. backtest: the starting cash (default: backtest.initial_cash in "
        "params.yaml); paper/live: trade with at most this much of the balance (default: all)",
    )
    common.add_argument("--params", type=Path, default=paths.PARAMS, help="default: params.yaml")
    common.add_argument(
        "--reports", type=Path, default=Path("reports/bot"), help="where reports go (reports/bot)"
    )
    common.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    trading = p.add_argument_group("paper and live only")
    trading.add_argument(
        "--base-url",
        help=f"API base URL (paper: {DEFAULT_URLS['paper']}, live: {DEFAULT_URLS['live']}); "
        "e.g. http://127.0.0.1:PORT/trade-api/v2 for kalshi-lab serve",
    )
    trading.add_argument(
        "--stream-url",
        metavar="URL",
        help="keep order books and fills from Kalshi's WebSocket stream (REST when it is "
        "down; fills are listed from REST too, to catch what the stream lost), e.g. "
        "wss://api.elections.kalshi.com/trade-api/ws/v2, or the ws:// URL kalshi-lab serve "
        "prints; 'auto' derives it from --base-url",
    )
    trading.add_argument(
        "--series",
        action="append",
        metavar="TICKER",
        help="series to trade, repeatable (default: data.series in params.yaml, with "
        "data=kalshi); a series the exchange does not know stops the bot at once",
    )
    trading.add_argument("--once", action="store_true", help="run one cycle and stop")
    trading.add_argument(
        "--interval",
        type=positive_number,
        default=300.0,
        help="seconds between cycles (default 300)",
    )
    trading.add_argument("--dry-run", action="store_true", help="log the orders, send none")
    trading.add_argument(
        "--confirm-live", action="store_true", help="required by --mode live: real money"
    )
    trading.add_argument(
        "--adopt-positions",
        action="store_true",
        help="take over positions already on the account (at their cost) instead of stopping",
    )
    trading.add_argument(
        "--models",
        type=Path,
        default=paths.MODEL.parent,
        help="directory of the trained models (default models/; the bot trades live.joblib)",
    )
    trading.add_argument(
        "--tier", choices=tuple(TIERS), default="basic", help="your API usage tier (rate limit)"
    )
    trading.add_argument(
        "--timeout", type=positive_number, default=10.0, help="seconds per request (default 10)"
    )
    trading.add_argument(
        "--max-retries",
        type=_retries,
        default=6,
        help="retries per request after a 429, a 5xx or a lost connection (default 6)",
    )
    trading.add_argument(
        "--lookups",
        type=_positive_int,
        default=LOOKUP_ATTEMPTS,
        help="times to ask the exchange about an order whose answer was lost, before its "
        f"market is blocked until the next start (default {LOOKUP_ATTEMPTS})",
    )
    trading.add_argument(
        "--lookup-wait",
        type=positive_number,
        default=0.5,
        help="seconds before the second such question, doubling for each next (default 0.5)",
    )
    return p


def refuse_unused_flags(argv: Sequence[str] | None, mode: str) -> None:
    """A flag the chosen mode does not use is refused, naming both, rather than ignored.

    What the command line set is read by parsing it again with every default None (a value
    no flag gives), so a flag given with its default value (``--interval 300``) counts too.
    """
    parser = build_parser()
    parser.set_defaults(**dict.fromkeys(FLAG_MODES))
    given = vars(parser.parse_args(argv))
    for dest in FLAG_MODES:
        if given[dest] is not None and mode not in FLAG_MODES[dest]:
            used = " and ".join(f"--mode {m}" for m in FLAG_MODES[dest])
            raise KalshiLabError(
                f"--{dest.replace('_', '-')} is not used by --mode {mode} (only by {used}): "
                "leave it out"
            )


def _series(args: argparse.Namespace, params: Params) -> tuple[str, ...]:
    chosen = args.series or (params.data.series if params.data.source == "kalshi" else None)
    if not chosen:
        raise KalshiLabError(
            "no series to trade: give --series TICKER (repeatable), or set data.series with "
            "data=kalshi in params.yaml"
        )
    bad = [s for s in chosen if not s or s != s.strip() or "," in s]
    if bad:
        raise KalshiLabError(f"--series must be tickers without spaces or commas, got {bad}")
    return tuple(dict.fromkeys(chosen))


def _unreachable_hint(exc: KalshiError) -> str:
    """What to check when the venue never answered, by what the network said."""
    if isinstance(exc, HostNotFoundError):
        return ": check the host name in the URL, and the network"
    if isinstance(exc, ConnectRefusedError):
        return ": is the server started, and on that port?"
    if isinstance(exc, RequestTimedOutError):
        return ": the host or the network is slow or down (--timeout sets the wait)"
    return ""


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (the cycle under way finishes); a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.warning("stopping after this cycle (Ctrl-C again to abort at once)")
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stream_url(option: str | None, base_url: str) -> str | None:
    """--stream-url: None (no stream), 'auto' (the base URL's), or a ws(s):// URL."""
    if option is None:
        return None
    if option == "auto":
        return ws_url_for(base_url)
    if not option.startswith(("ws://", "wss://")):
        raise KalshiLabError(
            f"--stream-url must be a ws:// or wss:// URL or 'auto', got {option!r}"
        )
    return option


def run_trading(args: argparse.Namespace, started: dt.datetime) -> int:
    base_url = args.base_url or DEFAULT_URLS[args.mode]
    if args.mode == "live" and not args.confirm_live:
        raise KalshiLabError(
            f"--mode live trades real money on {base_url}: add --confirm-live to go ahead"
        )
    if not base_url.startswith(("http://", "https://")) or "/trade-api/v2" not in base_url:
        raise KalshiLabError(
            f"--base-url must be an http(s) URL ending in /trade-api/v2, got {base_url!r}"
        )
    stream_url = _stream_url(args.stream_url, base_url)
    signer = KalshiSigner.from_env()  # names a missing variable, never a value
    from kalshi_lab.bot import report as rep
    from kalshi_lab.bot.session import BotConfig, TradingSession
    from kalshi_lab.bot.signals import load_model
    from kalshi_lab.bot.venue import make_client
    from kalshi_lab.execution import build_strategy

    params = load_params(args.params)
    config = BotConfig(
        mode=args.mode,
        base_url=base_url,
        capital=args.capital,
        series=_series(args, params),
        once=args.once,
        interval_s=args.interval,
        dry_run=args.dry_run,
        adopt_positions=args.adopt_positions,
        report_root=args.reports,
        lookup_attempts=args.lookups,
        lookup_backoff_s=args.lookup_wait,
        stream_url=stream_url,
    )
    model = load_model(args.models, params)
    build_strategy(params.strategy, model.target)  # a bad strategy stops before any request
    client = make_client(base_url, signer, args.tier, args.timeout, args.max_retries)
    session = TradingSession(config, params, model, client, started)
    stop = threading.Event()
    failure: Exception | None = None
    aborted = False
    with client, _stop_on_signals(stop):
        try:
            session.start()
        except KalshiError as exc:
            if session.venue_start is None:  # not even the clock answered: nothing to report
                raise KalshiLabError(
                    f"cannot reach {base_url} (--base-url): {exc}{_unreachable_hint(exc)}"
                ) from None
            failure = exc
        except KeyboardInterrupt:
            session.stopped, aborted = "aborted (Ctrl-C twice)", True
            stop.set()
        except Exception as exc:  # reported, then raised again below
            failure = exc
        if failure is None and session.trader is not None:  # stop set: no cycle
            try:
                session.run(stop)
            except KeyboardInterrupt:
                session.stopped, aborted = "aborted (Ctrl-C twice)", True
            except Exception as exc:  # reported, then raised again below
                failure = exc
        if failure is not None and not isinstance(failure, ReconciliationError):
            session.stopped = f"error: {failure}"
        closed = session.close()  # every way out: the exit's reconciliation, the report
    if closed is not None:
        for line in rep.summary_lines(closed.report, closed.path):
            print(line, flush=True)
        failure = failure or closed.failure
    if failure is not None:
        raise failure
    if aborted:  # concluded and reported like any other exit; the exit code says how it ended
        raise KeyboardInterrupt
    return 0


def run_backtest(args: argparse.Namespace, started: dt.datetime) -> int:
    from kalshi_lab.bot import report as rep
    from kalshi_lab.bot.session import BotConfig, run_backtest_session

    config = BotConfig(mode="backtest", capital=args.capital, report_root=args.reports)
    report, path = run_backtest_session(config, load_params(args.params), started)
    for line in rep.summary_lines(report, path):
        print(line, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format=f"%(asctime)s {PROG} %(levelname)s %(name)s %(message)s"
    )
    started = dt.datetime.now(dt.UTC)
    try:
        refuse_unused_flags(argv, args.mode)
        if args.mode == "backtest":
            return run_backtest(args, started)
        return run_trading(args, started)
    except ReconciliationError as exc:
        print(f"error: {PROG}: {exc}", file=sys.stderr)
        return 1
    except KalshiLabError as exc:
        print(f"error: {PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
