"""The recorder: segments closed and counted on any exit, salvaged after a kill, moved out of
an old raw directory; killed mid-write with SIGKILL and restarted, the rebuilt books stay
consistent."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

import book_messages
from book_replay import replay
from kalshi_lab.data.book_rebuild import read_stream, rebuild
from kalshi_lab.data.stream_store import (
    SEGMENTS_MANIFEST,
    SegmentWriter,
    iter_stream,
    move_recordings,
    open_segments,
    read_segments,
    salvage,
    stream_dir,
)
from kalshi_lab.errors import DataError
from kalshi_lab.record.recorder import record

TESTS = Path(__file__).parent
PARAMS = {"channels": ["orderbook_delta", "trade"], "market_tickers": ["A"]}


def test_a_session_is_one_closed_counted_segment_of_envelopes(tmp_path: Path) -> None:
    messages = [*book_messages.stream(book_messages.tickers(2), limit=40)]
    messages.insert(3, {"type": "subscribed", "id": 1, "msg": {"channel": "trade", "sid": 2}})
    t0 = dt.datetime(2026, 12, 7, 14, 0, 0, 123456, tzinfo=dt.UTC)
    stats = record(messages, tmp_path, PARAMS, clock=lambda: t0)
    assert stats.segment == "segment-000001.jsonl.gz"
    assert stats.skipped == {"subscribed": 1}
    recorded = len(messages) - 1
    assert sum(stats.recorded.values()) == recorded
    assert read_segments(stream_dir(tmp_path)) == {stats.segment: recorded}
    records = [r for *_, r in iter_stream(tmp_path)]
    assert [r["response"] for r in records] == [m for m in messages if m["type"] != "subscribed"]
    assert records[0] | {"response": None} == {
        "method": "WS",
        "path": "/trade-api/ws/v2",
        "params": PARAMS,
        "received_at": "2026-12-07T14:00:00.123456Z",
        "response": None,
    }
    # the next session opens the next segment
    assert record(messages[:5], tmp_path, PARAMS).segment == "segment-000002.jsonl.gz"


def test_an_interrupted_session_still_closes_its_segment(tmp_path: Path) -> None:
    def interrupted():
        yield from book_messages.stream(book_messages.tickers(3), limit=10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record(interrupted(), tmp_path, PARAMS)
    given = len(list(book_messages.stream(book_messages.tickers(3), limit=10)))
    assert read_segments(stream_dir(tmp_path)) == {"segment-000001.jsonl.gz": given}
    assert open_segments(tmp_path) == []


def test_salvage_keeps_every_flushed_record_of_a_file_cut_anywhere(tmp_path: Path) -> None:
    messages = list(book_messages.stream(book_messages.tickers(4), limit=300))
    writer = SegmentWriter(stream_dir(tmp_path / "whole"), PARAMS)
    flushed_at = []  # (file size, records) after each flush
    for k, message in enumerate(messages, start=1):
        writer.write(message, dt.datetime.now(dt.UTC))
        if k % 50 == 0:
            writer.flush()
            flushed_at.append((writer.path.stat().st_size, k))
    data = writer.path.read_bytes()
    writer.close()
    for cut in range(0, len(data), 97):
        raw = tmp_path / f"cut{cut}"
        directory = stream_dir(raw)
        directory.mkdir(parents=True)
        (directory / "segment-000001.jsonl.gz").write_bytes(data[:cut])
        kept = {s.name: s.records for s in salvage(directory)}
        at_least = max([k for size, k in flushed_at if size <= cut], default=0)
        n = kept["segment-000001.jsonl.gz"]
        assert n >= at_least
        if n:
            assert read_segments(directory) == kept
            assert [r["response"] for *_, r in iter_stream(raw)] == messages[:n]
        else:
            assert not (directory / "segment-000001.jsonl.gz").exists()


def test_a_segment_changed_after_closing_is_an_error_naming_it(tmp_path: Path) -> None:
    record(book_messages.stream(book_messages.tickers(2), limit=10), tmp_path, PARAMS)
    path = stream_dir(tmp_path) / "segment-000001.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[:-1]), mtime=0))
    n = len(lines)
    with pytest.raises(DataError, match=rf"000001.jsonl.gz: {n - 1} records, but .*counts {n}:"):
        list(iter_stream(tmp_path))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-30], r":\d+: record: unreadable gzip data"),  # cut after closing
        (lambda data: gzip.compress(gzip.decompress(data) + b"[1]\n"), ":11: record: not a JSON"),
    ],
    ids=["truncated", "not-an-envelope"],
)
def test_a_damaged_segment_names_its_file_and_line(tmp_path: Path, damage, message) -> None:
    record(book_messages.stream(book_messages.tickers(2), limit=10), tmp_path, PARAMS)
    path = stream_dir(tmp_path) / "segment-000001.jsonl.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=r"segment-000001\.jsonl\.gz" + message):
        list(iter_stream(tmp_path))


def test_recordings_move_whole_out_of_an_old_raw_directory(tmp_path: Path) -> None:
    old, new = tmp_path / "raw", tmp_path / "recorded"
    record(book_messages.stream(book_messages.tickers(2), limit=10), old, PARAMS)
    (stream_dir(old) / "segment-000002.jsonl.gz").write_bytes(b"")  # open: a killed recorder
    before = [r for *_, r in iter_stream(old)]
    assert move_recordings(old, new) == 2
    assert not stream_dir(old).exists()
    assert sorted(p.name for p in stream_dir(new).iterdir()) == [
        ".lock",
        "segment-000001.jsonl.gz",
        "segment-000002.jsonl.gz",
        SEGMENTS_MANIFEST,
    ]
    assert [r for *_, r in iter_stream(new)] == before
    assert open_segments(new) == ["segment-000002.jsonl.gz"]  # the next recorder salvages it
    assert move_recordings(old, new) == 0  # nothing left: a no-op


def test_recordings_are_not_moved_onto_other_recordings(tmp_path: Path) -> None:
    old, new = tmp_path / "raw", tmp_path / "recorded"
    for directory in (old, new):
        record(book_messages.stream(book_messages.tickers(2), limit=10), directory, PARAMS)
    with pytest.raises(DataError, match=r"raw/orderbook_deltas: 1 recorded segments, but .*clash"):
        move_recordings(old, new)
    assert read_segments(stream_dir(old)) and read_segments(stream_dir(new))  # both untouched


RECORDER = """
import sys, itertools
sys.path.insert(0, {tests!r})
import book_messages
from kalshi_lab.record.recorder import record
markets = book_messages.tickers(20)
messages = book_messages.stream(markets, seed={seed}, limit={limit})
print("recording", flush=True)
record(messages, {raw!r}, {{"channels": ["orderbook_delta", "trade"]}}, flush_every_s=0.05)
"""


def _recorder(raw: Path, seed: int, limit: int | None) -> subprocess.Popen:
    code = RECORDER.format(tests=str(TESTS), seed=seed, limit=limit, raw=str(raw))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "recording\n"
    return proc


def test_killed_mid_write_and_restarted_the_books_stay_consistent(tmp_path: Path) -> None:
    killed = _recorder(tmp_path, seed=1, limit=None)
    time.sleep(1.5)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert open_segments(tmp_path) == ["segment-000001.jsonl.gz"]  # never closed
    restarted = _recorder(tmp_path, seed=2, limit=3000)
    assert restarted.wait(timeout=60) == 0
    segments = read_segments(stream_dir(tmp_path))
    assert list(segments) == ["segment-000001.jsonl.gz", "segment-000002.jsonl.gz"]
    assert open_segments(tmp_path) == []
    # the salvaged segment is exactly a prefix of what the killed recorder was given
    first = [r["response"] for n, _, _, r in iter_stream(tmp_path) if n == 1]
    assert len(first) == segments["segment-000001.jsonl.gz"] > 100
    markets = book_messages.tickers(20)
    assert first == list(itertools.islice(book_messages.stream(markets, seed=1), len(first)))
    stream = read_stream(tmp_path)
    interval = 10_000_000  # 10 ms: many samples within the short sessions
    built = rebuild(stream, interval)
    assert (built.duplicates, built.gaps, built.before_snapshot, built.negative) == (0, 0, 0, 0)
    assert built.overlapping == 0
    rows = built.rows.to_pandas()
    pd.testing.assert_frame_equal(rows, replay(stream, interval))
    assert not rows.duplicated(["ticker", "snapshot_ts", "side", "price"]).any()
    assert set(rows["segment"]) == {1, 2}


def test_envelopes_are_compact_json_lines(tmp_path: Path) -> None:
    record(book_messages.stream(book_messages.tickers(1), limit=3), tmp_path, PARAMS)
    path = stream_dir(tmp_path) / "segment-000001.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert all(orjson.dumps(orjson.loads(line)) == line for line in lines)
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
