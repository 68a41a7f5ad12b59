"""The on-disk form of raw API data: one gzipped JSON-lines file per endpoint kind.

Each line is one recorded HTTP exchange, whatever produced it (the simulator or the live
client), so the parquet stage cannot tell the two apart::

    {"method": "GET", "path": "/trade-api/v2/markets/T/orderbook", "params": {...},
     "received_at": "2025-01-02T00:00:00Z", "response": {...the API's JSON body...}}

``received_at`` is when the response was observed; for an orderbook it is the snapshot time.
A raw directory always holds all six files of :data:`KINDS`, empty ones included: a missing
file means an interrupted or foreign writer, never "no data of that kind". Next to them the
writer leaves :data:`MANIFEST`, the records it wrote per kind and the kinds its source may
leave empty (e.g. ``orderbooks`` for ``data=kalshi``: history has no books, so a range that is
over has none). The parquet stage holds the files to it (:func:`check_records`): an empty file
the source did not allow, or a count that differs from the one written, means the file was
replaced or cut short after the fetch, and is an error naming it, never "no data". Files are
written with a zero gzip mtime so that the same data gives the same bytes (and the same DVC
hash) on every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gzip
import re
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from kalshi_lab.errors import DataError

API_PREFIX = "/trade-api/v2"

#: endpoint kind -> file name inside the raw directory
KINDS = {
    "series": "series.jsonl.gz",  # GET /series/{series_ticker}
    "events": "events.jsonl.gz",  # GET /events/{event_ticker}
    "markets": "markets.jsonl.gz",  # GET /markets (cursor pages)
    # GET /series/{s}/markets/{t}/candlesticks, or /historical/markets/{t}/candlesticks
    "candlesticks": "candlesticks.jsonl.gz",
    "trades": "trades.jsonl.gz",  # GET /markets/trades (cursor pages)
    "orderbooks": "orderbooks.jsonl.gz",  # GET /markets/{ticker}/orderbook
}

#: what the writer wrote: {"records": {kind: count}, "may_be_empty": [kind, ...]}
MANIFEST = "manifest.json"

#: the partitions of a partitioned raw directory, written last: {"partitions": ["series=S/
#: month=YYYY-MM", ...]}; each partition is a raw directory of its own (six files and a
#: manifest) holding whole events, so that the stages after the fetch can work on one at a time
PARTITIONS = "partitions.json"
#: a partition's directory, relative to the raw directory: hive-style, as parquet datasets
PARTITION_PATTERN = re.compile(r"series=[^/=]+/month=\d{4}-\d{2}")

#: the recorded path of an orderbook snapshot; its response does not repeat the ticker
ORDERBOOK_PATH = API_PREFIX + "/markets/(?P<ticker>[^/]+)/orderbook"

#: serialised records handed to a compression thread at a time: big, because the thread needs
#: the GIL back after each slice of zlib's output, and a busy producer delays it each time
CHUNK_BYTES = 16 << 20
#: zlib level of the raw files: level 1 makes them about a quarter larger than level 6 (10k
#: simulated markets: 128 MB, not 103 MB) and compresses in well under half the CPU time, which
#: was half of the simulator's (benchmarks/bench_simulator.py)
GZIP_LEVEL = 1
#: chunks waiting for compression (all kinds) before the producer waits: up to 256 MB, enough
#: for the simulator's trades to be compressed while it renders the order books
MAX_PENDING_CHUNKS = 16


@functools.lru_cache(maxsize=1 << 16)
def format_ts(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, as the API writes timestamps.

    Cached: a fetch stamps many responses with few distinct times (the simulator's order books
    share a handful per day), and strftime costs more than the rest of a small record.
    """
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope_head(path: str, params: Mapping[str, Any], method: str = "GET") -> str:
    """The JSON text :meth:`RawWriter.write` makes of a record up to its ``received_at`` value,
    for :meth:`RawWriter.write_lines`: the one place, with ``write``, that fixes the
    envelope's fields and their order. ``path`` is relative to the API prefix, as for ``write``.
    """
    stub = {"method": method, "path": API_PREFIX + path, "params": dict(params), "received_at": ""}
    text = orjson.dumps(stub).decode()
    return text[: -len('""}')]


def raw_path(raw_dir: Path, kind: str) -> Path:
    """The file of ``kind``; a missing one is a DataError naming it."""
    path = Path(raw_dir) / KINDS[kind]
    if not path.is_file():
        raise DataError(
            f"{path}: missing: a raw directory holds all of {', '.join(KINDS.values())}, "
            "empty ones included (run the fetch stage)"
        )
    return path


