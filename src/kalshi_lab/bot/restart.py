"""A new session continues the previous one on the same account, through its journal.

The previous session is the latest one under ``--reports`` whose journal traded the same base
URL and got as far as its start (a session refused at its start placed nothing). Before the new
session trades, :func:`conclude_previous`:

1. refuses to go on if that session still runs (its journal is locked);
2. if it was killed (its journal was never closed), writes its report from what it journaled,
   so a report exists even if the venue does not answer now, and removes the temporary
   directory its last cycle may have left;
3. brings every order it journaled to its outcome at the venue: an order whose POST's answer
   was lost (or whose intent was journaled before a kill) is looked up by its
   ``client_order_id``, a resting one is cancelled, the fills the venue lists of each are
   journaled by their fill id (a fill journaled before is never booked again); its markets'
   settlements since it started are journaled too. An order still without a known outcome
   stops the new session (SessionError: start again when the venue answers);
4. closes the journal (a killed session's with that said) and rewrites its report;
5. hands over what it held (the replay of its ledger, at cost and fees) and every
   client_order_id sent on the account so far, which is never sent again.

The new session then starts from the venue's balance and the positions carried over; a
position the venue holds that the carried ones do not explain (traded elsewhere, or by a
session whose journal is gone) stops it unless ``--adopt-positions`` takes it over at its cost.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kalshi_lab.bot import report as rep
from kalshi_lab.bot.journal import JOURNAL, Journal, JournalBusyError
from kalshi_lab.bot.signals import SCRATCH_PREFIX
from kalshi_lab.client import KalshiClient
from kalshi_lab.errors import KalshiLabError
from kalshi_lab.execution.account import ContractPosition
from kalshi_lab.execution.live import LiveKalshiExchange

logger = logging.getLogger(__name__)


class RestartError(KalshiLabError):
    """The previous session cannot be concluded now; the message says why."""


@dataclass
class Carried:
    """What a session takes over from the one before it on the account."""

    source: str | None = None  # the previous session's directory name
    positions: dict[str, ContractPosition] = field(default_factory=dict)
    used_ids: set[str] = field(default_factory=set)


def find_previous(root: Path, base_url: str) -> Path | None:
    """The journal of the latest session under ``root`` that traded ``base_url`` and started."""
    found: list[tuple[str, str, Path]] = []
    for path in Path(root).glob(f"*/{JOURNAL}"):
        try:
            meta = Journal.peek(path)
        except sqlite3.Error as exc:
            logger.warning("%s cannot be read (%s): not continued from", path, exc)
            continue
        session = meta.get("session") or {}
        if session.get("base_url") == base_url and "start" in meta:
            found.append((session.get("started_at") or "", path.parent.name, path))
    return max(found)[2] if found else None


def remove_scratch(folder: Path) -> list[Path]:
    """The temporary directories a killed session's cycles left in its folder, removed."""
    left = sorted(folder.glob(f"{SCRATCH_PREFIX}*"))
    for path in left:
        shutil.rmtree(path, ignore_errors=True)
    return left


def conclude_previous(
    path: Path,
    client: KalshiClient,
    now: pd.Timestamp,
    successor: str,
    *,
    lookup_attempts: int,
    lookup_backoff_s: float,
) -> Carried:
    """Steps 1-5 of the module docstring for the journal at ``path``; ``successor`` names the
    new session's directory in what the concluded one says."""
    try:
        journal = Journal.open(path)
    except JournalBusyError as exc:
        raise RestartError(f"the previous session cannot be continued: {exc}") from None
    with journal:
        killed = not journal.closed
        if killed:
            rep.write_from_journal(journal)
            for left in remove_scratch(path.parent):
                logger.info("removed %s, left by the killed session", left)
        before = (journal.ledger(), journal.venue_rows())
        session = journal.meta("session")
        venue = LiveKalshiExchange(
            client,
            since=pd.Timestamp(session["venue_started_at"]),
            journal=journal,
            lookup_attempts=lookup_attempts,
            lookup_backoff_s=lookup_backoff_s,
        )
        venue.restore(
            journal.venue_orders(),
            journal.fill_ids(),
            journal.settlement_keys(),
            journal.used_ids(),
        )
        venue.conclude(now, cancel_resting=True)
        venue.settlements(now)
        unresolved = [venue.orders[c].describe() for c in venue.unresolved()]
        if unresolved:
            raise RestartError(
                f"the previous session ({path.parent.name}) has {len(unresolved)} order(s) "
                f"whose outcome the venue does not tell yet ({'; '.join(unresolved)}): start "
                "again when it answers"
            )
        journal.set_working(())
        if killed:
            journal.close(f"{rep.KILLED}; concluded by the next session, {successor}", now)
        if killed or (journal.ledger(), journal.venue_rows()) != before:
            rep.write_from_journal(journal)
        account = journal.replay()
        logger.info(
            "continuing %s%s: %s",
            path.parent.name,
            " (it was killed: its report is rebuilt)" if killed else "",
            ", ".join(
                f"{t} {p.contracts} {p.side.upper()}"
                for t, p in sorted(({} if account is None else account.positions).items())
            )
            or "no position",
        )
        return Carried(
            source=path.parent.name,
            positions={} if account is None else dict(account.positions),
            used_ids=journal.used_ids(),
        )
