"""Recorded WebSocket messages: segment files of the ``orderbook_deltas`` kind.

A recording cannot be fetched again, so it lives apart from the fetch's output, in
``data/recorded/`` (:data:`kalshi_lab.paths.RECORDED_DIR`): an input of the parquet stage that
no stage writes and no dvc command deletes. The fetch's six kinds are each one file, written
whole; a recording grows for as long as the recorder runs and must survive a kill. So the
stream kind is a directory, ``<recorded>/`` :data:`STREAM_DIR`, of *segments*: one gzipped
JSON-lines file per recording session, each line the same envelope as the fetch's records
(:mod:`kalshi_lab.data.raw_store`)::

    {"method": "WS", "path": "/trade-api/ws/v2", "params": {"channels": [...], ...},
     "received_at": "2026-12-07T14:00:00.123456Z", "response": {...one stream message...}}

``received_at`` keeps microseconds: many deltas arrive within a second, and the rebuilt books
are sampled at the time each message was received. Beside the segments,
:data:`SEGMENTS_MANIFEST` counts the records of every *closed* segment; it is replaced
atomically (write, fsync, rename) when a segment closes, so it never names a segment that is
not complete. A segment that is not in it was cut short (the recorder was killed): the next
recorder salvages it (:func:`salvage`), keeping every record up to the last flush (the writer
flushes a complete gzip block every second) and then counting it. The parquet stage reads
closed segments only, each checked against its count as the fetch's files are, and says how
many open ones it left out. Every segment starts afresh: the rebuild knows no book of a
segment before that segment's own snapshot of the market.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gzip
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from kalshi_lab.data.raw_store import iter_envelopes
from kalshi_lab.errors import DataError

#: the directory of the stream kind inside a raw directory
STREAM_DIR = "orderbook_deltas"
#: closed segment -> records, in the stream directory
SEGMENTS_MANIFEST = "segments.json"
#: the WebSocket endpoint every stream record was received from (Kalshi's AsyncAPI spec)
WS_PATH = "/trade-api/ws/v2"
_LOCK = ".lock"
#: serialised records gathered before they are compressed: a gzip write per record costs
#: about 2 us more than its share of a 64 KiB one (benchmarks/bench_recorder.py)
BATCH_BYTES = 64 << 10
_SEGMENT = re.compile(r"segment-(\d{6})\.jsonl\.gz")


def stream_dir(recorded_dir: Path) -> Path:
    """Where the segments of a recordings directory are."""
    return Path(recorded_dir) / STREAM_DIR


def format_us(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z`` suffix (isoformat: the recorder stamps
    every message, and strftime costs a third more)."""
    return ts.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise manifest updates of recorders sharing a directory."""
    with open(directory / _LOCK, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_segments(directory: Path) -> dict[str, int]:
    """Closed segment name -> records; none when the directory or its manifest is absent."""
    path = Path(directory) / SEGMENTS_MANIFEST
    if not path.is_file():
        return {}
    try:
        doc = orjson.loads(path.read_bytes())
        segments = doc["segments"]
        ok = isinstance(segments, dict) and all(
            _SEGMENT.fullmatch(k) and type(v) is int and v > 0 for k, v in segments.items()
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(f'{path}: expected {{"segments": {{"segment-NNNNNN.jsonl.gz": records}}}}')
    return dict(segments)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _register(directory: Path, name: str, records: int) -> None:
    """Add a closed segment to the manifest (a segment without records is deleted instead)."""
    with _locked(directory):
        if records == 0:
            (directory / name).unlink(missing_ok=True)
            return
        segments = read_segments(directory)
        segments[name] = records
        doc = {"segments": dict(sorted(segments.items()))}
        _write_atomic(
            directory / SEGMENTS_MANIFEST,
            orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE),
        )


def segment_files(directory: Path) -> list[str]:
    """Every segment file present, closed or not, in order."""
    if not Path(directory).is_dir():
        return []
    return sorted(p.name for p in Path(directory).iterdir() if _SEGMENT.fullmatch(p.name))


def _complete_lines(path: Path) -> bytes:
    """The decompressed bytes of a possibly truncated gzip file, up to its last newline."""
    data = path.read_bytes()
    out = bytearray()
    while data:
        inflate = zlib.decompressobj(wbits=31)
        try:
            out += inflate.decompress(data)
        except zlib.error:
            break  # a block cut mid-write: what came before it is kept
        if not inflate.eof:
            break  # the stream ends before its trailer: cut short
        data = inflate.unused_data
    return bytes(out[: out.rfind(b"\n") + 1])


@dataclass(frozen=True)
class Salvaged:
    """A segment a killed recorder left open, now closed with what it had flushed."""

    name: str
    records: int  # kept (0: nothing was flushed; the file is removed)


def salvage(directory: Path) -> list[Salvaged]:
    """Close every segment that is not in the manifest: rewrite it as a complete gzip file of
    its flushed records (a line cut mid-write is dropped) and count it.

    A segment another recorder is writing (it holds a lock on it) is left alone; the recorder
    calls this before it opens its own segment.
    """
    directory = Path(directory)
    closed = read_segments(directory)
    out = []
    for name in segment_files(directory):
        if name in closed:
            continue
        path = directory / name
        with open(path, "rb") as held:
            try:  # a recorder holds a lock on the segment it writes
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            lines = _complete_lines(path)
            records = lines.count(b"\n")
            if records:
                tmp = path.with_name(f".{name}.tmp")
                with open(tmp, "wb") as raw:
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                        gz.write(lines)
                    raw.flush()
                    os.fsync(raw.fileno())
                os.replace(tmp, path)
            _register(directory, name, records)
        out.append(Salvaged(name, records))
    return out


class SegmentWriter:
    """Appends stream records to a new segment; closing it counts it in the manifest.

    Records are compressed :data:`BATCH_BYTES` at a time; :meth:`flush` compresses what is
    gathered, ends the deflate block with a sync flush and hands it to the OS, so that a kill
    (even SIGKILL) loses only what came since the last flush: the recorder flushes about once
    a second. Named after the highest segment present, created exclusively: two recorders
    never share a file.
    """

    def __init__(self, directory: Path, params: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.params = dict(params)
        self.records = 0
        while True:
            present = segment_files(self.directory)
            number = int(_SEGMENT.fullmatch(present[-1])[1]) + 1 if present else 1  # type: ignore[index]
            self.name = f"segment-{number:06d}.jsonl.gz"
            try:
                self._raw: BinaryIO = open(self.directory / self.name, "xb")  # noqa: SIM115
                break
            except FileExistsError:
                continue  # another recorder took it
        fcntl.flock(self._raw, fcntl.LOCK_EX | fcntl.LOCK_NB)  # kept from salvage() until closed
        _fsync_dir(self.directory)
        # level 6 as the fetch's files: 9 (gzip's default) takes 2.5x the time (about 6 us
        # more a record) for 13 % less space
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6
        )
        self._batch = bytearray()

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def write(self, message: Mapping[str, Any], received_at: dt.datetime) -> None:
        """Record one stream message as received at ``received_at``."""
        envelope = {
            "method": "WS",
            "path": WS_PATH,
            "params": self.params,
            "received_at": format_us(received_at),
            "response": message,
        }
        self._batch += orjson.dumps(envelope, option=orjson.OPT_APPEND_NEWLINE)
        self.records += 1
        if len(self._batch) >= BATCH_BYTES:
            self._compress()

    def _compress(self) -> None:
        batch, self._batch = self._batch, bytearray()  # a new one: gzip may keep a view
        self._gzip.write(batch)

    def flush(self) -> None:
        """Make everything written so far survive a kill of this process."""
        self._compress()
        self._gzip.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def close(self) -> int:
        """End the gzip stream, sync it to disk and count it in the manifest; the records."""
        if self._raw.closed:
            return self.records
        self._compress()
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        _register(self.directory, self.name, self.records)
        return self.records


@dataclass(frozen=True)
class Segment:
    """A closed segment: its number, file and the records the manifest counts."""

    number: int
    path: Path
    records: int


def closed_segments(recorded_dir: Path) -> list[Segment]:
    """The closed segments of ``recorded_dir`` in order; one the manifest counts but that is
    missing is a DataError naming it."""
    directory = stream_dir(recorded_dir)
    out = []
    for name, records in read_segments(directory).items():
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path}: missing, but {directory / SEGMENTS_MANIFEST} counts it")
        out.append(Segment(int(_SEGMENT.fullmatch(name)[1]), path, records))  # type: ignore[index]
    return out


def iter_segment(segment: Segment) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, envelope) of every record of one closed segment.

    A damaged file or a line that is not an envelope is a DataError naming the file and line
    (:func:`~kalshi_lab.data.raw_store.iter_envelopes`, the reader of the fetch's files too); a
    count other than the manifest's one naming the file.
    """
    path, line = segment.path, 0
    for line, record in iter_envelopes(path):
        yield line, record
    if line != segment.records:
        raise DataError(
            f"{path}: {line} records, but {path.parent / SEGMENTS_MANIFEST} counts "
            f"{segment.records}: the file was changed or cut short after it was closed"
        )


