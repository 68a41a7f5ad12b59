"""Strategies: signals at one time -> a PredictionMarketDecision of limit orders.

The design's extension point: ``generate_trade_decision(signals, current_positions,
available_capital, current_time)``. ``signals`` (see :mod:`kalshi_lab.execution.signals`) holds
one row per market the strategy may act on at ``current_time``, indexed by ticker: every market
with a prediction then and every market held, with the prediction (``prob``: the model's P(YES),
NaN for a held market without one), the executable quotes in DOLLARS (yes_bid, yes_ask, no_bid,
no_ask; NaN: none) and the contracts displayed at each ask (yes_ask_size, no_ask_size), the
series' ``taker_rate``, ``event_ticker``, ``known_close`` and the market's place in its event
(``structure``, ``strike_type``, ``floor_strike``, ``cap_strike``; missing: unknown). Markets
that are closed, have an order still being worked or belong to an event of structure ``other``
are not in it (one of the last that is held is, without its prediction). ``current_positions`` maps
ticker -> ContractPosition; ``available_capital`` is the cash in dollars not committed to orders
still being worked.

A strategy only decides. Limits on what it may hold (per market, per event, capital deployed,
daily loss, kill switch) are applied after it, by the RiskManager, whatever it decides; the
executor then works the orders.

The pieces: :class:`DecisionGenerator` prices every edge against the price the order would pay
(YES at the YES ask, NO at the NO ask = 1 - best YES bid) plus the taker fee, never the mid;
a :class:`BasePositionSizer` (:class:`KellyPositionSizer`) turns an edge into contracts;
:class:`ExitStrategy` decides sells at the bid. :class:`EdgeBasedStrategy` composes them.
:class:`LadderArbitrageStrategy` reads no probability: it buys the pairs of a ladder's strikes
that :meth:`DecisionGenerator.ladder_pairs` finds priced below the dollar they surely pay.
"""

from __future__ import annotations

import functools
import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import ABOVE, LADDER, threshold
from kalshi_lab.errors import ParamError
from kalshi_lab.execution.account import ContractPosition
from kalshi_lab.execution.decision import ContractOrder, PredictionMarketDecision
from kalshi_lab.execution.fees import fee_per_contract
from kalshi_lab.params import TARGETS

logger = logging.getLogger(__name__)

_CENTS = np.arange(1, 100)  # every tradable price in cents
NO_QUOTE = (
    "no ask to buy at (no book snapshot or candle quote, or one older than max_quote_age_hours)"
)
SMALL = "under one contract after sizing"

NOT_LADDER = "not a threshold of a ladder (or of unknown structure)"
NO_DEPTH = "no ask with a displayed size to buy at"
NO_ARBITRAGE = "no ladder pair beats min_profit after both legs' fees"
HELD_OPPOSITE = "its profitable ladder pairs would buy the side opposite a position held"
TAKEN = "its ladder pairs share a market with a more profitable pair"
ROUNDED = "fees rounded up to the cent leave no profit at the size allowed"

TIME_EXIT = "close near"
STOP_LOSS = "stop loss"
PROFIT_TARGET = "profit target"
HOLDING = "holding period over"
EDGE_REVERSAL = "edge reversal"

_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds
_HOUR_NS = 3_600_000_000_000


def _floor(x: float) -> int:
    """Floor that forgives float noise: 0.2 / 0.5 * 25_000 = 9999.999... is 10_000."""
    return math.floor(x + 1e-9)


def _ceil(x: float) -> int:
    """Ceiling that forgives float noise: 0.07 x 100 x 0.4 x 0.6 x 100 = 168.00000000000003
    is 168 cents, as Kalshi's exact fee is."""
    return math.ceil(x - 1e-9)


def _check(ok: bool, key: str, rule: str, value: object) -> None:
    if not ok:
        raise ParamError(f"strategy.{key} {rule}, got {value!r}")


def _optional_share(key: str, value: float | None, upper_inclusive: bool = True) -> None:
    if value is not None:
        ok = 0.0 < value <= 1.0 if upper_inclusive else value > 0.0
        _check(ok, key, "must be in (0, 1]" if upper_inclusive else "must be > 0", value)


# --- sizing ---------------------------------------------------------------------------------


class BasePositionSizer(ABC):
    """How many contracts to buy for an edge: the design's second extension point."""

    @abstractmethod
    def size_position(
        self, edge: float, price: float, available_capital: float, model_prob: float
    ) -> tuple[int, float]:
        """(contracts, cost in dollars) of a buy at ``price`` dollars a contract, fee included.

        ``edge`` = model_prob - price; ``available_capital`` is in dollars.
        """


