"""``kalshi-bot`` end to end, against the local Kalshi server (no network).

A small pipeline (simulated raw data -> parquet -> features -> a logistic model -> predictions)
is built once in a temporary project; the bot runs there as a user runs it, in-process through
``main`` (and as the installed command where the process matters: a refusal, Ctrl-C). The
server serves the same raw data with its clock inside its history (NOW), and holds the test
key, so paper trading signs real orders that it matches against its books.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.backtest import run_backtest
from kalshi_lab.bot.cli import main
from kalshi_lab.client import KalshiClient, KalshiSigner
from kalshi_lab.compose_params import compose
from kalshi_lab.data.tables import read_table
from kalshi_lab.params import load_params
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw
from ws_support import rest_book, wait_until

ROOT = Path(__file__).resolve().parents[1]
COMMAND = shutil.which("kalshi-bot", path=str(Path(sys.executable).parent))
SERIES = ["KXSIMA", "KXSIMB", "KXSIMC", "KXSIMD", "KXSIME"]
NOW = dt.datetime(2025, 1, 15, 6, tzinfo=dt.UTC)  # the server's clock: a dozen markets open
KEY_ID = "5f0c0e1e-0000-4000-8000-00000000b07e"
BALANCE = 1_000_000  # cents on the server's account
FAST = ["--tier", "prime", "--timeout", "2", "--max-retries", "3"]
#: cycles of the stream session: enough for fills told first by each source
CYCLES = 16


# --- the project, the key, the server ------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, key) -> Path:
    """A project directory holding what the stages write up to evaluate, on simulated data."""
    from kalshi_lab.stages import evaluate, features, parquet, train

    root = tmp_path_factory.mktemp("bot_project")
    write_simulated_raw(root / "data" / "raw")
    overrides = [
        "model=logreg",
        "data=kalshi",
        f"data.series=[{','.join(SERIES)}]",
        "split.n_folds=1",
        # a fixture of 17 events: the guards' defaults would skip every period
        "split.min_train_events=5",
        "split.min_scored_events=3",
    ]
    (root / "params.yaml").write_text(yaml.safe_dump(compose(overrides, ROOT / "conf")))
    (root / "key.pem").write_bytes(pem_of(key))
    previous = Path.cwd()
    os.chdir(root)
    try:
        for stage in (parquet, features, train, evaluate):
            stage.main()
    finally:
        os.chdir(previous)
    return root


@pytest.fixture(scope="module")
def dataset(project) -> Dataset:
    return Dataset.load(project / "data" / "raw")


@pytest.fixture
def server(dataset, key):
    config = ServerConfig(
        rate_limit=False,
        now=NOW,
        public_key=key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=BALANCE,
    )
    with LocalKalshiServer(dataset, config) as srv:
        yield srv


@pytest.fixture
def env(project, monkeypatch) -> Path:
    """Run in the project with the key in the environment (a file, as most users keep it)."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("KALSHI_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(project / "key.pem"))
    monkeypatch.delenv("KALSHI_PRIVATE_KEY", raising=False)
    return project


def paper(srv: LocalKalshiServer, reports: Path, *extra: str) -> list[str]:
    return ["--mode", "paper", "--base-url", srv.base_url, "--reports", str(reports), *FAST, *extra]


def the_report(reports: Path) -> tuple[dict[str, Any], Path]:
    (path,) = reports.glob("*/report.json")
    return json.loads(path.read_text()), path.parent


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: kalshi-bot: "), err
    return err[0]


def signed_client(srv: LocalKalshiServer, key: rsa.RSAPrivateKey) -> KalshiClient:
    return KalshiClient(srv.base_url, signer=KalshiSigner(KEY_ID, key), reads_per_s=1000)


# --- paper trading -----------------------------------------------------------------------------


