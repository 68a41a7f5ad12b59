"""The bot's order journal: every order's life, durable, in the session's report directory.

``reports/bot/<mode>-<UTC start>/journal.sqlite`` is a SQLite database in WAL mode with
``synchronous=FULL``: each record is committed before the call that writes it returns, and a
committed transaction survives the bot being killed (SIGKILL) or the machine losing power
(https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous). Its tables:

* ``meta``: key -> JSON: ``session`` (what the command line asked: mode, base URL, series, ...;
  never a credential), ``start`` (the account the session started with), ``progress`` (cycles,
  marks, risk counters, why it stopped: written after every cycle), ``closed`` (when the
  session ended cleanly; absent after a kill), ``carried_from`` (the journal it continued);
* ``decisions``: every order decided, refused by the risk limits or not, written before any is
  sent, with why (``note``); ``reason`` when the exchange did not send it (dry run, a budget
  below one contract, an id already sent); ``working`` while the executor works it;
* ``venue_orders``: by ``client_order_id``, each order the venue was asked to place, written
  before its POST (``intent``) and after each answer (``placed``, ``refused``, ``unknown``,
  ``absent``, ``conflict``: :mod:`kalshi_lab.execution.lifecycle`), with the venue's order id,
  status and fill count, and the decision it works;
* ``ledger``: what changed the account, in booking order: ``opening`` positions (carried from
  the previous journal, or adopted), ``fill`` (each once, only fills of the journal's own
  orders; ``key`` its ``fill_id``, ``trade_id`` its trade id, ``source`` what told it first:
  ``stream`` or ``rest``) and ``settlement``. A fill first told by the stream, whose message
  has no ``fill_id``, is keyed by its ``trade_id`` (Kalshi's spec gives both ids the same
  value) until a listing shows a different ``fill_id`` (:meth:`Journal.name_fill`). The
  account at any moment is the replay of the ledger from ``start`` (:meth:`Journal.replay`);
* ``reconciliations``: each reconciliation and its outcome;
* ``used_ids``: the client_order_ids of earlier sessions on the account, never sent again.

One writer at a time: the session that holds the journal's lock, an exclusive ``flock`` on the
journal file that the operating system releases however the process ends. Money is integer
cents, times ISO 8601 UTC.

``meta.schema`` is the layout's version. A journal of schema 1 (fills by one id, no source) is
upgraded when opened: its fills keep their key, which a restart matches against both ids of a
fill; a journal of a newer schema than this code knows is refused (JournalSchemaError), never
written in a layout it does not understand.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_lab.errors import KalshiLabError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SettledMarket
from kalshi_lab.execution.lifecycle import VenueOrder

JOURNAL = "journal.sqlite"
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    ticker TEXT NOT NULL,
    event_ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    action TEXT NOT NULL,
    count INTEGER NOT NULL,
    limit_cents INTEGER NOT NULL,
    max_cost_cents INTEGER,
    time_in_force TEXT NOT NULL,
    refused INTEGER NOT NULL,
    note TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    working INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_by_id ON decisions (client_order_id);
CREATE TABLE IF NOT EXISTS venue_orders (
    client_order_id TEXT PRIMARY KEY,
    decision_seq INTEGER REFERENCES decisions (seq),
    ticker TEXT NOT NULL,
    event_ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    action TEXT NOT NULL,
    count INTEGER NOT NULL,
    limit_cents INTEGER NOT NULL,
    time_in_force TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    state TEXT NOT NULL,
    order_id TEXT,
    venue_status TEXT,
    venue_filled INTEGER NOT NULL,
    reason TEXT NOT NULL,
    cancel_pending INTEGER NOT NULL,
    sent_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('opening', 'fill', 'settlement')),
    key TEXT NOT NULL UNIQUE,
    client_order_id TEXT,
    ticker TEXT NOT NULL,
    event_ticker TEXT,
    side TEXT,
    action TEXT,
    count INTEGER,
    cost_cents INTEGER,
    fee_cents INTEGER,
    liquidity TEXT,
    result TEXT,
    ts TEXT NOT NULL,
    written_at TEXT NOT NULL,
    trade_id TEXT,
    source TEXT
);
CREATE TABLE IF NOT EXISTS reconciliations (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS used_ids (client_order_id TEXT PRIMARY KEY);
"""
#: columns schema 2 added to schema 1's ledger
LEDGER_V2 = {"trade_id": "TEXT", "source": "TEXT"}
#: created once the ledger has schema 2's columns: a fill's trade id is booked once too
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS ledger_by_trade_id ON ledger (trade_id)
    WHERE trade_id IS NOT NULL;
