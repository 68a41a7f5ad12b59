"""``kalshi-bot`` refusals and endings: one ``error:`` line, the right exit code, nothing left behind.

The bot runs in-process through ``main`` against the local Kalshi server, with the project, key
and server fixtures of tests/test_bot_cli.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import uuid
from pathlib import Path

import pytest

import test_bot_cli
from kalshi_lab.bot import cli
from kalshi_lab.bot.cli import FLAG_MODES, main
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from test_bot_cli import BALANCE, KEY_ID, SERIES, error_line, paper, the_report

# the fixtures of tests/test_bot_cli.py: its project, key, local server and environment
key, project, dataset, server, env = (
    test_bot_cli.key,
    test_bot_cli.project,
    test_bot_cli.dataset,
    test_bot_cli.server,
    test_bot_cli.env,
)


def nothing_written(reports: Path) -> bool:
    return not reports.exists() or not any(reports.iterdir())


# --- series and key: checked before the session makes its folder ------------------------------


def test_an_unknown_series_is_one_error_line_and_leaves_no_report(env, server, tmp_path, capsys):
    reports = tmp_path / "reports"
    args = paper(server, reports, "--once", "--series", SERIES[0], "--series", "BOGUS")
    assert main(args) == 2
    line = error_line(capsys)
    assert f"series BOGUS does not exist on {server.base_url}" in line, line
    assert "--series" in line
    assert nothing_written(reports)
    assert server.stats.requests.get("create_order", 0) == 0


def test_a_series_without_an_open_market_is_only_a_note(env, dataset, key, tmp_path, caplog):
    """Every market of the dataset closed at the server's clock: the series exist, the bot runs
    its cycle, decides nothing, and says why."""
    config = ServerConfig(
        rate_limit=False,
        now=dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
        public_key=key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=BALANCE,
    )
    caplog.set_level(logging.INFO)
    reports = tmp_path / "reports"
    with LocalKalshiServer(dataset, config) as srv:
        assert main(paper(srv, reports, "--once", "--series", SERIES[1])) == 0
    assert f"no market of {SERIES[1]} is open" in caplog.text
    report, _ = the_report(reports)
    assert report["cycles"] == 1 and report["orders"]["decided"] == 0


def test_a_key_the_exchange_refuses_is_one_error_line_and_leaves_no_report(
    env, server, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("KALSHI_API_KEY_ID", str(uuid.uuid4()))  # not the server's key
    reports = tmp_path / "reports"
    assert main(paper(server, reports, "--once")) == 2
    line = error_line(capsys)
    assert f"{server.base_url} refused the API key" in line and "HTTP 401" in line, line
    assert "KALSHI_API_KEY_ID" in line
    assert nothing_written(reports)


# --- every flag is used by the mode or refused -------------------------------------------------


def test_every_option_says_which_modes_use_it():
    options = {a.dest for a in cli.build_parser()._actions if a.option_strings}
    assert options - {"help", "mode"} == set(FLAG_MODES)


@pytest.mark.parametrize(
    ("mode", "flag"),
    [
        ("backtest", ["--models", "models"]),
        ("backtest", ["--series", "KXSIMA"]),
        ("backtest", ["--once"]),
        ("backtest", ["--interval", "300"]),  # the default value, still given
        ("backtest", ["--base-url", "http://127.0.0.1:1/trade-api/v2"]),
        ("backtest", ["--dry-run"]),
        ("paper", ["--confirm-live"]),
    ],
    ids=lambda v: v if isinstance(v, str) else v[0],
)
def test_a_flag_the_mode_does_not_use_is_refused_naming_both(env, tmp_path, capsys, mode, flag):
    reports = tmp_path / "reports"
    assert main(["--mode", mode, "--reports", str(reports), *flag]) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: kalshi-bot: {flag[0]} is not used by --mode {mode} "), line
    assert nothing_written(reports)


# --- an unreachable exchange: what the network said, told apart -------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    for s in accepted:
        s.close()
    listener.close()


def test_refused_unknown_host_and_timeout_are_told_apart(env, tmp_path, capsys, silent_port):
    reports = tmp_path / "reports"
    lines = {}
    for what, host in (
        ("refused", f"127.0.0.1:{free_port()}"),
        ("dns", "kalshi-bot-test.invalid"),
        ("timeout", f"127.0.0.1:{silent_port}"),
    ):
        url = f"http://{host}/trade-api/v2"
        args = ["--mode", "paper", "--base-url", url, "--reports", str(reports), "--once"]
        assert main([*args, "--max-retries", "0", "--timeout", "0.5"]) == 2
        lines[what] = error_line(capsys)
        assert lines[what].startswith(f"error: kalshi-bot: cannot reach {url} (--base-url): ")
    assert "refused the connection" in lines["refused"]
    assert "is the server started" in lines["refused"]
    assert "not found" in lines["dns"] and "DNS" in lines["dns"]
    assert "sent no answer within 0.5 s (timed out" in lines["timeout"]
    for what, line in lines.items():  # each says its own cause only
        others = {"refused": "refused", "dns": "not found", "timeout": "timed out"}
        assert [o for o, word in others.items() if word in line] == [what], line
    assert nothing_written(reports)


# --- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_in_a_cycle_concludes_the_session_and_exits_130(
    env, server, tmp_path, capsys, monkeypatch
):
    """A KeyboardInterrupt (the second Ctrl-C) in the middle of cycle 2: the session is
    concluded and reported as for any exit, then one line and exit code 130."""
    from kalshi_lab.bot import session

    real = session.predictions_now
    calls = []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "predictions_now", interrupted_on_the_second)
    reports = tmp_path / "reports"
    args = paper(server, reports, "--interval", "0.05", "--dry-run", "--series", SERIES[3])
    assert main(args) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["kalshi-bot: interrupted"]
    assert "Traceback" not in captured.err
    report, _ = the_report(reports)  # concluded: the exit's reconciliation, the report
    assert report["stopped"] == "aborted (Ctrl-C twice)" and report["cycles"] == 2
    assert [c["after"] for c in report["reconcile"]] == ["start", "cycle 1", "exit"]
    assert "kalshi-bot paper (dry run) at " in captured.out  # the summary, as after any exit


def test_ctrl_c_in_backtest_mode_exits_130_without_a_traceback_or_a_report(
    env, tmp_path, capsys, monkeypatch
):
    from kalshi_lab.bot import session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "backtest_pipeline", interrupted)
    reports = tmp_path / "reports"
    assert main(["--mode", "backtest", "--reports", str(reports)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["kalshi-bot: interrupted"]
    assert nothing_written(reports)


def test_help_is_for_users(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "kalshi-bot --mode paper --series" in text  # an example
    for markup in ("``", ":class:", ":mod:", "run(args)"):
        assert markup not in text