class KellyPositionSizer(BasePositionSizer):
    """Fractional Kelly for a binary contract bought at c (ask + fee) that pays $1.

    With win probability q the growth-optimal stake is f* = (q - c) / (1 - c) of the bankroll;
    this stakes ``kelly_fraction * f*`` of the available capital (full Kelly is too aggressive
    for model probabilities that are themselves estimates).
    """

    def __init__(self, kelly_fraction: float) -> None:
        _check(0.0 < kelly_fraction <= 1.0, "kelly_fraction", "must be in (0, 1]", kelly_fraction)
        self.kelly_fraction = kelly_fraction

    def size_position(
        self, edge: float, price: float, available_capital: float, model_prob: float
    ) -> tuple[int, float]:
        if not 0.0 < price < 1.0 or model_prob <= price or available_capital <= 0:
            return 0, 0.0
        full = (model_prob - price) / (1.0 - price)
        contracts = _floor(self.kelly_fraction * full * available_capital / price)
        return contracts, contracts * price


class FixedFractionSizer(BasePositionSizer):
    """Stake ``stake_fraction`` of the available capital, scaled by ``model_prob`` as conviction.

    Used by DirectionalStrategy, whose probability is of a price move, not of settlement: Kelly
    does not apply; ``model_prob`` here is the conviction in [0, 1].
    """

    def __init__(self, stake_fraction: float) -> None:
        _check(0.0 < stake_fraction <= 1.0, "stake_fraction", "must be in (0, 1]", stake_fraction)
        self.stake_fraction = stake_fraction

    def size_position(
        self, edge: float, price: float, available_capital: float, model_prob: float
    ) -> tuple[int, float]:
        if not 0.0 < price < 1.0 or available_capital <= 0:
            return 0, 0.0
        contracts = _floor(self.stake_fraction * model_prob * available_capital / price)
        return contracts, contracts * price


# --- entry candidates -----------------------------------------------------------------------


def _side_columns(frame: pd.DataFrame, side: np.ndarray, name: str) -> np.ndarray:
    """Per row, column ``{side}_{name}`` where side is 'yes' or 'no'."""
    return np.where(side == "yes", frame[f"yes_{name}"], frame[f"no_{name}"])


def _held_rows(
    index: pd.Index, positions: Mapping[str, ContractPosition]
) -> tuple[np.ndarray, list[ContractPosition]]:
    """Rows of ``index`` (ascending) whose market is held, and those positions.

    One pass over the tickers in Python (a dict lookup each): for the few hundred rows of a
    step, cheaper than pandas' Index.get_indexer or isin.
    """
    if not positions:
        return np.empty(0, dtype=np.int64), []
    tickers = index.tolist()
    rows = [row for row, ticker in enumerate(tickers) if ticker in positions]
    return np.array(rows, dtype=np.int64), [positions[tickers[row]] for row in rows]


def _net_bids(rate: np.ndarray) -> np.ndarray:
    """Per market (rows) and bid 1..99 cents (columns): what selling there nets, P - fee(P)."""
    grid = _CENTS / 100.0
    return grid - fee_per_contract(grid[None, :], np.asarray(rate, dtype=float)[:, None])


def _highest_buy_limit(q: np.ndarray, rate: np.ndarray, min_edge: float) -> np.ndarray:
    """Per market, the highest price (cents) whose own edge q - (P + fee(P)) beats min_edge.

    P + fee(P) rises with P, so the prices that qualify are 1..limit: count them (0: none).
    """
    grid = _CENTS / 100.0
    costs = grid + fee_per_contract(grid[None, :], np.asarray(rate, dtype=float)[:, None])
    return (q[:, None] - costs > min_edge).sum(axis=1)


