"""The fetch's response cache: what makes a fetch resumable and a closed range free to re-fetch.

One SQLite file (``data/cache/kalshi.sqlite``, git-ignored and outside every DVC output). A
row holds one *unit* of fetching (a market's trades in one window, a candle window, an event,
...) as the list of responses its requests got, stored in one transaction once the unit is
complete, so a kill leaves units either whole or absent.

* A **final** unit describes a closed period (a settled market, a window that ended before
  the fetch): it cannot change, so every later fetch reuses it and asks nothing.
* A **provisional** unit (a book of a market open now, the current window of an open market)
  belongs to the run that fetched it: a run killed and started again with the same parameters
  resumes that run (same run id, same notion of "now") and reuses its provisional units; a
  fresh run discards them. A run that completes removes its own.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kalshi_lab.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    key TEXT PRIMARY KEY,
    run TEXT,              -- NULL for final units
    responses BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    fingerprint TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    now REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Run:
    """One fetch: its id, the time it treats as now, and whether it resumes a killed run."""

    id: str
    now: float
    resumed: bool


def fingerprint(**identity: Any) -> str:
    """A stable digest of what makes two fetches the same fetch."""
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class ResponseCache:
    """Units of recorded responses, shared by the worker threads of one fetch."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.hits = 0

    def close(self) -> None:
        self._db.close()

    def begin(self, fetch: str, now: float) -> Run:
        """Resume the unfinished run of ``fetch`` if there is one, else start a new run."""
        with self._lock:
            row = self._db.execute(
                "SELECT run, now FROM runs WHERE fingerprint = ?", (fetch,)
            ).fetchone()
            if row is not None:
                return Run(id=row[0], now=row[1], resumed=True)
            run = Run(id=uuid.uuid4().hex, now=now, resumed=False)
            self._db.execute("INSERT INTO runs VALUES (?, ?, ?)", (fetch, run.id, run.now))
            return run

    def finish(self, fetch: str, run: Run) -> None:
        """The run completed: forget it and its provisional units, and every orphan's."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM runs WHERE fingerprint = ?", (fetch,))
            self._db.execute(
                "DELETE FROM units WHERE run IS NOT NULL AND run NOT IN (SELECT run FROM runs)"
            )
            self._db.execute("COMMIT")

    def _responses(self, key: str, run: Run) -> bytes | None:
        """The unit's serialised responses if it is final or was fetched by ``run``; the caller
        holds the lock."""
        row = self._db.execute(
            "SELECT responses FROM units WHERE key = ? AND (run IS NULL OR run = ?)",
            (key, run.id),
        ).fetchone()
        return None if row is None else row[0]

    def get(self, key: str, run: Run) -> list[dict[str, Any]] | None:
        """The unit's responses if it is final or was fetched by ``run``."""
        with self._lock:
            blob = self._responses(key, run)
            if blob is None:
                return None
            self.hits += 1  # under the lock: worker threads count concurrently
        return orjson.loads(blob)

    def has(self, key: str, run: Run) -> bool:
        """Whether the unit is final or was fetched by ``run`` (a hit, as :meth:`get`), without
        reading its responses: the per-market units are read once, when they are written out."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM units WHERE key = ? AND (run IS NULL OR run = ?)", (key, run.id)
            ).fetchone()
            if row is not None:
                self.hits += 1
        return row is not None

    def load(self, key: str, run: Run) -> list[dict[str, Any]]:
        """The responses of a unit this run stored or found (no hit: it was counted then).

        Missing, it was removed while the fetch ran (the cache deleted under it): a DataError.
        """
        with self._lock:
            blob = self._responses(key, run)
        if blob is None:
            raise DataError(
                f"{self.path}: unit {key!r} vanished during the fetch (was the cache deleted?): "
                "run the fetch again"
            )
        return orjson.loads(blob)

    def put(self, key: str, responses: list[dict[str, Any]], run: Run, *, final: bool) -> None:
        blob = orjson.dumps(responses)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?)",
                (key, None if final else run.id, blob),
            )
