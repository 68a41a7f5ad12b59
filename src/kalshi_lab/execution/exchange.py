"""The market: quotes, depth, fees and trading hours, replayed from recorded books or candles.

The ORDERBOOK table holds bids only (API.md section 2): a NO bid at x is a YES offer at 1 - x, so
YES asks are derived from NO bids and NO asks from YES bids. Every query at time ``ts`` reads the
latest snapshot with ``snapshot_ts <= ts`` (never a later one): an order decided at as_of is filled
against the book that was visible at as_of.

Recorded history has no books (the API only returns the current book, empty once a market
closed). For a market without a snapshot at or before ``ts`` the exchange quotes from the latest
candle that ENDED at or before ``ts`` (``end_period_ts`` is the inclusive end of its period, so
its close is known from then on), the shortest period at a tie: its ``yes_bid_close`` is the YES
bid and ``1 - yes_ask_close`` the NO bid, one price level each.

Fills are taker fills at the displayed prices (buy at the ask, sell at the bid, never at the
mid), walking levels from the best toward the order's limit. At most ``max_fill_share`` of a
level's displayed size can be taken per snapshot, and at most ``max_volume_share`` of a candle's
traded volume per candle, by all orders together: what one order took is gone for the next
order against the same snapshot or candle; the next one is fresh. Prices are integer cents at
this boundary (the data's markets are ``linear_cent``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import RESULTS, KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.fees import FeeSchedule, quadratic_units

logger = logging.getLogger(__name__)

_NEVER = np.iinfo(np.int64).max  # close_time of a market without one
_UNKNOWN = np.iinfo(np.int64).min  # close_time of a market missing from the markets table
_EPS = 1e-9  # slack for float sizes such as 0.3 * 10 = 2.9999999999999996
_NO_TIMES = np.empty(0, dtype=np.int64)
#: columns of the top-of-book and candle quote frames that ``quotes`` reads
_QUOTE_COLUMNS = ["quote_ts", "source", "yes_bid", "no_bid", "yes_bid_size", "no_bid_size"]


def _ns(ts: pd.Timestamp) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamps must be tz-aware (UTC), got {ts!r}")
    return int(ts.as_unit("ns").value)


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a UTC timestamp column; NaT becomes _NEVER."""
    ts = pd.to_datetime(values, utc=True).dt.tz_convert(None).dt.as_unit("ns")
    return np.where(ts.isna().to_numpy(), _NEVER, ts.to_numpy().astype(np.int64))


def _index_at(times: np.ndarray, ts_ns: int) -> int | None:
    """Index of the latest of the ascending ``times`` at or before ``ts_ns``, None if none."""
    k = int(np.searchsorted(times, ts_ns, side="right")) - 1
    return k if k >= 0 else None


def _cents(dollars: pd.Series, name: str, tickers: pd.Series) -> np.ndarray:
    """Dollar prices as float cents on the one-cent grid (NaN stays NaN); off-grid: DataError."""
    cents = dollars.to_numpy(dtype=float) * 100.0
    rounded = np.rint(cents)
    off_grid = np.abs(cents - rounded) > 1e-6  # NaN compares False
    if off_grid.any():
        examples = sorted(tickers[off_grid].astype(str).unique())[:5]
        raise DataError(f"{name} prices off the one-cent grid (subpenny markets): {examples}")
    return rounded


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


@dataclass
class _Resting:
    """What rests on the simulated book of a gtc order: the rest of it, at its limit."""

    order: ContractOrder  # the exchange's own copy (filled fields count the resting fills)
    event_ticker: str
    since_ns: int  # quotes after this time can trade through it


