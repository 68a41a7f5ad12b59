"""The raw layout: six gzipped JSON-lines files, always all six, read back line by line."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import random
import shutil

import orjson
import pytest

from kalshi_lab.data import raw_store
from kalshi_lab.data.raw_store import (
    KINDS,
    MANIFEST,
    RawWriter,
    iter_records,
    partition_name,
    raw_partitions,
    read_manifest,
    write_partition_list,
)
from kalshi_lab.errors import DataError

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def test_every_file_exists_after_close_even_for_kinds_never_written(tmp_path):
    with RawWriter(tmp_path, may_be_empty=["trades", "orderbooks"]) as w:
        w.write("markets", "/markets", {"limit": 100}, T0, {"markets": [], "cursor": ""})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*KINDS.values(), MANIFEST])
    assert w.counts == {**dict.fromkeys(KINDS, 0), "markets": 1}
    manifest = read_manifest(tmp_path)  # what the parquet stage holds the files to
    assert manifest.records == w.counts
    assert manifest.may_be_empty == {"trades", "orderbooks"}
    for kind in KINDS:
        assert len(list(iter_records(tmp_path, kind))) == w.counts[kind]


def test_a_record_is_the_envelope_in_compact_json_on_one_line(tmp_path):
    response = {"series": {"ticker": "KXS", "title": "Señor ☂", "fee_multiplier": 0.5}}
    with RawWriter(tmp_path) as w:
        w.write("series", "/series/KXS", {"include_volume": True}, T0, response)
        w.write("series", "/series/KXS", {}, T0, response, method="POST")
    lines = gzip.decompress((tmp_path / KINDS["series"]).read_bytes()).split(b"\n")
    first = {
        "method": "GET",
        "path": "/trade-api/v2/series/KXS",
        "params": {"include_volume": True},
        "received_at": "2025-03-01T12:00:00Z",
        "response": response,
    }
    compact = json.dumps(first, separators=(",", ":"), ensure_ascii=False)
    assert lines[0] == compact.encode()
    assert json.loads(lines[1])["method"] == "POST"
    assert lines[2:] == [b""]
    assert [r["response"] for r in iter_records(tmp_path, "series")] == [response, response]


def test_chunked_compression_gives_the_bytes_of_one_stream(tmp_path, monkeypatch):
    """Buffered chunks and a background thread: the file is still the gzip of all the lines."""
    monkeypatch.setattr(raw_store, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(raw_store, "MAX_PENDING_CHUNKS", 2)
    bodies = [{"i": i, "pad": "x" * (i % 97)} for i in range(3000)]
    with RawWriter(tmp_path) as w:
        for body in bodies:
            w.write("trades", "/markets/trades", {}, T0, body)
    head = b'{"method":"GET","path":"/trade-api/v2/markets/trades","params":{},'
    head += b'"received_at":"2025-03-01T12:00:00Z","response":'
    lines = [head + json.dumps(b, separators=(",", ":")).encode() + b"}\n" for b in bodies]
    one_stream = io.BytesIO()
    level = raw_store.GZIP_LEVEL
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=one_stream, mtime=0, compresslevel=level
    ) as gz:
        gz.write(b"".join(lines))
        gz.flush()
    assert (tmp_path / KINDS["trades"]).read_bytes() == one_stream.getvalue()
    assert w.counts["trades"] == 3000


def test_pre_serialised_fragments_are_written_as_they_are_but_on_one_line(tmp_path):
    with RawWriter(tmp_path) as w:
        w.write("trades", "/markets/trades", {}, T0, {"trades": [orjson.Fragment('{"a":1}')]})
    assert [r["response"] for r in iter_records(tmp_path, "trades")] == [{"trades": [{"a": 1}]}]
    broken = RawWriter(tmp_path / "broken")
    broken.write("trades", "/markets/trades", {}, T0, {"trades": orjson.Fragment("[\n]")})
    with pytest.raises(ValueError, match="a trades record is not JSON on one line"):
        broken.close()


@pytest.mark.parametrize("seed", range(5))
def test_pre_rendered_lines_are_the_bytes_of_the_records_they_stand_for(tmp_path, seed):
    """write_lines after envelope_head gives the file write gives, for odd paths and params
    (quotes, backslashes, %, non-ASCII, numbers at the edges) and any response."""
    rng = random.Random(seed)
    odd = ["", "%s", '"', "\\", "é☂", "\n", "x" * 50, "KX-1", "%%d"]
    values = [0, -1, 2**63 - 1, -(2**63), 0.5, 1e16, True, False, None, *odd]
    records = []
    for i in range(300):
        params = {rng.choice(odd) + str(j): rng.choice(values) for j in range(rng.randrange(4))}
        response = {"k": rng.choice(values), "l": [rng.choice(values) for _ in range(i % 5)]}
        at = T0 + dt.timedelta(seconds=rng.randrange(10**8))
        records.append((f"/markets/{rng.choice(odd)}/orderbook", params, at, response))
    with RawWriter(tmp_path / "write") as w:
        for path, params, at, response in records:
            w.write("orderbooks", path, params, at, response)
    lines = [
        raw_store.envelope_head(path, params)
        + f'"{raw_store.format_ts(at)}","response":{orjson.dumps(response).decode()}}}\n'
        for path, params, at, response in records
    ]
    with RawWriter(tmp_path / "lines") as pre:
        pre.write_lines("orderbooks", "".join(lines[:100]).encode(), 100)
        pre.write_lines("orderbooks", "".join(lines[100:]).encode(), 200)
    assert pre.counts == w.counts
    name = KINDS["orderbooks"]
    assert (tmp_path / "lines" / name).read_bytes() == (tmp_path / "write" / name).read_bytes()


def test_pre_rendered_lines_must_be_as_many_as_their_records(tmp_path):
    line = raw_store.envelope_head("/markets/T/orderbook", {}) + '"x","response":{}}\n'
    broken = RawWriter(tmp_path)
    broken.write_lines("orderbooks", (line * 3).encode(), 2)
    with pytest.raises(ValueError, match="a orderbooks record is not JSON on one line"):
        broken.close()


def test_an_unknown_kind_is_refused(tmp_path):
    with RawWriter(tmp_path) as w, pytest.raises(ValueError, match="unknown raw kind"):
        w.write("fills", "/portfolio/fills", {}, T0, {})


def write_trades_file(tmp_path, data: bytes) -> None:
    with RawWriter(tmp_path):
        pass
    (tmp_path / KINDS["trades"]).write_bytes(data)


def test_a_missing_file_is_a_data_error_naming_it(tmp_path):
    with RawWriter(tmp_path):
        pass
    (tmp_path / KINDS["orderbooks"]).unlink()
    with pytest.raises(DataError, match=r"orderbooks\.jsonl\.gz: missing"):
        list(iter_records(tmp_path, "orderbooks"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(b'{"response":{}}\n' * 50)[:-30], ":\\d+: record: unreadable gzip data"),
        (b"not gzip at all", ":1: record: unreadable gzip data"),
        (gzip.compress(b'{"response":{}}\n\n'), ":2: record: not valid JSON"),
        (gzip.compress(b'{"response":{}}\n[1]\n'), ":2: record: not a JSON object"),
        (gzip.compress(b'{"response":[]}\n'), ":1: response: missing or not an object"),
        (gzip.compress(b'{"response":{}}\n\xff\xfe\n'), ":2: record: not valid JSON"),
    ],
    # gzip headers carry the time: ids of their own keep collection the same in every worker
    ids=["truncated", "not-gzip", "empty-line", "array", "response-array", "bad-bytes"],
)
def test_a_damaged_file_names_its_line(tmp_path, data, message):
    write_trades_file(tmp_path, data)
    with pytest.raises(DataError, match=r"trades\.jsonl\.gz" + message):
        list(iter_records(tmp_path, "trades"))


def test_a_writer_cut_short_leaves_no_manifest_so_its_files_are_never_parsed(tmp_path):
    with RawWriter(tmp_path) as w:
        w.write("markets", "/markets", {"limit": 100}, T0, {"markets": [], "cursor": ""})
    assert read_manifest(tmp_path).records["markets"] == 1
    with pytest.raises(RuntimeError, match="killed"), RawWriter(tmp_path) as w:
        w.write("markets", "/markets", {"limit": 100}, T0, {"markets": [], "cursor": ""})
        raise RuntimeError("killed")
    assert not (tmp_path / MANIFEST).exists()  # the earlier one went when writing began
    with pytest.raises(DataError, match=r"manifest\.json: missing"):
        read_manifest(tmp_path)


def _partitioned(tmp_path, names):
    for name in names:
        with RawWriter(tmp_path / name):
            pass
    write_partition_list(tmp_path, names)
    return tmp_path


def test_a_flat_raw_directory_is_its_own_only_partition(tmp_path):
    with RawWriter(tmp_path):
        pass
    assert raw_partitions(tmp_path) == [tmp_path]


def test_a_partitioned_raw_directory_lists_its_partitions_in_order(tmp_path):
    names = ["series=KXB/month=2025-02", "series=KXA/month=2025-01"]
    assert raw_partitions(_partitioned(tmp_path, names)) == [tmp_path / n for n in names]


def test_a_listed_partition_that_is_missing_is_named(tmp_path):
    raw = _partitioned(tmp_path, ["series=KXA/month=2025-01", "series=KXA/month=2025-02"])
    shutil.rmtree(raw / "series=KXA/month=2025-02")
    with pytest.raises(DataError, match="series=KXA/month=2025-02: listed in"):
        raw_partitions(raw)


def test_a_partition_the_list_does_not_name_is_refused(tmp_path):
    raw = _partitioned(tmp_path, ["series=KXA/month=2025-01"])
    with RawWriter(raw / "series=KXA/month=2025-03"):
        pass
    with pytest.raises(DataError, match="month=2025-03: a partition .* does not list"):
        raw_partitions(raw)


def test_a_directory_with_neither_manifest_nor_partition_list_is_refused(tmp_path):
    (tmp_path / "series=KXA").mkdir()
    with pytest.raises(DataError, match="neither manifest.json nor partitions.json"):
        raw_partitions(tmp_path)


@pytest.mark.parametrize("series, month", [("KX/A", "2025-01"), ("KXA", "2025-1"), ("", "2025-01")])
def test_a_partition_name_is_hive_style_series_and_month(series, month):
    with pytest.raises(ValueError, match="not a raw partition"):
        partition_name(series, month)
    assert partition_name("KXA", "2025-01") == "series=KXA/month=2025-01"


def _write_some(w: RawWriter, kinds) -> None:
    """Two records of each of ``kinds``: what a one-part writer would write of them."""
    for kind in kinds:
        for i in range(2):
            w.write(kind, f"/{kind}/{i}", {"i": i}, T0, {kind: i})


def test_a_directory_written_in_two_parts_is_the_one_written_at_once(tmp_path):
    """The simulator renders a partition but its series document while it still draws, and
    writes that document (and so the manifest) once the draws are over: the same bytes."""
    with RawWriter(tmp_path / "once", may_be_empty=["orderbooks"]) as w:
        _write_some(w, KINDS)
    rest = [kind for kind in KINDS if kind != "series"]
    with RawWriter(tmp_path / "two", may_be_empty=["orderbooks"], kinds=rest) as first:
        _write_some(first, rest)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        KINDS[kind] for kind in rest
    )  # no manifest yet: the directory is incomplete
    assert first.counts == dict.fromkeys(rest, 2)
    with RawWriter(
        tmp_path / "two", may_be_empty=["orderbooks"], kinds=["series"], wrote=first.counts
    ) as second:
        _write_some(second, ["series"])
    once = sorted(p.name for p in (tmp_path / "once").iterdir())
    assert once == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in once:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "once" / name).read_bytes()


def test_a_part_writer_refuses_other_kinds_and_a_kind_already_written(tmp_path):
    with RawWriter(tmp_path, kinds=["events"]) as w, pytest.raises(ValueError, match="unknown"):
        w.write("series", "/series/KXS", {}, T0, {})
    with pytest.raises(ValueError, match=r"both to write and written: \['events'\]"):
        RawWriter(tmp_path, kinds=["events"], wrote={"events": 0})
    with pytest.raises(ValueError, match=r"unknown raw kinds \['fills'\]"):
        RawWriter(tmp_path, kinds=["series"], wrote={"fills": 0})


def test_a_manifest_never_counts_a_file_that_is_not_there(tmp_path):
    with pytest.raises(DataError, match=r"trades\.jsonl\.gz: missing"):
        RawWriter(tmp_path, kinds=["series"], wrote={"trades": 3})
    assert not (tmp_path / MANIFEST).exists()
