"""Recordings are the parquet stage's input in data/recorded, apart from the fetch's output.

The parquet stage rebuilds books from the closed segments there only (one still being written
is left out and counted, so that a result never depends on when the stage ran); recordings
an older version left in data/raw/orderbook_deltas stop it with one error line, and the fetch,
which replaces data/raw whole, moves them to data/recorded first.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest

from kalshi_lab import paths
from kalshi_lab.data.raw_store import raw_partitions
from kalshi_lab.data.stream_store import SegmentWriter, iter_stream, stream_dir
from kalshi_lab.data.tables import read_table
from kalshi_lab.stages import fetch
from kalshi_lab.stages.runner import run_stage
from stage_support import write_composed_params
from test_parse import T0, TICKER
from test_raw_inputs import run_parquet, write_raw

PARAMS = {"channels": ["orderbook_delta"]}


def record_session(recorded: Path, start: dt.datetime, yes_count: str) -> SegmentWriter:
    """A recording session of TICKER (Kalshi AsyncAPI, channel orderbook_delta): a snapshot of
    one YES level at ``start``, then a delta adding 2 contracts to it two hours later."""
    writer = SegmentWriter(stream_dir(recorded), PARAMS)
    snapshot = {"market_ticker": TICKER, "yes_dollars_fp": [["0.4000", yes_count]]}
    writer.write({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": snapshot}, start)
    later = start + dt.timedelta(hours=2)
    delta = {
        "market_ticker": TICKER,
        "price_dollars": "0.4000",
        "delta_fp": "2.00",
        "side": "yes",
        "ts_ms": int(later.timestamp() * 1000),
    }
    writer.write({"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": delta}, later)
    return writer


def test_books_are_rebuilt_from_closed_recordings_and_open_ones_are_counted_out(
    tmp_path, monkeypatch, capsys, caplog
):
    write_raw(tmp_path / paths.RAW_DIR)
    recorded = tmp_path / paths.RECORDED_DIR
    start = T0 + dt.timedelta(hours=10, minutes=30)
    record_session(recorded, start, "10.00").close()
    # a second session still being written (or killed): flushed, but not closed
    still_open = record_session(recorded, start + dt.timedelta(days=1), "99.00")
    still_open.flush()
    with caplog.at_level(logging.INFO):
        code, err = run_parquet(tmp_path, monkeypatch, capsys)
    assert code == 0, err
    book = read_table("orderbook", tmp_path / paths.PARQUET_DIR)
    rebuilt = book[book["source"] == "recorded"]
    # sampled hourly from the snapshot to the last message: 11:00 and 12:00 (before the delta
    # at 12:30), nothing of the open session's day
    assert rebuilt[["snapshot_ts", "side", "price", "count"]].values.tolist() == [
        [pd.Timestamp(T0 + dt.timedelta(hours=h)), "yes", 0.4, 10.0] for h in (11, 12)
    ]
    assert "1 segments not closed, left out: segment-000002.jsonl.gz" in caplog.text
    assert "in 1 closed segments; left out: 1 open segments" in caplog.text
    still_open.close()


def test_recordings_left_in_the_fetch_s_output_stop_the_parquet_stage(
    tmp_path, monkeypatch, capsys
):
    raw = tmp_path / paths.RAW_DIR
    write_raw(raw)
    record_session(raw, T0, "10.00").close()  # where an older version recorded
    code, err = run_parquet(tmp_path, monkeypatch, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: parquet: data/raw/orderbook_deltas: 1 recorded segments in the fetch's output, "
        "which is no place for them (the fetch replaces it): move them with "
        "`mv data/raw/orderbook_deltas data/recorded/` (the fetch stage does it when it runs)"
    ]
    assert not (tmp_path / paths.PARQUET_DIR).exists()


def test_the_fetch_moves_recordings_out_of_the_directory_it_replaces(tmp_path, monkeypatch, caplog):
    write_composed_params(
        tmp_path,
        [
            "data.start=2025-01-01",
            "data.end=2025-01-20",
            "data.synthetic.n_markets=10",
            "data.synthetic.min_duration_days=4",
            "data.synthetic.max_duration_days=8",
        ],
    )
    old = tmp_path / paths.RAW_DIR
    record_session(old, T0, "10.00").close()
    before = [r for *_, r in iter_stream(old)]
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        run_stage("fetch", fetch.main, [])
    assert not stream_dir(old).exists() and raw_partitions(old)  # a complete raw directory
    assert [r for *_, r in iter_stream(tmp_path / paths.RECORDED_DIR)] == before
    assert (
        "moved the 1 recorded order-book segments of data/raw/orderbook_deltas to "
        "data/recorded/orderbook_deltas" in caplog.text
    )


@pytest.mark.parametrize("recorded_dir", ["absent", "empty"])
def test_no_recordings_is_said_not_an_error(tmp_path, monkeypatch, capsys, caplog, recorded_dir):
    """A fresh clone: data/recorded holds only what git keeps, or nothing at all."""
    write_raw(tmp_path / paths.RAW_DIR)
    if recorded_dir == "empty":
        (tmp_path / paths.RECORDED_DIR).mkdir(parents=True)
        (tmp_path / paths.RECORDED_DIR / "README.md").write_text("kept in git\n")
    with caplog.at_level(logging.INFO):
        code, err = run_parquet(tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert "data/recorded/orderbook_deltas: no recorded order books" in caplog.text


def test_a_recorded_book_at_a_fetched_snapshot_s_time_gives_way_to_it(
    tmp_path, monkeypatch, capsys, caplog
):
    """The fetch's snapshot of TICKER is at T0, on the hour, where the recording is sampled
    too: the table holds the fetched levels once at T0 (the quotes would sum two books
    under one key, doubling the depth), and the recorded books of other hours."""
    write_raw(tmp_path / paths.RAW_DIR)
    recorded = tmp_path / paths.RECORDED_DIR
    record_session(recorded, T0 - dt.timedelta(minutes=30), "10.00").close()
    with caplog.at_level(logging.INFO):
        code, err = run_parquet(tmp_path, monkeypatch, capsys)
    assert code == 0, err
    book = read_table("orderbook", tmp_path / paths.PARQUET_DIR)
    at_t0 = book[book["snapshot_ts"] == pd.Timestamp(T0)]
    assert set(at_t0["source"]) == {"snapshot"}
    assert sorted(at_t0[["side", "price", "count"]].values.tolist()) == [
        ["no", 0.57, 7.0], ["yes", 0.4, 10.0], ["yes", 0.41, 3.0]
    ]  # fmt: skip
    rebuilt = book[book["source"] == "recorded"]
    assert rebuilt["snapshot_ts"].tolist() == [pd.Timestamp(T0 + dt.timedelta(hours=1))]
    assert "dropped 1 rows of 1 recorded books sampled at the time of a fetched" in caplog.text
