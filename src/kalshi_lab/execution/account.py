"""Cash and positions in integer cents: fills, settlement and marking to market.

One position per market and one side per position: Kalshi nets YES against NO, and our
strategies never hold both. Cost basis is what was paid for the contracts still held, the buy
fees kept beside it; selling part of a position releases both pro rata. A position is marked at
the BID of its own side (what selling it would fetch now), never at the mid or at cost, so
drawdowns show before settlement.

The ledger identity holds after every fill and settlement, exactly (tested):
``initial cash + realized P&L (after fees) == cash + basis (cost + buy fees) of open positions``,
hence ``equity == initial cash + realized + unrealized P&L``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

from kalshi_lab.execution.decision import Fill

logger = logging.getLogger(__name__)

RESULTS = ("yes", "no", "void")


class OverdraftError(RuntimeError):
    """A fill would make cash negative: the executor must size orders to the cash it has."""


@dataclass
class ContractPosition:
    """Contracts of one side of one market."""

    ticker: str
    event_ticker: str
    side: str
    opened_at: pd.Timestamp
    contracts: int = 0
    cost_cents: int = 0  # price paid for the contracts held, fees excluded
    fees_cents: int = 0  # buy fees of the contracts held
    mark_cents: int = 0  # last mark per contract: the side's bid, the buy price until quoted
    realized_cents: int = 0  # P&L after fees of contracts already sold

    @property
    def basis_cents(self) -> int:
        """Money put into the contracts held: cost + buy fees (what the caps limit)."""
        return self.cost_cents + self.fees_cents

    @property
    def value_cents(self) -> int:
        """Marked value: contracts x the last mark."""
        return self.contracts * self.mark_cents

    @property
    def avg_cost_cents(self) -> float:
        """Average price paid per contract held, fees excluded (0 when none are held)."""
        return self.cost_cents / self.contracts if self.contracts else 0.0

    @property
    def unrealized_cents(self) -> int:
        """What selling at the marks would make over the basis: value - (cost + buy fees)."""
        return self.value_cents - self.basis_cents

    @property
    def pnl_cents(self) -> int:
        """P&L after fees so far: realized on contracts sold, unrealized on those held."""
        return self.realized_cents + self.unrealized_cents


@dataclass(frozen=True)
class Settlement:
    """One market paid out to a held position: the exchange's settlement, as booked."""

    ticker: str
    side: str
    result: str  # yes | no | void
    contracts: int
    payout_cents: int
    ts: pd.Timestamp


@dataclass(frozen=True)
class ClosedPosition:
    """A position that went to zero contracts, with its whole P&L after all fees."""

    ticker: str
    event_ticker: str
    side: str
    opened_at: pd.Timestamp
    closed_at: pd.Timestamp
    how: str  # sold | settled | void
    pnl_cents: int


