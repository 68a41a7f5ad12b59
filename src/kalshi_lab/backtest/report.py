"""The backtest's outputs: equity curve, fills, closed positions and a JSON-ready summary.

Money leaves the ledger here: the account keeps integer cents, the reports show dollars (the
unit of the data tables). Every summary value is a plain float or int, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import SOURCES, ContractOrder, Fill

EQUITY_COLUMNS = ["ts", "cash", "positions_value", "equity"]
FILL_COLUMNS = [
    "ts",  # when the order (or TWAP child) was sent
    "quote_ts",  # the orderbook snapshot, or the END of the candle, it was filled against (<= ts)
    "source",  # book | candle: which of the two quoted it
    "decided_at",  # the decision (prediction as_of) it came from
    "ticker",
    "event_ticker",
    "side",
    "action",
    "count",  # contracts
    "price",  # average price per contract, dollars
    "cost",  # count x price, dollars
    "fee",  # taker fee, dollars
]
CLOSED_COLUMNS = ["ticker", "event_ticker", "side", "opened_at", "closed_at", "how", "pnl"]


@dataclass(frozen=True)
class BacktestResult:
    """What run_backtest returns; the backtest stage writes each part to its own file."""

    # EQUITY_COLUMNS in dollars, one row per decision time, plus a final one when fills or
    # settlements came after the last decision
    equity: pd.DataFrame
    fills: pd.DataFrame  # one row per fill: FILL_COLUMNS
    closed: pd.DataFrame  # one row per position sold out or settled: CLOSED_COLUMNS
    summary: dict[str, float | int]


def equity_row(ts: pd.Timestamp, account: KalshiAccount) -> dict[str, object]:
    """The account's state at ``ts`` in dollars, positions marked at their last bids."""
    return {
        "ts": ts,
        "cash": account.cash_cents / 100,
        "positions_value": account.positions_value_cents / 100,
        "equity": account.equity_cents / 100,
    }


def fills_frame(orders: list[ContractOrder]) -> pd.DataFrame:
    """Every fill of every order, by send time."""
    rows = [
        {
            "ts": f.ts,
            "quote_ts": f.quote_ts,
            "source": f.source,
            "decided_at": o.decided_at,
            "ticker": f.ticker,
            "event_ticker": o.event_ticker,
            "side": f.side,
            "action": f.action,
            "count": f.count,
            "price": f.avg_price_cents / 100,
            "cost": f.cost_cents / 100,
            "fee": f.fee_cents / 100,
        }
        for o in orders
        for f in o.fills
    ]
    frame = pd.DataFrame(rows, columns=FILL_COLUMNS)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def closed_frame(account: KalshiAccount) -> pd.DataFrame:
    rows = [
        {
            "ticker": c.ticker,
            "event_ticker": c.event_ticker,
            "side": c.side,
            "opened_at": c.opened_at,
            "closed_at": c.closed_at,
            "how": c.how,
            "pnl": c.pnl_cents / 100,
        }
        for c in account.closed
    ]
    return pd.DataFrame(rows, columns=CLOSED_COLUMNS)


def _daily_equity(equity: pd.DataFrame, initial: float) -> pd.Series:
    """Equity at the end of each UTC day, starting from the initial cash the day before."""
    series = equity.set_index("ts")["equity"]
    daily = series.resample("1D").last().ffill()
    start = pd.Series([initial], index=[daily.index[0] - pd.Timedelta(days=1)])
    return pd.concat([start, daily])


def max_drawdown(values: pd.Series) -> float:
    """Largest fall from a running peak, as a positive fraction of that peak."""
    peak = values.cummax()
    return float(((peak - values) / peak).max())


def sharpe_daily(values: pd.Series) -> float:
    """Mean over std of daily returns, annualised by sqrt(365) (markets trade every day)."""
    returns = values.pct_change().dropna()
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    if not std > 0:
        return 0.0
    return float(returns.mean() / std * math.sqrt(365))


def _by_source(fills: list[Fill]) -> dict[str, int]:
    """Fills and contracts per quote source: how much of a run the candle fallback priced."""
    out = {}
    for source in SOURCES:
        mine = [f for f in fills if f.source == source]
        out[f"n_fills_{source}"] = len(mine)
        out[f"n_contracts_{source}"] = int(sum(f.count for f in mine))
    return out


def summarize(
    equity: pd.DataFrame,
    orders: list[ContractOrder],
    account: KalshiAccount,
    initial_cash_cents: int,
) -> dict[str, float | int]:
    """Headline numbers of a run: returns, risk, trading activity and closed-position hit rate."""
    initial = initial_cash_cents / 100
    final = float(equity["equity"].iloc[-1]) if len(equity) else initial
    daily = _daily_equity(equity, initial) if len(equity) else pd.Series([initial])
    traded = [o for o in orders if o.filled > 0]
    fills = [f for o in traded for f in o.fills]
    pnl = np.array([c.pnl_cents for c in account.closed])
    return {
        "initial_cash": initial,
        "final_equity": final,
        "total_return": final / initial - 1.0,
        "max_drawdown": max_drawdown(daily),
        "sharpe_daily": sharpe_daily(daily),
        "n_orders": len(orders),
        "n_trades": len(traded),
        "n_contracts": int(sum(o.filled for o in traded)),
        **_by_source(fills),
        "fees_paid": account.fees_paid_cents / 100,
        "realized_pnl": account.realized_pnl_cents / 100,
        "n_closed": len(account.closed),
        "hit_rate": float((pnl > 0).mean()) if len(pnl) else 0.0,
        "n_settled": sum(c.how in ("settled", "void") for c in account.closed),
        "n_open_positions": len(account.positions),
    }
