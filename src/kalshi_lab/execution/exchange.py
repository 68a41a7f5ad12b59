"""The market: quotes, depth, fees and trading hours, replayed from recorded books or candles.

The ORDERBOOK table holds bids only (API.md section 2): a NO bid at x is a YES offer at 1 - x, so
YES asks are derived from NO bids and NO asks from YES bids. Every query at time ``ts`` reads the
latest snapshot with ``snapshot_ts <= ts`` (never a later one): an order decided at as_of is filled
against the book that was visible at as_of.

Recorded history has no books (the API only returns the current book, empty once a market
closed), so candles quote too: the latest candle that ENDED at or before ``ts``
(``end_period_ts`` is the inclusive end of its period, so its close is known from then on) of
any period in the table, the shortest period at a tie (its close is the latest price): its
``yes_bid_close`` is the YES bid and ``1 - yes_ask_close`` the NO bid, one price level each. Of
the latest snapshot and the latest candle the FRESHER quotes (the snapshot at a tie: it shows
the depth): a daily candle ending at midnight does not hide a book taken at 06:00, nor a 06:00
book an hourly candle ending at 07:00. A quote older than ``max_quote_age_hours`` at ``ts`` is
no quote: a price that old is not one anybody could still trade at, and an order against it
fills nothing (counted in ``unfilled``).

Orders that cross fill as taker at the displayed prices (buy at the ask, sell at the bid, never
at the mid), walking levels from the best toward the order's limit; a good-till-cancelled rest
fills as maker at its limit when a later quote trades through it. At most ``max_fill_share`` of
a level's displayed size can be taken per snapshot, and at most ``max_volume_share`` of a
candle's traded volume per candle, by all orders together: what one order took is gone for the
next order against the same snapshot or candle; the next one is fresh. Quotes come from a
:class:`~kalshi_lab.execution.quotes.QuoteIndex` (flat arrays, binary search). Prices are
integer cents at this boundary (the data's markets are ``linear_cent``).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import RESULTS, KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.fees import FeeSchedule, quadratic_units
from kalshi_lab.execution.fills import affordable, room_through, spread, take
from kalshi_lab.execution.quotes import Level, QuoteIndex, ns, utc_ns

logger = logging.getLogger(__name__)

_UNKNOWN = np.iinfo(np.int64).min  # close_time of a market missing from the markets table
#: why a send filled nothing without a quote (``unfilled``)
NO_QUOTE = "no book snapshot or candle at or before the send"
STALE_QUOTE = "the latest book snapshot or candle is older than max_quote_age_hours"


@dataclass(frozen=True)
class SettledMarket:
    """A market the exchange settled: ``result`` yes, no or void, at ``ts``."""

    ticker: str
    result: str
    ts: pd.Timestamp


class BaseKalshiExchange(ABC):
    """What a venue does for the bot; Kalshi itself (LiveKalshiExchange) can do all of it.

    Nothing here reveals the future: each call answers with what is known at the time it names
    (``ts``/``until``), and the venue keeps its own ledger of positions and cash, which the
    bot's account is reconciled against.
    """

    @abstractmethod
    def quotes(self, tickers: Sequence[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes at ``ts``, indexed by ticker in the given order.

        Columns: yes_bid, no_bid, yes_ask, no_ask (cents, NaN: no price), yes_bid_size,
        no_bid_size, quote_ts, source, is_open (bool) and taker_rate (the series' taker rate).
        """

    @abstractmethod
    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        """Send ``order.remaining`` at ``ts``; returns the fills made at once (taker).

        What crosses the book within the limit and the order's budget fills now; an ``ioc``
        order's rest is cancelled, a ``gtc`` order's rest rests on the book at its limit until
        :meth:`cancel` or the market's close, and its later fills come from :meth:`fills`.
        """

    @abstractmethod
    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        """Take the order's resting rest off the book (nothing if none rests)."""

    @abstractmethod
    def fills(self, until: pd.Timestamp) -> list[Fill]:
        """Fills of resting orders up to ``until`` not reported before, in time order."""

    @abstractmethod
    def settlements(self, until: pd.Timestamp) -> list[SettledMarket]:
        """Markets held on the venue that settled up to ``until``, not reported before."""

    @abstractmethod
    def positions(self) -> dict[str, tuple[str, int]]:
        """The venue's positions: ticker -> (side held, contracts)."""

    @abstractmethod
    def balance_cents(self) -> int:
        """The venue's cash balance in cents."""

    # --- orders whose outcome the venue has not told in full (kalshi_lab.execution.lifecycle):
    # a simulated venue answers every send in full, so it never has any

    def unresolved(self) -> dict[str, str]:
        """client_order_id -> ticker of the orders whose outcome is not known in full yet
        (the POST's answer lost, fills counted but not listed, a cancel not confirmed)."""
        return {}

    def resolve(self, until: pd.Timestamp) -> list[Fill]:
        """One round of asking the venue about the unresolved orders; the fills it now lists
        that were not reported before (called once per decision step)."""
        return []

    def overdue(self) -> list[str]:
        """The unresolved orders the venue has kept waiting longer than it may (described):
        the caller stops trading."""
        return []


