"""The backtest's outputs: equity curve, fills, closed positions and a JSON-ready summary.

Money leaves the ledger here: the account keeps integer cents, the reports show dollars (the
unit of the data tables). Every summary value is a plain float or int, never NaN; a share that
would mean nothing (fees over a P&L that is not positive) is None.
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
    "ts",  # when it filled: the send (taker), or the quote that traded through a rest (maker)
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
    "fee",  # taker (or maker) fee, dollars
    "liquidity",  # taker | maker
    "order_id",  # the order's client_order_id (a nested child's carries its parent's)
]
#: one row per prediction, in decision order: what its market showed at its decision time
DECISION_QUOTE_COLUMNS = [
    "ticker",
    "as_of",  # the decision time
    "is_open",  # the market was open then (a closed market's quote cannot be traded)
    "quote_ts",  # the snapshot, or the END of the candle, quoting it then (NaT: no quote)
]
#: every position of a run; ``how`` is sold, settled, void, or open (still held at the end,
#: its P&L marked at the bid, closed_at NaT); pnl after all fees, dollars
POSITION_COLUMNS = ["ticker", "event_ticker", "side", "opened_at", "closed_at", "how", "pnl"]


@dataclass(frozen=True)
class BacktestResult:
    """What run_backtest returns; the backtest stage writes each part to its own file."""

    # EQUITY_COLUMNS in dollars, one row per decision time, plus a final one when fills or
    # settlements came after the last decision
    equity: pd.DataFrame
    fills: pd.DataFrame  # one row per fill: FILL_COLUMNS
    positions: pd.DataFrame  # one row per position, closed or still open: POSITION_COLUMNS
    summary: dict[str, float | int]
    # the quote each prediction's market showed at its decision: DECISION_QUOTE_COLUMNS (how
    # fresh the quotes a run acted on were: backtest.latency)
    decision_quotes: pd.DataFrame


def equity_row(ts: pd.Timestamp, account: KalshiAccount) -> dict[str, object]:
    """The account's state at ``ts`` in dollars, positions marked at their last bids."""
    return {
        "ts": ts,
        "cash": account.cash_cents / 100,
        "positions_value": account.positions_value_cents / 100,
        "equity": account.equity_cents / 100,
    }


def fills_frame(orders: list[ContractOrder]) -> pd.DataFrame:
    """Every fill of every order (the trade log), in time order."""
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
            "liquidity": f.liquidity,
            "order_id": f.order_id,
        }
        for o in orders
        for f in o.fills
    ]
    frame = pd.DataFrame(rows, columns=FILL_COLUMNS)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def positions_frame(account: KalshiAccount) -> pd.DataFrame:
    """Every position of the run: those closed, then those still open (marked at the bid)."""
    rows = [
        (c.ticker, c.event_ticker, c.side, c.opened_at, c.closed_at, c.how, c.pnl_cents / 100)
        for c in account.closed
    ]
    rows += [
        (p.ticker, p.event_ticker, p.side, p.opened_at, pd.NaT, "open", p.pnl_cents / 100)
        for p in account.positions.values()
    ]
    return pd.DataFrame(rows, columns=POSITION_COLUMNS)


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


def sortino_daily(values: pd.Series) -> float:
    """Mean daily return over the downside deviation (losing days only, around 0), x sqrt(365).

    Unlike Sharpe it does not punish upside swings, which binary payoffs are full of.
    """
    returns = values.pct_change().dropna()
    downside = math.sqrt(float((np.minimum(returns, 0.0) ** 2).mean())) if len(returns) else 0.0
    if not downside > 0:
        return 0.0
    return float(returns.mean() / downside * math.sqrt(365))


def exposure(equity: pd.DataFrame) -> tuple[float, float]:
    """Mean and peak share of equity held in positions (marked at the bid) at decision times."""
    if equity.empty:
        return 0.0, 0.0
    share = (equity["positions_value"] / equity["equity"]).where(equity["equity"] > 0, 0.0)
    return float(share.mean()), float(share.max())