def iter_stream(recorded_dir: Path) -> Iterator[tuple[int, Path, int, dict[str, Any]]]:
    """(segment number, file, line, envelope) of every closed segment's records, in order."""
    for segment in closed_segments(recorded_dir):
        for line, record in iter_segment(segment):
            yield segment.number, segment.path, line, record


def open_segments(recorded_dir: Path) -> list[str]:
    """Segment files present but not closed (a recorder runs, or was killed and not rerun)."""
    directory = stream_dir(recorded_dir)
    closed = read_segments(directory)
    return [n for n in segment_files(directory) if n not in closed]


def move_recordings(source_dir: Path, target_dir: Path) -> int:
    """Move the segments (and manifest) of ``source_dir`` into ``target_dir``; the segments
    moved.

    For recordings made before they had a directory of their own, in the fetch's output
    (``data/raw/orderbook_deltas``), which the fetch replaces whole. ``target_dir`` must hold
    no segment yet: two recordings' segment numbers would clash (a DataError naming both).
    A recorder must not be writing into ``source_dir``.
    """
    source, target = stream_dir(source_dir), stream_dir(target_dir)
    present = segment_files(source)
    if not present:
        return 0
    if segment_files(target):
        raise DataError(
            f"{source}: {len(present)} recorded segments, but {target} has recordings of its "
            f"own: merge them by hand (their segment numbers clash)"
        )
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        os.replace(path, target / path.name)
    _fsync_dir(target)
    source.rmdir()
    return len(present)
