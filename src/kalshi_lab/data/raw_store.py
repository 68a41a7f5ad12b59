"""The on-disk form of raw API data: one gzipped JSON-lines file per endpoint kind.

Each line is one recorded HTTP exchange, whatever produced it (the simulator or the live
client), so the parquet stage cannot tell the two apart::

    {"method": "GET", "path": "/trade-api/v2/markets/T/orderbook", "params": {...},
     "received_at": "2025-01-02T00:00:00Z", "response": {...the API's JSON body...}}

``received_at`` is when the response was observed; for an orderbook it is the snapshot time.
Files are written with a zero gzip mtime so that the same data gives the same bytes (and the
same DVC hash) on every run.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kalshi_lab.errors import DataError

API_PREFIX = "/trade-api/v2"

#: endpoint kind -> file name inside the raw directory
KINDS = {
    "series": "series.jsonl.gz",  # GET /series/{series_ticker}
    "events": "events.jsonl.gz",  # GET /events/{event_ticker}
    "markets": "markets.jsonl.gz",  # GET /markets (cursor pages)
    "candlesticks": "candlesticks.jsonl.gz",  # GET /series/{s}/markets/{t}/candlesticks
    "trades": "trades.jsonl.gz",  # GET /markets/trades (cursor pages)
    "orderbooks": "orderbooks.jsonl.gz",  # GET /markets/{ticker}/orderbook
}


def format_ts(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, as the API writes timestamps."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RawWriter:
    """Appends recorded responses to the per-kind files of one raw directory."""

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = Path(raw_dir)
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, io.TextIOWrapper] = {}
        self._raw: list[io.BufferedWriter] = []
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    def __enter__(self) -> RawWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _file(self, kind: str) -> io.TextIOWrapper:
        if kind not in KINDS:
            raise ValueError(f"unknown raw kind {kind!r}; known: {sorted(KINDS)}")
        if kind not in self._files:
            raw = open(self.raw_dir / KINDS[kind], "wb")  # noqa: SIM115 - closed in close()
            self._raw.append(raw)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            self._files[kind] = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        return self._files[kind]

    def write(
        self,
        kind: str,
        path: str,
        params: Mapping[str, Any],
        received_at: dt.datetime,
        response: Mapping[str, Any],
    ) -> None:
        """Record one response; ``path`` is relative to the API prefix (``/markets``)."""
        line = {
            "method": "GET",
            "path": API_PREFIX + path,
            "params": dict(params),
            "received_at": format_ts(received_at),
            "response": response,
        }
        self._file(kind).write(json.dumps(line, separators=(",", ":")) + "\n")
        self.counts[kind] += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()  # closes the gzip stream, which does not close the raw file it wraps
        for raw in self._raw:
            raw.close()
        self._files.clear()
        self._raw.clear()


def iter_records(raw_dir: Path, kind: str) -> Iterator[dict[str, Any]]:
    """Yield the envelopes of one kind; a missing file yields nothing, a bad line is a DataError."""
    path = Path(raw_dir) / KINDS[kind]
    if not path.exists():
        return
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("response"), dict):
                raise DataError(f"{path}:{lineno}: a record needs a 'response' object")
            yield record
