"""Strategies: model probabilities at as_of -> a PredictionMarketDecision of limit orders.

A strategy sees, at decision time ``ts`` (a prediction's as_of), the predictions made at ts, the
exchange's quotes at ts (latest snapshot at or before ts, else the latest candle ended by then)
and the account marked at those quotes.
It prices every edge against the ASK it would pay (plus the taker fee), never the mid, and sizes
every buy under three caps that hold whatever the probability: ``max_position_frac`` of equity
per market, ``max_event_frac`` per event (an event's strikes are mutually exclusive, so their
costs are capped together) and the cash not yet committed at ts. Caps count the cost basis
(price + fees) of what is held, plus what buys still being worked (TWAP) may yet spend, plus
what this decision buys.

The executor reports orders back through :meth:`Strategy.receive`; a market with an order still
being worked (TWAP) gets no new order until that one is done. Every signal that leads to no
order is counted by reason in ``Strategy.skipped``, so a quiet run can say why it was quiet.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError, ParamError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.exchange import BaseKalshiExchange
from kalshi_lab.execution.fees import fee_per_contract
from kalshi_lab.params import TARGETS, StrategyParams

logger = logging.getLogger(__name__)

_CENTS = np.arange(1, 100)  # every tradable price in cents
_CLOSED = "market closed (or not in the markets table)"
_WORKING = "an order is still being worked in the market"
_NO_QUOTE = "no ask to buy at (no book snapshot or candle quote)"
_SMALL = "under one contract after the position, event and cash caps"


def _floor(x: float) -> int:
    """Floor that forgives float noise: 0.2 / 0.5 * 25_000 = 9999.999... is 10_000."""
    return math.floor(x + 1e-9)


@dataclass
class _Budget:
    """What one decision may still spend, per event and in cash, as it adds orders."""

    equity: int
    cash: int  # cash not yet committed to working buys or to this decision's buys
    event_spent: dict[str, int]  # per event: committed to working buys and this decision's buys


TIME_EXIT = "close near"
STOP_LOSS = "stop loss"
PROFIT_TARGET = "profit target"
HOLDING = "holding period over"
EDGE_REVERSAL = "edge reversal"


@dataclass(frozen=True)
class ExitStrategy:
    """When to sell a whole held position, judged at the bid it would be sold into.

    Checked in this order, the first that holds names the exit (None: that exit is off):

    * ``exit_hours_before_close``: the close known at the decision (the last signal's
      ``known_close``, never the actual close, which an early close moves) is this near;
    * ``stop_loss`` / ``profit_target``: the net proceeds per contract, bid minus the taker
      fee, at or below (1 - stop_loss) / at or above (1 + profit_target) times the basis per
      contract (price plus buy fee);
    * ``max_holding_days``: the position was opened this long ago;
    * ``exit_edge``: the model's probability of the side held, q, against the net bid:
      q - (bid - fee) < exit_edge (only where the model gave a signal at the decision).

    Stops and time exits sell at any bid (limit 1 cent: get out); a profit target and an edge
    reversal walk down the bids only while their condition still holds; a holding-period exit
    sells at the best bid.
    """

    profit_target: float | None = None
    stop_loss: float | None = None
    exit_hours_before_close: float | None = None
    max_holding_days: float | None = None
    exit_edge: float | None = None

    @classmethod
    def from_params(cls, params: StrategyParams) -> ExitStrategy:
        return cls(
            profit_target=params.profit_target,
            stop_loss=params.stop_loss,
            exit_hours_before_close=params.exit_hours_before_close,
            max_holding_days=params.holding_days,
            exit_edge=params.exit_edge,
        )

    def exits(self, held: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
        """Per held market (rows of ``held``): ``reason`` (None: keep) and sell ``limit`` (cents).

        ``held`` has ``bid`` (dollars of the side held, NaN: no bid, no exit), ``taker_rate``,
        ``basis`` (dollars per contract), ``opened_at``, ``known_close`` (NaT: unknown) and
        ``q`` (NaN: no signal now).
        """
        n = len(held)
        reason = np.full(n, None, dtype=object)
        limit = np.zeros(n, dtype=np.int64)
        bid = held["bid"].to_numpy(dtype=float)
        rate = held["taker_rate"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            net = bid - fee_per_contract(bid, rate)
        basis = held["basis"].to_numpy(dtype=float)

        def fire(mask: np.ndarray, why: str, at: np.ndarray | int) -> None:
            new = mask & ~np.isnan(bid) & (reason == None)  # noqa: E711 - elementwise
            reason[new] = why
            limit[new] = at[new] if isinstance(at, np.ndarray) else at

        if self.exit_hours_before_close is not None:
            hours = (pd.to_datetime(held["known_close"], utc=True) - ts) / pd.Timedelta(hours=1)
            fire((hours <= self.exit_hours_before_close).to_numpy(), TIME_EXIT, 1)
        with np.errstate(invalid="ignore"):
            if self.stop_loss is not None:
                fire(net <= (1.0 - self.stop_loss) * basis, STOP_LOSS, 1)
            if self.profit_target is not None:
                target = (1.0 + self.profit_target) * basis
                fire(net >= target, PROFIT_TARGET, _lowest_net_at_least(target, rate))
        if self.max_holding_days is not None:
            age = (ts - pd.to_datetime(held["opened_at"], utc=True)).to_numpy()
            due = age >= np.timedelta64(int(self.max_holding_days * 86_400), "s")
            fire(due, HOLDING, np.nan_to_num(np.rint(bid * 100), nan=1).astype(np.int64))
        if self.exit_edge is not None:
            q = held["q"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                turned = q - net < self.exit_edge  # NaN q: no signal, no edge exit
            fire(turned, EDGE_REVERSAL, _lowest_sell_limit(np.nan_to_num(q), rate, self.exit_edge))
        return pd.DataFrame({"reason": reason, "limit": limit}, index=held.index)


class BaseMarketStrategy(ABC):
    """Turns signals into orders; keeps track of its orders the executor is still working."""

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self._working: dict[str, ContractOrder] = {}
        self.n_signals = 0  # (market, decision time) signals seen
        self.skipped: Counter[str] = Counter()  # signals that led to no order, by reason
        self.exit = ExitStrategy.from_params(params)
        self.exits: Counter[str] = Counter()  # sells decided, by exit reason
        self._known_close: dict[str, pd.Timestamp] = {}  # per market: from its last signal

    @abstractmethod
    def generate_trade_decision(
        self,
        ts: pd.Timestamp,
        signals: pd.DataFrame,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> PredictionMarketDecision:
        """Orders decided at ``ts`` from the predictions with ``as_of == ts``."""

    def receive(self, orders: list[ContractOrder]) -> None:
        """Executed orders back from the executor: done ones free their market again."""
        for order in orders:
            if order.done and self._working.get(order.ticker) is order:
                del self._working[order.ticker]

    # --- shared helpers -----------------------------------------------------------------------

    def _decide(self, ts: pd.Timestamp, orders: list[ContractOrder]) -> PredictionMarketDecision:
        """Sells first (their cash may fund buys), then buys by decreasing edge."""
        orders = sorted(orders, key=lambda o: o.action != "sell")
        for order in orders:
            self._working[order.ticker] = order
        if orders:
            logger.debug("%s: %d orders", ts, len(orders))
        return PredictionMarketDecision(decided_at=ts, orders=tuple(orders))

    def _skip(self, reason: str, mask: np.ndarray | pd.Series) -> None:
        """Count the signals of ``mask`` as leading to no order, for ``reason``."""
        n = int(np.count_nonzero(mask))
        if n:
            self.skipped[reason] += n

    def _frame(
        self, signals: pd.DataFrame, exchange: BaseKalshiExchange, ts: pd.Timestamp
    ) -> pd.DataFrame:
        """One row per market with a signal: prediction, quotes in dollars, fee rate, trade flags.

        Counts the signals, and skips the closed markets and those with an order being worked
        (``tradable`` is False there).
        """
        self.n_signals += len(signals)
        if "known_close" in signals.columns:
            known = signals.dropna(subset=["known_close"])
            self._known_close.update(zip(known["ticker"], known["known_close"], strict=True))
        elif self.exit.exit_hours_before_close is not None:
            raise DataError(
                "strategy.exit_hours_before_close needs predictions with known_close "
                "(written by the evaluate stage)"
            )
        duplicated = signals["ticker"].duplicated(keep="last")
        self._skip("a later signal for the same market at the same time", duplicated)
        sig = signals[~duplicated].set_index("ticker")
        quotes = exchange.quotes(list(sig.index), ts)
        frame = sig[["event_ticker", "prob", "mid"]].join(
            quotes[["yes_bid", "yes_ask", "no_bid", "no_ask", "is_open", "taker_rate"]]
        )
        for col in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
            frame[col] = frame[col] / 100.0
        frame["working"] = frame.index.isin(list(self._working))
        is_open = frame["is_open"].astype(bool)
        self._skip(_CLOSED, ~is_open)
        self._skip(_WORKING, is_open & frame["working"])
        frame["tradable"] = is_open & ~frame["working"]
        return frame

    def _exit_orders(
        self,
        ts: pd.Timestamp,
        frame: pd.DataFrame,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> list[ContractOrder]:
        """Sells of the held positions an exit of :attr:`exit` fires for (open markets only)."""
        tickers = [t for t in account.positions if t not in self._working]
        if not tickers:
            return []
        quotes = exchange.quotes(tickers, ts)
        positions = [account.positions[t] for t in tickers]
        side = np.array([pos.side for pos in positions])
        prob = frame["prob"].reindex(tickers).to_numpy(dtype=float)
        held = pd.DataFrame(
            {
                "bid": _side_columns(quotes, side, "bid") / 100.0,
                "taker_rate": quotes["taker_rate"].to_numpy(dtype=float),
                "basis": [pos.basis_cents / pos.contracts / 100.0 for pos in positions],
                "opened_at": [pos.opened_at for pos in positions],
                "known_close": [self._known_close.get(t, pd.NaT) for t in tickers],
                "q": np.where(side == "yes", prob, 1.0 - prob),
            },
            index=pd.Index(tickers, name="ticker"),
        )
        decided = self.exit.exits(held, ts)
        go = decided["reason"].notna() & quotes["is_open"].astype(bool).to_numpy()
        orders = []
        for ticker, row in decided[go].iterrows():
            self.exits[row["reason"]] += 1
            orders.append(_sell(ts, account, str(ticker), max(int(row["limit"]), 1)))
        return orders

    def _budget(self, account: KalshiAccount) -> _Budget:
        """The account's equity and cash, less what buys still being worked may yet spend.

        A TWAP buy decided earlier keeps its remaining budget (cost + fees) committed, to its
        event and to the cash, so a new order cannot take the room its later children fill.
        """
        committed: dict[str, int] = {}
        for order in self._working.values():
            if order.action == "buy" and not order.done:
                left = order.remaining_budget_cents or 0
                committed[order.event_ticker] = committed.get(order.event_ticker, 0) + left
        cash = account.cash_cents - sum(committed.values())
        return _Budget(equity=account.equity_cents, cash=cash, event_spent=committed)

    def _cap(
        self, stake_cents: float, ticker: str, event: str, account: KalshiAccount, budget: _Budget
    ) -> int:
        """Cents a buy may spend (cost + fees) after the market, event and cash caps."""
        held = _held_basis(account, ticker)
        event_held = account.event_basis_cents(event) + budget.event_spent.get(event, 0)
        room = min(
            stake_cents,
            self.params.max_position_frac * budget.equity - held,
            self.params.max_event_frac * budget.equity - event_held,
            budget.cash,
        )
        return max(_floor(room), 0)

    def _buy(
        self,
        ts: pd.Timestamp,
        row: pd.Series,
        side: str,
        stake_cents: float,
        limit_cents: int,
        account: KalshiAccount,
        budget: _Budget,
    ) -> ContractOrder | None:
        """A capped buy of ``side`` sized at the ask plus fee, or None when under one contract."""
        ticker, event = str(row.name), str(row["event_ticker"])
        ask = row[f"{side}_ask"]
        p_eff_cents = 100.0 * (ask + float(fee_per_contract(ask, row["taker_rate"])))
        spend = self._cap(stake_cents, ticker, event, account, budget)
        count = _floor(spend / p_eff_cents)
        if count < 1:
            return None
        budget.event_spent[event] = budget.event_spent.get(event, 0) + spend
        budget.cash -= spend
        return ContractOrder(
            ticker=ticker,
            event_ticker=event,
            side=side,
            action="buy",
            count=count,
            limit_cents=limit_cents,
            decided_at=ts,
            max_cost_cents=spend,
        )


def _held_basis(account: KalshiAccount, ticker: str) -> int:
    """Cost basis (price + fees) held in one market, 0 when none."""
    pos = account.positions.get(ticker)
    return 0 if pos is None else pos.basis_cents


def _sell(ts: pd.Timestamp, account: KalshiAccount, ticker: str, limit_cents: int) -> ContractOrder:
    pos = account.positions[ticker]
    return ContractOrder(
        ticker=ticker,
        event_ticker=pos.event_ticker,
        side=pos.side,
        action="sell",
        count=pos.contracts,
        limit_cents=limit_cents,
        decided_at=ts,
    )


def _highest_buy_limit(q: np.ndarray, rate: np.ndarray, min_edge: float) -> np.ndarray:
    """Per market, the highest price (cents) whose own edge q - (P + fee(P)) beats min_edge.

    P + fee(P) rises with P, so the prices that qualify are 1..limit: count them (0: none).
    """
    grid = _CENTS / 100.0
    costs = grid + fee_per_contract(grid[None, :], np.asarray(rate, dtype=float)[:, None])
    return (q[:, None] - costs > min_edge).sum(axis=1)


def _net_bids(rate: np.ndarray) -> np.ndarray:
    """Per market (rows) and bid 1..99 cents (columns): what selling there nets, P - fee(P).

    It rises with P, so the bids that net at least some amount are the top of the grid.
    """
    grid = _CENTS / 100.0
    return grid - fee_per_contract(grid[None, :], np.asarray(rate, dtype=float)[:, None])


def _lowest_sell_limit(q: np.ndarray, rate: np.ndarray, exit_edge: float) -> np.ndarray:
    """Per market, the lowest bid (cents) at which q - (P - fee(P)) is still below exit_edge.

    P - fee(P) rises with P, so the prices that qualify are limit..99 (100: none).
    """
    return 100 - (q[:, None] - _net_bids(rate) < exit_edge).sum(axis=1)


def _lowest_net_at_least(target: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Per market, the lowest bid (cents) whose net P - fee(P) is still >= target (100: none)."""
    with np.errstate(invalid="ignore"):
        return 100 - (_net_bids(rate) >= np.asarray(target, dtype=float)[:, None]).sum(axis=1)