class KalshiAccount:
    """Integer-cent ledger: cash never goes negative, fees and realized P&L accumulate."""

    def __init__(self, cash_cents: int) -> None:
        if cash_cents < 0:
            raise ValueError(f"initial cash must be >= 0, got {cash_cents}")
        self.cash_cents = cash_cents
        self.positions: dict[str, ContractPosition] = {}
        self.fees_paid_cents = 0
        self.realized_pnl_cents = 0
        self.initial_cash_cents = cash_cents
        self.closed: list[ClosedPosition] = []
        self.settlements: list[Settlement] = []

    # --- valuation ------------------------------------------------------------------------

    @property
    def positions_value_cents(self) -> int:
        return sum(p.value_cents for p in self.positions.values())

    @property
    def equity_cents(self) -> int:
        """Cash plus positions marked at their bids."""
        return self.cash_cents + self.positions_value_cents

    @property
    def unrealized_pnl_cents(self) -> int:
        return sum(p.unrealized_cents for p in self.positions.values())

    @property
    def open_basis_cents(self) -> int:
        """Cost and buy fees of everything held: the money the positions tie up."""
        return sum(p.basis_cents for p in self.positions.values())

    def mark(self, quotes: pd.DataFrame) -> None:
        """Mark each held position at its side's bid.

        ``quotes`` is indexed by ticker with ``yes_bid`` and ``no_bid`` in cents (NaN: no bid);
        a position without a quote or without a bid on its side keeps its last mark.
        """
        if not self.positions:
            return
        # one pass over the quoted tickers in Python (a set lookup each) costs less than
        # pandas' Index.get_indexer for the few hundred markets of a step
        positions = self.positions
        rows = [row for row, t in enumerate(quotes.index.tolist()) if t in positions]
        if not rows:
            return
        tickers = quotes.index[rows].tolist()
        yes = quotes["yes_bid"].to_numpy(dtype=float)[rows].tolist()
        no = quotes["no_bid"].to_numpy(dtype=float)[rows].tolist()
        for ticker, yes_bid, no_bid in zip(tickers, yes, no, strict=True):
            pos = positions[ticker]
            bid = yes_bid if pos.side == "yes" else no_bid
            if not math.isnan(bid):
                pos.mark_cents = int(bid)

    # --- changes --------------------------------------------------------------------------

    def apply(self, fill: Fill, event_ticker: str) -> None:
        """Book one fill: cash, fees, position; raises rather than overdraw or go short."""
        delta = fill.cash_delta_cents
        if self.cash_cents + delta < 0:
            raise OverdraftError(
                f"{fill.ticker}: fill costs {-delta} cents with {self.cash_cents} in cash"
            )
        pos = self.positions.get(fill.ticker)
        if fill.action == "buy":
            if pos is None:
                pos = ContractPosition(
                    fill.ticker,
                    event_ticker,
                    fill.side,
                    opened_at=fill.ts,
                    mark_cents=round(fill.avg_price_cents),
                )
                self.positions[fill.ticker] = pos
            elif pos.side != fill.side:
                raise ValueError(f"{fill.ticker}: buying {fill.side} while holding {pos.side}")
            pos.contracts += fill.count
            pos.cost_cents += fill.cost_cents
            pos.fees_cents += fill.fee_cents
        else:
            if pos is None or pos.side != fill.side or pos.contracts < fill.count:
                raise ValueError(f"{fill.ticker}: selling {fill.count} {fill.side} not held")
            cost = pos.cost_cents * fill.count // pos.contracts
            fees = pos.fees_cents * fill.count // pos.contracts
            pnl = fill.cost_cents - fill.fee_cents - cost - fees
            pos.contracts -= fill.count
            pos.cost_cents -= cost
            pos.fees_cents -= fees
            pos.realized_cents += pnl
            self.realized_pnl_cents += pnl
            if pos.contracts == 0:
                self._close(pos, fill.ts, "sold")
        self.cash_cents += delta
        self.fees_paid_cents += fill.fee_cents

    def settle(self, ticker: str, result: str, ts: pd.Timestamp) -> bool:
        """Pay a held position out at settlement; False when nothing is held.

        yes/no: 100 cents per contract of the winning side, 0 to the other; void: the price
        paid comes back (fees do not). Settlement itself is free.
        """
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
        pos = self.positions.get(ticker)
        if pos is None:
            return False
        if result == "void":
            payout = pos.cost_cents
        else:
            payout = 100 * pos.contracts if pos.side == result else 0
        pnl = payout - pos.basis_cents
        pos.realized_cents += pnl
        self.realized_pnl_cents += pnl
        self.cash_cents += payout
        self.settlements.append(Settlement(ticker, pos.side, result, pos.contracts, payout, ts))
        pos.contracts = pos.cost_cents = pos.fees_cents = 0
        self._close(pos, ts, "void" if result == "void" else "settled")
        logger.debug("settled %s %s: %s, P&L %d cents", ticker, pos.side, result, pnl)
        return True

    def _close(self, pos: ContractPosition, ts: pd.Timestamp, how: str) -> None:
        del self.positions[pos.ticker]
        self.closed.append(
            ClosedPosition(
                pos.ticker, pos.event_ticker, pos.side, pos.opened_at, ts, how, pos.realized_cents
            )
        )