def test_paper_once_places_orders_books_fills_reconciles_and_never_shows_the_key(
    env, server, key, tmp_path, monkeypatch, caplog, capsys
):
    # the key as PEM text in the environment this time, and every log line at DEBUG
    pem = pem_of(key).decode()
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH")
    monkeypatch.setenv("KALSHI_PRIVATE_KEY", pem)
    caplog.set_level(logging.DEBUG)
    reports = tmp_path / "reports"
    assert main(paper(server, reports, "--once", "--log-level", "DEBUG")) == 0  # params' series
    out = capsys.readouterr()
    report, folder = the_report(reports)
    assert folder.name.startswith("paper-") and folder.parent == reports

    assert (report["mode"], report["base_url"], report["dry_run"]) == (
        "paper",
        server.base_url,
        False,
    )
    assert report["series"] == SERIES and report["cycles"] == 1
    assert Path(report["model"]["path"]).name == "live.joblib"  # the model fit on every row
    assert report["venue_started_at"] == pd.Timestamp(NOW).isoformat()  # the server's clock
    orders = report["orders"]
    assert orders["placed"] > 0 and orders["filled"] > 0 and report["fills"] > 0
    assert orders["decided"] == sum(
        orders[k] for k in ("placed", "refused_by_risk", "refused_by_exchange", "not_sent")
    )
    stats = server.stats.requests
    assert stats["create_order"] == orders["placed"]
    assert [c["after"] for c in report["reconcile"]] == ["start", "cycle 1", "exit"]
    assert all(c["ok"] and c["cash_checked"] for c in report["reconcile"])
    # the journal explains every order the server holds and every fill it made
    with closing(sqlite3.connect(folder / "journal.sqlite")) as db:
        journaled = dict(db.execute("SELECT client_order_id, state FROM venue_orders"))
        fill_ids = {r[0] for r in db.execute("SELECT key FROM ledger WHERE kind = 'fill'")}
    assert journaled == {d["client_order_id"]: "placed" for _, d in server.portfolio.order_docs()}
    assert fill_ids == {d["fill_id"] for _, d in server.portfolio.fill_docs()}

    # the exchange's account is the report's: cash, positions, fills, fees
    assert report["start"]["cash"] == BALANCE / 100
    assert round(report["end"]["cash"] * 100) == server.portfolio.balance_cents
    held = {t: Decimal(p["contracts"]) * (1 if p["side"] == "yes" else -1)
            for t, p in report["end"]["positions"].items()}  # fmt: skip
    assert held == {t: n for t, n in server.portfolio.positions().items() if n}
    trades = pd.read_parquet(folder / "trades.parquet")
    assert len(trades) == report["fills"] and trades["count"].sum() == report["contracts"]
    assert round(trades["fee"].sum(), 2) == report["fees"]
    spent = (trades["cost"] + trades["fee"]).sum()
    assert round(report["start"]["cash"] - spent, 2) == report["end"]["cash"]
    placed = {d["client_order_id"] for _, d in server.portfolio.order_docs()}
    assert set(trades["order_id"]) <= placed
    logged = pd.read_parquet(folder / "orders.parquet")
    assert len(logged) == orders["decided"] and logged["note"].str.len().gt(0).all()

    # every decision, order and fill is logged at INFO
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("cycle 1 at ") and "signals" in m for m in info)
    assert sum(m.startswith("order BUY") and "edge" in m for m in info) >= orders["placed"]
    assert sum(m.startswith("fill ") for m in info) == report["fills"]
    assert sum(m.startswith("sent ") for m in info) == orders["placed"]
    assert "kalshi-bot paper" in out.out and "report:" in out.out

    # no part of the key, its id or a signature anywhere
    written = "".join(p.read_bytes().decode("latin-1") for p in folder.iterdir())
    body = pem.splitlines()[5]  # a line from the middle of the key
    for text in (caplog.text, out.out, out.err, written):
        assert KEY_ID not in text and body not in text and "BEGIN RSA" not in text
        assert "KALSHI-ACCESS" not in text.upper()