"""
#: the ledger's client_order_id of opening positions
CARRIED, ADOPTED = "carried", "adopted"


class JournalBusyError(KalshiLabError):
    """Another process holds the journal: a bot session is running on it."""


class JournalSchemaError(KalshiLabError):
    """The journal was written by a newer kalshi-lab, in a layout this one does not know."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").isoformat()


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level None: each statement commits on its own, multi-row writes use BEGIN
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Journal:
    """One session's journal (see the module docstring); :meth:`create` or :meth:`open` it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        #: venue order id -> the decided order's id (the session sets the executor's)
        self.decision_of: Callable[[str], str] = lambda client_order_id: client_order_id
        self._latest: dict[str, int] = {
            row["client_order_id"]: row["seq"]
            for row in conn.execute(
                "SELECT client_order_id, MAX(seq) AS seq FROM decisions GROUP BY client_order_id"
            )  # fmt: skip
        }

    # --- opening and closing ----------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, session: Mapping[str, Any]) -> Journal:
        """A new journal at ``path`` (its directory made), locked, with its ``session``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise FileExistsError(f"{path} exists already")
        journal = cls._locked(path)
        journal.set_meta("schema", SCHEMA_VERSION)
        journal.set_meta("session", dict(session))
        return journal

    @classmethod
    def open(cls, path: Path) -> Journal:
        """An existing journal, locked; JournalBusyError while a session runs on it."""
        if not path.exists():
            raise FileNotFoundError(path)
        return cls._locked(path)

    @classmethod
    def _locked(cls, path: Path) -> Journal:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusyError(
                f"{path} is held by a running kalshi-bot session: stop it first"
            ) from None
        try:
            conn = _connect(path)
            try:
                conn.executescript(SCHEMA)
                _upgrade(conn, path)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        return cls(path, conn, fd)

    def release(self) -> None:
        """Close the database and drop the lock (the journal stays as it is)."""
        if self._lock_fd < 0:
            return
        self._conn.close()
        os.close(self._lock_fd)
        self._lock_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def peek(path: Path) -> dict[str, Any]:
        """The ``meta`` of a journal, read without its lock (to find the previous session)."""
        conn = _connect(path)
        try:
            rows = conn.execute("SELECT key, value FROM meta").fetchall()
        finally:
            conn.close()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    # --- meta -------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, allow_nan=False)),
        )

    def meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    @property
    def closed(self) -> bool:
        return self.meta("closed") is not None

    # --- decisions --------------------------------------------------------------------------

    def record_decisions(self, decided: Iterable[tuple[ContractOrder, bool, str]]) -> None:
        """(order, refused by the risk limits, why) for each order of a decision, at once."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for order, refused, note in decided:
                cursor = conn.execute(
                    "INSERT INTO decisions (client_order_id, decided_at, ticker, event_ticker, "
                    "side, action, count, limit_cents, max_cost_cents, time_in_force, refused, "
                    "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        order.client_order_id,
                        _iso(order.decided_at),
                        order.ticker,
                        order.event_ticker,
                        order.side,
                        order.action,
                        order.count,
                        order.limit_cents,
                        order.max_cost_cents,
                        order.time_in_force,
                        int(refused),
                        note,
                    ),
                )
                assert cursor.lastrowid is not None
                self._latest[order.client_order_id] = cursor.lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def set_working(self, client_order_ids: Iterable[str]) -> None:
        """The decided orders the executor still works (the others are not)."""
        seqs = [self._latest[c] for c in client_order_ids if c in self._latest]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE decisions SET working = 0 WHERE working = 1")
        conn.executemany("UPDATE decisions SET working = 1 WHERE seq = ?", [(s,) for s in seqs])
        conn.execute("COMMIT")

    # --- the exchange's records (kalshi_lab.execution.lifecycle.OrderJournal) ---------------

    def record_order(self, order: VenueOrder) -> None:
        now = _now()
        self._conn.execute(
            "INSERT INTO venue_orders (client_order_id, decision_seq, ticker, event_ticker, "
            "side, action, count, limit_cents, time_in_force, decided_at, state, order_id, "
            "venue_status, venue_filled, reason, cancel_pending, sent_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (client_order_id) DO UPDATE SET state = excluded.state, "
            "order_id = excluded.order_id, venue_status = excluded.venue_status, "
            "venue_filled = excluded.venue_filled, reason = excluded.reason, "
            "cancel_pending = excluded.cancel_pending, updated_at = excluded.updated_at",
            (
                order.client_order_id,
                self._latest.get(self.decision_of(order.client_order_id)),
                order.ticker,
                order.event_ticker,
                order.side,
                order.action,
                order.count,
                order.limit_cents,
                order.time_in_force,
                _iso(order.decided_at),
                order.state,
                order.order_id,
                order.venue_status,
                order.venue_filled,
                order.reason,
                int(order.cancel_pending),
                now,
                now,
            ),
        )

    def record_not_sent(self, client_order_id: str, reason: str) -> None:
        seq = self._latest.get(self.decision_of(client_order_id))
        if seq is not None:
            self._conn.execute("UPDATE decisions SET reason = ? WHERE seq = ?", (reason, seq))

    def record_fill(
        self, fill_id: str | None, trade_id: str | None, fill: Fill, source: str
    ) -> None:
        """A fill of one of the journal's orders (none other is written), once by either id;
        ``source`` told it first (``stream`` or ``rest``)."""
        key = fill_id or trade_id
        if key is None:
            raise ValueError(f"a fill of {fill.order_id} without fill_id or trade_id")
        self._conn.execute(
            "INSERT OR IGNORE INTO ledger (kind, key, client_order_id, ticker, event_ticker, "
            "side, action, count, cost_cents, fee_cents, liquidity, ts, written_at, trade_id, "
            "source) SELECT 'fill', ?, ?, ?, event_ticker, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
            "FROM venue_orders WHERE client_order_id = ?",
            (
                key,
                fill.order_id,
                fill.ticker,
                fill.side,
                fill.action,
                fill.count,
                fill.cost_cents,
                fill.fee_cents,
                fill.liquidity,
                _iso(fill.ts),
                _now(),
                trade_id,
                source,
                fill.order_id,
            ),
        )

    def name_fill(self, trade_id: str, fill_id: str) -> None:
        """A fill booked by its ``trade_id`` (from the stream) is listed under ``fill_id``:
        its key becomes the fill id, as a listed fill's is."""
        self._conn.execute(
            "UPDATE ledger SET key = ? WHERE kind = 'fill' AND trade_id = ? AND key = trade_id",
            (fill_id, trade_id),
        )

    def record_settlement(self, settled: SettledMarket) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO ledger (kind, key, ticker, result, ts, written_at) "
            "VALUES ('settlement', ?, ?, ?, ?, ?)",
            (
                settlement_key(settled.ticker, settled.ts),
                settled.ticker,
                settled.result,
                _iso(settled.ts),
                _now(),
            ),
        )

    # --- the session's records --------------------------------------------------------------

    def record_opening(self, fill: Fill, event_ticker: str) -> None:
        """A position the session starts with, as the buy that books it at its basis
        (``fill.order_id``: CARRIED or ADOPTED)."""
        self._conn.execute(
            "INSERT INTO ledger (kind, key, client_order_id, ticker, event_ticker, side, "
            "action, count, cost_cents, fee_cents, liquidity, ts, written_at) "
            "VALUES ('opening', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"opening:{fill.ticker}",
                fill.order_id,
                fill.ticker,
                event_ticker,
                fill.side,
                fill.action,
                fill.count,
                fill.cost_cents,
                fill.fee_cents,
                fill.liquidity,
                _iso(fill.ts),
                _now(),
            ),
        )

    def record_reconciliation(self, entry: Mapping[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO reconciliations (entry) VALUES (?)", (json.dumps(dict(entry)),)
        )

    def add_used_ids(self, client_order_ids: Iterable[str]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany(
            "INSERT OR IGNORE INTO used_ids (client_order_id) VALUES (?)",
            [(c,) for c in client_order_ids],
        )
        self._conn.execute("COMMIT")

    def close(self, stopped: str, at: pd.Timestamp | None) -> None:
        """The session ended cleanly (or was finalized by the next one)."""
        self.set_meta("closed", {"stopped": stopped, "at": None if at is None else _iso(at)})

    # --- reading ----------------------------------------------------------------------------

    def decisions(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM decisions ORDER BY seq")]

    def venue_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM venue_orders ORDER BY rowid")]

    def ledger(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM ledger ORDER BY seq")]

    def reconciliations(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT entry FROM reconciliations ORDER BY seq")
        return [json.loads(r["entry"]) for r in rows]

    def venue_orders(self) -> list[VenueOrder]:
        """The venue orders as the exchange keeps them, ``listed`` from the ledger."""
        listed = {
            r["client_order_id"]: r["n"]
            for r in self._conn.execute(
                "SELECT client_order_id, SUM(count) AS n FROM ledger WHERE kind = 'fill' "
                "GROUP BY client_order_id"
            )
        }
        return [
            VenueOrder(
                client_order_id=r["client_order_id"],
                ticker=r["ticker"],
                event_ticker=r["event_ticker"],
                side=r["side"],
                action=r["action"],
                count=r["count"],
                limit_cents=r["limit_cents"],
                time_in_force=r["time_in_force"],
                decided_at=pd.Timestamp(r["decided_at"]),
                state=r["state"],
                order_id=r["order_id"],
                venue_status=r["venue_status"],
                venue_filled=r["venue_filled"],
                listed=listed.get(r["client_order_id"], 0),
                reason=r["reason"],
                cancel_pending=bool(r["cancel_pending"]),
            )
            for r in self.venue_rows()
        ]

    def fill_ids(self) -> set[str]:
        """Every id of every fill booked: fill ids and trade ids (a fill is matched by either)."""
        rows = self._conn.execute("SELECT key, trade_id FROM ledger WHERE kind = 'fill'")
        return {i for r in rows for i in (r["key"], r["trade_id"]) if i is not None}

    def settlement_keys(self) -> set[tuple[str, str]]:
        rows = self._conn.execute("SELECT ticker, ts FROM ledger WHERE kind = 'settlement'")
        return {settlement_key_tuple(r["ticker"], pd.Timestamp(r["ts"])) for r in rows}

    def used_ids(self) -> set[str]:
        """Every client_order_id sent on the account by this session or an earlier one."""
        earlier = {r[0] for r in self._conn.execute("SELECT client_order_id FROM used_ids")}
        return earlier | {r["client_order_id"] for r in self.venue_rows()}

    def replay(self) -> KalshiAccount | None:
        """The account the ledger books from ``start`` (None before the session started),
        marked at the last marks the session wrote."""
        start = self.meta("start")
        if start is None:
            return None
        account = KalshiAccount(start["initial_cash_cents"])
        for row in self.ledger():
            if row["kind"] == "settlement":
                account.settle(row["ticker"], row["result"], pd.Timestamp(row["ts"]))
                continue
            ts = pd.Timestamp(row["ts"])
            fill = Fill(
                ts=ts,
                quote_ts=ts,
                ticker=row["ticker"],
                side=row["side"],
                action=row["action"],
                count=row["count"],
                cost_cents=row["cost_cents"],
                fee_cents=row["fee_cents"],
                source="book",
                order_id=row["client_order_id"],
                liquidity=row["liquidity"],
            )
            account.apply(fill, row["event_ticker"])
        marks = {**start.get("marks", {}), **self.meta("progress", {}).get("marks", {})}
        for ticker, position in account.positions.items():
            if ticker in marks:
                position.mark_cents = marks[ticker]
        return account


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a journal of an earlier schema to this one (see the module docstring); refuse
    one of a later schema."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    version = 1 if row is None else json.loads(row["value"])
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise JournalSchemaError(
            f"{path} is a journal of schema {version!r}; this kalshi-lab reads schemas up to "
            f"{SCHEMA_VERSION}: use the kalshi-lab version that wrote it"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(ledger)")}
        for name, kind in LEDGER_V2.items():
            if name not in columns:
                conn.execute(f"ALTER TABLE ledger ADD COLUMN {name} {kind}")
        for statement in filter(str.strip, INDEXES.split(";")):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def settlement_key(ticker: str, ts: pd.Timestamp) -> str:
    return f"{ticker}@{_iso(ts)}"


def settlement_key_tuple(ticker: str, ts: pd.Timestamp) -> tuple[str, str]:
    """The key LiveKalshiExchange de-duplicates settlements by."""
    return (ticker, pd.Timestamp(ts).to_pydatetime().isoformat())