def _pairs_within(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, with group[i] == group[j], of ``group`` sorted so that equal codes
    (non-negative) are adjacent: one numpy pass per distance j - i, up to the largest group."""
    largest = int(np.bincount(group).max()) if len(group) else 0
    first, second = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for d in range(1, largest):
        same = np.flatnonzero(group[:-d] == group[d:])
        first.append(same)
        second.append(same + d)
    return np.concatenate(first), np.concatenate(second)


_SIDES = np.array(["no", "yes"], dtype=object)  # indexed by "YES is the better side"
#: the candidates' columns DecisionGenerator.orders reads
_SIZED = ("cost", "edge", "q", "event_ticker", "side", "limit")


class DecisionGenerator:
    """Signals -> candidate buys, each priced at the price it would pay plus the taker fee.

    Per market the better side: YES at the YES ask or NO at the NO ask (1 - best YES bid), edge
    q - (ask + fee per contract) with q the model's probability of that side; never the side
    opposite a position held. Candidates with an edge above ``min_edge`` come out by decreasing
    edge, with the limit the order may walk up to: the highest price whose own edge still beats
    ``min_edge``. :meth:`orders` sizes them with a sizer.

    :meth:`ladder_pairs` finds the other kind of candidate, which needs no model: pairs of a
    ladder's strikes whose prices break the ladder's order, each surely worth more than it
    costs by over ``min_profit`` a pair.
    """

    def __init__(self, min_edge: float = 0.0, min_profit: float = 0.0) -> None:
        _check(0.0 <= min_edge < 1.0, "min_edge", "must be in [0, 1)", min_edge)
        _check(0.0 <= min_profit < 1.0, "min_profit", "must be in [0, 1)", min_profit)
        self.min_edge = min_edge
        self.min_profit = min_profit
        self.skipped: Counter[str] = Counter()

    def candidates(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        exiting: Collection[str] = (),
    ) -> pd.DataFrame:
        """Columns side, q, price (the ask), cost (ask + fee), edge, limit (cents), event_ticker.

        Markets in ``exiting`` (sold by the same decision) are not candidates.
        """
        index, columns = self._candidate_columns(signals, current_positions, exiting)
        return pd.DataFrame(columns, index=index, copy=False)  # fresh arrays

    def orders(
        self,
        candidates: pd.DataFrame,
        sizer: BasePositionSizer,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> list[ContractOrder]:
        """Buys sized by ``sizer`` in candidate order, each spending from the capital left.

        A market already held counts what it holds (its basis) against the size wanted. Each
        order's budget (cost + fees, Kalshi's buy_max_cost) is what the sizer allotted.
        """
        columns = {c: candidates[c].to_numpy() for c in _SIZED}
        return self._orders(
            candidates.index, columns, sizer, current_positions, available_capital, current_time
        )

    def ladder_pairs(
        self, signals: pd.DataFrame, current_positions: Mapping[str, ContractPosition]
    ) -> pd.DataFrame:
        """Ladder arbitrage: pairs of one ladder's strikes that cost less than the $1 they pay.

        In an "above" ladder, YES above the higher strike X_hi implies YES above the lower X_lo,
        so P(above X_hi) <= P(above X_lo). When X_hi's YES bid exceeds X_lo's YES ask, buying
        YES on X_lo at its ask and NO on X_hi at its NO ask (1 - that bid) pays $1 whatever the
        value (at least one leg wins; both do when it ends between the strikes) for less. In a
        "below" ladder the roles swap: YES on the higher strike, NO on the lower. Per pair:
        ``profit = 1 - (yes_price + yes_fee) - (no_price + no_fee)``, fees by
        :func:`~kalshi_lab.execution.fees.fee_per_contract` at each leg's ask.

        Legs are markets of structure ``ladder`` with a threshold strike (``strike_type`` and
        ``floor_strike`` / ``cap_strike``), in one event and one direction, at an ask with a
        displayed size. Every pair of every ladder is priced at once (a numpy pass per distance
        between strikes; a ladder has at most a dozen or so); those beating ``min_profit`` are
        taken by decreasing profit, each market in one pair at most (a decision holds one order
        per market), never buying the side opposite a position held.

        Columns: event_ticker, yes_ticker and no_ticker (the legs), yes_price and no_price (the
        asks, dollars), yes_fee and no_fee (per contract, before the cent ceiling), cost (per
        pair, both fees in), profit (per pair) and depth (pairs the displayed sizes at both
        asks allow). Markets in no pair are counted in ``skipped`` by reason.
        """
        n = len(signals)
        kind = signals["strike_type"].to_numpy(dtype=object)
        strike = threshold(
            kind,
            signals["floor_strike"].to_numpy(dtype=float),
            signals["cap_strike"].to_numpy(dtype=float),
        )
        ladder = (signals["structure"].to_numpy(dtype=object) == LADDER) & ~np.isnan(strike)
        price = {side: signals[f"{side}_ask"].to_numpy(dtype=float) for side in ("yes", "no")}
        size = {side: signals[f"{side}_ask_size"].to_numpy(dtype=float) for side in ("yes", "no")}
        with np.errstate(invalid="ignore"):
            buyable = {side: ~np.isnan(price[side]) & (size[side] >= 1) for side in price}
        leg = ladder & (buyable["yes"] | buyable["no"])
        self._skip(NOT_LADDER, ~ladder)
        self._skip(NO_DEPTH, ladder & ~leg)

        rows = np.flatnonzero(leg)
        above = np.isin(kind, ABOVE)
        event = pd.factorize(signals["event_ticker"].to_numpy(dtype=object)[rows])[0]
        ladder_of = event * 2 + above[rows]  # one ladder: one event, one direction
        by_strike = np.lexsort((strike[rows], ladder_of))
        rows, ladder_of = rows[by_strike], ladder_of[by_strike]
        first, second = _pairs_within(ladder_of)
        lo, hi = rows[first], rows[second]  # lo's strike <= hi's
        # YES on the market whose YES region holds the other's, NO on the other
        wide = np.where(above[lo], lo, hi)
        narrow = np.where(above[lo], hi, lo)
        rate = signals["taker_rate"].to_numpy(dtype=float)
        yes_price, no_price = price["yes"][wide], price["no"][narrow]
        yes_fee = fee_per_contract(yes_price, rate[wide])
        no_fee = fee_per_contract(no_price, rate[narrow])
        cost = yes_price + yes_fee + no_price + no_fee
        profit = 1.0 - cost
        depth = np.floor(np.minimum(size["yes"][wide], size["no"][narrow]))
        with np.errstate(invalid="ignore"):
            good = (strike[lo] < strike[hi]) & (profit > self.min_profit) & (depth >= 1)
        held = np.full(n, "", dtype=object)
        at, positions = _held_rows(signals.index, current_positions)
        held[at] = [pos.side for pos in positions]
        allowed = good & (held[wide] != "no") & (held[narrow] != "yes")

        chosen: list[int] = []  # by decreasing profit; only the profitable pairs, few
        used = np.zeros(n, dtype=bool)
        for k in np.flatnonzero(allowed)[np.argsort(-profit[allowed], kind="stable")].tolist():
            if not (used[wide[k]] or used[narrow[k]]):
                used[wide[k]] = used[narrow[k]] = True
                chosen.append(k)

        def in_pairs(mask: np.ndarray) -> np.ndarray:
            out = np.zeros(n, dtype=bool)
            out[wide[mask]] = out[narrow[mask]] = True
            return out

        priced, unblocked = in_pairs(good), in_pairs(allowed)
        self._skip(NO_ARBITRAGE, leg & ~priced)
        self._skip(HELD_OPPOSITE, priced & ~unblocked)
        self._skip(TAKEN, unblocked & ~used)
        k = np.array(chosen, dtype=np.int64)
        tickers = signals.index.to_numpy(dtype=object)
        return pd.DataFrame(
            {
                "event_ticker": signals["event_ticker"].to_numpy(dtype=object)[wide[k]],
                "yes_ticker": tickers[wide[k]],
                "no_ticker": tickers[narrow[k]],
                "yes_price": yes_price[k],
                "no_price": no_price[k],
                "yes_fee": yes_fee[k],
                "no_fee": no_fee[k],
                "cost": cost[k],
                "profit": profit[k],
                "depth": depth[k].astype(np.int64),
            }
        )

    # EdgeBasedStrategy calls the two below directly: the candidates as arrays, without the
    # frame that candidates() builds and orders() takes apart again at every step

    def _candidate_columns(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        exiting: Collection[str],
    ) -> tuple[pd.Index, dict[str, np.ndarray]]:
        """:meth:`candidates` as its index and columns."""
        prob = signals["prob"].to_numpy(dtype=float)
        predicted = ~np.isnan(prob)
        if exiting:
            predicted &= ~signals.index.isin(list(exiting))
        rows = np.flatnonzero(predicted)  # the markets with a prediction
        q_yes = prob[rows]
        held = np.full(len(signals), "", dtype=object)
        at, positions = _held_rows(signals.index, current_positions)
        held[at] = [pos.side for pos in positions]
        held = held[rows]
        rate = signals["taker_rate"].to_numpy(dtype=float)[rows]
        asks = {side: signals[f"{side}_ask"].to_numpy(dtype=float)[rows] for side in ("yes", "no")}
        edges = {}
        for side, q in (("yes", q_yes), ("no", 1.0 - q_yes)):
            ask = asks[side]
            edge = q - (ask + fee_per_contract(ask, rate))
            edges[side] = np.where((held == "") | (held == side), edge, np.nan)
        best_yes = np.isnan(edges["no"]) | (edges["yes"] >= edges["no"])
        side = _SIDES[best_yes.astype(np.int8)]
        edge = np.where(best_yes, edges["yes"], edges["no"])
        q = np.where(best_yes, q_yes, 1.0 - q_yes)
        ask = np.where(best_yes, asks["yes"], asks["no"])
        self._skip(NO_QUOTE, np.isnan(edge))
        self._skip(f"edge at the ask not above min_edge {self.min_edge}", edge <= self.min_edge)
        keep = np.flatnonzero(edge > self.min_edge)
        keep = keep[np.argsort(-edge[keep], kind="stable")]  # by decreasing edge
        rate = rate[keep]
        columns = {
            "side": side[keep],
            "q": q[keep],
            "price": ask[keep],
            "cost": ask[keep] + fee_per_contract(ask[keep], rate),
            "edge": edge[keep],
            "limit": _highest_buy_limit(q[keep], rate, self.min_edge),
            "event_ticker": signals["event_ticker"].to_numpy()[rows[keep]],
        }
        return signals.index[rows[keep]], columns

    def _orders(
        self,
        index: pd.Index,
        columns: Mapping[str, np.ndarray],
        sizer: BasePositionSizer,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> list[ContractOrder]:
        """:meth:`orders` of candidates given as their index and columns."""
        orders: list[ContractOrder] = []
        n = len(index)
        if not n:
            return orders
        basis = np.zeros(n)
        at, positions = _held_rows(index, current_positions)
        basis[at] = [pos.basis_cents / 100.0 for pos in positions]
        unit = columns["cost"].astype(float, copy=False)
        cheapest = float(unit.min())
        left = available_capital
        size_position = sizer.size_position
        n_small = 0
        # Python floats and lists: the sizer is asked once per candidate, hundreds a step
        rows = zip(
            index.tolist(),
            *(columns[c].tolist() for c in ("edge", "cost", "q")),
            basis.tolist(),
            *(columns[c].tolist() for c in ("event_ticker", "side", "limit")),
            strict=True,
        )
        for k, (ticker, edge, cost_each, q, held, event, side, limit) in enumerate(rows):
            if left < cheapest:  # not one more contract anywhere: the rest are all too small
                n_small += n - k
                break
            _, cost = size_position(edge, cost_each, left, q)
            spend = min(cost - held, left)
            count = _floor(spend / cost_each) if spend > 0 else 0
            if count < 1:
                n_small += 1
                continue
            budget = _floor(spend * 100)
            left -= budget / 100.0
            orders.append(
                ContractOrder(
                    ticker=str(ticker),
                    event_ticker=str(event),
                    side=str(side),
                    action="buy",
                    count=count,
                    limit_cents=max(int(limit), 1),
                    decided_at=current_time,
                    max_cost_cents=budget,
                )
            )
        if n_small:
            self.skipped[SMALL] += n_small
        return orders

    def _skip(self, reason: str, mask: np.ndarray) -> None:
        n = int(np.count_nonzero(mask))
        if n:
            self.skipped[reason] += n


# --- exits ----------------------------------------------------------------------------------


def _lowest_sell_limit(q: np.ndarray, rate: np.ndarray, exit_edge: float) -> np.ndarray:
    """Per market, the lowest bid (cents) at which q - (P - fee(P)) is still below exit_edge.

    P - fee(P) rises with P, so the prices that qualify are limit..99 (100: none).
    """
    return 100 - (q[:, None] - _net_bids(rate) < exit_edge).sum(axis=1)


def _lowest_net_at_least(target: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Per market, the lowest bid (cents) whose net P - fee(P) is still >= target (100: none)."""
    with np.errstate(invalid="ignore"):
        return 100 - (_net_bids(rate) >= np.asarray(target, dtype=float)[:, None]).sum(axis=1)


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

    def __init__(
        self,
        profit_target: float | None = None,
        stop_loss: float | None = None,
        exit_hours_before_close: float | None = None,
        max_holding_days: float | None = None,
        exit_edge: float | None = None,
    ) -> None:
        _optional_share("profit_target", profit_target, upper_inclusive=False)
        _optional_share("stop_loss", stop_loss)
        if exit_hours_before_close is not None:
            _check(
                exit_hours_before_close >= 0,
                "exit_hours_before_close",
                "must be >= 0",
                exit_hours_before_close,
            )
        if max_holding_days is not None:
            _check(max_holding_days > 0, "holding_days", "must be > 0", max_holding_days)
        self.profit_target = profit_target
        self.stop_loss = stop_loss
        self.exit_hours_before_close = exit_hours_before_close
        self.max_holding_days = max_holding_days
        self.exit_edge = exit_edge
        self.exits: Counter[str] = Counter()  # sells decided, by reason
        self._known_close: dict[str, int] = {}  # per market, ns: from its last signal

    def reasons(self, held: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
        """Per held market (rows of ``held``): ``reason`` (None: keep) and sell ``limit`` (cents).

        ``held`` has ``bid`` (dollars of the side held, NaN: no bid, no exit), ``taker_rate``,
        ``basis`` (dollars per contract), ``opened_at``, ``known_close`` (NaT: unknown) and
        ``q`` (NaN: no signal now).
        """
        reason, limit = self._decide(
            held["bid"].to_numpy(dtype=float),
            held["taker_rate"].to_numpy(dtype=float),
            held["basis"].to_numpy(dtype=float),
            pd.DatetimeIndex(held["opened_at"]).as_unit("ns").asi8,
            pd.DatetimeIndex(held["known_close"]).as_unit("ns").asi8,
            held["q"].to_numpy(dtype=float),
            ts.value,
        )
        return pd.DataFrame({"reason": reason, "limit": limit}, index=held.index)

    def _decide(
        self,
        bid: np.ndarray,
        rate: np.ndarray,
        basis: np.ndarray,
        opened_ns: np.ndarray,
        known_ns: np.ndarray,
        q: np.ndarray,
        ts_ns: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`reasons` over arrays (times as int64 ns, NaT as _NAT), as exit_orders has
        them: no frame to build and take apart again at every step."""
        reason = np.full(len(bid), None, dtype=object)
        limit = np.zeros(len(bid), dtype=np.int64)
        undecided = ~np.isnan(bid)  # no bid: no exit
        with np.errstate(invalid="ignore"):
            net = bid - fee_per_contract(bid, rate)

        def fire(mask: np.ndarray, why: str, at: np.ndarray | int) -> None:
            new = mask & undecided
            undecided[new] = False
            reason[new] = why
            limit[new] = at[new] if isinstance(at, np.ndarray) else at

        if self.exit_hours_before_close is not None:
            known = known_ns != _NAT
            hours = (np.where(known, known_ns, ts_ns) - ts_ns) / _HOUR_NS
            fire(known & (hours <= self.exit_hours_before_close), TIME_EXIT, 1)
        with np.errstate(invalid="ignore"):
            if self.stop_loss is not None:
                fire(net <= (1.0 - self.stop_loss) * basis, STOP_LOSS, 1)
            if self.profit_target is not None:
                target = (1.0 + self.profit_target) * basis
                fire(net >= target, PROFIT_TARGET, _lowest_net_at_least(target, rate))
        if self.max_holding_days is not None:
            opened = opened_ns != _NAT
            age = np.where(opened, ts_ns - opened_ns, 0)
            due = opened & (age >= int(self.max_holding_days * 86_400) * 1_000_000_000)
            fire(due, HOLDING, np.nan_to_num(np.rint(bid * 100), nan=1).astype(np.int64))
        if self.exit_edge is not None:
            with np.errstate(invalid="ignore"):
                turned = q - net < self.exit_edge  # NaN q: no signal, no edge exit
            fire(turned, EDGE_REVERSAL, _lowest_sell_limit(np.nan_to_num(q), rate, self.exit_edge))
        return reason, limit

    def exit_orders(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        current_time: pd.Timestamp,
    ) -> list[ContractOrder]:
        """Sells of the held positions in ``signals`` for which an exit fires (signals order)."""
        if self.exit_hours_before_close is not None:  # the close known from the last signal
            if "known_close" not in signals.columns:
                raise ParamError(
                    "strategy.exit_hours_before_close needs signals with known_close "
                    "(predictions written by the evaluate stage carry it)"
                )
            known = pd.DatetimeIndex(signals["known_close"]).as_unit("ns").asi8
            has = known != _NAT
            self._known_close.update(
                zip(signals.index[has].tolist(), known[has].tolist(), strict=True)
            )
        rows, positions = _held_rows(signals.index, current_positions)
        if not positions:
            return []
        side = np.array([pos.side for pos in positions])
        yes = side == "yes"
        prob = signals["prob"].to_numpy(dtype=float)[rows]
        reason, limit = self._decide(
            np.where(
                yes,
                signals["yes_bid"].to_numpy(dtype=float)[rows],
                signals["no_bid"].to_numpy(dtype=float)[rows],
            ),
            signals["taker_rate"].to_numpy(dtype=float)[rows],
            np.array([pos.basis_cents / pos.contracts / 100.0 for pos in positions]),
            np.array([pos.opened_at.value for pos in positions], dtype=np.int64),
            np.array([self._known_close.get(p.ticker, _NAT) for p in positions], dtype=np.int64),
            np.where(yes, prob, 1.0 - prob),
            current_time.value,
        )
        orders = []
        for pos, why, at in zip(positions, reason.tolist(), limit.tolist(), strict=True):
            if why is None:
                continue
            self.exits[why] += 1
            orders.append(
                ContractOrder(
                    ticker=pos.ticker,
                    event_ticker=pos.event_ticker,
                    side=pos.side,
                    action="sell",
                    count=pos.contracts,
                    limit_cents=max(at, 1),
                    decided_at=current_time,
                )
            )
        return orders


# --- strategies -----------------------------------------------------------------------------


class BaseMarketStrategy(ABC):
    """The design's strategy extension point; subclass and implement generate_trade_decision.

    ``signal_target`` names the model target whose probabilities the strategy reads (None: any);
    the backtest refuses a model of another target. ``skipped`` counts signals that led to no
    order, by reason, and ``exits`` sells by exit reason, so a quiet run can say why.

    The counters are made when first read, so a subclass whose ``__init__`` does not call
    ``super().__init__()`` still runs (a user's strategy owes the base class nothing); a
    subclass may also assign its own (e.g. its generator's).
    """

    signal_target: str | None = None

    @functools.cached_property
    def skipped(self) -> Counter[str]:
        return Counter()

    @functools.cached_property
    def exits(self) -> Counter[str]:
        return Counter()

    @abstractmethod
    def generate_trade_decision(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> PredictionMarketDecision:
        """The orders decided at ``current_time`` from what is known then."""


def _decision(orders: list[ContractOrder], current_time: pd.Timestamp) -> PredictionMarketDecision:
    """Sells first (their cash may fund buys), then buys in the order given."""
    return PredictionMarketDecision(
        sorted(orders, key=lambda o: o.action != "sell"), decided_at=current_time
    )


class EdgeBasedStrategy(BaseMarketStrategy):
    """Buy the side whose settlement probability beats its fee-inclusive ask; hold or exit.

    DecisionGenerator finds the edges above ``min_edge``; the sizer (fractional Kelly with
    ``kelly_fraction`` unless another sizer is given) sizes them from the available capital;
    ExitStrategy sells held positions (``exit_edge``, ``profit_target``, ``stop_loss``,
    ``exit_hours_before_close``, ``holding_days``). A market being exited is not bought again at
    the same time.
    """

    signal_target = "settlement"

    def __init__(
        self,
        min_edge: float,
        kelly_fraction: float | None = None,
        exit_edge: float | None = None,
        profit_target: float | None = None,
        stop_loss: float | None = None,
        exit_hours_before_close: float | None = None,
        holding_days: float | None = None,
        sizer: BasePositionSizer | None = None,
    ) -> None:
        super().__init__()
        if sizer is None:
            _check(
                kelly_fraction is not None, "kelly_fraction", "is required without a sizer", None
            )
            assert kelly_fraction is not None
            sizer = KellyPositionSizer(kelly_fraction)
        self.generator = DecisionGenerator(min_edge)
        self.sizer = sizer
        self.exit = ExitStrategy(
            profit_target, stop_loss, exit_hours_before_close, holding_days, exit_edge
        )
        self.skipped = self.generator.skipped
        self.exits = self.exit.exits

    def generate_trade_decision(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> PredictionMarketDecision:
        sells = self.exit.exit_orders(signals, current_positions, current_time)
        exiting = {o.ticker for o in sells}
        index, candidates = self.generator._candidate_columns(signals, current_positions, exiting)
        buys = self.generator._orders(
            index, candidates, self.sizer, current_positions, available_capital, current_time
        )
        return _decision(sells + buys, current_time)


class DirectionalStrategy(BaseMarketStrategy):
    """Trade the expected move: YES when the signal is up, NO when down; exit after holding_days.

    Signal s = p - 0.5 for target ``direction`` (p = P(price up over the next day)) and
    s = p - mid for ``settlement`` (mid as of the prediction). Buy YES when s > min_edge, NO
    when s < -min_edge, at the best ask only (the signal says nothing about higher prices),
    staking ``stake_fraction`` of the available capital at full conviction (|s| = 0.5), less
    below. Markets already held get no new buys; positions are sold at the best bid after
    ``holding_days`` (or an earlier exit).
    """

    def __init__(
        self,
        min_edge: float,
        stake_fraction: float,
        holding_days: float,
        target: str,
        profit_target: float | None = None,
        stop_loss: float | None = None,
        exit_hours_before_close: float | None = None,
    ) -> None:
        super().__init__()
        _check(target in TARGETS, "target", f"must be one of {TARGETS}", target)
        _check(0.0 <= min_edge < 1.0, "min_edge", "must be in [0, 1)", min_edge)
        self.min_edge = min_edge
        self.target = target
        self.sizer = FixedFractionSizer(stake_fraction)
        self.exit = ExitStrategy(profit_target, stop_loss, exit_hours_before_close, holding_days)
        self.exits = self.exit.exits

    def generate_trade_decision(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> PredictionMarketDecision:
        orders = self.exit.exit_orders(signals, current_positions, current_time)
        predicted = signals[signals["prob"].notna()]
        held = predicted.index.isin(list(current_positions))
        self._skip("a position is already held in the market", held)
        entry = predicted[~held]
        ref = 0.5 if self.target == "direction" else entry["mid"]
        s = (entry["prob"] - ref).to_numpy(dtype=float)
        side = np.where(s > 0, "yes", "no")
        ask = _side_columns(entry, side, "ask")
        self._skip(NO_QUOTE, np.isnan(ask))
        strong = np.abs(s) > self.min_edge
        self._skip(f"signal not above min_edge {self.min_edge}", ~np.isnan(ask) & ~strong)
        go = strong & ~np.isnan(ask)
        rate = entry["taker_rate"].to_numpy(dtype=float)
        cost = ask + fee_per_contract(ask, rate)
        left = available_capital
        for k in np.argsort(-np.abs(s[go]), kind="stable"):
            i = np.flatnonzero(go)[k]
            conviction = min(1.0, abs(s[i]) / 0.5)
            count, spend = self.sizer.size_position(float(s[i]), float(cost[i]), left, conviction)
            if count < 1:
                self.skipped[SMALL] += 1
                continue
            left -= spend
            orders.append(
                ContractOrder(
                    ticker=str(entry.index[i]),
                    event_ticker=str(entry["event_ticker"].iat[i]),
                    side=str(side[i]),
                    action="buy",
                    count=count,
                    limit_cents=int(round(ask[i] * 100)),
                    decided_at=current_time,
                    max_cost_cents=_floor(spend * 100),
                )
            )
        return _decision(orders, current_time)

    def _skip(self, reason: str, mask: np.ndarray) -> None:
        n = int(np.count_nonzero(mask))
        if n:
            self.skipped[reason] += n


class LadderArbitrageStrategy(BaseMarketStrategy):
    """Buy a ladder's mispriced pairs of strikes, which pay more than they cost in every state.

    :meth:`DecisionGenerator.ladder_pairs` finds the pairs beating ``min_profit`` (dollars a
    pair, after both legs' taker fees). Each is bought in one decision as two limit orders at
    the asks quoted, YES on one strike and NO on the other, of equal count: at most the pairs
    the displayed sizes at both asks allow, and at most ``pair_fraction`` of the available
    capital for the pair (cost and fees of both legs, the fees rounded up to the cent as Kalshi
    charges them), by decreasing profit until the capital is spent. A pair whose rounded fees
    leave no more than ``min_profit`` at that size is not bought. Positions are held to
    settlement, where the pair pays its sure dollar (no exit).

    Leg risk: the legs are sent one after the other. Against a book that moved in between, or
    a share of the displayed size the exchange does not give (``max_fill_share``, the candle
    volume cap; in a backtest, a snapshot whose size earlier orders took: a quote shows the
    displayed size), an immediate-or-cancel leg can fill less than its twin, or nothing; the
    unmatched contracts are then an ordinary position on their strike, held to settlement.
    Risk limits cut or refuse each leg on its own (a per-market or event cap may bind on one
    leg only). With ``order_ttl_hours`` > 0 or the nested executor the legs rest or are sliced
    over time: more leg risk; the simple executor with ``order_ttl_hours: 0`` is the one to use.
    """

    def __init__(self, min_profit: float, pair_fraction: float) -> None:
        super().__init__()
        _check(0.0 < pair_fraction <= 1.0, "pair_fraction", "must be in (0, 1]", pair_fraction)
        self.generator = DecisionGenerator(min_profit=min_profit)
        self.pair_fraction = pair_fraction
        self.skipped = self.generator.skipped

    def generate_trade_decision(
        self,
        signals: pd.DataFrame,
        current_positions: Mapping[str, ContractPosition],
        available_capital: float,
        current_time: pd.Timestamp,
    ) -> PredictionMarketDecision:
        pairs = self.generator.ladder_pairs(signals, current_positions)
        left = _floor(available_capital * 100)  # cents
        per_pair = _floor(self.pair_fraction * available_capital * 100)
        min_profit = self.generator.min_profit
        orders: list[ContractOrder] = []
        for pair in pairs.itertuples(index=False):  # the few pairs found, not the markets
            limits = [round(pair.yes_price * 100), round(pair.no_price * 100)]  # the asks, cents
            fees = [pair.yes_fee * 100, pair.no_fee * 100]  # cents a contract, before the ceiling
            room = min(per_pair, left)
            count = min(int(pair.depth), _floor(room / (pair.cost * 100)))
            if count >= 1 and sum(_leg_cents(count, limits, fees)) > room:
                count -= 1  # the two ceilings add under 2 cents: one pair fewer always fits
            if count < 1:
                self.skipped[SMALL] += 2
                continue
            spend = _leg_cents(count, limits, fees)
            if count * 100 - sum(spend) <= _floor(count * min_profit * 100):
                self.skipped[ROUNDED] += 2
                continue
            left -= sum(spend)
            note = (
                f"ladder pair: YES {pair.yes_ticker} + NO {pair.no_ticker} at "
                f"{pair.cost:.4f} a pair after fees, pays at least $1"
            )
            for ticker, side, limit, budget in zip(
                (pair.yes_ticker, pair.no_ticker), ("yes", "no"), limits, spend, strict=True
            ):
                orders.append(
                    ContractOrder(
                        ticker=str(ticker),
                        event_ticker=str(pair.event_ticker),
                        side=side,
                        action="buy",
                        count=count,
                        limit_cents=limit,
                        decided_at=current_time,
                        max_cost_cents=budget,
                        note=note,
                    )
                )
        return _decision(orders, current_time)


def _leg_cents(count: int, limits: list[int], fees: list[float]) -> list[int]:
    """Per leg, what ``count`` contracts cost at its limit (cents) with its taker fee
    (``fees``: cents per contract before the ceiling) rounded up to the cent, as Kalshi charges
    one order: the leg's budget (buy_max_cost)."""
    return [count * limit + _ceil(count * fee) for limit, fee in zip(limits, fees, strict=True)]