def test_a_dry_run_decides_and_logs_orders_and_sends_none(env, server, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    reports = tmp_path / "reports"
    # KXSIMB has a ladder and a bracket set open at NOW: something to decide on
    assert main(paper(server, reports, "--once", "--dry-run", "--series", "KXSIMB")) == 0
    report, _ = the_report(reports)
    assert server.stats.requests.get("create_order", 0) == 0
    assert server.portfolio.order_docs() == []
    assert report["dry_run"] and report["series"] == ["KXSIMB"]
    assert report["orders"]["sent"] == 0 and report["orders"]["dry_run_not_sent"] > 0
    assert report["end"]["cash"] == report["start"]["cash"] == BALANCE / 100
    dry = [r for r in caplog.records if r.getMessage().startswith("dry run, not sent")]
    assert len(dry) == report["orders"]["dry_run_not_sent"]
    assert all(r.levelno == logging.INFO and "KXSIMB" in r.getMessage() for r in dry)


def _seed(p: float, pattern: list[bool]) -> int:
    """A fault seed whose first draws hit (True) or miss (False) a fault of probability p."""
    for seed in range(100_000):
        rng = random.Random(seed)
        if all((rng.random() < p) == hit for hit in pattern):
            return seed
    raise AssertionError("no seed")


def test_a_create_order_answered_with_a_reset_is_retried_without_a_double_order(
    env, server, tmp_path
):
    # draws on /portfolio/orders: the start's resting-order check passes, the first POST is
    # reset (not processed), every later request passes
    seed = _seed(0.2, [False, True, *[False] * 12])
    server.set_faults(FaultConfig(reset=0.2, seed=seed, path_prefix="/portfolio/orders"))
    reports = tmp_path / "reports"
    assert main(paper(server, reports, "--once")) == 0
    report, _ = the_report(reports)
    assert server.stats.faults == {"reset": 1}
    placed = report["orders"]["placed"]
    assert placed > 0 and server.stats.requests["create_order"] == placed + 1  # one retry
    ids = [d["client_order_id"] for _, d in server.portfolio.order_docs()]
    assert len(ids) == len(set(ids)) == placed  # each order once
    assert all(c["ok"] for c in report["reconcile"])


def test_positions_on_the_account_stop_the_bot_unless_adopted_and_capital_sets_the_rest_aside(
    env, server, key, tmp_path, capsys
):
    with signed_client(server, key) as client:
        ticker = next(t for t, m in server.dataset.markets.items() if m.trading_at(server.now))
        kw = {"yes_price": Decimal("0.99"), "time_in_force": "immediate_or_cancel"}
        assert client.create_order(ticker, "yes", "buy", 3, **kw).fill_count == 3
    balance = server.portfolio.balance_cents

    refused = tmp_path / "refused"
    assert main(paper(server, refused, "--once")) == 2
    line = error_line(capsys)
    assert f"{ticker} 3 YES" in line and "--adopt-positions" in line
    report, _ = the_report(refused)  # what the session saw is reported
    assert report["cycles"] == 0 and report["stopped"].startswith("error: ")

    adopted = tmp_path / "adopted"
    assert main(paper(server, adopted, "--once", "--dry-run", "--adopt-positions",
                      "--capital", "2000")) == 0  # fmt: skip
    report, _ = the_report(adopted)
    start = report["start"]
    assert report["adopted_positions"] == [f"{ticker} 3 YES"]
    assert (
        start["positions"][ticker]["contracts"] == 3 and start["positions"][ticker]["side"] == "yes"
    )
    assert start["cash"] == 2000.0 and start["set_aside"] == (balance - 200_000) / 100
    assert all(c["ok"] for c in report["reconcile"])


def test_a_fill_the_bot_did_not_make_stops_trading_at_once_with_exit_code_1(
    env, server, key, tmp_path, monkeypatch, capsys
):
    import kalshi_lab.bot.session as session_module

    ticker = next(t for t, m in server.dataset.markets.items() if m.trading_at(server.now))
    real = session_module.predictions_now

    def a_stranger_trades_too(*args):  # someone else trades on the account during the cycle
        with signed_client(server, key) as other:
            other.create_order(ticker, "yes", "buy", 2, yes_price=Decimal("0.99"))
        return real(*args)

    monkeypatch.setattr(session_module, "predictions_now", a_stranger_trades_too)
    reports = tmp_path / "reports"
    # no --once: the loop would go on; the fill the bot did not make stops it at once, in the
    # cycle's catch-up, before it decides anything (the only order placed is the stranger's)
    assert main(paper(server, reports, "--interval", "0.01")) == 1
    line = error_line(capsys)
    assert "trading stopped in cycle 1: 1 fill(s) of orders the bot did not place" in line
    assert f"buy 2 YES {ticker}" in line and f"{ticker}: ours nothing, exchange 2 YES" in line
    assert server.stats.requests["create_order"] == 1
    report, _ = the_report(reports)
    assert report["cycles"] == 1 and report["stopped"] == "trading stopped in cycle 1"
    assert report["orders"]["decided"] == 0
    assert [(c["after"], c["ok"]) for c in report["reconcile"]] == [
        ("start", True),
        ("cycle 1", False),
        ("exit", False),  # still the stranger's position: named again at the exit
    ]


# --- refusals: one line, exit code 2 -----------------------------------------------------------


def test_live_without_confirm_live_refuses_before_any_request(
    env, server, capsys, tmp_path, monkeypatch
):
    assert main(["--mode", "live", "--base-url", server.base_url, "--once"]) == 2
    assert "--confirm-live" in error_line(capsys)
    # the installed command, with the production URL it would use
    assert COMMAND is not None, "kalshi-bot is not installed (pyproject [project.scripts])"
    proc = subprocess.run(
        [COMMAND, "--mode", "live", "--reports", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: kalshi-bot: --mode live trades real money on "
        "https://api.elections.kalshi.com/trade-api/v2: add --confirm-live to go ahead"
    ]
    # with --confirm-live but no key: refused too, naming the variable
    for name in ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name)
    assert main(["--mode", "live", "--confirm-live", "--base-url", server.base_url]) == 2
    assert "KALSHI_API_KEY_ID is not set" in error_line(capsys)
    assert server.stats.total_requests == 0
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_one_error_line_naming_what_is_wrong(
    env, server, tmp_path, capsys, monkeypatch
):
    with pytest.raises(SystemExit) as exit_:
        main(["--mode", "replay"])
    assert exit_.value.code == 2 and "argument --mode: invalid choice: 'replay'" in error_line(
        capsys
    )

    assert main(paper(server, tmp_path, "--models", str(tmp_path / "none"))) == 2
    assert f"{tmp_path / 'none' / 'live.joblib'} does not exist" in error_line(capsys)

    other = tmp_path / "params.yaml"
    params = yaml.safe_load(Path("params.yaml").read_text())
    other.write_text(yaml.safe_dump({**params, "features": {**params["features"], "n_lags": 5}}))
    assert main(paper(server, tmp_path, "--params", str(other))) == 2
    assert "model.json: the model was trained on another feature set" in error_line(capsys)
    assert server.stats.total_requests == 0

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/trade-api/v2"
    assert main(["--mode", "paper", "--base-url", url, "--max-retries", "0", "--once"]) == 2
    assert f"cannot reach {url} (--base-url): GET /trade-api/v2/exchange/status" in error_line(
        capsys
    )

    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH")
    assert main(paper(server, tmp_path, "--once")) == 2
    assert "KALSHI_PRIVATE_KEY_PATH nor KALSHI_PRIVATE_KEY is set" in error_line(capsys)
    assert not list(tmp_path.glob("*/report.json"))


# --- Ctrl-C and backtest -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_the_loop_cleanly_with_the_report_written(env, server, tmp_path, signum):
    class PressCtrlC(logging.Handler):
        """Sends the signal to this process once the second cycle is done (as a user would)."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("cycle 2 done"):
                os.kill(os.getpid(), signum)

    press = PressCtrlC()
    bot_log = logging.getLogger("kalshi_lab.bot.session")
    bot_log.addHandler(press)
    level = bot_log.level
    bot_log.setLevel(logging.INFO)
    previous = signal.getsignal(signal.SIGINT)
    reports = tmp_path / "reports"
    try:
        args = paper(server, reports, "--interval", "0.05", "--dry-run", "--series", "KXSIMD")
        assert main(args) == 0
    finally:
        bot_log.removeHandler(press)
        bot_log.setLevel(level)
    assert signal.getsignal(signal.SIGINT) is previous  # the bot's handlers are gone
    report, _ = the_report(reports)
    assert report["stopped"] == "interrupted" and report["cycles"] == 2
    assert [c["after"] for c in report["reconcile"]] == ["start", "cycle 1", "cycle 2", "exit"]


def test_backtest_mode_is_the_backtest_stage_s_run_with_the_capital(env, tmp_path, capsys):
    reports = tmp_path / "reports"
    assert main(["--mode", "backtest", "--capital", "2500", "--reports", str(reports)]) == 0
    report, folder = the_report(reports)
    params = load_params()
    expected = run_backtest(
        pd.read_parquet("data/predictions/predictions.parquet"),
        read_table("orderbook"),
        read_table("candles"),
        read_table("markets"),
        read_table("series"),
        params.strategy,
        params.risk,
        dataclasses.replace(params.backtest, initial_cash=2500.0),
        params.model.target,
    )
    assert report["mode"] == "backtest" and report["base_url"] is None
    assert report["summary"] == expected.summary and report["capital"] == 2500.0
    assert expected.summary["n_orders"] > 0
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "trades.parquet"), expected.fills)
    out = capsys.readouterr().out
    assert "kalshi-bot backtest:" in out and f"{expected.summary['final_equity']:,.2f}" in out


# --- unknown outcomes, restarts, kills ---------------------------------------------------------


def journal_of(folder: Path) -> dict[str, Any]:
    """What a session's journal holds: orders by state, fill ids, decisions."""
    with closing(sqlite3.connect(folder / "journal.sqlite")) as db:
        return {
            "orders": dict(db.execute("SELECT client_order_id, state FROM venue_orders")),
            "fills": {r[0] for r in db.execute("SELECT key FROM ledger WHERE kind = 'fill'")},
            "decided": [r[0] for r in db.execute("SELECT client_order_id FROM decisions")],
        }


def assert_the_report_is_the_server_s(report: dict[str, Any], folder: Path, srv) -> None:
    """Every order and fill of the server is the session's, and its end is the server's."""
    journal = journal_of(folder)
    orders = [d for _, d in srv.portfolio.order_docs()]
    ids = [d["client_order_id"] for d in orders]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    assert journal["orders"] == dict.fromkeys(ids, "placed")
    fills = [d for _, d in srv.portfolio.fill_docs()]
    assert journal["fills"] == {d["fill_id"] for d in fills}
    trades = pd.read_parquet(folder / "trades.parquet")
    assert len(trades) == report["fills"] == len(fills)
    assert trades["count"].sum() == sum(Decimal(d["count_fp"]) for d in fills)
    assert report["orders"]["placed"] == len(ids)
    assert round(report["end"]["cash"] * 100) == srv.portfolio.balance_cents
    held = {t: Decimal(p["contracts"]) * (1 if p["side"] == "yes" else -1)
            for t, p in report["end"]["positions"].items()}  # fmt: skip
    assert held == {t: n for t, n in srv.portfolio.positions().items() if n}


@pytest.fixture
def quick_retries(monkeypatch) -> None:
    """The bot's client retries after 10 ms, not half a second: the faults cost less time."""
    from kalshi_lab.bot import venue

    def make_client(base_url, signer, tier, timeout_s, max_retries):
        reads, writes = venue.TIERS[tier]
        return KalshiClient(
            base_url,
            signer=signer,
            timeout_s=timeout_s,
            max_retries=max_retries,
            reads_per_s=reads,
            writes_per_s=writes,
            concurrency=1,
            backoff_factor=0.01,
        )

    monkeypatch.setattr(venue, "make_client", make_client)


@pytest.mark.parametrize("seed", [7, 8, 11])
def test_unknown_outcomes_under_faults_never_double_order_and_the_report_is_the_server_s(
    env, server, tmp_path, seed, quick_retries, caplog
):
    """On /portfolio/orders, 40 % of the requests are processed and answered too late, 25 %
    get a 500; two retries. A POST lands, its answer times out, the retry gets 409 and the
    lookup that should resolve it fails; one lookup of its own fails too (``--lookups 1``): its
    outcome is unknown, its market blocked, and the exit brings it to its outcome. (Seeds whose
    first GET /portfolio/orders fails three times stop at the start, exit code 2: safe.)"""
    faults = FaultConfig(
        slow=0.4, server_error=0.25, slow_delay_s=0.3, seed=seed, path_prefix="/portfolio/orders"
    )
    server.set_faults(faults)
    reports = tmp_path / "reports"
    flags = ["--once", "--timeout", "0.2", "--max-retries", "2", "--lookups", "1"]
    flags += ["--lookup-wait", "0.05"]
    caplog.set_level(logging.WARNING, logger="kalshi_lab.execution.live")
    code = main(paper(server, reports, *flags))
    server.set_faults(FaultConfig())
    report, folder = the_report(reports)
    assert code == 0, report["reconcile"]
    assert server.stats.faults["slow"] > 0 and server.stats.statuses[409] > 0
    unknown = [r for r in caplog.records if "outcome unknown" in r.getMessage()]
    assert unknown, "no outcome was unknown: the seed no longer tests it"
    assert report["orders"]["unknown"] == 0
    assert_the_report_is_the_server_s(report, folder, server)
    assert report["orders"]["filled"] > 0 and report["fills"] > 0
    assert all(c["ok"] for c in report["reconcile"])


def test_a_restart_concludes_orders_sent_before_it_and_never_sends_them_again(
    env, server, tmp_path, quick_retries, caplog, monkeypatch
):
    """The first session dies after its cycle (its journal never closed) with orders whose
    outcome it never learned; the next start looks them up, books their fills in the first
    session's journal and report, carries its positions over, and sends none of its orders
    again (the server's clock stands still: the next cycle decides the very same orders)."""
    from kalshi_lab.bot.session import TradingSession

    reports = tmp_path / "reports"
    flags = ["--once", "--timeout", "0.2", "--max-retries", "2", "--lookups", "1"]
    faults = FaultConfig(
        slow=0.4, server_error=0.25, slow_delay_s=0.3, seed=7, path_prefix="/portfolio/orders"
    )
    server.set_faults(faults)
    caplog.set_level(logging.WARNING, logger="kalshi_lab.execution.live")
    with monkeypatch.context() as m:  # killed: nothing of the exit runs
        m.setattr(TradingSession, "close", lambda session: session.journal.release())
        assert main(paper(server, reports, *flags)) == 0
    server.set_faults(FaultConfig())
    (first,) = reports.iterdir()
    assert not (first / "report.json").exists()
    unresolved = [c for c, state in journal_of(first)["orders"].items() if state != "placed"]
    assert unresolved, "every outcome was known: the seed no longer tests a restart"
    placed_before = len(server.portfolio.order_docs())

    assert main(paper(server, reports, "--once")) == 0
    second = max(reports.iterdir())
    assert second != first
    # the first session: its orders concluded, its fills journaled, its report rebuilt
    earlier = json.loads((first / "report.json").read_text())
    assert earlier["stopped"].startswith("killed: the session ended without closing its journal")
    assert set(journal_of(first)["orders"].values()) == {"placed"}
    # nothing sent twice: the second session decided the same orders and sent none of them
    assert len(server.portfolio.order_docs()) == placed_before
    later = json.loads((second / "report.json").read_text())
    assert later["carried_from"] == first.name and later["orders"]["decided"] > 0
    assert later["orders"]["sent"] == 0  # the positions carried over are at the risk limits
    # between them, the two journals explain every order and fill of the server
    assert journal_of(first)["fills"] == {d["fill_id"] for _, d in server.portfolio.fill_docs()}
    ids = {d["client_order_id"] for _, d in server.portfolio.order_docs()}
    assert set(journal_of(first)["orders"]) == ids
    # and the second's end is the server's account, positions carried at their cost
    assert round(later["end"]["cash"] * 100) == server.portfolio.balance_cents
    held = {t: Decimal(p["contracts"]) * (1 if p["side"] == "yes" else -1)
            for t, p in later["end"]["positions"].items()}  # fmt: skip
    assert held == {t: n for t, n in server.portfolio.positions().items() if n}

    def basis(state):
        return {t: (p["side"], p["contracts"], p["cost"], p["fees"]) for t, p in state.items()}

    assert basis(later["start"]["positions"]) == basis(earlier["end"]["positions"])
    assert later["start"]["positions"]
    assert all(c["ok"] for c in later["reconcile"])


def wait_for_intent(reports: Path, proc: subprocess.Popen, deadline_s: float = 90.0) -> Path:
    """The session folder once its journal holds an order whose POST is in flight."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        for path in reports.glob("*/journal.sqlite"):
            try:
                with closing(sqlite3.connect(path, timeout=5)) as db:
                    row = db.execute("SELECT 1 FROM venue_orders WHERE state = 'intent'").fetchone()
            except sqlite3.OperationalError:  # the tables are not there yet
                continue
            if row is not None:
                return path.parent
        time.sleep(0.02)
    raise AssertionError("no order was sent in time")


def test_a_killed_bot_s_journal_explains_every_order_and_the_next_start_rebuilds_its_report(
    env, server, tmp_path
):
    """SIGKILL while a POST is in flight (every /portfolio/orders request is processed, then
    answered a second late): nothing is left outside the session's folder, and the next start
    learns the order's outcome, books its fills and writes the killed session's report."""
    reports, scratch = tmp_path / "reports", tmp_path / "tmp"
    scratch.mkdir()
    server.set_faults(FaultConfig(slow=1.0, slow_delay_s=1.0, path_prefix="/portfolio/orders"))
    assert COMMAND is not None
    args = paper(server, reports, "--interval", "0.05", "--timeout", "5")
    proc = subprocess.Popen(
        [COMMAND, *args],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        folder = wait_for_intent(reports, proc)
        # the intent is journaled before the POST: under load the POST may not have left yet;
        # kill once the server has it (processed, its answer held back a second)
        deadline = time.monotonic() + 30
        while server.stats.requests.get("create_order", 0) < 1:
            assert time.monotonic() < deadline, "the POST never reached the server"
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert list(scratch.iterdir()) == []  # its temporary files live in its folder
    assert not (folder / "report.json").exists()
    in_flight = [c for c, state in journal_of(folder)["orders"].items() if state == "intent"]
    assert len(in_flight) == 1
    server.set_faults(FaultConfig())

    assert main(paper(server, reports, "--once")) == 0
    killed = json.loads((folder / "report.json").read_text())
    assert killed["stopped"].startswith("killed: the session ended without closing its journal")
    first = journal_of(folder)
    assert first["orders"][in_flight[0]] == "placed"  # the POST had landed
    assert set(first["orders"].values()) == {"placed"}
    # the journals of the two sessions explain every order and every fill of the server, once
    second = journal_of(max(reports.iterdir()))
    ids = [d["client_order_id"] for _, d in server.portfolio.order_docs()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(first["orders"]) | set(second["orders"])
    assert not set(first["orders"]) & set(second["orders"])
    fills = {d["fill_id"] for _, d in server.portfolio.fill_docs()}
    assert fills == first["fills"] | second["fills"] and not first["fills"] & second["fills"]
    trades = pd.read_parquet(folder / "trades.parquet")
    assert len(trades) == killed["fills"] == len(first["fills"]) > 0
    assert set(trades["order_id"]) <= set(first["orders"])
    assert not list(reports.glob("*/.cycle-*"))


# --- a paper session on a moving clock, with faults ---------------------------------------


def session_on(
    srv: LocalKalshiServer,
    key: rsa.RSAPrivateKey,
    project: Path,
    reports: Path,
    ttl_hours: int,
    stream_url: str | None = None,
):
    """A TradingSession as ``kalshi-bot --mode paper`` builds it, orders resting ``ttl_hours``."""
    from kalshi_lab.bot.session import BotConfig, TradingSession
    from kalshi_lab.bot.signals import load_model
    from kalshi_lab.bot.venue import make_client

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["backtest"]["order_ttl_hours"] = ttl_hours
    path = reports.parent / "params_ttl.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)
    config = BotConfig(
        mode="paper",
        base_url=srv.base_url,
        series=tuple(SERIES),
        report_root=reports,
        lookup_attempts=2,
        lookup_backoff_s=0.05,
        stream_url=stream_url,
    )
    client = make_client(srv.base_url, KalshiSigner(KEY_ID, key), "prime", 0.5, 2)
    model = load_model(project / "models", params)
    return TradingSession(config, params, model, client, dt.datetime.now(dt.UTC)), client


def venue_positions(srv: LocalKalshiServer) -> dict[str, Decimal]:
    return {t: n for t, n in srv.portfolio.positions().items() if n}


def local_positions(account) -> dict[str, Decimal]:
    return {
        t: Decimal(p.contracts) * (1 if p.side == "yes" else -1)
        for t, p in account.positions.items()
        if p.contracts
    }


#: the order endpoints' faults of the moving-clock sessions: server errors, slow answers (some
#: past the client's timeout) and fills listed late
ORDER_FAULTS = dict(server_error=0.1, slow=0.1, slow_delay_s=0.6, late_fill=0.5,
                    late_fill_delay_s=0.3, path_prefix="/portfolio/orders")  # fmt: skip


def test_a_paper_session_on_a_moving_clock_with_faults_keeps_the_server_s_account(
    project, dataset, key, tmp_path, caplog
):
    """Three hours of the venue's time pass between cycles: orders rest (ttl 4 h) and fill as
    maker when a later book trades through them or are cancelled at their ttl, markets close
    and settle, fills are listed late and order POSTs fail or answer late. After every cycle
    the account is the server's on every market without an order working or untold; the
    bot is then killed between an order's send and the listing of its fill, the clock moves
    past settlements, and the next session cancels what rests, books the fills and the
    settlements the killed one never saw, sends no order twice and ends on the server's
    account."""
    faults = FaultConfig(**ORDER_FAULTS, seed=3)
    config = ServerConfig(
        rate_limit=False,
        now=NOW,
        public_key=key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=BALANCE,
        faults=faults,
    )
    reports = tmp_path / "reports"
    reports.mkdir()
    caplog.set_level(logging.INFO, logger="kalshi_lab")
    with LocalKalshiServer(dataset, config) as srv:
        first, client = session_on(srv, key, project, reports, ttl_hours=4)
        compared: list[int] = []
        with client:
            first.start()
            for _ in range(20):
                first.cycle()
                assert first.account is not None and first.exchange is not None
                assert first.trader is not None  # markets with orders working: in flux
                skip = first.trader.executor.working_tickers()
                ours = {t: n for t, n in local_positions(first.account).items() if t not in skip}
                theirs = {t: n for t, n in venue_positions(srv).items() if t not in skip}
                assert ours == theirs, f"cycle {first.cycles}"
                compared.append(len(ours))
                srv.advance(3 * 3600)
            # killed between a send and its fill's listing: the venue now lists every fill
            # late, and the bot dies as soon as one of them is not in its journal
            assert first.folder is not None
            srv.set_faults(dataclasses.replace(faults, late_fill=1.0, late_fill_delay_s=1.5))
            assert first.exchange is not None
            for _ in range(3):  # fewer than the listing lag the bot tolerates
                first.cycle()
                srv.advance(3 * 3600)
                unlisted = [v for v in first.exchange.orders.values() if v.lagging]
                if unlisted:
                    break
            assert first.trader is not None and first.journal is not None
            journaled = journal_of(first.folder)["fills"]
            resting = {o.client_order_id for o in first.trader.executor.working}
            first.journal.release()  # killed: nothing of the exit runs
        killed = first.folder
        assert not (killed / "report.json").exists()
        assert sum(compared) > 0 and unlisted
        sent_by_first = {d["client_order_id"] for _, d in srv.portfolio.order_docs()}

        srv.set_faults(FaultConfig())
        settled_by = int(pd.Timestamp("2025-01-18T12:00Z").timestamp())  # KXSIMC-25JAN18-*
        srv.advance(max(0, settled_by - srv.now))  # past the settlements of what it held
        time.sleep(1.5)  # the fills the venue lists late are listed now
        second, client = session_on(srv, key, project, reports, ttl_hours=4)
        with client:
            second.start()
            second.cycle()
            closed = second.close()
        assert closed is not None and closed.failure is None

        # the session saw what a live venue does: late listings, maker fills, ttl cancels,
        # settlements
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("late fill of ") for m in messages)
        ours = [d for _, d in srv.portfolio.fill_docs() if d["order_id"]]
        assert any(not d["is_taker"] for d in ours) and any(d["is_taker"] for d in ours)
        assert srv.stats.requests["cancel_order"] > 0
        orders = [d for _, d in srv.portfolio.order_docs()]
        assert any(d["status"] == "canceled" and d["fill_count_fp"] != "0.00" for d in orders)
        assert srv.portfolio.settlement_docs()

        # nothing sent twice: the second session's orders are new, the killed one's resting
        # orders were cancelled, and the fills made while it was dead are in its journal
        ids = [d["client_order_id"] for d in orders]
        assert len(ids) == len(set(ids))
        earlier, later = journal_of(killed), journal_of(closed.path.parent)
        assert set(earlier["orders"]) == sent_by_first and not sent_by_first & set(later["orders"])
        assert not any(d["status"] == "resting" for d in orders if d["client_order_id"] in resting)
        all_fills = {d["fill_id"] for _, d in srv.portfolio.fill_docs()}
        assert earlier["fills"] | later["fills"] == all_fills
        assert not earlier["fills"] & later["fills"]
        assert journaled < earlier["fills"]  # the fills it died without: booked
        with closing(sqlite3.connect(killed / "journal.sqlite")) as db:
            settled = db.execute("SELECT count(*) FROM ledger WHERE kind = 'settlement'")
            assert settled.fetchone()[0] > 0

        # and the end is the server's account
        report = closed.report
        assert round(report["end"]["cash"] * 100) == srv.portfolio.balance_cents
        held = {t: Decimal(p["contracts"]) * (1 if p["side"] == "yes" else -1)
                for t, p in report["end"]["positions"].items()}  # fmt: skip
        assert held == venue_positions(srv)
        assert all(c["ok"] for c in report["reconcile"])
        assert json.loads((killed / "report.json").read_text())["stopped"].startswith("killed")


def stale_books(feed, srv: LocalKalshiServer) -> dict[str, str]:
    """The markets the feed streams whose book it does not vouch for, or that differs from
    the book the server serves now, and how."""
    out = {}
    for ticker in feed.books.tickers:
        book, served = feed.book(ticker), rest_book(srv, ticker)
        if book is None:
            out[ticker] = "not vouched for"
        elif (book.yes, book.no) != (served.yes, served.no):
            out[ticker] = f"stream {book.yes} {book.no} != served {served.yes} {served.no}"
    return out


def settled_books(feed, srv: LocalKalshiServer) -> None:
    """Wait until the feed vouches for the book of every market it streams and each is the
    server's (the server's clock stands still meanwhile). A book seen wrong while vouched for
    may be put right by its deltas, or by a snapshot that a gap or a reconnect called for;
    never by a snapshot alone (the stream's quiet-time probe rewriting what its deltas had
    made wrong)."""
    stats = feed.stream.stats
    wrong: dict[str, tuple[int, int, int]] = {}  # snapshots, gaps, reconnects when seen wrong

    def settled() -> bool:
        stale = stale_books(feed, srv)
        for ticker, how in stale.items():
            if how != "not vouched for":
                wrong.setdefault(ticker, (feed.snapshots[ticker], stats.gaps, stats.reconnects))
        return not stale

    assert wait_until(settled, 15), stale_books(feed, srv)
    rewritten = [
        t for t, (n, gaps, reconnects) in wrong.items()
        if feed.snapshots[t] > n and (stats.gaps, stats.reconnects) == (gaps, reconnects)
    ]  # fmt: skip
    assert not rewritten, f"books put right only by a snapshot no gap asked for: {rewritten}"


@pytest.mark.slow
def test_a_paper_session_on_the_stream_keeps_the_server_s_books_and_books_each_fill_once(
    project, dataset, key, tmp_path, caplog
):
    """--stream-url on a moving clock, the stream dropping connections, skipping and
    repeating messages, REST failing, answering late and listing fills late: after every
    cycle (the venue's clock standing still), the feed vouches again for the book of every
    market it streams, each resnapshotted after the gaps and reconnects since the last look,
    and each is the book the server serves; every fill of the account is in the journal
    once, by its fill_id and its trade_id, some first told by the stream and some by a REST
    listing only; the session ends on the server's cash and positions.

    (It replaced a test of the stream's books alone, over 8 cycles, that it covers.)"""
    faults = FaultConfig(**ORDER_FAULTS, stream_drop=0.01, stream_gap=0.03, stream_duplicate=0.05,
                         seed=4)  # fmt: skip
    config = ServerConfig(rate_limit=False, now=NOW, public_key=key.public_key(), key_id=KEY_ID,
                          starting_balance_cents=BALANCE, faults=faults)  # fmt: skip
    reports = tmp_path / "reports"
    reports.mkdir()
    caplog.set_level(logging.INFO, logger="kalshi_lab")
    with LocalKalshiServer(dataset, config) as srv:
        session, client = session_on(srv, key, project, reports, 4, stream_url=srv.ws_url)
        with client:
            session.start()
            feed, exchange = session.feed, session.exchange
            assert feed is not None and exchange is not None
            looked: Counter[str] = Counter()
            checked = 0  # markets whose book was compared after a snapshot came again
            for cycle in range(CYCLES):
                if cycle:
                    srv.advance(3 * 3600)
                session.cycle()
                assert session.account is not None and session.trader is not None
                skip = session.trader.executor.working_tickers()
                ours = {t: n for t, n in local_positions(session.account).items() if t not in skip}
                theirs = {t: n for t, n in venue_positions(srv).items() if t not in skip}
                assert ours == theirs, f"cycle {session.cycles}"
                settled_books(feed, srv)
                checked += len(set(feed.snapshots - looked))  # resnapshotted since the last
                looked = Counter(feed.snapshots)
            closed = session.close()
    assert closed is not None and closed.failure is None
    stats = feed.stream.stats
    assert stats.reconnects > 0 and stats.gaps > 0 and stats.duplicates > 0
    assert stats.resnapshots > 0 and checked > len(feed.snapshots) and not feed.up
    reads = exchange.book_reads
    assert reads["stream"] > reads["rest"] > 0  # the first look at a market subscribes it

    # every fill the server booked, listed by now or not (a late-listed fault hides a fill
    # from the REST listing for a while; the stream tells it at once)
    venue_fills = [f.doc() for f in srv.portfolio.fills_from(0)]
    with closing(sqlite3.connect(closed.path.parent / "journal.sqlite")) as db:
        rows = db.execute("SELECT key, trade_id, source FROM ledger WHERE kind = 'fill'")
        journaled = rows.fetchall()
    assert len(journaled) == len(venue_fills) == sum(exchange.fills_first_seen.values())
    assert sorted(k for k, _, _ in journaled) == sorted(d["fill_id"] for d in venue_fills)
    assert sorted(t for _, t, _ in journaled) == sorted(d["trade_id"] for d in venue_fills)
    sources = Counter(s for _, _, s in journaled)
    assert sources == exchange.fills_first_seen and sources["stream"] > 0 and sources["rest"] > 0
    told = [r.getMessage() for r in caplog.records if "fills first told" in r.getMessage()]
    assert f"stream {sources['stream']}, by a REST listing {sources['rest']}" in told[-1]

    report = closed.report
    assert report["fills_first_told_by"] == sources
    assert round(report["end"]["cash"] * 100) == srv.portfolio.balance_cents
    held = {t: Decimal(p["contracts"]) * (1 if p["side"] == "yes" else -1)
            for t, p in report["end"]["positions"].items()}  # fmt: skip
    assert held == venue_positions(srv)
    assert all(c["ok"] for c in report["reconcile"])
