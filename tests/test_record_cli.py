"""``kalshi-lab record``: the open markets listed through the REST client (against the local
server), a stream opened on them, every message recorded, errors as one line.

The stream here is a stand-in yielding messages shaped as Kalshi's AsyncAPI spec defines them
(tests/book_messages.py); the end-to-end test against the local server's own WebSocket stream
comes with the WebSocket client (kalshi_lab.client.ws).
"""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import book_messages
from kalshi_lab import cli
from kalshi_lab.client import KalshiClient
from kalshi_lab.data.stream_store import iter_stream, read_segments, segment_files, stream_dir
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw

NOW = dt.datetime(2025, 1, 12, 7, 30, tzinfo=dt.UTC)  # some KXSIMC markets are open, some not


class FakeStream:
    """What KalshiStream offers the recorder: iteration over data messages, and close()."""

    def __init__(self, url: str, tickers: list[str]) -> None:
        self.url, self.tickers, self.closed = url, tickers, False

    def __iter__(self):
        for message in book_messages.stream(self.tickers, limit=50):
            if self.closed:
                return
            yield message

    def close(self) -> None:
        self.closed = True


class EndlessStream(FakeStream):
    """A stream that goes on until closed, a message a millisecond."""

    def __iter__(self):
        for message in book_messages.stream(self.tickers):
            if self.closed:
                return
            time.sleep(0.001)
            yield message


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    raw = write_simulated_raw(tmp_path_factory.mktemp("served") / "raw")
    with LocalKalshiServer(raw, ServerConfig(rate_limit=False, now=NOW)) as srv:
        yield srv


def markets_of(server, series: str) -> dict[str, str]:
    with KalshiClient(server.base_url) as client:
        return {m.ticker: m.status for m in client.get_markets(series_ticker=series)}


def test_records_the_open_markets_of_the_series(server, tmp_path, monkeypatch, capsys):
    opened: list[FakeStream] = []

    def fake(url: str, tickers: list[str]) -> FakeStream:
        opened.append(FakeStream(url, tickers))
        return opened[-1]

    monkeypatch.setattr(cli, "open_stream", fake)
    argv = ["record", "--series", "KXSIMC", "--base-url", server.base_url, "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    (stream,) = opened
    markets = markets_of(server, "KXSIMC")
    open_now = [t for t, status in markets.items() if status == "active"]
    assert 0 < len(open_now) < len(markets)
    assert sorted(stream.tickers) == sorted(open_now)
    assert stream.url == server.base_url.replace("http://", "ws://").replace(
        "/trade-api/v2", "/trade-api/ws/v2"
    )
    assert stream.closed
    given = list(book_messages.stream(stream.tickers, limit=50))
    assert read_segments(stream_dir(tmp_path)) == {"segment-000001.jsonl.gz": len(given)}
    records = [r for *_, r in iter_stream(tmp_path)]
    assert [r["response"] for r in records] == given
    assert records[0]["params"] == {
        "channels": ["orderbook_delta", "trade"],
        "series": ["KXSIMC"],
        "tickers": None,
    }
    assert f"recorded {len(given)} messages into " in capsys.readouterr().out
    # --tickers: only those (of the open markets)
    argv += ["--tickers", open_now[-1]]
    assert cli.main(argv) == 0
    assert opened[-1].tickers == [open_now[-1]]
    assert list(read_segments(stream_dir(tmp_path))) == [
        "segment-000001.jsonl.gz",
        "segment-000002.jsonl.gz",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--series", "KXTEST", "--tickers", "KXTEST-NOPE"],
            "--tickers: not open markets of KXTEST: KXTEST-NOPE",
        ),
        (["--series", "KXNONE"], "--series: no open markets in KXNONE"),
    ],
)
def test_bad_markets_are_one_error_line_and_nothing_is_recorded(
    server, tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.setattr(cli, "open_stream", lambda *a: pytest.fail("no stream for bad input"))
    argv = ["record", *args, "--base-url", server.base_url, "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: record: {message}\n"
    assert not stream_dir(tmp_path).exists()


def test_the_duration_option_reads_units():
    assert [cli._duration(t) for t in ("90", "90s", "30m", "8h", "1.5d")] == [
        90,
        90,
        1800,
        28800,
        129600,
    ]
    with pytest.raises(Exception, match="not a duration"):
        cli._duration("soon")


SIGTERMED = """
import sys
sys.path.insert(0, {tests!r})
from kalshi_lab import cli
from test_record_cli import EndlessStream

cli.open_markets = lambda *a: ["KXSIMC-A", "KXSIMC-B"]
cli.open_stream = EndlessStream
sys.exit(cli.main(["record", "--series", "KXSIMC", "--out", {out!r}]))
"""


def test_sigterm_stops_the_recording_with_its_segment_closed(tmp_path):
    code = SIGTERMED.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("recording 2 markets from wss://")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    (records,) = read_segments(stream_dir(tmp_path)).values()
    assert f"recorded {records} messages into " in out and records > 10


SERVER_GONE = """
import sys
from kalshi_lab import cli

cli.open_markets = lambda *a: ["KXSIMC-A"]
sys.exit(cli.main(["record", "--series", "KXSIMC", "--ws-url", {url!r}, "--out", {out!r}]))
"""


def test_sigterm_stops_a_recorder_whose_server_is_gone_at_once(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on: every connect is refused
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/trade-api/ws/v2"
    code = SERVER_GONE.format(url=url, out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith(f"recording 1 markets from {url}")
        time.sleep(1.0)  # refused, and waiting (websockets' backoff: up to 90 s) to try again
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 2.0
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "recorded 0 messages into " in out
    # the session's segment was closed: without records it is removed, none is left open
    assert segment_files(stream_dir(tmp_path)) == [] and read_segments(stream_dir(tmp_path)) == {}


def test_duration_stops_the_recording(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "open_markets", lambda *a: ["KXSIMC-A"])
    monkeypatch.setattr(cli, "open_stream", EndlessStream)
    started = time.monotonic()
    assert (
        cli.main(["record", "--series", "KXSIMC", "--out", str(tmp_path), "--duration", "1"]) == 0
    )
    assert 1 <= time.monotonic() - started < 10
    assert list(read_segments(stream_dir(tmp_path))) == ["segment-000001.jsonl.gz"]
