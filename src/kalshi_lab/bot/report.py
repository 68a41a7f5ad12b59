"""The session report: ``reports/bot/<mode>-<UTC start>/`` holds ``report.json`` (what the
session did, in dollars), ``trades.parquet`` (one row per fill, the backtest's trade log columns)
and ``orders.parquet`` (one row per order decided, with what became of it).

The report names the base URL and nothing else about the connection: no key id, no key.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder
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
    "status",  # filled | partial | unfilled | open (still worked) | refused
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


def orders_frame(
    orders: list[ContractOrder], refused: list[ContractOrder], notes: dict[int, str]
) -> pd.DataFrame:
    """Every order decided: those the executor worked, then those the risk limits refused."""
    rows = [
        {
            "decided_at": o.decided_at,
            "ticker": o.ticker,
            "event_ticker": o.event_ticker,
            "side": o.side,
            "action": o.action,
            "count": o.count,
            "limit": o.limit_cents / 100,
            "max_cost": math.nan if o.max_cost_cents is None else o.max_cost_cents / 100,
            "time_in_force": o.time_in_force,
            "client_order_id": o.client_order_id,
            "status": "refused" if is_refused else o.status,
            "filled": o.filled,
            "cost": o.cost_cents / 100,
            "fee": o.fee_cents / 100,
            "note": notes.get(id(o), ""),
        }
        for group, is_refused in ((orders, False), (refused, True))
        for o in group
    ]
    frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    return frame.sort_values("decided_at", kind="stable").reset_index(drop=True)


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
