"""The session report: ``reports/bot/<mode>-<UTC start>/`` holds ``report.json`` (what the
session did, in dollars), ``trades.parquet`` (one row per fill, the backtest's trade log columns)
and ``orders.parquet`` (one row per order decided, with what became of it).

In paper and live mode all three are built from the session's journal
(:mod:`kalshi_lab.bot.journal`) by :func:`from_journal`, the same way however the session
ended: at a clean exit, after an error, or, after the bot was killed, by the next start (which
first brings the killed session's orders to their outcome at the venue). The end account is the
replay of the journal's ledger, marked at the last marks the session wrote.

The report names the base URL and nothing else about the connection: no key id, no key.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_lab.backtest.report import FILL_COLUMNS
from kalshi_lab.bot.journal import JOURNAL, Journal
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.lifecycle import (
    ABSENT,
    CONFLICT,
    INTENT,
    PLACED,
    REFUSED,
    UNKNOWN,
)
from kalshi_lab.io import StagedOutputs

REPORT = "report.json"
TRADES = "trades.parquet"
ORDERS = "orders.parquet"
ORDER_COLUMNS = [
    "decided_at",
    "ticker",
    "event_ticker",
    "side",
    "action",
    "count",
    "limit",  # dollars
    "max_cost",  # dollars, NaN without a budget
    "time_in_force",
    "client_order_id",
    "status",  # filled | partial | unfilled | open (still worked) | refused | unknown (outcome)
    "filled",
    "cost",
    "fee",
    "note",  # why it was decided, or why the risk limits refused it
]


def utc_stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(ts: pd.Timestamp | dt.datetime | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).tz_convert("UTC").isoformat()


def new_report_dir(root: Path, mode: str, started: dt.datetime) -> Path:
    """``root/<mode>-<UTC start>``, with ``-2``, ``-3``, ... if a session started the same second."""
    base = Path(root) / f"{mode}-{utc_stamp(started)}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def dollars(cents: int) -> float:
    return cents / 100


def account_state(account: KalshiAccount, set_aside_cents: int = 0) -> dict[str, Any]:
    """Cash, positions (marked at their bids) and equity, in dollars."""
    return {
        "cash": dollars(account.cash_cents),
        "positions": {
            t: {
                "side": p.side,
                "contracts": p.contracts,
                "cost": dollars(p.cost_cents),
                "fees": dollars(p.fees_cents),
                "mark": dollars(p.mark_cents),
            }
            for t, p in sorted(account.positions.items())
        },
        "positions_value": dollars(account.positions_value_cents),
        "equity": dollars(account.equity_cents),
        "set_aside": dollars(set_aside_cents),
    }


#: why a session that did not close its journal stopped
KILLED = "killed: the session ended without closing its journal"


def _by_decision(journal: Journal) -> dict[int | None, list[dict[str, Any]]]:
    out: dict[int | None, list[dict[str, Any]]] = {}
    for row in journal.venue_rows():
        out.setdefault(row["decision_seq"], []).append(row)
    return out


def _status(decision: dict[str, Any], venues: list[dict[str, Any]], filled: int) -> str:
    """What became of a decided order, from what the venue told of its sends."""
    if decision["refused"]:
        return "refused"
    if any(v["state"] in (UNKNOWN, INTENT) for v in venues):
        return "unknown"
    if decision["working"] or any(
        v["state"] == PLACED and v["venue_status"] == "resting" for v in venues
    ):
        return "open"
    if filled == decision["count"]:
        return "filled"
    return "partial" if filled else "unfilled"


def orders_frame(journal: Journal) -> pd.DataFrame:
    """Every order decided, in decision order, with its fills summed over its sends."""
    venues = _by_decision(journal)
    booked: dict[str, list[int]] = {}  # client_order_id -> [contracts, cost, fee]
    for row in journal.ledger():
        if row["kind"] == "fill":
            totals = booked.setdefault(row["client_order_id"], [0, 0, 0])
            totals[0] += row["count"]
            totals[1] += row["cost_cents"]
            totals[2] += row["fee_cents"]
    rows = []
    for d in journal.decisions():
        sends = venues.get(d["seq"], [])
        filled, cost, fee = (
            sum(booked.get(v["client_order_id"], [0, 0, 0])[i] for v in sends) for i in range(3)
        )
        rows.append(
            {
                "decided_at": d["decided_at"],
                "ticker": d["ticker"],
                "event_ticker": d["event_ticker"],
                "side": d["side"],
                "action": d["action"],
                "count": d["count"],
                "limit": d["limit_cents"] / 100,
                "max_cost": math.nan if d["max_cost_cents"] is None else d["max_cost_cents"] / 100,
                "time_in_force": d["time_in_force"],
                "client_order_id": d["client_order_id"],
                "status": _status(d, sends, filled),
                "filled": filled,
                "cost": cost / 100,
                "fee": fee / 100,
                "note": d["note"],
            }
        )
    frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    return frame.sort_values("decided_at", kind="stable").reset_index(drop=True)


def trades_frame(journal: Journal) -> pd.DataFrame:
    """Every fill of the session's orders (the trade log), in time order."""
    venues = {v["client_order_id"]: v for v in journal.venue_rows()}
    decided = {d["seq"]: d["decided_at"] for d in journal.decisions()}
    rows = []
    for row in journal.ledger():
        if row["kind"] != "fill":
            continue
        venue = venues[row["client_order_id"]]
        rows.append(
            {
                "ts": row["ts"],
                "quote_ts": row["ts"],
                "source": "book",
                "decided_at": decided.get(venue["decision_seq"], venue["decided_at"]),
                "ticker": row["ticker"],
                "event_ticker": row["event_ticker"],
                "side": row["side"],
                "action": row["action"],
                "count": row["count"],
                "price": row["cost_cents"] / row["count"] / 100,
                "cost": row["cost_cents"] / 100,
                "fee": row["fee_cents"] / 100,
                "liquidity": row["liquidity"],
                "order_id": row["client_order_id"],
            }
        )
    frame = pd.DataFrame(rows, columns=FILL_COLUMNS)
    for column in ("ts", "quote_ts", "decided_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def order_counts(journal: Journal) -> dict[str, Any]:
    """What became of the decided orders and of their sends."""
    venues = _by_decision(journal)
    decisions = journal.decisions()
    sends = journal.venue_rows()
    states = Counter(v["state"] for v in sends)
    kept = [d for d in decisions if not d["refused"]]
    unsent = [d for d in kept if not venues.get(d["seq"]) and not d["working"]]
    frame = orders_frame(journal)
    reasons = Counter(d["reason"] for d in unsent if d["reason"])
    reasons.update(v["reason"] for v in sends if v["reason"])
    return {
        "decided": len(decisions),
        "refused_by_risk": len(decisions) - len(kept),
        "sent": len(sends),
        "placed": states[PLACED],
        "refused_by_exchange": states[REFUSED],
        "unknown": states[UNKNOWN] + states[INTENT],
        "absent": states[ABSENT],
        "conflict": states[CONFLICT],
        "not_sent": sum(d["reason"] != "dry run" for d in unsent),
        "dry_run_not_sent": sum(d["reason"] == "dry run" for d in unsent),
        "filled": int((frame["filled"] > 0).sum()),
        "still_working": int((frame["status"] == "open").sum()),
        "unfilled_reasons": dict(reasons),
    }


def from_journal(journal: Journal) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """(report.json's dict, trades, orders) of the session the journal holds."""
    session = journal.meta("session")
    progress = journal.meta("progress", {})
    start = journal.meta("start")
    closed = journal.meta("closed")
    trades = trades_frame(journal)
    account = journal.replay()
    set_aside = 0 if start is None else start["set_aside_cents"]
    report: dict[str, Any] = {
        **session,
        "venue_last_cycle_at": progress.get("venue_last_cycle_at"),
        "stopped": closed["stopped"] if closed else KILLED,
        "cycles": progress.get("cycles", 0),
        "cycles_skipped": progress.get("cycles_skipped", 0),
        "reconcile": journal.reconciliations(),
        "journal": JOURNAL,
        "carried_from": journal.meta("carried_from"),
        "adopted_positions": [] if start is None else start["adopted"],
        "orders": {
            **order_counts(journal),
            "refused_by_risk_reasons": progress.get("refused_by_risk_reasons", {}),
            "cut_by_risk": progress.get("cut_by_risk", {}),
        },
        "fills": len(trades),
        # what told each fill first: the stream or a REST listing (unrecorded: schema 1)
        "fills_first_told_by": dict(
            Counter(r["source"] or "unrecorded" for r in journal.ledger() if r["kind"] == "fill")
        ),
        "contracts": int(trades["count"].sum()),
        "fees": round(float(trades["fee"].sum()), 2),
        "start": None if start is None else start["state"],
        "end": None if account is None else account_state(account, set_aside),
    }
    return report, trades, orders_frame(journal)


def write_from_journal(journal: Journal) -> tuple[dict[str, Any], Path]:
    """Write the session's report files beside its journal; (report, report.json's path)."""
    report, trades, orders = from_journal(journal)
    return report, write_report(journal.path.parent, report, trades, orders)


def write_report(
    out_dir: Path, report: dict[str, Any], trades: pd.DataFrame, orders: pd.DataFrame
) -> Path:
    """Write the three files together (all or none); returns the report's path."""
    with StagedOutputs() as out:
        out.write_json(out_dir / REPORT, report)
        out.write_parquet(out_dir / TRADES, trades)
        out.write_parquet(out_dir / ORDERS, orders)
    return out_dir / REPORT


def summary_lines(report: dict[str, Any], path: Path) -> list[str]:
    """A few lines for the terminal."""
    mode = report["mode"]
    if mode == "backtest":
        s = report["summary"]
        return [
            f"kalshi-bot backtest: {report['decisions']} decision times, {s['n_orders']} orders "
            f"({s['n_trades']} filled, {s['n_contracts']} contracts), fees ${s['fees_paid']:,.2f}",
            f"equity ${s['initial_cash']:,.2f} -> ${s['final_equity']:,.2f} "
            f"({100 * s['total_return']:+.2f} %), max drawdown {100 * s['max_drawdown']:.2f} %",
            f"report: {path}",
        ]
    o, start, end = report["orders"], report["start"], report["end"]
    checks = report["reconcile"]
    failed = [c for c in checks if not c["ok"]]
    lines = [
        f"kalshi-bot {mode}{' (dry run)' if report['dry_run'] else ''} at {report['base_url']}: "
        f"{report['cycles']} cycles, {o['decided']} orders decided, {o['refused_by_risk']} "
        f"refused by risk, {o['sent']} sent, {o['filled']} filled; {report['fills']} fills, "
        f"fees ${report['fees']:,.2f}; stopped: {report['stopped']}",
    ]
    if start is not None and end is not None:
        lines.append(
            f"equity ${start['equity']:,.2f} -> ${end['equity']:,.2f} (cash "
            f"${start['cash']:,.2f} -> ${end['cash']:,.2f}, {len(end['positions'])} positions)"
        )
    lines.append(
        f"reconciled {len(checks) - len(failed)} of {len(checks)} times"
        + (f"; FAILED: {failed[0]['message']}" if failed else "")
    )
    return [*lines, f"report: {path}"]
