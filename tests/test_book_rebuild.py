"""The order-book table rebuilt from recorded stream messages equals a message-by-message replay.

Messages are shaped as Kalshi's AsyncAPI spec defines the ``orderbook_delta`` channel
(https://docs.kalshi.com/asyncapi.yaml; https://docs.kalshi.com/websockets/orderbook-updates):
``orderbook_snapshot`` with ``yes_dollars_fp``/``no_dollars_fp`` [price, count] string pairs
(older: ``yes``/``no`` as [cents, count] integers) and ``orderbook_delta`` with
``price_dollars``/``delta_fp`` (older: ``price`` cents, ``delta`` integer) and ``side``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from book_replay import replay
from kalshi_lab.data import book_rebuild, fast_parse
from kalshi_lab.data.book_rebuild import (
    _STREAM,
    _by_record,
    _columnar_part,
    _segment_messages,
    read_stream,
    rebuild,
    rebuild_segments,
)
from kalshi_lab.data.stream_store import SegmentWriter, closed_segments, stream_dir
from kalshi_lab.errors import DataError

T0 = dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)
SECOND = 1_000_000_000

#: the spec's examples, verbatim (docs.kalshi.com/asyncapi.yaml: orderbookSnapshot,
#: orderbookDelta)
SPEC_SNAPSHOT = {
    "type": "orderbook_snapshot",
    "sid": 2,
    "seq": 2,
    "msg": {
        "market_ticker": "FED-23DEC-T3.00",
        "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
        "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
        "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]],
    },
}
SPEC_EXAMPLE_DELTA = {
    "type": "orderbook_delta",
    "sid": 2,
    "seq": 3,
    "msg": {
        "market_ticker": "FED-23DEC-T3.00",
        "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
        "price_dollars": "0.9600",
        "delta_fp": "-54.00",
        "side": "yes",
        "ts": "2022-11-22T20:44:01Z",
        "ts_ms": 1669149841000,
    },
}
#: the spec's delta at a level its snapshot has (0.96 has none: the two examples are not one
#: stream)
SPEC_DELTA = {**SPEC_EXAMPLE_DELTA, "msg": {**SPEC_EXAMPLE_DELTA["msg"], "price_dollars": "0.2200"}}
#: the same in the older integer fields (cents, whole contracts) of the spec before Kalshi's
#: fixed-point fields (``*_dollars``, ``*_fp``)
LEGACY_SNAPSHOT = {
    "type": "orderbook_snapshot",
    "sid": 2,
    "seq": 2,
    "msg": {
        "market_ticker": "FED-23DEC-T3.00",
        "yes": [[8, 300], [22, 333]],
        "no": [[54, 20], [56, 146]],
    },
}
LEGACY_DELTA = {
    "type": "orderbook_delta",
    "sid": 2,
    "seq": 3,
    "msg": {"market_ticker": "FED-23DEC-T3.00", "price": 22, "delta": -54, "side": "yes"},
}


def write_segments(raw: Path, segments: list[list[tuple[int, dict]]]) -> None:
    """Each segment: (microseconds after T0, message) in arrival order."""
    for messages in segments:
        writer = SegmentWriter(stream_dir(raw), {"channels": ["orderbook_delta"]})
        for us, message in messages:
            writer.write(message, T0 + dt.timedelta(microseconds=us))
        writer.close()


def rows(raw: Path, interval_ns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    stream = read_stream(raw)
    return rebuild(stream, interval_ns).rows.to_pandas(), replay(stream, interval_ns)


@pytest.mark.parametrize("pair", [(SPEC_SNAPSHOT, SPEC_DELTA), (LEGACY_SNAPSHOT, LEGACY_DELTA)])
def test_spec_messages_both_price_formats(tmp_path: Path, pair: tuple[dict, dict]) -> None:
    snapshot, delta = pair

    def at(us: int, seq: int) -> dict:
        """The delta as the exchange sends it at T0 + us (the spec's carries its own time)."""
        if "ts_ms" not in delta["msg"]:
            return {**delta, "seq": seq}
        ms = int(T0.timestamp() * 1000) + us // 1000
        return {**delta, "seq": seq, "msg": {**delta["msg"], "ts_ms": ms}}

    write_segments(
        tmp_path, [[(0, snapshot), (1_500_000, at(1_500_000, 3)), (2_500_000, at(2_500_000, 4))]]
    )
    got, want = rows(tmp_path, SECOND)
    pd.testing.assert_frame_equal(got, want)
    at = got.groupby("snapshot_ts")
    books = [frame.set_index(["side", "price"])["count"].to_dict() for _, frame in at]
    assert books[0] == {("yes", 0.08): 300, ("yes", 0.22): 333, ("no", 0.54): 20, ("no", 0.56): 146}
    assert books[1] == books[0]  # the first delta came at 1.5 s
    assert books[2] == {**books[0], ("yes", 0.22): 333 - 54}
    # the segment's last message came at 2.5 s: no book at 3 s (it was not recorded then)
    assert sorted(at.groups) == [pd.Timestamp(T0) + pd.Timedelta(seconds=s) for s in (0, 1, 2)]


def test_books_are_timed_by_the_exchange_s_clock_where_its_messages_carry_it(tmp_path: Path):
    """A server replaying history (the local server's moving clock) sends deltas stamped years
    before their receipt: the books are rebuilt on the exchange's clock, the untimed snapshot
    just before the next timed message of its segment (not at its receipt, years later)."""
    then = dt.datetime(2025, 3, 14, 11, 0, tzinfo=dt.UTC)
    ms = int(then.timestamp() * 1000)

    def delta(seq: int, minutes: int) -> dict:
        msg = {**SPEC_DELTA["msg"], "ts_ms": ms + minutes * 60_000}
        return {**SPEC_DELTA, "seq": seq, "msg": msg}

    write_segments(tmp_path, [[(0, SPEC_SNAPSHOT), (10, delta(3, 0)), (20, delta(4, 90))]])
    got, want = rows(tmp_path, 3600 * SECOND)
    pd.testing.assert_frame_equal(got, want)
    times = sorted(set(got["snapshot_ts"]))
    assert times == [pd.Timestamp(then), pd.Timestamp(then) + pd.Timedelta(hours=1)]
    at = {
        t: f.set_index(["side", "price"])["count"].to_dict() for t, f in got.groupby("snapshot_ts")
    }
    snapshot = {("yes", 0.08): 300, ("yes", 0.22): 333, ("no", 0.54): 20, ("no", 0.56): 146}
    # the first delta (11:00) is in the 11:00 book, the second (12:30) not yet at 12:00
    assert at[times[0]] == {**snapshot, ("yes", 0.22): 333 - 54} == at[times[1]]


def test_the_current_format_is_read_columnar_and_the_legacy_one_declined(tmp_path: Path) -> None:
    write_segments(tmp_path / "current", [[(0, SPEC_SNAPSHOT), (1, SPEC_DELTA)]])
    write_segments(tmp_path / "legacy", [[(0, LEGACY_SNAPSHOT), (1, LEGACY_DELTA)]])
    (current,), (legacy,) = (
        closed_segments(tmp_path / "current"),
        closed_segments(tmp_path / "legacy"),
    )
    parts = fast_parse._parts(current.path, current.records, _STREAM, _columnar_part)
    assert pa.concat_tables(list(parts)).equals(_by_record(current))
    with pytest.raises(fast_parse.Declined):
        list(fast_parse._parts(legacy.path, legacy.records, _STREAM, _columnar_part))
    assert _segment_messages(legacy).equals(_by_record(legacy))


def test_the_spec_examples_as_one_stream_take_a_level_below_zero_counted_not_listed(
    tmp_path: Path,
) -> None:
    later = {**SPEC_DELTA, "seq": 4}
    write_segments(
        tmp_path, [[(0, SPEC_SNAPSHOT), (1_500_000, SPEC_EXAMPLE_DELTA), (2_500_000, later)]]
    )
    stream = read_stream(tmp_path)
    got = rebuild(stream, SECOND)
    pd.testing.assert_frame_equal(got.rows.to_pandas(), replay(stream, SECOND))
    assert got.negative == 1  # yes at 0.96: -54 contracts in the sample at 2 s
    assert 0.96 not in set(got.rows.to_pandas()["price"])


def test_segments_are_rebuilt_one_at_a_time(tmp_path: Path, monkeypatch) -> None:
    """The parquet stage's rebuild holds one segment's messages at a time: a recording grows
    for as long as the recorder runs, and all of it parsed at once is several times its size."""
    # three recorders at once: the delta's ts_ms puts each segment's book at its second
    write_segments(tmp_path, [[(k, SPEC_SNAPSHOT), (k + 5, SPEC_DELTA)] for k in range(3)])
    parsed: list[weakref.ref] = []
    read = book_rebuild.parse_segments

    def one_at_a_time(segments, where):
        assert len(segments) == 1
        assert all(ref() is None for ref in parsed), "an earlier segment is still held"
        stream = read(segments, where)
        parsed.append(weakref.ref(stream))
        return stream

    monkeypatch.setattr(book_rebuild, "parse_segments", one_at_a_time)
    built = rebuild_segments(tmp_path, SECOND)
    assert len(parsed) == 3
    assert built.overlapping > 0  # the three sampled one market at one time: the last wins
    assert set(built.rows.column("segment").to_pylist()) == {3}


def test_a_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    bad = {**SPEC_DELTA, "msg": {**SPEC_DELTA["msg"], "price_dollars": "1.50"}}
    write_segments(tmp_path, [[(0, SPEC_SNAPSHOT), (1, bad)]])
    with pytest.raises(DataError, match=r"segment-000001.jsonl.gz:2: response.msg.price_dollars"):
        read_stream(tmp_path)


TICKERS = ("KXA-1", "KXB-2", "KXC-3")
PRICES = (1, 5, 40, 41, 99)  # cents


@st.composite
def recordings(draw: st.DrawFn) -> list[list[tuple[int, dict]]]:
    """Segments of consistent streams with duplicates, gaps, empty books, levels emptied and
    refilled, clock steps back, in either price format."""
    segments = []
    us = 0  # a segment starts after the one before ended (a restart), or before (two recorders)
    for _ in range(draw(st.integers(1, 3))):
        legacy = draw(st.booleans())
        books: dict[str, dict[tuple[str, int], int]] = {}
        messages: list[tuple[int, dict]] = []
        us = max(0, us + draw(st.sampled_from([1, 400_000, 3_000_000, -2_500_000])))
        seq = 0
        for _ in range(draw(st.integers(0, 40))):
            us = max(0, us + draw(st.sampled_from([0, 1, 200_000, 700_000, 1_300_000, -50_000])))
            seq += 2 if draw(st.integers(0, 15)) == 0 else 1  # a gap now and then
            ticker = draw(st.sampled_from(TICKERS))
            action = draw(st.sampled_from(["snapshot", "delta", "delta", "delta", "dup"]))
            if action == "dup" and messages:
                messages.append((us, messages[-1][1]))
                seq -= 1
                continue
            if action == "snapshot" or ticker not in books and draw(st.booleans()):
                levels = draw(
                    st.dictionaries(
                        st.tuples(st.sampled_from(["yes", "no"]), st.sampled_from(PRICES)),
                        st.integers(1, 500),
                        max_size=4,
                    )
                )
                books[ticker] = dict(levels)
                body: dict = {"market_ticker": ticker}
                for side in ("yes", "no"):
                    pairs = sorted((p, c) for (s, p), c in levels.items() if s == side)
                    if legacy:
                        body[side] = [[p, c] for p, c in pairs]
                    else:
                        body[f"{side}_dollars_fp"] = [
                            [f"{p / 100:.4f}", f"{c:.2f}"] for p, c in pairs
                        ]
                messages.append(
                    (us, {"type": "orderbook_snapshot", "sid": 1, "seq": seq, "msg": body})
                )
                continue
            side, price = draw(st.sampled_from(["yes", "no"])), draw(st.sampled_from(PRICES))
            book = books.setdefault(ticker, {})
            have = book.get((side, price), 0)
            delta = draw(st.integers(-have, 300).filter(lambda d: d != 0))
            book[side, price] = have + delta
            body = {"market_ticker": ticker, "side": side}
            if legacy:
                body |= {"price": price, "delta": delta}
            else:
                body |= {"price_dollars": f"{price / 100:.4f}", "delta_fp": f"{delta:.2f}"}
            messages.append((us, {"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": body}))
        segments.append(messages)
    return segments


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segments=recordings(), interval_s=st.sampled_from([0.5, 1, 2]))
def test_rebuild_equals_replay(
    tmp_path_factory: pytest.TempPathFactory, segments, interval_s
) -> None:
    raw = tmp_path_factory.mktemp("raw")
    write_segments(raw, segments)
    for segment in closed_segments(raw):  # the columnar reader (or its fallback) = by record
        assert _segment_messages(segment).equals(_by_record(segment))
    stream = read_stream(raw)
    interval = int(interval_s * SECOND)
    got = rebuild(stream, interval)
    want = replay(stream, interval)
    pd.testing.assert_frame_equal(got.rows.to_pandas(), want)
    # the same, a segment at a time (as the parquet stage rebuilds)
    streamed = rebuild_segments(raw, interval)
    assert streamed.rows.equals(got.rows)
    assert dataclasses.replace(streamed, rows=got.rows) == got
    assert got.negative == 0
    assert not got.rows.to_pandas().duplicated(["ticker", "snapshot_ts", "side", "price"]).any()
    assert (got.rows.to_pandas()["count"] > 0).all()
    assert np.all(got.rows.to_pandas()["snapshot_ts"].astype("int64") % interval == 0)