@dataclass
class _Resting:
    """What rests on the simulated book of a gtc order: the rest of it, at its limit."""

    order: ContractOrder  # the exchange's own copy (filled fields count the resting fills)
    since_ns: int  # quotes after this time can trade through it


class SimulatedKalshiExchange(BaseKalshiExchange):
    """Replays ORDERBOOK (bids only), else CANDLES, with MARKETS' hours, results and SERIES' fees.

    The venue's own ledger (positions and cash, starting at ``initial_cash_cents``) is a
    KalshiAccount fed with the same fills and settlements the exchange reports: a bot that
    books what it is told reconciles exactly, as it must with Kalshi.
    """

    def __init__(
        self,
        orderbook: pd.DataFrame,
        candles: pd.DataFrame,
        markets: pd.DataFrame,
        series: pd.DataFrame,
        taker_fee_rate: float,
        max_fill_share: float,
        max_volume_share: float,
        initial_cash_cents: int = 0,
        max_quote_age_hours: float | None = None,
    ) -> None:
        index = QuoteIndex(
            orderbook, candles, max_fill_share, max_volume_share, max_quote_age_hours
        )
        self._open(index, markets, series, taker_fee_rate, initial_cash_cents)

    @classmethod
    def on_quotes(
        cls,
        quotes: QuoteIndex,
        markets: pd.DataFrame,
        series: pd.DataFrame,
        taker_fee_rate: float,
        initial_cash_cents: int = 0,
    ) -> SimulatedKalshiExchange:
        """The exchange over a QuoteIndex built before (its fill and volume shares and quote
        age): several runs over the same tables share one index, which no run changes (what
        orders took of a level is the exchange's), instead of each building its own."""
        exchange = cls.__new__(cls)
        exchange._open(quotes, markets, series, taker_fee_rate, initial_cash_cents)
        return exchange

    def _open(
        self,
        index: QuoteIndex,
        markets: pd.DataFrame,
        series: pd.DataFrame,
        taker_fee_rate: float,
        initial_cash_cents: int,
    ) -> None:
        """The exchange's state: quotes from ``index``, hours and fees from the tables."""
        self.max_fill_share = index.max_fill_share
        self.max_volume_share = index.max_volume_share
        self._index = index
        schedules = {
            row.series_ticker: FeeSchedule.for_series(
                row.fee_type, float(row.fee_multiplier), taker_fee_rate
            )
            for row in series.itertuples(index=False)
        }
        unknown = sorted(set(markets["series_ticker"]) - set(schedules))
        if unknown:
            raise DataError(
                f"markets of series {unknown[:5]} have no fee settings in the series table"
            )
        self._fees = {
            t: schedules[s]
            for t, s in zip(markets["ticker"], markets["series_ticker"], strict=True)
        }
        # consumption key of a level (see _levels) -> contracts taken there
        self._consumed: dict[tuple[object, ...], int] = {}
        # the same per market as arrays, for quotes of many markets at once; a last sentinel
        # row (never open, no fee rate) answers for a market missing from the markets table
        tickers = markets["ticker"].astype(str).tolist()
        self._market_row = {t: row for row, t in enumerate(tickers)}  # -1: the sentinel row
        self._market_close = np.append(utc_ns(markets["close_time"]), _UNKNOWN)
        rates = [self._fees[t].taker_rate_float for t in tickers]
        self._market_rate = np.array([*rates, np.nan], dtype=float)
        self._market_quote_code = np.append(self._index.codes(tickers), -1)  # QuoteIndex's code
        self._settle_queue = _settlement_queue(markets)
        self._next_settlement = 0
        self._resting: dict[str, _Resting] = {}  # by client_order_id, in submission order
        self._pending: list[Fill] = []  # fills made up to a cancel, not reported yet
        self._ledger = KalshiAccount(initial_cash_cents)
        #: why sends filled nothing, by reason: read by the backtest loop's report
        self.unfilled: Counter[str] = Counter()
        logger.info(
            "exchange: %d markets with %d book snapshots; %d markets with %d candles (fills up "
            "to %g of a candle's volume); the fresher of snapshot and candle quotes, if at most "
            "%s old",
            self._index.n_book_markets,
            self._index.n_snapshots,
            self._index.n_candle_markets,
            self._index.n_candles,
            index.max_volume_share,
            "any time" if index.max_quote_age_hours is None else f"{index.max_quote_age_hours:g} h",
        )

    # --- market rules -------------------------------------------------------------------------

    def is_open(self, ticker: str, ts: pd.Timestamp) -> bool:
        """True before the market's close_time; no trading at or after it."""
        if ticker not in self._market_row:
            raise DataError(f"market {ticker} is not in the markets table")
        return ns(ts) < self._close_of(ticker)

    def _close_of(self, ticker: str) -> int:
        """The market's close_time in ns (_UNKNOWN, never open, if not in the markets table)."""
        return int(self._market_close[self._market_row.get(ticker, -1)])

    def fee_schedule(self, ticker: str) -> FeeSchedule:
        """The fee rates of the market's series."""
        if ticker not in self._fees:
            raise DataError(f"market {ticker} has no series in the series table")
        return self._fees[ticker]

    # --- prices -------------------------------------------------------------------------------

    def quotes(self, tickers: Sequence[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes of many markets at ``ts``, by binary search in the QuoteIndex.

        Indexed by ticker in the given order; cents as floats with NaN for a missing side:
        yes_bid, no_bid, yes_ask, no_ask; yes_bid_size and no_bid_size (a snapshot's displayed
        bids, or for a candle the contracts its volume cap allows, on either side); quote_ts
        (the snapshot, or the end of the candle, quoted; NaT without either) and source (book,
        candle, or NaN); is_open, and taker_rate (the series' rate x multiplier, NaN without a
        series). The fresher of snapshot and candle quotes, none older than
        ``max_quote_age_hours``, as in :meth:`submit`.
        """
        tickers = list(tickers)
        # one dict lookup per market (not Index.get_indexer: a few hundred lookups a step cost
        # less than pandas' call); -1: not in the markets table: the sentinel row
        lookup = map(self._market_row.get, tickers, repeat(-1))
        row = np.fromiter(lookup, dtype=np.int64, count=len(tickers))
        codes = self._market_quote_code[row]
        unknown = np.flatnonzero(row < 0)
        if len(unknown):  # quoted, perhaps, though missing from the markets table
            codes[unknown] = self._index.codes([tickers[i] for i in unknown])
        columns = self._index.top_columns(codes, ts)
        columns["is_open"] = ns(ts) < self._market_close[row]
        columns["taker_rate"] = self._market_rate[row]
        return self._index.frame(tickers, columns)

    # --- execution ----------------------------------------------------------------------------

    def _levels(
        self, ticker: str, ts_ns: int, book_side: str
    ) -> tuple[str, int, list[Level]] | None:
        """Source, quote time and bid levels (best first) of one side at ``ts_ns``, or None.

        The fresher of the latest snapshot and the latest candle ended at or before ``ts_ns``;
        None without either or when it is older than ``max_quote_age_hours``. A level is (bid
        cents, the key its use is counted under, the contracts all orders together may take
        there).
        """
        return self._index.levels(ticker, ts_ns, book_side)

    def _take(self, order: ContractOrder, ts: pd.Timestamp) -> Fill | None:
        """Fill what the quote at ``ts`` allows of ``order.remaining`` as a taker.

        Buying YES takes YES asks, i.e. NO bids from the best (last) one down, paying
        100 - bid; buying NO takes YES bids likewise; selling YES or NO hits that side's bids.
        Stops at the limit, at the order's remaining budget (cost + fee) and at the depth (or
        candle volume) left. Returns None when nothing fills, and counts why in ``unfilled``.
        """
        if not self.is_open(order.ticker, ts):
            self.unfilled["market closed"] += 1
            return None
        buy = order.action == "buy"
        book_side = ("no" if order.side == "yes" else "yes") if buy else order.side
        quote = self._levels(order.ticker, ns(ts), book_side)
        if quote is None:
            stale = self._index.latest(order.ticker, ns(ts)) is not None
            self.unfilled[STALE_QUOTE if stale else NO_QUOTE] += 1
            return None
        source, quote_ns, levels = quote
        fees = self.fee_schedule(order.ticker)
        offered = [
            (100 - bid if buy else bid, cap - self._consumed.get(key, 0))
            for bid, key, cap in levels
        ]
        taken = take(
            offered, buy, order.limit_cents, order.remaining, order.remaining_budget_cents, fees
        )
        count = cost = units = 0
        for (_, key, _), (price, _), n in zip(levels, offered, taken, strict=False):
            if n > 0:
                self._consumed[key] = self._consumed.get(key, 0) + n
                count += n
                cost += n * price
                units += quadratic_units(n, price)
        if count == 0:
            reached = range(len(taken))  # the levels within the limit the walk reached
            capacity = sum(levels[i][2] for i in reached)
            room = sum(max(offered[i][1], 0) for i in reached)
            reason = _unfilled_reason(source, bool(levels), len(taken), capacity, room)
            self.unfilled[reason] += 1
            return None
        return Fill(
            ts=ts,
            quote_ts=pd.Timestamp(quote_ns, tz="UTC"),
            ticker=order.ticker,
            side=order.side,
            action=order.action,
            count=count,
            cost_cents=cost,
            fee_cents=fees.taker_fee_cents(units),
            source=source,
            order_id=order.client_order_id,
        )

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        """As Kalshi: a buy spends at most the venue's balance; a sell needs the contracts held
        on the venue (selling what is not held would open the other side, which the bot never
        means to do: refused and counted)."""
        if order.action == "sell":
            held = self.positions().get(order.ticker)
            if held is None or held != (order.side, held[1]) or held[1] < order.remaining:
                self.unfilled["sell of contracts not held on the venue"] += 1
                return []
        else:
            held = self.positions().get(order.ticker)
            if held is not None and held[0] != order.side:
                self.unfilled["buy of the side opposite a position held"] += 1
                return []
            balance = self._ledger.cash_cents
            budget = order.remaining_budget_cents
            if budget is None or budget > balance:
                order = dataclasses.replace(
                    order, max_cost_cents=order.cost_cents + order.fee_cents + balance
                )
        fill = self._take(order, ts)
        fills = [] if fill is None else [fill]
        for f in fills:
            self._ledger.apply(f, order.event_ticker)
        left = order.remaining - (fill.count if fill else 0)
        if order.time_in_force == "gtc" and left > 0 and self.is_open(order.ticker, ts):
            budget = order.remaining_budget_cents
            if budget is not None and fill is not None:
                budget -= fill.cost_cents + fill.fee_cents
            copy = order.unworked(left, budget)
            copy.status = "open"
            self._resting[order.client_order_id] = _Resting(copy, ns(ts))
        return fills

    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        """Take the rest off the book at ``ts``; what traded through it before then still
        filled (reported by the next :meth:`fills`), whenever fills were last asked for."""
        if order.client_order_id in self._resting:
            self._pending += self._match(ns(ts), only=order.client_order_id)
            self._resting.pop(order.client_order_id, None)

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        """Resting orders the market traded through up to ``until``, filled at their limit.

        A resting buy fills when a later quote offers its side strictly below the limit (a sell:
        bids strictly above it): someone then traded at our price first. It takes what those
        better levels allow after other orders (the same depth accounting as taker fills),
        within its budget and the venue's cash, paying the maker fee. As on the venue, a rest
        never fills against a position of the other side and a sell never sells contracts no
        longer held: such a rest is cancelled (counted in ``unfilled``). A rest still there at
        the close is cancelled. All rests are matched in time order, together.
        """
        out, self._pending = self._pending + self._match(ns(until)), []
        return sorted(out, key=lambda f: f.ts)

    def _match(self, until_ns: int, only: str | None = None) -> list[Fill]:
        """Fills of the rests (or of the one ``only``) up to ``until_ns``, in time order."""
        events = []
        for seq, (key, rest) in enumerate(self._resting.items()):
            if only is not None and key != only:
                continue
            times = self._index.times(rest.order.ticker)
            lo = int(np.searchsorted(times, rest.since_ns, side="right"))
            hi = int(np.searchsorted(times, until_ns, side="right"))
            close = self._close_of(rest.order.ticker)
            events += [(int(t), seq, key) for t in times[lo:hi] if t < close]
            rest.since_ns = max(rest.since_ns, until_ns)
        out: list[Fill] = []
        for t, _, key in sorted(events):
            rest = self._resting.get(key)
            if rest is None or rest.order.remaining == 0:
                continue
            reason = self._venue_refuses(rest.order)
            if reason is not None:
                self.unfilled[f"rest cancelled: {reason}"] += 1
                del self._resting[key]
                continue
            fill = self._make(rest.order, t)
            if fill is not None:
                rest.order.record(fill)
                self._ledger.apply(fill, rest.order.event_ticker)
                out.append(fill)
        for key, rest in list(self._resting.items()):
            close = self._close_of(rest.order.ticker)
            if rest.order.remaining == 0 or until_ns >= close:
                del self._resting[key]
        return out

    def _venue_refuses(self, order: ContractOrder) -> str | None:
        """Why the venue would not fill this rest now, given its positions; None: it would."""
        held = self.positions().get(order.ticker)
        if order.action == "buy":
            if held is not None and held[0] != order.side:
                return "a position of the other side is held"
            return None
        if held is None or held[0] != order.side:
            return "the contracts to sell are no longer held"
        return None

    def _make(self, order: ContractOrder, t_ns: int) -> Fill | None:
        """A maker fill of a resting order against the quote at ``t_ns``, or None."""
        buy = order.action == "buy"
        book_side = ("no" if order.side == "yes" else "yes") if buy else order.side
        quote = self._levels(order.ticker, t_ns, book_side)
        if quote is None:
            return None
        source, quote_ns, levels = quote
        if quote_ns != t_ns:
            return None
        price = order.limit_cents
        available = [cap - self._consumed.get(key, 0) for _, key, cap in levels]
        offered = [
            (100 - bid if buy else bid, a) for (bid, _, _), a in zip(levels, available, strict=True)
        ]
        fees = self.fee_schedule(order.ticker)
        n = min(room_through(offered, buy, price), order.remaining)
        if buy:  # within the order's budget and the venue's cash
            cash = self._ledger.cash_cents
            budget = order.remaining_budget_cents
            budget = cash if budget is None else min(budget, cash)
            n = affordable(n, price, 0, 0, budget, fees, maker=True)
        else:  # never more than is held
            n = min(n, self.positions()[order.ticker][1])
        if n <= 0:
            return None
        for (_, key, _), took in zip(levels, spread(n, available), strict=False):
            self._consumed[key] = self._consumed.get(key, 0) + took
        ts = pd.Timestamp(t_ns, tz="UTC")
        return Fill(
            ts=ts,
            quote_ts=ts,
            ticker=order.ticker,
            side=order.side,
            action=order.action,
            count=n,
            cost_cents=n * price,
            fee_cents=fees.maker_fee_cents(quadratic_units(n, price)),
            source=source,
            order_id=order.client_order_id,
            liquidity="maker",
        )

    def settlements(self, until: pd.Timestamp) -> list[SettledMarket]:
        """Settles, on the venue's ledger, the held markets whose settlement_ts <= ``until``."""
        queue, until_ns, out = self._settle_queue, ns(until), []
        while self._next_settlement < len(queue) and queue[self._next_settlement][0] <= until_ns:
            t_ns, ticker, result = queue[self._next_settlement]
            self._next_settlement += 1
            for key in [k for k, r in self._resting.items() if r.order.ticker == ticker]:
                del self._resting[key]
            if ticker not in self._ledger.positions:  # most markets settle unheld: no event
                continue
            ts = pd.Timestamp(t_ns, tz="UTC")
            if self._ledger.settle(ticker, result, ts):
                out.append(SettledMarket(ticker, result, ts))
        return out

    def positions(self) -> dict[str, tuple[str, int]]:
        return {t: (p.side, p.contracts) for t, p in self._ledger.positions.items()}

    def balance_cents(self) -> int:
        return self._ledger.cash_cents


def _unfilled_reason(source: str, has_levels: bool, within: int, capacity: int, room: int) -> str:
    """Why a send against a quote filled nothing, the most basic cause first.

    ``within``: levels within the limit; ``capacity``: contracts they allowed in all;
    ``room``: what earlier orders against the same quote left of that.
    """
    if not has_levels:
        return f"{source}: no price on the side to take"
    if within == 0:
        return f"{source}: no price within the limit"
    if capacity == 0:
        if source == "book":
            return "book: displayed size under one contract after max_fill_share"
        return "candle: under one contract after max_volume_share (no or little volume)"
    if room == 0:
        return f"{source}: what the {source} allowed was taken by earlier orders"
    return f"{source}: budget below one contract"


def _settlement_queue(markets: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(settlement ns, ticker, result) of the markets settled in the data, in time order.

    A result outside yes/no/void cannot be paid out: such markets are never settled (logged).
    """
    settled = markets[markets["settlement_ts"].notna() & markets["result"].notna()]
    unusable = ~settled["result"].isin(RESULTS)
    if unusable.any():
        logger.warning(
            "%d settled markets with results outside %s are never settled, e.g. %s",
            int(unusable.sum()),
            RESULTS,
            settled.loc[unusable, "ticker"].iloc[0],
        )
    settled = settled[~unusable]
    queue = zip(utc_ns(settled["settlement_ts"]), settled["ticker"], settled["result"], strict=True)
    return sorted((int(t), str(k), str(r)) for t, k, r in queue)
