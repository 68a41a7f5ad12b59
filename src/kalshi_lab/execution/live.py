"""``LiveKalshiExchange``: the bot's venue is Kalshi itself, through ``KalshiClient``.

What each call asks the API (reads are paced by the client's token buckets, ~20/s on the
Basic tier):

* :meth:`~LiveKalshiExchange.quotes`: ``GET /markets?tickers=`` (100 tickers a request) for
  status and hours, then ``GET /markets/{t}/orderbook?depth=1`` for each OPEN market only.
  The book is the source of truth for prices AND sizes, and it is what an order crosses (it
  shows depth other orders took); the market document's ``*_dollars`` quotes can lag it (the
  local server serves them as recorded). The batch ``GET /markets/orderbooks`` would save the
  per-market reads but is not served by the local server, so it could not be tested here.
  The first quote of an event also reads ``GET /events/{e}`` and its series (fee multiplier),
  cached for the exchange's life.
* :meth:`~LiveKalshiExchange.submit`: ``POST /portfolio/orders``, then, if anything filled,
  ``GET /portfolio/fills?order_id=`` for the exact fills.
* :meth:`~LiveKalshiExchange.fills` / :meth:`~LiveKalshiExchange.settlements`: one listing
  each from a watermark (venue time) that trails the newest item seen by ``overlap``; items
  are de-duplicated by id, so a late-listed one is reported once and none twice.

Rules:

* A market is open when its status says it trades (``active``) AND ``open_time <= ts <
  close_time``: never quote a closed market as open (a stale status or a past close suffices).
* Limits go out as ``yes_price``/``no_price`` dollars of the order's side; ``ioc`` as
  ``immediate_or_cancel``, ``gtc`` as ``good_till_canceled``; sells as ``reduce_only`` (Kalshi
  would turn a sell of contracts not held into the other side, which the bot never means).
* A buy's budget (``max_cost_cents``) caps the COUNT sent: as many contracts as cost plus the
  worst-case fee at the limit allow. Kalshi's ``buy_max_cost`` is not sent: the spec makes it
  fill-or-kill, which would kill the partial fills an ``ioc`` order with a budget takes and
  stop a ``gtc`` order from resting.
* A 400 refusal (market closed, insufficient balance, reduce-only) fills nothing: logged,
  counted in ``unfilled``, not raised; any other API or network failure raises.
* The immediate (taker) fills of an order are returned by ``submit`` as ONE ``Fill`` (the
  executor books one fill per send); every later fill comes from ``fills`` once. Only fills
  and settlements at or after ``since`` (the exchange's start) are reported: earlier ones are
  already in the account, which the bot reconciles at start.
* ``dry_run``: each order is logged (INFO) and nothing is sent; reads still happen.

Contracts and cents are integers at this boundary: a fractional count or a sub-cent cost or
fee (fractional or sub-penny markets) is a DataError, never rounded.

``balance_cents`` is Kalshi's AVAILABLE balance: cash minus what resting buy orders hold, so
it equals the account's cash only while no buy order rests.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from kalshi_lab.client import KalshiAPIError, KalshiClient, NotFoundError
from kalshi_lab.client.client import Settlement
from kalshi_lab.client.records import Fill as ApiFill
from kalshi_lab.client.records import Market, MarketPosition, Orderbook
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import RESULTS
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import BaseKalshiExchange, SettledMarket
from kalshi_lab.execution.fees import TAKER_FEE_RATE, FeeSchedule, quadratic_units
from kalshi_lab.execution.quotes import QUOTE_COLUMNS as INDEX_QUOTE_COLUMNS

logger = logging.getLogger(__name__)

#: Market.status values of a market that takes orders (``open``: the legacy vocabulary)
OPEN_STATUSES = frozenset({"active", "open"})
#: our time_in_force -> the API's
TIME_IN_FORCE = {"ioc": "immediate_or_cancel", "gtc": "good_till_canceled"}
#: tickers per GET /markets request (keeps the query string short)
MARKETS_PER_REQUEST = 100
#: the quote frame's columns, in SimulatedKalshiExchange.quotes' order
QUOTE_COLUMNS = [*INDEX_QUOTE_COLUMNS, "is_open", "taker_rate"]
#: how far the fills and settlements listings reach back before the newest item reported
OVERLAP = pd.Timedelta(minutes=5)
_HUNDRED = Decimal(100)


def _seconds(ts: pd.Timestamp) -> int:
    if not isinstance(ts, pd.Timestamp) or ts.tzinfo is None:
        raise ValueError(f"times must be tz-aware pandas Timestamps (UTC), got {ts!r}")
    return math.floor(ts.timestamp())


def _whole(value: Decimal, what: str) -> int:
    """An exact integer (contracts or cents) from a Decimal; DataError if it has a fraction."""
    if value != value.to_integral_value():
        raise DataError(f"{what} is {value}: not a whole number (fractional or sub-penny market)")
    return int(value)


def is_open(market: Market, ts: pd.Timestamp) -> bool:
    """The market takes orders at ``ts``: its status says it trades and ``ts`` is within
    ``[open_time, close_time)``."""
    return market.status in OPEN_STATUSES and pd.Timestamp(market.open_time) <= ts < pd.Timestamp(
        market.close_time
    )


def book_quote(book: Orderbook) -> dict[str, float]:
    """Best bids (float cents, NaN: none) and their sizes of an orderbook, and the asks they
    imply: a YES ask is 100 - the best NO bid, a NO ask 100 - the best YES bid."""
    out: dict[str, float] = {}
    for side, levels in (("yes", book.yes), ("no", book.no)):
        price, size = levels[-1] if levels else (None, None)  # best bid: the LAST level
        out[f"{side}_bid"] = np.nan if price is None else float(price * _HUNDRED)
        out[f"{side}_bid_size"] = np.nan if size is None else float(size)
    out["yes_ask"] = 100.0 - out["no_bid"]
    out["no_ask"] = 100.0 - out["yes_bid"]
    return out


def fill_from_api(fill: ApiFill, order_id: str, fallback_ts: pd.Timestamp) -> Fill:
    """One exchange fill as our Fill: cost = contracts x the price of the fill's side, fee =
    ``fee_cost``, both in exact cents; ``ts`` (and ``quote_ts``) its ``created_time``."""
    count = _whole(fill.count, f"fill {fill.fill_id or fill.trade_id} count")
    if count <= 0:
        raise DataError(f"fill {fill.fill_id or fill.trade_id} has count {fill.count}")
    price = fill.yes_price if fill.side == "yes" else fill.no_price
    if price is None:
        price = 1 - fill.yes_price
    what = f"fill {fill.fill_id or fill.trade_id}"
    cost = _whole(fill.count * price * _HUNDRED, f"{what} cost in cents")
    fee = _whole((fill.fee_cost or Decimal(0)) * _HUNDRED, f"{what} fee in cents")
    ts = fallback_ts if fill.created_time is None else pd.Timestamp(fill.created_time)
    return Fill(
        ts=ts,
        quote_ts=ts,
        ticker=fill.ticker,
        side=fill.side,
        action=fill.action,
        count=count,
        cost_cents=cost,
        fee_cents=fee,
        source="book",
        order_id=order_id,
        liquidity="maker" if fill.is_taker is False else "taker",
    )


def merge_fills(fills: Sequence[Fill]) -> Fill:
    """Several fills of one order as one: counts, costs and fees summed, the latest time."""
    first = fills[0]
    ts = max(f.ts for f in fills)
    return Fill(
        ts=ts,
        quote_ts=ts,
        ticker=first.ticker,
        side=first.side,
        action=first.action,
        count=sum(f.count for f in fills),
        cost_cents=sum(f.cost_cents for f in fills),
        fee_cents=sum(f.fee_cents for f in fills),
        source="book",
        order_id=first.order_id,
        liquidity="taker" if all(f.liquidity == "taker" for f in fills) else "maker",
    )


def positions_from_api(records: Iterable[MarketPosition]) -> dict[str, tuple[str, int]]:
    """ticker -> (side, contracts) of the nonzero positions: > 0 YES, < 0 NO."""
    out = {}
    for p in records:
        if p.position == 0:
            continue
        contracts = _whole(abs(p.position), f"position in {p.ticker}")
        out[p.ticker] = ("yes" if p.position > 0 else "no", contracts)
    return out


def settled_market(settlement: Settlement) -> SettledMarket | None:
    """The settlement as the account books it, None when nothing was held; a result the
    account cannot pay out (scalar) is a DataError."""
    if settlement.yes_count == 0 and settlement.no_count == 0:
        return None
    if settlement.market_result not in RESULTS:
        raise DataError(
            f"market {settlement.ticker} settled {settlement.market_result!r}: the account "
            f"books only {RESULTS}"
        )
    return SettledMarket(
        settlement.ticker, settlement.market_result, pd.Timestamp(settlement.settled_time)
    )


class LiveKalshiExchange(BaseKalshiExchange):
    """Kalshi through ``client`` (see the module docstring for what each call asks).

    ``since`` (default: now) is where the reported fills and settlements begin; ``overlap``
    how far the listings' watermark trails the newest item seen (late-listed items).
    """

    def __init__(
        self,
        client: KalshiClient,
        *,
        dry_run: bool = False,
        since: pd.Timestamp | None = None,
        taker_fee_rate: float = TAKER_FEE_RATE,
        overlap: pd.Timedelta = OVERLAP,
    ) -> None:
        self.client = client
        self.dry_run = dry_run
        self.taker_fee_rate = taker_fee_rate
        self._since_s = _seconds(pd.Timestamp.now(tz="UTC") if since is None else since)
        self._overlap_s = math.ceil(overlap.total_seconds())
        self._order_ids: dict[str, str] = {}  # client_order_id -> the exchange's order_id
        self._client_ids: dict[str, str] = {}  # the exchange's order_id -> client_order_id
        self._reported_fills: dict[str, int] = {}  # fill id -> its venue time (s)
        self._fills_from_s = self._since_s
        self._reported_settlements: dict[tuple[str, str], int] = {}
        self._settlements_from_s = self._since_s
        self._series_of_event: dict[str, str] = {}
        self._schedules: dict[str, FeeSchedule] = {}  # by series
        #: why sends filled nothing, by reason (as SimulatedKalshiExchange.unfilled)
        self.unfilled: Counter[str] = Counter()

    # --- reference data ---------------------------------------------------------------------

    def fee_schedule(self, event_ticker: str) -> FeeSchedule:
        """The fee rates of the event's series (event and series read once, then cached)."""
        series = self._series_of_event.get(event_ticker)
        if series is None:
            event, _ = self.client.get_event(event_ticker)
            series = self._series_of_event[event_ticker] = event.series_ticker
        schedule = self._schedules.get(series)
        if schedule is None:
            info = self.client.get_series_information(series)
            schedule = FeeSchedule.for_series(
                info.fee_type, float(info.fee_multiplier), self.taker_fee_rate
            )
            self._schedules[series] = schedule
        return schedule

    def exchange_order_id(self, client_order_id: str) -> str | None:
        """The exchange's order_id of an order this exchange placed, None if it placed none."""
        return self._order_ids.get(client_order_id)

    def _remember(self, client_order_id: str, order_id: str) -> None:
        self._order_ids[client_order_id] = order_id
        self._client_ids[order_id] = client_order_id

    def _client_order_id(self, order_id: str) -> str:
        """The client_order_id of an exchange order (asked once for orders placed elsewhere;
        the order_id itself when the order has none)."""
        known = self._client_ids.get(order_id)
        if known is None:
            try:
                known = self.client.get_order(order_id).client_order_id or order_id
            except NotFoundError:
                known = order_id
            self._client_ids[order_id] = known
        return known

    # --- prices -----------------------------------------------------------------------------

    def _markets(self, tickers: list[str]) -> dict[str, Market]:
        unique = list(dict.fromkeys(tickers))
        out: dict[str, Market] = {}
        for i in range(0, len(unique), MARKETS_PER_REQUEST):
            chunk = unique[i : i + MARKETS_PER_REQUEST]
            for market in self.client.get_markets(tickers=chunk, historical=False):
                out[market.ticker] = market
        return out

    def quotes(self, tickers: Sequence[str], ts: pd.Timestamp) -> pd.DataFrame:
        """Best quotes now, indexed by ticker in the given order, as the simulator's.

        An open market is quoted from its book (``source`` book, ``quote_ts`` = ``ts``); a
        closed, unopened or unknown one has no prices (NaN, NaT) and ``is_open`` False. The
        taker rate is NaN only for a market the API does not know.
        """
        _seconds(ts)
        tickers = list(tickers)
        markets = self._markets(tickers)
        books: dict[str, dict[str, float]] = {}
        rows = []
        for ticker in tickers:
            market = markets.get(ticker)
            row: dict[str, object] = {
                "quote_ts": pd.NaT,
                "source": np.nan,
                "yes_bid": np.nan,
                "no_bid": np.nan,
                "yes_bid_size": np.nan,
                "no_bid_size": np.nan,
                "yes_ask": np.nan,
                "no_ask": np.nan,
                "is_open": False,
                "taker_rate": np.nan,
            }
            if market is not None:
                row["taker_rate"] = self.fee_schedule(market.event_ticker).taker_rate_float
                if is_open(market, ts):
                    if ticker not in books:
                        books[ticker] = book_quote(self.client.get_orderbook(ticker, depth=1))
                    row.update(books[ticker], quote_ts=ts, source="book", is_open=True)
            rows.append(row)
        frame = pd.DataFrame(rows, columns=QUOTE_COLUMNS, index=pd.Index(tickers, name="ticker"))
        frame["quote_ts"] = pd.to_datetime(frame["quote_ts"], utc=True)
        return frame.astype({"source": object, "is_open": bool, "taker_rate": float})

    # --- orders -----------------------------------------------------------------------------

    def affordable_count(self, order: ContractOrder) -> int:
        """Contracts of ``order.remaining`` that its budget allows at the limit with the
        worst-case (taker) fee; all of them for a sell or a buy without a budget."""
        budget = order.remaining_budget_cents
        if order.action != "buy" or budget is None:
            return order.remaining
        fees = self.fee_schedule(order.event_ticker)
        price = order.limit_cents

        def total(m: int) -> int:
            return m * price + fees.taker_fee_cents(quadratic_units(m, price))

        lo, hi = 0, order.remaining
        while lo < hi:  # total() grows with m: the last m within the budget
            mid = (lo + hi + 1) // 2
            if total(mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        count = self.affordable_count(order)
        if count <= 0:
            self.unfilled["budget below one contract"] += 1
            return []
        if self.dry_run:
            logger.info(
                "dry run, not sent: %s %s %s %d @ %dc %s",
                order.ticker,
                order.side,
                order.action,
                count,
                order.limit_cents,
                order.client_order_id,
            )
            return []
        if order.client_order_id in self._order_ids:
            # the same id again would be answered with the order already placed (409)
            logger.warning("order %s was already sent: not sent again", order.client_order_id)
            self.unfilled["client_order_id already sent"] += 1
            return []
        price = Decimal(order.limit_cents) / _HUNDRED
        try:
            placed = self.client.create_order(
                order.ticker,
                "yes" if order.side == "yes" else "no",
                "buy" if order.action == "buy" else "sell",
                count,
                yes_price=price if order.side == "yes" else None,
                no_price=price if order.side == "no" else None,
                time_in_force=TIME_IN_FORCE[order.time_in_force],
                client_order_id=order.client_order_id,
                reduce_only=True if order.action == "sell" else None,
            )
        except KalshiAPIError as exc:
            if exc.status != 400:
                raise
            logger.warning("order %s refused: %s", order.client_order_id, exc)
            self.unfilled[f"refused ({exc.code or 'bad request'})"] += 1
            return []
        self._remember(order.client_order_id, placed.order_id)
        logger.info(
            "sent %s %s %s %d @ %dc %s: %s, %s filled",
            order.ticker,
            order.side,
            order.action,
            count,
            order.limit_cents,
            order.client_order_id,
            placed.status,
            placed.fill_count,
        )
        if placed.fill_count == 0:
            if order.time_in_force == "ioc":
                self.unfilled["nothing within the limit"] += 1
            return []
        docs = self.client.get_fills(order_id=placed.order_id)
        listed = sum((d.count for d in docs), Decimal(0))
        if listed < placed.fill_count:
            logger.warning(
                "order %s: %s contracts filled, %s listed yet; the rest comes from fills()",
                order.client_order_id,
                placed.fill_count,
                listed,
            )
        taker = []
        for doc in docs:
            if doc.is_taker is False or not self._unreported(doc, ts):
                continue  # maker fills come from fills()
            taker.append(fill_from_api(doc, order.client_order_id, ts))
            self._mark(doc, ts)
        return [merge_fills(taker)] if taker else []

    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        """Cancel the order's resting rest; nothing if it was never placed, or is done."""
        if self.dry_run:
            return
        order_id = self._order_ids.get(order.client_order_id)
        if order_id is None:
            found = self.client.find_order(order.ticker, order.client_order_id)
            if found is None:
                return
            self._remember(order.client_order_id, found.order_id)
            if found.status != "resting":
                return
            order_id = found.order_id
        try:
            self.client.cancel_order(order_id)
        except NotFoundError:  # executed or canceled already: nothing rests
            logger.debug("order %s: nothing rests to cancel", order.client_order_id)

    # --- what happened since ----------------------------------------------------------------

    @staticmethod
    def _fill_key(doc: ApiFill) -> str:
        key = doc.fill_id or doc.trade_id
        if not key:
            raise DataError(f"a fill of order {doc.order_id} has no fill_id or trade_id")
        return key

    @staticmethod
    def _fill_s(doc: ApiFill, fallback: pd.Timestamp) -> int:
        when = fallback if doc.created_time is None else pd.Timestamp(doc.created_time)
        return _seconds(when)

    def _unreported(self, doc: ApiFill, fallback: pd.Timestamp) -> bool:
        return (
            self._fill_key(doc) not in self._reported_fills
            and self._fill_s(doc, fallback) >= self._since_s
        )

    def _mark(self, doc: ApiFill, fallback: pd.Timestamp) -> None:
        self._reported_fills[self._fill_key(doc)] = self._fill_s(doc, fallback)

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        """Every fill of the account up to ``until`` not reported yet (by ``submit`` or an
        earlier call), in time order, ``order_id`` the order's client_order_id."""
        docs = self.client.get_fills(min_ts=self._fills_from_s, max_ts=_seconds(until))
        fresh = [d for d in docs if self._unreported(d, until)]
        out = []
        for doc in fresh:
            out.append(fill_from_api(doc, self._client_order_id(doc.order_id), until))
            self._mark(doc, until)
        self._fills_from_s = self._advance(self._reported_fills, self._fills_from_s)
        return sorted(out, key=lambda f: f.ts)

    def _advance(self, reported: dict[Any, int], start: int) -> int:
        """The next listing's min_ts: ``overlap`` before the newest item reported; items
        older than it cannot come back and are forgotten."""
        if not reported:
            return start
        start = max(start, max(reported.values()) - self._overlap_s)
        for key in [k for k, s in reported.items() if s < start]:
            del reported[key]
        return start

    def settlements(self, until: pd.Timestamp) -> list[SettledMarket]:
        """Markets held on the account that settled up to ``until``, each once, in time order."""
        docs = self.client.get_settlements(min_ts=self._settlements_from_s, max_ts=_seconds(until))
        out = []
        for doc in sorted(docs, key=lambda s: s.settled_time):
            key = (doc.ticker, doc.settled_time.isoformat())
            when = _seconds(pd.Timestamp(doc.settled_time))
            if key in self._reported_settlements or when < self._since_s:
                continue
            self._reported_settlements[key] = when
            try:
                settled = settled_market(doc)
            except DataError as exc:  # reconciliation will name the market
                logger.error("settlement not booked: %s", exc)
                continue
            if settled is not None:
                out.append(settled)
        self._settlements_from_s = self._advance(
            self._reported_settlements, self._settlements_from_s
        )
        return out

    def positions(self) -> dict[str, tuple[str, int]]:
        return positions_from_api(self.client.get_positions())

    def balance_cents(self) -> int:
        """Kalshi's available balance: cash minus what resting buy orders hold."""
        return self.client.get_balance().balance