def traded_signal_scores(
    fills: pd.DataFrame, predictions: pd.DataFrame, outcomes: pd.Series
) -> dict[str, float | int]:
    """Brier score and log loss of the probabilities behind the buys actually made, beside the
    market's: the price paid read as a probability, on the same buys.

    ``outcomes`` maps ticker -> 1.0 if the side YES won, 0.0 if NO won (void markets absent).
    Each buy counts once per (decision, market); the probability is that of the side bought.
    """
    buys = fills[fills["action"] == "buy"].drop_duplicates(["decided_at", "ticker"])
    traded = predictions[predictions["ticker"].isin(buys["ticker"].unique())]  # index only those
    probs = traded.set_index(["as_of", "ticker"])["prob"]
    key = pd.MultiIndex.from_arrays([buys["decided_at"], buys["ticker"]])
    yes_prob = probs.reindex(key).to_numpy()
    outcome = buys["ticker"].map(outcomes).to_numpy(dtype=float)
    is_yes = (buys["side"] == "yes").to_numpy()
    won = np.where(is_yes, outcome, 1.0 - outcome)
    model = np.where(is_yes, yes_prob, 1.0 - yes_prob)
    market = buys["price"].to_numpy(dtype=float)
    scored = ~np.isnan(won) & ~np.isnan(model)
    out: dict[str, float | int] = {"n_traded_signals_scored": int(scored.sum())}
    for name, p in (("traded_model", model), ("traded_market", market)):
        p = np.clip(p[scored], 1e-6, 1 - 1e-6)
        y = won[scored]
        out[f"{name}_brier"] = float(np.mean((p - y) ** 2)) if len(y) else 0.0
        out[f"{name}_log_loss"] = (
            float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else 0.0
        )
    return out


def _by_source(fills: list[Fill]) -> dict[str, int]:
    """Fills and contracts per quote source: how much of a run the candle fallback priced."""
    out = {}
    for source in SOURCES:
        mine = [f for f in fills if f.source == source]
        out[f"n_fills_{source}"] = len(mine)
        out[f"n_contracts_{source}"] = int(sum(f.count for f in mine))
    return out


def recorded_books(orderbook: pd.DataFrame) -> pd.DataFrame:
    """The snapshots of ``orderbook`` rebuilt from a recorded stream (``kalshi-lab record``;
    the table's ``source`` recorded), once each: columns ticker (str) and snapshot_ts. A table
    without the column (one built before it) has none. A few rows (none in simulated data):
    what :func:`recorded_book_fills` needs of the book once its quotes are indexed."""
    if "source" not in orderbook.columns:
        return pd.DataFrame({"ticker": [], "snapshot_ts": pd.to_datetime([], utc=True)})
    recorded = orderbook.loc[orderbook["source"] == "recorded", ["ticker", "snapshot_ts"]]
    return recorded.astype({"ticker": str}).drop_duplicates(ignore_index=True)


def recorded_book_fills(fills: pd.DataFrame, recorded: pd.DataFrame) -> dict[str, int]:
    """Of the fills the order book quoted, those quoted by a book rebuilt from a recorded
    stream (``recorded``: :func:`recorded_books`) rather than a fetched snapshot: how much of a
    run real recorded depth priced."""
    book = fills[fills["source"] == "book"]
    quoted = pd.MultiIndex.from_arrays([book["ticker"].astype(str), book["quote_ts"]])
    book = book[quoted.isin(pd.MultiIndex.from_frame(recorded))]
    return {
        "n_fills_recorded_book": len(book),
        "n_contracts_recorded_book": int(book["count"].sum()),
    }


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
    traded_value = sum(f.cost_cents for f in fills) / 100
    fees = account.fees_paid_cents / 100
    gross = final - initial + fees  # P&L before fees
    mean_exposure, peak_exposure = exposure(equity)
    return {
        "initial_cash": initial,
        "final_equity": final,
        "total_return": final / initial - 1.0,
        "max_drawdown": max_drawdown(daily),
        "sharpe_daily": sharpe_daily(daily),
        "sortino_daily": sortino_daily(daily),
        "n_orders": len(orders),
        "n_trades": len(traded),
        "n_contracts": int(sum(o.filled for o in traded)),
        **_by_source(fills),
        "fees_paid": fees,
        "gross_pnl": gross,
        # fees over the P&L before fees; None when that P&L is not positive (a share of a loss
        # reads as nonsense: "fees 100 % of the P&L")
        "fee_share_of_gross_pnl": fees / gross if gross > 0 else None,
        "turnover": traded_value / initial,  # dollars bought and sold per dollar of capital
        "mean_exposure": mean_exposure,
        "peak_exposure": peak_exposure,
        "realized_pnl": account.realized_pnl_cents / 100,
        "n_closed": len(account.closed),
        "hit_rate": float((pnl > 0).mean()) if len(pnl) else 0.0,
        "n_settled": sum(c.how in ("settled", "void") for c in account.closed),
        "n_open_positions": len(account.positions),
        # positions never settled in the data, valued at their last bid: a P&L not yet real
        "unsettled_pnl": account.unrealized_pnl_cents / 100,
        "unsettled_share_of_pnl": _unsettled_share(account),
    }


def _unsettled_share(account: KalshiAccount) -> float:
    """Share of the positions' absolute P&L (after fees) that sits in positions still open at
    the end, marked at their bids: 0 when every position was settled or sold."""
    held = sum(abs(p.pnl_cents) for p in account.positions.values())
    total = held + sum(abs(c.pnl_cents) for c in account.closed)
    return held / total if total else 0.0