def _altered(message: dict) -> dict:
    """The message with 7 more contracts in every level or delta it carries."""
    out = copy.deepcopy(message)
    body = out["msg"]
    for key in ("yes", "no"):
        for level in body.get(key, []):
            level[1] += 7
    for key in ("yes_dollars_fp", "no_dollars_fp"):
        for level in body.get(key, []):
            level[1] = f"{float(level[1]) + 7:.2f}"
    if "delta" in body:
        body["delta"] += 7
    if "delta_fp" in body:
        body["delta_fp"] = f"{float(body['delta_fp']) + 7:.2f}"
    return out


def assert_no_look_ahead(
    tmp_path_factory: pytest.TempPathFactory, messages: list[tuple[int, dict]], t: int,
    interval: int,
) -> None:  # fmt: skip
    """Alter every message after ``t`` (the rebuild's time: receipt, held where it runs
    backwards), or drop them all, and rebuild again: every book sampled up to ``t`` is the
    same (dropped, none is sampled after the last message kept)."""
    held = np.maximum.accumulate([us for us, _ in messages])
    after = int(np.searchsorted(held, t, side="right"))
    altered = messages[:after] + [(us, _altered(m)) for us, m in messages[after:]]
    last = pd.Timestamp(T0 + dt.timedelta(microseconds=t))

    def rebuilt(recording: list[tuple[int, dict]]) -> pd.DataFrame:
        raw = tmp_path_factory.mktemp("raw")
        write_segments(raw, [recording])
        return rebuild(read_stream(raw), interval).rows.to_pandas().drop(columns="segment")

    def until_t(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows["snapshot_ts"] <= last].reset_index(drop=True)

    full = until_t(rebuilt(messages))
    pd.testing.assert_frame_equal(until_t(rebuilt(altered)), full)
    cut = rebuilt(messages[:after])
    assert (cut["snapshot_ts"] <= last).all()
    same_times = full[full["snapshot_ts"].isin(cut["snapshot_ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(cut, same_times)


def test_a_book_sampled_at_t_uses_no_message_after_t(tmp_path_factory) -> None:
    """Sampled every 0.5 s and cut at 0.4, 0.55 or 0.6 s: the delta of 0.6 s, within half an
    interval after the sample at 0.5 s, is never in that sample."""
    snapshot = {"market_ticker": "KXA-1", "yes_dollars_fp": [["0.4000", "10.00"]]}

    def delta(seq: int, amount: str) -> dict:
        msg = {"market_ticker": "KXA-1", "side": "yes", "price_dollars": "0.4000",
               "delta_fp": amount}  # fmt: skip
        return {"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": msg}

    messages = [
        (0, {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": snapshot}),
        (400_000, delta(2, "2.00")),
        (550_000, delta(3, "3.00")),
        (600_000, delta(4, "4.00")),
        (1_200_000, delta(5, "5.00")),
    ]
    for t in (400_000, 550_000, 600_000):
        assert_no_look_ahead(tmp_path_factory, messages, t, SECOND // 2)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segments=recordings(), interval_s=st.sampled_from([0.5, 1, 2]), data=st.data())
def test_no_book_uses_a_message_after_its_time_on_any_recording(
    tmp_path_factory: pytest.TempPathFactory, segments, interval_s, data
) -> None:
    """The truncation of :func:`assert_no_look_ahead` on drawn recordings, cut anywhere."""
    messages = max(segments, key=len)  # one recorder: the longest of the drawn sessions
    if messages:
        held = sorted({us for us, _ in messages})
        t = data.draw(st.sampled_from(held))
        assert_no_look_ahead(tmp_path_factory, messages, t, int(interval_s * SECOND))
