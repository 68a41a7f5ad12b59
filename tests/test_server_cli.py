"""``kalshi-lab serve``: the installed command starts, answers over HTTP with the options it was
given, stops on SIGTERM, and refuses what it must refuse with one clear line and exit code 2."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import signal
import subprocess
import sys
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.cli import main
from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.ws import KalshiStream
from server_support import KEY_ID, OPEN_A, KalshiAuth, write_handmade_raw

COMMAND = shutil.which("kalshi-lab", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_handmade_raw(tmp_path_factory.mktemp("raw"))


def test_the_installed_command_serves_until_sigterm(raw, tmp_path):
    assert COMMAND is not None, (
        "the kalshi-lab script is not installed (pyproject [project.scripts])"
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    args = [COMMAND, "--log-level", "WARNING", "serve", "--raw", str(raw), "--port", "0",
            "--cutoff", "2025-01-04T00:00:00Z", "--public-key", str(pem), "--key-id", KEY_ID,
            "--balance-cents", "1234", "--fault-502", "1", "--fault-path", "/series",
            "--now", "2025-01-05T00:00:00Z", "--clock-speed", "36000", "--max-connections", "4",
            "--read-timeout", "5", "--fault-late-fill", "1", "--late-fill-delay", "0.5",
            "--fault-stream-duplicate", "1"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/trade-api/v2)$", line.strip())
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = match.group(1)
        stream_line = proc.stdout.readline().strip()
        ws = re.search(r"^streaming at (ws://127\.0\.0\.1:\d+/trade-api/ws/v2)$", stream_line)
        assert ws, stream_line
        # the stream: signed like the portfolio endpoints, every message twice (the fault)
        stream = KalshiStream(ws.group(1), channels=["orderbook_delta"],
                              market_tickers=[OPEN_A], auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        first = next(iter(stream))
        stream.close()
        assert first["type"] == "orderbook_snapshot" and first["msg"]["market_ticker"] == OPEN_A
        cutoff = requests.get(base + "/historical/cutoff", timeout=5).json()
        assert cutoff["market_settled_ts"] == "2025-01-04T00:00:00Z"
        assert len(requests.get(base + "/markets", timeout=5).json()["markets"]) == 3
        assert requests.get(base + "/series", timeout=5).status_code == 502  # --fault-path
        session = requests.Session()
        session.auth = KalshiAuth(KalshiSigner(KEY_ID, key))
        assert session.get(base + "/portfolio/balance", timeout=5).json()["balance"] == 1234
        # --now and --clock-speed: the clock started on Jan 5 and runs 10 hours a second
        date = parsedate_to_datetime(
            requests.get(base + "/exchange/status", timeout=5).headers["Date"]
        )
        assert (
            dt.datetime(2025, 1, 5, tzinfo=dt.UTC) < date < dt.datetime(2025, 1, 8, tzinfo=dt.UTC)
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0"], ["host '0.0.0.0' refused", "loopback"]),
        (["--host", "192.168.1.10"], ["refused", "loopback"]),
        (["--key-id", "abc"], ["--public-key and --key-id"]),
        (
            ["--public-key", "/nonexistent/key.pem", "--key-id", "abc"],
            ["/nonexistent/key.pem", "cannot be read"],
        ),
        (["--fault-500", "0.7", "--fault-reset", "0.7"], ["add up to at most 1"]),
        (["--max-connections", "0"], ["max_connections must be >= 1"]),
        (["--ws-port", "70000"], ["ws_port must be 0..65535"]),
        (
            ["--fault-stream-gap", "0.7", "--fault-stream-drop", "0.7"],
            ["stream fault probabilities must add up to at most 1"],
        ),
    ],
)
def test_refusals_are_one_line_and_exit_code_2(raw, capsys, args, words):
    assert main(["serve", "--raw", str(raw), "--port", "0", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: serve: ") and "\n" not in err
    for word in words:
        assert word in err, err


def test_a_missing_raw_directory_is_refused(tmp_path, capsys):
    assert main(["serve", "--raw", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--fault-slow", "1.5"], "probability"),
        (["--fault-late-fill", "2"], "probability"),
        (["--fault-stream-duplicate", "1.5"], "probability"),
        (["--clock-speed", "-1"], ">= 0"),
        (["--read-timeout", "0"], "> 0"),
    ],
)
def test_bad_option_values_are_usage_errors(raw, capsys, args, word):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--raw", str(raw), *args])
    assert exc.value.code == 2
    assert word in capsys.readouterr().err