def _side_columns(frame: pd.DataFrame, side: np.ndarray, name: str) -> np.ndarray:
    """Per row, column ``{side}_{name}`` where side is 'yes' or 'no'."""
    return np.where(side == "yes", frame[f"yes_{name}"], frame[f"no_{name}"])


class EdgeBasedStrategy(BaseMarketStrategy):
    """Buy the side whose settlement probability beats its fee-inclusive ask; fractional Kelly.

    For win probability q and effective price P_eff = ask + fee per contract, the edge is
    q - P_eff and the full Kelly stake of a binary contract is f* = (q - P_eff) / (1 - P_eff) of
    equity; the order stakes ``kelly_fraction * f*`` of equity in total (less what it already
    holds there), under the caps. Its limit lets it walk up the ask side of the book only to
    the highest price whose own edge still exceeds ``min_edge``; its budget (cost + fees)
    stops it there too.

    A held position is sold at the bid when the edge of holding over selling,
    q - (bid - fee), falls below ``exit_edge``; the sell walks down the bids while that holds.
    Markets without a signal at ts keep their positions until settlement.
    """

    def generate_trade_decision(
        self,
        ts: pd.Timestamp,
        signals: pd.DataFrame,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> PredictionMarketDecision:
        p = self.params
        frame = self._frame(signals, exchange, ts)
        tradable = frame["tradable"]
        held_side = pd.Series(
            {t: pos.side for t, pos in account.positions.items()}, dtype=object
        ).reindex(frame.index)
        orders = self._exit_orders(ts, frame, exchange, account)

        # entries: the better side's fee-inclusive edge, never the side opposite a holding
        entry = frame[tradable & ~frame.index.isin([o.ticker for o in orders])]
        q_yes = entry["prob"].to_numpy()
        held_here = held_side.reindex(entry.index).to_numpy()
        edges = {}
        for side, q in (("yes", q_yes), ("no", 1.0 - q_yes)):
            ask = entry[f"{side}_ask"].to_numpy()
            edge = q - (ask + fee_per_contract(ask, entry["taker_rate"]))
            edges[side] = np.where(pd.isna(held_here) | (held_here == side), edge, np.nan)
        best_yes = np.isnan(edges["no"]) | (edges["yes"] >= edges["no"])  # NaN: side not allowed
        side = np.where(best_yes, "yes", "no")
        edge = np.where(best_yes, edges["yes"], edges["no"])
        q = np.where(best_yes, q_yes, 1.0 - q_yes)
        ask = _side_columns(entry, side, "ask")
        limit = _highest_buy_limit(q, entry["taker_rate"].to_numpy(), p.min_edge)
        candidates = pd.DataFrame(
            {"side": side, "edge": edge, "q": q, "ask": ask, "limit": limit}, index=entry.index
        )
        no_quote = np.isnan(edge)  # no ask on any side it may buy
        self._skip(_NO_QUOTE, no_quote)
        self._skip(f"edge at the ask not above min_edge {p.min_edge}", edge <= p.min_edge)
        candidates = candidates[candidates["edge"] > p.min_edge]
        candidates = candidates.sort_values(["edge"], ascending=False, kind="stable")

        budget = self._budget(account)
        for ticker, c in candidates.iterrows():
            row = entry.loc[ticker]
            p_eff = c["ask"] + float(fee_per_contract(c["ask"], row["taker_rate"]))
            kelly = (c["q"] - p_eff) / (1.0 - p_eff)
            assert p.kelly_fraction is not None  # checked by StrategyParams for edge_kelly
            stake = p.kelly_fraction * kelly * budget.equity - _held_basis(account, ticker)
            order = self._buy(ts, row, c["side"], stake, int(c["limit"]), account, budget)
            if order is not None:
                orders.append(order)
            else:
                self.skipped[_SMALL] += 1
        return self._decide(ts, orders)


class DirectionalStrategy(BaseMarketStrategy):
    """Trade the expected move: YES when the signal is up, NO when down; exit after holding_days.

    Signal s = p - 0.5 for target ``direction`` (p = P(price up over the next day)) and
    s = p - mid for ``settlement`` (mid as of the prediction). Buy YES when s > min_edge, NO
    when s < -min_edge, at the best ask only (the signal says nothing about higher prices).
    The stake grows with conviction: ``stake_fraction * min(1, |s| / 0.5) * max_position_frac``
    of equity, under the same caps; |s| = 0.5 is the strongest possible direction signal.
    Markets already held get no new buys; a position is sold at the best bid once
    ``holding_days`` have passed since it was opened (the sell retries at each decision until
    it is gone).
    """

    def __init__(self, params: StrategyParams, target: str) -> None:
        super().__init__(params)
        if target not in TARGETS:
            raise ParamError(f"model.target must be one of {TARGETS}, got {target!r}")
        if params.holding_days is None or params.stake_fraction is None:
            raise ParamError("strategy.holding_days and stake_fraction are required by directional")
        self.target = target

    def generate_trade_decision(
        self,
        ts: pd.Timestamp,
        signals: pd.DataFrame,
        exchange: BaseKalshiExchange,
        account: KalshiAccount,
    ) -> PredictionMarketDecision:
        p = self.params
        frame = self._frame(signals, exchange, ts)
        orders = self._exit_orders(ts, frame, exchange, account)
        held = frame.index.isin(list(account.positions))
        self._skip("a position is already held in the market", frame["tradable"] & held)
        entry = frame[frame["tradable"] & ~held]
        ref = 0.5 if self.target == "direction" else entry["mid"]
        s = (entry["prob"] - ref).to_numpy(dtype=float)
        side = np.where(s > 0, "yes", "no")
        ask = _side_columns(entry, side, "ask")
        self._skip(_NO_QUOTE, np.isnan(ask))
        self._skip(
            f"signal not above min_edge {p.min_edge}", ~np.isnan(ask) & ~(np.abs(s) > p.min_edge)
        )
        go = (np.abs(s) > p.min_edge) & ~np.isnan(ask)
        candidates = pd.DataFrame({"s": s, "side": side, "ask": ask}, index=entry.index)[go]
        candidates = candidates.reindex(
            candidates["s"].abs().sort_values(ascending=False, kind="stable").index
        )

        budget = self._budget(account)
        for ticker, c in candidates.iterrows():
            conviction = min(1.0, abs(c["s"]) / 0.5)
            stake = p.stake_fraction * conviction * p.max_position_frac * budget.equity
            limit = int(round(c["ask"] * 100))
            order = self._buy(ts, entry.loc[ticker], c["side"], stake, limit, account, budget)
            if order is not None:
                orders.append(order)
            else:
                self.skipped[_SMALL] += 1
        return self._decide(ts, orders)


def make_strategy(params: StrategyParams, target: str) -> BaseMarketStrategy:
    """The strategy named by ``params.name``; edge_kelly needs settlement probabilities."""
    if params.name == "edge_kelly":
        if target != "settlement":
            raise ParamError(
                f"strategy edge_kelly needs target settlement (Kelly sizing uses P(YES)), "
                f"got {target!r}"
            )
        return EdgeBasedStrategy(params)
    if params.name == "directional":
        return DirectionalStrategy(params, target)
    raise ParamError(f"unknown strategy.name {params.name!r}")