@dataclass(frozen=True)
class _Snapshots:
    """All snapshots of one market; rows of snapshot k are ``starts[k]:starts[k + 1]``."""

    times: np.ndarray  # int64 ns, ascending, unique
    starts: np.ndarray  # row offsets, len(times) + 1
    is_yes: np.ndarray  # per row: a YES bid (else a NO bid)
    price: np.ndarray  # per row: int cents, ascending within a side
    size: np.ndarray  # per row: displayed contracts (float)

    def bids(self, k: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Bids of one side at snapshot k, ascending: the best bid is the LAST element."""
        rows = slice(self.starts[k], self.starts[k + 1])
        mask = self.is_yes[rows] if side == "yes" else ~self.is_yes[rows]
        return self.price[rows][mask], self.size[rows][mask]


@dataclass(frozen=True)
class _Candles:
    """The quoting candles of one market, one per end time (see _prepare_candles)."""

    times: np.ndarray  # int64 ns of end_period_ts, ascending, unique
    yes_bid: np.ndarray  # int cents, 0 without a bid
    no_bid: np.ndarray  # int cents (100 - YES ask), 0 without a YES ask
    cap: np.ndarray  # int contracts all orders together may fill against the candle

    def bid(self, k: int, side: str) -> int:
        """The bid of one side at candle k, 0 without one."""
        return int(self.yes_bid[k] if side == "yes" else self.no_bid[k])


@dataclass(frozen=True)
class _Level:
    """One price level an order may take: a bid, where its use is counted, how much it holds."""

    bid: int  # cents
    key: tuple[object, ...]  # consumption key: shared by every order against the same liquidity
    capacity: int  # contracts all orders together may take here


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
    ) -> None:
        if not 0.0 < max_fill_share <= 1.0:
            raise ValueError(f"max_fill_share must be in (0, 1], got {max_fill_share}")
        if not 0.0 < max_volume_share <= 1.0:
            raise ValueError(f"max_volume_share must be in (0, 1], got {max_volume_share}")
        self.max_fill_share = max_fill_share
        self.max_volume_share = max_volume_share
        book = _prepare_orderbook(orderbook)
        self._snapshots = _split_by_ticker(book)
        self._top = _top_of_book(book)
        candle_quotes = _prepare_candles(candles, max_volume_share)
        self._candles = _split_candles(candle_quotes)
        self._candle_top = _candle_top(candle_quotes)
        self._close_ns = dict(zip(markets["ticker"], _utc_ns(markets["close_time"]), strict=True))
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
        self._event = dict(zip(markets["ticker"], markets["event_ticker"], strict=True))
        self._settle_queue = _settlement_queue(markets)
        self._next_settlement = 0
        self._resting: dict[str, _Resting] = {}  # by client_order_id, in submission order
        self._ledger = KalshiAccount(initial_cash_cents)
        #: why sends filled nothing, by reason: read by the backtest loop's report
        self.unfilled: Counter[str] = Counter()
        logger.info(
            "exchange: %d markets with %d book snapshots; %d markets with %d candles, which "
            "quote a market without a snapshot (fills up to %g of a candle's volume)",
            len(self._snapshots),
            len(self._top),
            len(self._candles),
            len(self._candle_top),
            max_volume_share,
        )

    # --- market rules -------------------------------------------------------------------------

    def is_open(self, ticker: str, ts: pd.Timestamp) -> bool:
        """True before the market's close_time; no trading at or after it."""
        if ticker not in self._close_ns:
            raise DataError(f"market {ticker} is not in the markets table")
        return _ns(ts) < self._close_ns[ticker]

    def fee_schedule(self, ticker: str) -> FeeSchedule:
        """The fee rates of the market's series."""
        if ticker not in self._fees:
            raise DataError(f"market {ticker} has no series in the series table")
        return self._fees[ticker]

    # --- prices -------------------------------------------------------------------------------

    def quotes(self, tickers: list[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes of many markets at ``ts``, vectorised (one as-of join per source).

        Indexed by ticker in the given order; cents as floats with NaN for a missing side:
        yes_bid, no_bid, yes_ask, no_ask; yes_bid_size and no_bid_size (a snapshot's displayed
        bids, or for a candle the contracts its volume cap allows, on either side); quote_ts
        (the snapshot, or the end of the candle, quoted; NaT without either) and source (book,
        candle, or NaN); is_open, and taker_rate (the series' rate x multiplier, NaN without a
        series). A candle quotes only a market without a snapshot at or before ``ts``, as in
        :meth:`execute`.
        """
        left = pd.DataFrame({"ticker": pd.Series(tickers, dtype=object)})
        left["ts"] = pd.Timestamp(_ns(ts), tz="UTC")
        out = _as_of(left, self._top)
        candle = _as_of(left, self._candle_top)
        use = out["quote_ts"].isna() & candle["quote_ts"].notna()
        for col in _QUOTE_COLUMNS:
            out[col] = out[col].where(~use, candle[col])
        out = out.set_index("ticker")
        out["yes_ask"] = 100.0 - out["no_bid"]
        out["no_ask"] = 100.0 - out["yes_bid"]
        # a market missing from the markets table is never open
        close = np.array([self._close_ns.get(t, _UNKNOWN) for t in out.index], dtype=np.int64)
        out["is_open"] = _ns(ts) < close
        out["taker_rate"] = [
            self._fees[t].taker_rate_float if t in self._fees else np.nan for t in out.index
        ]
        return out.drop(columns="ts")

    def _change_times(self, ticker: str) -> np.ndarray:
        """Times (int ns, ascending) when the market's quote changes: its candles' ends before
        its first snapshot, then its snapshots."""
        snaps, candles = self._snapshots.get(ticker), self._candles.get(ticker)
        book_times = _NO_TIMES if snaps is None else snaps.times
        candle_times = _NO_TIMES if candles is None else candles.times
        if len(book_times):
            candle_times = candle_times[candle_times < book_times[0]]
        return np.concatenate([candle_times, book_times])

    # --- execution ----------------------------------------------------------------------------

    def _levels(
        self, ticker: str, ts_ns: int, book_side: str
    ) -> tuple[str, int, list[_Level]] | None:
        """Source, quote time and bid levels (best first) of one side at ``ts_ns``, or None.

        The snapshot at or before ``ts_ns`` if the market has one, else the latest candle that
        ended at or before it; None without either.
        """
        snaps = self._snapshots.get(ticker)
        k = None if snaps is None else _index_at(snaps.times, ts_ns)
        if snaps is not None and k is not None:
            prices, sizes = snaps.bids(k, book_side)
            levels = [
                _Level(
                    int(bid),
                    (ticker, "book", k, book_side, int(bid)),
                    math.floor(self.max_fill_share * size + _EPS),
                )
                for bid, size in zip(prices[::-1], sizes[::-1], strict=True)
            ]
            return "book", int(snaps.times[k]), levels
        candles = self._candles.get(ticker)
        k = None if candles is None else _index_at(candles.times, ts_ns)
        if candles is None or k is None:
            return None
        bid = candles.bid(k, book_side)
        levels = [_Level(bid, (ticker, "candle", k), int(candles.cap[k]))] if bid > 0 else []
        return "candle", int(candles.times[k]), levels

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
        quote = self._levels(order.ticker, _ns(ts), book_side)
        if quote is None:
            self.unfilled["no book snapshot or candle at or before the send"] += 1
            return None
        source, quote_ns, levels = quote
        fees = self.fee_schedule(order.ticker)
        budget = order.remaining_budget_cents
        count = cost = units = within = capacity = room = 0
        for level in levels:
            price = 100 - level.bid if buy else level.bid
            if (buy and price > order.limit_cents) or (not buy and price < order.limit_cents):
                break
            available = level.capacity - self._consumed.get(level.key, 0)
            within += 1
            capacity += level.capacity
            room += max(available, 0)
            n = min(available, order.remaining - count)
            if budget is not None:
                n = _affordable(n, price, cost, units, budget, fees)
            if n > 0:
                self._consumed[level.key] = self._consumed.get(level.key, 0) + n
                count += n
                cost += n * price
                units += quadratic_units(n, price)
            if count == order.remaining or (budget is not None and n < available):
                break
        if count == 0:
            self.unfilled[_unfilled_reason(source, bool(levels), within, capacity, room)] += 1
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
            copy = dataclasses.replace(
                order,
                count=left,
                max_cost_cents=budget,
                filled=0,
                cost_cents=0,
                fee_cents=0,
                status="open",
                fills=[],
            )
            self._resting[order.client_order_id] = _Resting(copy, order.event_ticker, _ns(ts))
        return fills

    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        self._resting.pop(order.client_order_id, None)

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        """Resting orders the market traded through up to ``until``, filled at their limit.

        A resting buy fills when a later quote offers its side strictly below the limit (a sell:
        bids strictly above it): someone then traded at our price first. It takes what those
        better levels allow after other orders (the same depth accounting as taker fills),
        within its budget, paying the maker fee. A rest still there at the close is cancelled.
        """
        until_ns = _ns(until)
        out: list[Fill] = []
        for key, rest in list(self._resting.items()):
            times = self._change_times(rest.order.ticker)
            lo = int(np.searchsorted(times, rest.since_ns, side="right"))
            hi = int(np.searchsorted(times, until_ns, side="right"))
            close = self._close_ns.get(rest.order.ticker, _UNKNOWN)
            for t in times[lo:hi]:
                if t >= close:
                    break
                fill = self._make(rest.order, int(t))
                if fill is not None:
                    rest.order.record(fill)
                    self._ledger.apply(fill, rest.event_ticker)
                    out.append(fill)
                if rest.order.remaining == 0:
                    break
            rest.since_ns = max(rest.since_ns, until_ns)
            if rest.order.remaining == 0 or until_ns >= close:
                del self._resting[key]
        return sorted(out, key=lambda f: f.ts)

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
        room = 0
        for level in levels:
            through = (100 - level.bid < price) if buy else (level.bid > price)
            if not through:
                break
            room += max(level.capacity - self._consumed.get(level.key, 0), 0)
        fees = self.fee_schedule(order.ticker)
        n = min(room, order.remaining)
        budget = order.remaining_budget_cents
        if budget is not None:
            n = _affordable(n, price, 0, 0, budget, fees, maker=True)
        if n <= 0:
            return None
        left = n
        for level in levels:  # consume the crossed levels, best first
            take = min(left, max(level.capacity - self._consumed.get(level.key, 0), 0))
            self._consumed[level.key] = self._consumed.get(level.key, 0) + take
            left -= take
            if not left:
                break
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
        queue, until_ns, out = self._settle_queue, _ns(until), []
        while self._next_settlement < len(queue) and queue[self._next_settlement][0] <= until_ns:
            t_ns, ticker, result = queue[self._next_settlement]
            self._next_settlement += 1
            ts = pd.Timestamp(t_ns, tz="UTC")
            for key in [k for k, r in self._resting.items() if r.order.ticker == ticker]:
                del self._resting[key]
            if self._ledger.settle(ticker, result, ts):
                out.append(SettledMarket(ticker, result, ts))
        return out

    def positions(self) -> dict[str, tuple[str, int]]:
        return {t: (p.side, p.contracts) for t, p in self._ledger.positions.items()}

    def balance_cents(self) -> int:
        return self._ledger.cash_cents


def _as_of(left: pd.DataFrame, quotes: pd.DataFrame) -> pd.DataFrame:
    """Per row of ``left`` (ticker, ts), the latest row of ``quotes`` with quote_ts <= ts."""
    return pd.merge_asof(
        left,
        quotes[quotes["ticker"].isin(left["ticker"])],
        left_on="ts",
        right_on="quote_ts",
        by="ticker",
        direction="backward",
    )


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


def _affordable(
    n: int, price: int, cost: int, units: int, budget: int, fees: FeeSchedule, maker: bool = False
) -> int:
    """Largest m <= n such that the fill so far plus m more at ``price`` costs <= budget."""
    fee = fees.maker_fee_cents if maker else fees.taker_fee_cents

    def total(m: int) -> int:
        return cost + m * price + fee(units + quadratic_units(m, price))

    lo, hi = 0, max(n, 0)
    while lo < hi:  # total() grows with m: binary search for the last affordable m
        mid = (lo + hi + 1) // 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


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
    queue = zip(
        _utc_ns(settled["settlement_ts"]), settled["ticker"], settled["result"], strict=True
    )
    return sorted((int(t), str(k), str(r)) for t, k, r in queue)


def _prepare_orderbook(orderbook: pd.DataFrame) -> pd.DataFrame:
    """One row per price level in integer cents, by ticker, snapshot, side and ascending price.

    Rows repeating a level are summed, so a level's depth is consumed in one place.
    """
    missing = {"ticker", "snapshot_ts", "side", "price", "count"} - set(orderbook.columns)
    if missing:
        raise DataError(f"orderbook table lacks columns {sorted(missing)}")
    if not orderbook["side"].isin(["yes", "no"]).all():
        raise DataError("orderbook side must be yes or no")
    cents = _cents(orderbook["price"], "orderbook", orderbook["ticker"])
    book = pd.DataFrame(
        {
            "ticker": orderbook["ticker"].astype(str).to_numpy(dtype=object),
            "snapshot_ts": pd.to_datetime(orderbook["snapshot_ts"], utc=True).dt.as_unit("ns"),
            "ts_ns": _utc_ns(orderbook["snapshot_ts"]),
            "is_yes": (orderbook["side"] == "yes").to_numpy(),
            "price": cents,
            "size": orderbook["count"].to_numpy(dtype=float),
        }
    )
    book = book[(book["size"] > 0) & book["price"].between(1, 99)]
    book = book.astype({"price": np.int64})
    keys = ["ticker", "snapshot_ts", "ts_ns", "is_yes", "price"]
    return book.groupby(keys, as_index=False, sort=True)["size"].sum()


def _prepare_candles(candles: pd.DataFrame, max_volume_share: float) -> pd.DataFrame:
    """One quoting candle per (ticker, end time), by ticker and time, prices in float cents.

    Where candles of several periods end at the same time the shortest period is kept, the
    freshest: its close and volume describe the last hour (or minute), a daily one's the whole
    day. A bid outside 1..99 cents (Kalshi's 0 for "no bid", 1.00 for "no offer") is no quote
    (NaN). ``cap`` is ``floor(max_volume_share * volume)`` contracts, 0 without volume.
    """
    needed = {
        "ticker",
        "period_minutes",
        "end_period_ts",
        "yes_bid_close",
        "yes_ask_close",
        "volume",
    }
    missing = needed - set(candles.columns)
    if missing:
        raise DataError(f"candles table lacks columns {sorted(missing)}")
    yes_bid = _cents(candles["yes_bid_close"], "candles", candles["ticker"])
    no_bid = 100.0 - _cents(candles["yes_ask_close"], "candles", candles["ticker"])
    volume = np.nan_to_num(candles["volume"].to_numpy(dtype=float), nan=0.0)
    frame = pd.DataFrame(
        {
            "ticker": candles["ticker"].astype(str).to_numpy(dtype=object),
            "quote_ts": pd.to_datetime(candles["end_period_ts"], utc=True).dt.as_unit("ns"),
            "ts_ns": _utc_ns(candles["end_period_ts"]),
            "period": candles["period_minutes"].to_numpy(dtype=np.int64),
            "yes_bid": np.where((yes_bid >= 1) & (yes_bid <= 99), yes_bid, np.nan),
            "no_bid": np.where((no_bid >= 1) & (no_bid <= 99), no_bid, np.nan),
            "cap": np.floor(max_volume_share * np.maximum(volume, 0.0) + _EPS).astype(np.int64),
        }
    )
    frame = frame.sort_values(
        ["ticker", "ts_ns", "period"], ascending=[True, True, False], kind="stable"
    )
    return frame.drop_duplicates(["ticker", "ts_ns"], keep="last").reset_index(drop=True)


def _split_by_ticker(book: pd.DataFrame) -> dict[str, _Snapshots]:
    out = {}
    for ticker, rows in book.groupby("ticker", sort=False):
        ts = rows["ts_ns"].to_numpy()
        times, first = np.unique(ts, return_index=True)
        out[ticker] = _Snapshots(
            times=times,
            starts=np.append(first, len(ts)),
            is_yes=rows["is_yes"].to_numpy(),
            price=rows["price"].to_numpy(),
            size=rows["size"].to_numpy(),
        )
    return out


def _split_candles(candles: pd.DataFrame) -> dict[str, _Candles]:
    out = {}
    for ticker, rows in candles.groupby("ticker", sort=False):
        out[ticker] = _Candles(
            times=rows["ts_ns"].to_numpy(),
            yes_bid=np.nan_to_num(rows["yes_bid"].to_numpy(), nan=0.0).astype(np.int64),
            no_bid=np.nan_to_num(rows["no_bid"].to_numpy(), nan=0.0).astype(np.int64),
            cap=rows["cap"].to_numpy(),
        )
    return out


def _top_of_book(book: pd.DataFrame) -> pd.DataFrame:
    """Best bid and its size per (ticker, snapshot, side), one row per snapshot, by time."""
    best = (
        book.drop(columns="ts_ns").groupby(["ticker", "snapshot_ts", "is_yes"], sort=False).last()
    )
    wide = best.unstack("is_yes")
    top = pd.DataFrame(index=wide.index)
    for is_yes, name in ((True, "yes"), (False, "no")):
        has = is_yes in wide.columns.get_level_values(1)
        top[f"{name}_bid"] = wide[("price", is_yes)].astype(float) if has else np.nan
        top[f"{name}_bid_size"] = wide[("size", is_yes)] if has else np.nan
    top = top.reset_index().rename(columns={"snapshot_ts": "quote_ts"})
    top["source"] = "book"
    return top.sort_values("quote_ts", kind="stable").reset_index(drop=True)[
        ["ticker", *_QUOTE_COLUMNS]
    ]


def _candle_top(candles: pd.DataFrame) -> pd.DataFrame:
    """The candles as quotes (the columns of _top_of_book), by time."""
    cap = candles["cap"].astype(float)
    top = pd.DataFrame(
        {
            "ticker": candles["ticker"],
            "quote_ts": candles["quote_ts"],
            "source": "candle",
            "yes_bid": candles["yes_bid"],
            "no_bid": candles["no_bid"],
            "yes_bid_size": cap,
            "no_bid_size": cap,
        }
    )
    return top.sort_values("quote_ts", kind="stable").reset_index(drop=True)