class RawWriter:
    """Writes recorded responses into the six per-kind files of one raw directory.

    All six files are created up front, so every complete raw directory has the same layout
    whatever was fetched; :data:`MANIFEST` is written last, on a clean close, with the records
    of each kind and ``may_be_empty``: the kinds this source may legitimately leave without a
    record (any other kind left empty is an error when the directory is parsed). A directory
    may also be written in two parts: a writer of some ``kinds`` only, which leaves it
    incomplete (no manifest), then one of the others, told the records the first ``wrote``,
    which completes it (the simulator renders a partition while it still draws, and writes its
    series document, whose volume counts every draw, once they are over).

    Records are serialised in the caller's thread (orjson: compact, UTF-8, NaN written as
    null) and compressed by a background thread per file: zlib releases the GIL, so a
    producer that spends its time building documents gets most of the compression on another
    core, and one kind's backlog is compressed while the next kind is produced. A deflate
    stream depends only on its bytes, not on how they were chunked, so the files are the same
    as if written line by line. orjson writes compact UTF-8 JSON: the bytes of
    ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` but for the spelling of some
    floats (``1e16`` for ``1e+16``).
    """

    def __init__(
        self,
        raw_dir: Path,
        *,
        may_be_empty: Iterable[str] = (),
        kinds: Iterable[str] = KINDS,
        wrote: Mapping[str, int] | None = None,
    ) -> None:
        """Write the files of ``kinds`` (all by default) into ``raw_dir``; ``wrote``: the
        records per kind that an earlier writer of the other kinds wrote there. The manifest
        is written once ``kinds`` and ``wrote`` together hold every kind."""
        self.raw_dir = Path(raw_dir)
        self.may_be_empty = frozenset(may_be_empty)
        self._wrote = dict(wrote or {})
        self.counts: dict[str, int] = dict.fromkeys(kinds, 0)
        unknown = sorted((self.may_be_empty | self.counts.keys() | self._wrote.keys()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown raw kinds {unknown}; known: {sorted(KINDS)}")
        if self.counts.keys() & self._wrote.keys():
            raise ValueError(
                f"kinds both to write and written: {sorted(self.counts.keys() & self._wrote.keys())}"
            )
        for kind in self._wrote:
            raw_path(self.raw_dir, kind)  # the manifest vouches for no file that is missing
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        (self.raw_dir / MANIFEST).unlink(missing_ok=True)  # written again once all is written
        self._raw: dict[str, BinaryIO] = {}
        self._gzip: dict[str, gzip.GzipFile] = {}
        for kind in self.counts:
            self._raw[kind] = open(self.raw_dir / KINDS[kind], "wb")  # noqa: SIM115 - closed in close()
            self._gzip[kind] = gzip.GzipFile(
                filename="", mode="wb", fileobj=self._raw[kind], mtime=0, compresslevel=GZIP_LEVEL
            )
        # records not yet handed to a compression thread: one growing buffer per kind is
        # cheaper than keeping each line as an object of its own
        self._buffer: dict[str, bytearray] = {kind: bytearray() for kind in self.counts}
        self._buffered_records: dict[str, int] = dict.fromkeys(self.counts, 0)
        self._compressors = {
            kind: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"raw-gzip-{kind}")
            for kind in self.counts
        }
        self._pending: deque[Future[int]] = deque()

    def __enter__(self) -> RawWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(complete=exc_type is None)

    def write(
        self,
        kind: str,
        path: str,
        params: Mapping[str, Any],
        received_at: dt.datetime,
        response: Mapping[str, Any],
        method: str = "GET",
    ) -> None:
        """Record one response; ``path`` is relative to the API prefix (``/markets``).

        Parts of ``response`` may be ``orjson.Fragment``: JSON already serialised, written as
        is; the text must be what orjson would write for the same values, on one line (checked
        for each chunk of records: a ValueError). A producer that renders whole records at
        once (the simulator's trades and order books) uses :meth:`write_lines` instead.
        """
        envelope = {
            "method": method,
            "path": API_PREFIX + path,
            "params": dict(params),
            "received_at": format_ts(received_at),
            "response": response,
        }
        self.write_lines(kind, orjson.dumps(envelope, option=orjson.OPT_APPEND_NEWLINE), 1)

    def write_lines(self, kind: str, lines: bytes, records: int) -> None:
        """Record ``records`` responses already rendered as the lines :meth:`write` would
        make of them (:func:`envelope_head`, then ``"<format_ts(received_at)>","response":
        <the response's JSON>}`` and a newline each), in order.

        For a producer that renders many records of the same shape with one template (the
        simulator's order books): building an envelope and serialising it per record cost
        more than rendering it. The lines are counted, chunked and compressed as the records
        of :meth:`write`, and checked the same way: a chunk whose lines are not its records
        is a ValueError.
        """
        buffer = self._buffer.get(kind)
        if buffer is None:
            raise ValueError(f"unknown raw kind {kind!r}; this writer's: {sorted(self.counts)}")
        buffer += lines
        self.counts[kind] += records
        self._buffered_records[kind] += records
        if len(buffer) >= CHUNK_BYTES:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        """Hand the buffered records of ``kind`` to its compression thread, in order."""
        if not self._buffer[kind]:
            return
        chunk = bytes(self._buffer[kind])
        self._buffer[kind].clear()
        records, self._buffered_records[kind] = self._buffered_records[kind], 0
        if chunk.count(b"\n") != records:  # a Fragment or write_lines text may hold a raw newline
            raise ValueError(f"a {kind} record is not JSON on one line")
        self._pending.append(self._compressors[kind].submit(self._gzip[kind].write, chunk))
        while len(self._pending) > MAX_PENDING_CHUNKS:
            self._pending.popleft().result()  # also re-raises a failed write

    def close(self, *, complete: bool = True) -> None:
        """Write what is buffered and close every file (each a complete gzip stream); then,
        if the writing is ``complete`` (not cut short by an exception), the manifest."""
        if not self._gzip:
            return
        try:
            for kind in self.counts:
                self._flush(kind)
            while self._pending:
                self._pending.popleft().result()
        except BaseException:
            complete = False
            raise
        finally:
            for compressor in self._compressors.values():
                compressor.shutdown(wait=True, cancel_futures=True)
            for kind in self.counts:
                # the sync flush the text-mode writer of earlier versions made on closing: kept
                # so that the same records give the same bytes (and DVC hashes) as before
                self._gzip[kind].flush()
                self._gzip[kind].close()  # ends the gzip stream; does not close the raw file
                self._raw[kind].close()
            self._gzip.clear()
            self._raw.clear()
            records = {**self._wrote, **self.counts}
            if complete and records.keys() == KINDS.keys():
                manifest = {
                    "records": {kind: records[kind] for kind in KINDS},
                    "may_be_empty": sorted(self.may_be_empty),
                }
                (self.raw_dir / MANIFEST).write_bytes(
                    orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
                )


def iter_envelopes(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, envelope) of every record of one gzipped JSON-lines file, in file order.

    The one reader of both forms of the raw store, the fetch's per-kind files and the
    recorder's stream segments (:mod:`kalshi_lab.data.stream_store`). A damaged or truncated
    gzip stream, a line that is not a JSON object, or a record without a ``response`` object
    is a DataError naming the file and line.
    """
    lineno = 0
    try:
        with gzip.open(path, "rb") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: record: not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{lineno}: record: not a JSON object")
                if not isinstance(record.get("response"), dict):
                    raise DataError(f"{path}:{lineno}: response: missing or not an object")
                yield lineno, record
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}:{lineno + 1}: record: unreadable gzip data ({exc})") from None


def iter_records(raw_dir: Path, kind: str) -> Iterator[dict[str, Any]]:
    """Yield the envelopes of one kind in file order: the n-th record is line n of the file.

    A missing file is a DataError naming it; a bad record one naming the file and line
    (:func:`iter_envelopes`).
    """
    for _, record in iter_envelopes(raw_path(raw_dir, kind)):
        yield record


@dataclass(frozen=True)
class Manifest:
    """What the writer of a raw directory recorded (:data:`MANIFEST`)."""

    path: Path
    records: dict[str, int]
    may_be_empty: frozenset[str]


def read_manifest(raw_dir: Path) -> Manifest:
    """The manifest of ``raw_dir``; missing or malformed, a DataError naming it."""
    path = Path(raw_dir) / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{path}: missing: the fetch stage writes it with the raw files, the records it "
            "wrote per kind (run the fetch stage)"
        )
    try:
        doc = orjson.loads(path.read_bytes())
        records, may_be_empty = doc["records"], doc["may_be_empty"]
        ok = (
            set(records) == set(KINDS)
            and all(type(n) is int and n >= 0 for n in records.values())
            and set(may_be_empty) <= set(KINDS)
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(
            f'{path}: expected {{"records": {{kind: count}} for each of {sorted(KINDS)}, '
            '"may_be_empty": [kind, ...]} (run the fetch stage)'
        )
    return Manifest(path, dict(records), frozenset(may_be_empty))


def check_nonempty(raw_dir: Path, kind: str, manifest: Manifest) -> None:
    """Refuse a file of ``kind`` without a single record, unless its source allowed that.

    Cheap (it reads the first record only), so every file is checked before any is parsed: a
    0-byte file (not even a gzip header: the writer always writes one) is refused always, an
    empty gzip stream unless the manifest allows the kind to be empty and counts no record.
    """
    path = raw_path(raw_dir, kind)
    written = manifest.records[kind]
    if path.stat().st_size == 0:
        what = "empty file (0 bytes, not even a gzip header)"
    else:
        with contextlib.closing(iter_records(raw_dir, kind)) as records:
            if next(records, None) is not None:
                return
        if written == 0 and kind in manifest.may_be_empty:
            return
        what = "no records"
    if written == 0 and kind not in manifest.may_be_empty:
        raise DataError(
            f"{path}: {what}: the fetch wrote none ({manifest.path}), and without {kind} there "
            "is nothing to build on: widen the data selection in params.yaml and fetch again"
        )
    raise DataError(f"{path}: {what}, but {_written(manifest, kind)}")


def check_records(raw_dir: Path, kind: str, found: int, manifest: Manifest) -> None:
    """Refuse a file of ``kind`` whose ``found`` records differ from the count written."""
    if found != manifest.records[kind]:
        records = f"{found} record{'' if found == 1 else 's'}"
        raise DataError(f"{raw_path(raw_dir, kind)}: {records}, but {_written(manifest, kind)}")


def _written(manifest: Manifest, kind: str) -> str:
    return (
        f"the fetch wrote {manifest.records[kind]} ({manifest.path}): the file was changed or "
        "cut short after the fetch (run the fetch stage again)"
    )


def partition_name(series_ticker: str, month: str) -> str:
    """The directory of one partition of a raw directory: ``series=<S>/month=<YYYY-MM>``."""
    name = f"series={series_ticker}/month={month}"
    if not PARTITION_PATTERN.fullmatch(name):
        raise ValueError(f"not a raw partition: series {series_ticker!r}, month {month!r}")
    return name


def raw_partitions(raw_dir: Path) -> list[Path]:
    """The raw directories ``raw_dir`` is made of, in the order listed.

    A raw directory is either flat (its own :data:`MANIFEST` beside the six files: one
    partition, itself) or partitioned (:data:`PARTITIONS` listing its partitions, each a flat
    raw directory). A partitioned directory is checked against its list: a listed partition
    that is missing, or a partition directory the list does not name, is a DataError naming
    it, as is a directory that is neither.
    """
    raw_dir = Path(raw_dir)
    listing = raw_dir / PARTITIONS
    if not listing.is_file():
        if (raw_dir / MANIFEST).is_file() or not raw_dir.is_dir():
            return [raw_dir]  # flat; its files are checked when they are read
        raise DataError(
            f"{raw_dir}: neither {MANIFEST} nor {PARTITIONS}: not a complete raw directory "
            "(run the fetch stage)"
        )
    try:
        names = orjson.loads(listing.read_bytes())["partitions"]
        ok = isinstance(names, list) and all(
            isinstance(n, str) and PARTITION_PATTERN.fullmatch(n) for n in names
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok or len(set(names)) != len(names):
        raise DataError(
            f'{listing}: expected {{"partitions": ["series=<S>/month=<YYYY-MM>", ...]}} '
            "without repeats (run the fetch stage)"
        )
    for name in names:
        if not (raw_dir / name / MANIFEST).is_file():
            raise DataError(
                f"{raw_dir / name}: listed in {listing} but missing or incomplete "
                "(run the fetch stage)"
            )
    found = {p.relative_to(raw_dir).as_posix() for p in raw_dir.glob("series=*/month=*")}
    unlisted = sorted(found - set(names))
    if unlisted:
        raise DataError(
            f"{raw_dir / unlisted[0]}: a partition {listing} does not list: left from another "
            "fetch (run the fetch stage)"
        )
    return [raw_dir / name for name in names]


def write_partition_list(raw_dir: Path, names: Iterable[str]) -> None:
    """Record the partitions of ``raw_dir``, last, once every partition is complete."""
    names = list(names)
    for name in names:
        if not PARTITION_PATTERN.fullmatch(name):
            raise ValueError(f"not a raw partition: {name!r}")
    (Path(raw_dir) / PARTITIONS).write_bytes(
        orjson.dumps({"partitions": names}, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
