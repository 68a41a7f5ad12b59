"""Reconciliation: the bot's ledger must say what the venue says.

The bot books every fill and settlement the exchange reports, so its positions (ticker ->
side and contracts) and its cash equal the venue's own. ``reconcile`` checks that at the
bot's start, after every fill event of a cycle, at every exit, and at the end of every
backtest (the simulated exchange keeps its own venue ledger); any difference stops the caller
with one message that names every market that differs, ours against the exchange's, and the
cash difference. Markets ``skip``-ped are not compared: the bot passes those of orders whose
outcome the venue has not told in full yet (kalshi_lab.execution.lifecycle), which trade no
new order until it has; cash is then not compared either.

With Kalshi, ``balance_cents`` is the AVAILABLE balance, which resting buy orders reduce:
compare cash (``check_cash``) only when no buy order rests.
"""

from __future__ import annotations

from collections.abc import Collection

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.exchange import BaseKalshiExchange


class ReconciliationError(RuntimeError):
    """The account and the exchange disagree; the message names every difference."""


def _held(position: tuple[str, int] | None) -> str:
    return "nothing" if position is None else f"{position[1]} {position[0].upper()}"


def reconcile(
    account: KalshiAccount,
    exchange: BaseKalshiExchange,
    check_cash: bool = True,
    skip: Collection[str] = (),
) -> None:
    """Raise ReconciliationError unless positions (and, if ``check_cash``, cash) agree;
    markets in ``skip`` are not compared."""
    ours = {
        t: (p.side, p.contracts)
        for t, p in account.positions.items()
        if p.contracts and t not in skip
    }
    theirs = {t: held for t, held in exchange.positions().items() if held[1] and t not in skip}
    problems = [
        f"{ticker}: ours {_held(ours.get(ticker))}, exchange {_held(theirs.get(ticker))}"
        for ticker in sorted(ours.keys() | theirs.keys())
        if ours.get(ticker) != theirs.get(ticker)
    ]
    if check_cash:
        balance = exchange.balance_cents()
        if balance != account.cash_cents:
            problems.append(
                f"cash: ours {account.cash_cents} cents, exchange {balance} cents "
                f"(ours {account.cash_cents - balance:+d} cents)"
            )
    if problems:
        raise ReconciliationError(
            f"account and exchange disagree on {len(problems)} item(s): " + "; ".join(problems)
        )
