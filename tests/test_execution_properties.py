"""Property-based tests of the execution layer: random books, candles and order flows.

Hypothesis draws one or two markets (book snapshots of 1-5 bid levels per side that never cross,
their mid moving between snapshots, sizes incl. fractional, repeated rows of a level; optional
candles of several periods), fee settings (quadratic, with maker fees, flat), depth and volume
shares, a venue balance and a bot's event stream: ioc and gtc buys and sells (budgets, limits
aggressive, passive or one cent off the market, counts up to 500) sent before, between and after
snapshots and after the close, cancels of resting orders, and polls of maker fills and
settlements. A second strategy puts a resting order among rival orders on little cash, in a
market trending through it. The bot books everything it is told in its own KalshiAccount.

Every fill is then checked against a reference computed here from the raw case alone, with
exact fractions: the quote it must have used (no look-ahead), the levels it walked (best first,
within the limit, never more than ``floor(share x size)`` of a level or ``floor(share x volume)``
of a candle across all orders), its cost and its fee; budgets, cash and positions; the venue's
ledger against the bot's; determinism. The regressions at the end pin what the properties found.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kalshi_lab.data.tables import CANDLES, ORDERBOOK
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SettledMarket, SimulatedKalshiExchange
from kalshi_lab.execution.fees import FEE_TYPES

T0 = pd.Timestamp("2025-01-01", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)
EVENT = "E"
END = 10_000  # minutes: the last poll, after every close and settlement

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def at(minute: int) -> pd.Timestamp:
    return T0 + minute * MINUTE


def exact(x: float) -> Fraction:
    """The decimal a float was written as (0.07 -> 7/100), as the fee schedule reads it."""
    return Fraction(str(x))


# --- the case ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    ticker: str
    series: str
    fee_type: str
    fee_multiplier: float
    close: int  # minutes from T0
    settle: int | None
    result: str | None
    # (minute, rows of (side, price cents, size)): bids only, never crossing
    snapshots: tuple[tuple[int, tuple[tuple[str, int, float], ...]], ...]
    # (end minute, period minutes, yes bid close cents, yes ask close cents, volume)
    candles: tuple[tuple[int, int, int, int, float], ...]


@dataclass(frozen=True)
class OrderSpec:
    oid: str
    ticker: str
    side: str
    action: str
    count: int
    limit: int
    max_cost: int | None
    tif: str


@dataclass(frozen=True)
class Case:
    markets: tuple[Market, ...]
    taker_fee_rate: float
    max_fill_share: float
    max_volume_share: float
    cash: int
    # (minute, kind, payload): submit (OrderSpec), cancel (order id) or poll (None)
    events: tuple[tuple[int, str, object], ...]
    max_quote_age_minutes: int | None = None  # None: a quote of any age


# Hypothesis starts from the simplest values (the first branch, the bound nearest 0): they are
# chosen here to give fills (deep books, cash, aggressive limits, sends while open)
SIZES = st.one_of(
    st.integers(-10, 290).map(lambda c: float(10 + c)),  # whole contracts, 10 first
    st.integers(1, 2_500).map(lambda c: c / 100),  # fractional
)
VOLUMES = st.one_of(st.integers(0, 2_000).map(float), st.integers(0, 5_000).map(lambda c: c / 100))
SHARES = st.sampled_from([1.0, 0.5, 0.3, 0.25, 0.1, 0.75])


@st.composite
def snapshot_rows(draw, mid: int, tight: bool = False) -> tuple[tuple[str, int, float], ...]:
    """One snapshot's bids around a YES mid (cents): 1-5 levels a side, best YES bid + best NO
    bid < 100 (a spread of 1 cent or more; tight: YES bid mid - 1, YES ask mid + 1)."""
    if tight:
        best_yes, best_no = mid - 1, 99 - mid
    else:
        best_yes = min(max(mid - draw(st.integers(0, 10)), 1), 98)
        best_no = 99 - best_yes - draw(st.integers(0, min(20, 98 - best_yes)))
    rows = []
    for side, best in (("yes", best_yes), ("no", best_no)):
        deeper = draw(st.lists(st.integers(1, best), max_size=4, unique=True))
        for price in sorted({best, *deeper})[-5:]:
            for size in draw(st.lists(SIZES, min_size=1, max_size=2)):  # 2: a repeated row
                rows.append((side, price, size))
    return tuple(draw(st.permutations(rows)))


@st.composite
def candle_rows(draw) -> tuple[int, int, int, int, float]:
    bid = draw(st.integers(0, 98))  # 0: no bid
    ask = draw(st.integers(bid + 1, 100))  # 100: no offer
    end = draw(st.integers(-120, 600))
    return (end, draw(st.sampled_from([1, 60, 1440])), bid, ask, draw(VOLUMES))


@st.composite
def markets(draw, ticker: str, min_snapshots: int) -> Market:
    n = draw(st.integers(min_snapshots, 6))
    minutes = [draw(st.integers(0, 300))] if n else []
    gaps = st.one_of(st.integers(1, 30), st.integers(1, 240))
    for gap in draw(st.lists(gaps, min_size=max(n - 1, 0), max_size=max(n - 1, 0))):
        minutes.append(minutes[-1] + gap)  # minutes apart or hours apart
    # the mid moves between snapshots, so later books trade through earlier resting limits
    mids = [50 + draw(st.integers(-45, 45))]
    moves = st.one_of(st.integers(-30, -2), st.integers(2, 30), st.integers(-30, 30))
    for _ in minutes[1:]:
        mids.append(min(max(mids[-1] + draw(moves), 2), 98))
    snapshots = tuple((m, draw(snapshot_rows(mid))) for m, mid in zip(minutes, mids, strict=False))
    candles = tuple(draw(st.lists(candle_rows(), max_size=4, unique_by=lambda c: (c[0], c[1]))))
    close = 720 - draw(st.integers(0, 690))
    settle = draw(st.one_of(st.integers(0, 300).map(lambda d: close + d), st.none()))
    result = None if settle is None else draw(st.sampled_from(["yes", "no", "void", None]))
    return Market(
        ticker=ticker,
        series=draw(st.sampled_from(["S1", "S2"])),
        fee_type="",  # set from the series below
        fee_multiplier=0.0,
        close=close,
        settle=settle,
        result=result,
        snapshots=snapshots,
        candles=candles,
    )


def offered(m: Market, side: str, action: str, minute: int) -> set[int]:
    """The prices a market may show to an order sent at ``minute`` (asks to a buy, bids to a
    sell, in cents): its latest snapshot by then (all of them without one), and its candles
    unless that snapshot is newer than all of them."""
    book_side = ("no" if side == "yes" else "yes") if action == "buy" else side
    snaps = [(t, rows) for t, rows in m.snapshots if t <= minute][-1:] or list(m.snapshots)
    bids = {p for _, rows in snaps for s, p, _ in rows if s == book_side}
    if not any(t <= minute for t, _ in m.snapshots) or any(
        snaps[-1][0] < c[0] <= minute for c in m.candles
    ):
        for _, _, yes_bid, yes_ask, _ in m.candles:
            bids.add(yes_bid if book_side == "yes" else 100 - yes_ask)
    return {100 - b if action == "buy" else b for b in bids if 1 <= b <= 99}


@st.composite
def cases(draw) -> Case:
    fees = {
        s: (
            draw(st.sampled_from(FEE_TYPES)),  # flat: charged the quadratic taker fee
            draw(st.sampled_from([0.5, 1.0, 1.5, 2.0])),
        )
        for s in ("S1", "S2")
    }
    drawn = [draw(markets("A", 1))]
    if draw(st.booleans()):
        drawn.append(draw(markets("B", 0)))  # possibly without a book: candles only
    mkts = tuple(
        Market(**{**m.__dict__, "fee_type": fees[m.series][0], "fee_multiplier": fees[m.series][1]})
        for m in drawn
    )
    interesting = sorted(
        {m.close for m in mkts}
        | {s for m in mkts for s, _ in m.snapshots}
        | {c[0] for m in mkts for c in m.candles}
    )
    anytime = st.one_of(st.integers(-120, 900), st.sampled_from(interesting))

    def minutes(ticker: str) -> st.SearchStrategy[int]:
        """Send times: before, between and after the quotes and after the close, often on a
        quote's time, mostly while the market quotes and is open."""
        m = next(m for m in mkts if m.ticker == ticker)
        first = min([t for t, _ in m.snapshots] + [c[0] for c in m.candles], default=m.close)
        trading = st.integers(first, m.close - 1) if first < m.close else anytime
        near_quote = st.tuples(st.sampled_from(interesting), st.integers(-60, 90)).map(sum)
        return st.one_of(trading, near_quote, anytime)

    events: list[tuple[int, str, object]] = []
    sent_before: list[tuple[int, OrderSpec]] = []
    for i in range(draw(st.integers(3, 12))):
        action = draw(st.sampled_from(["buy", "sell"]))
        ticker = draw(st.sampled_from([m.ticker for m in mkts]))
        side = draw(st.sampled_from(["yes", "no"]))
        sent = draw(minutes(ticker))
        buys = [(t, o) for t, o in sent_before if o.action == "buy"]
        if action == "sell" and buys and draw(st.integers(0, 3)) < 3:  # sell what a buy got, later
            bought_at, bought = draw(st.sampled_from(buys))
            ticker, side = bought.ticker, bought.side
            sent = bought_at + draw(st.integers(0, 300))
        elif sent_before and draw(st.integers(0, 2)) == 0:
            # soon after another order in its market, maybe on the other side: while it rests
            earlier_at, earlier = draw(st.sampled_from(sent_before))
            ticker = earlier.ticker
            sent = earlier_at + draw(st.integers(0, 120))
        m = next(m for m in mkts if m.ticker == ticker)
        tif = draw(st.sampled_from(["ioc", "gtc"]))
        buy = action == "buy"
        # aggressive (an ioc), passive (a gtc that rests), anywhere, or at / one cent inside or
        # outside a price the market shows then
        limits = [
            st.integers(1, 99),
            st.integers(-29, 0).map(lambda d: 99 + d) if buy else st.integers(1, 30),
        ]
        quoted = sorted(offered(m, side, action, sent))
        if quoted:
            near = st.tuples(st.sampled_from(quoted), st.integers(-1, 1)).map(
                lambda q: min(max(q[0] + q[1], 1), 99)
            )
            limits += [near, near]
            if tif == "gtc":
                best = min(quoted) if buy else max(quoted)
                away = {min(max(best + (-d if buy else d), 1), 99) for d in range(1, 9)}
                limits[1] = st.sampled_from(sorted(away, reverse=buy))  # nearest first
        spec = OrderSpec(
            oid=f"o{i}",
            ticker=ticker,
            side=side,
            action=action,
            count=draw(
                st.one_of(st.integers(1, 20), st.integers(1, 500))
                if buy
                else st.one_of(st.integers(1, 3), st.integers(1, 30), st.integers(1, 500))
            ),
            limit=draw(st.one_of(*limits)),
            max_cost=(
                draw(st.one_of(st.none(), st.integers(0, 500), st.integers(0, 20_000)))
                if buy
                else None
            ),
            tif=tif,
        )
        events.append((sent, "submit", spec))
        sent_before.append((sent, spec))
        if spec.tif == "gtc" and draw(st.booleans()):
            events.append((sent + draw(st.integers(0, 600)), "cancel", spec.oid))
    events += [(m, "poll", None) for m in draw(st.lists(anytime, max_size=6))]
    events.sort(key=lambda e: e[0])  # stable: the drawn order at equal times
    events.append((END, "poll", None))
    return Case(
        markets=mkts,
        taker_fee_rate=draw(st.sampled_from([0.035, 0.07, 0.1])),
        max_fill_share=draw(SHARES),
        max_volume_share=draw(SHARES),
        # plenty, or little enough that orders compete for it
        cash=draw(st.one_of(*[st.integers(20_000, 500_000), st.integers(0, 3_000)])),
        events=tuple(events),
        # any age, or ages that leave some sends without a quote (snapshots come minutes or
        # hours apart, candles end anywhere in the first ten hours)
        max_quote_age_minutes=draw(st.one_of(st.none(), st.sampled_from([30, 120, 600]))),
    )


@st.composite
def rests_and_rivals(draw) -> Case:
    """One market with a tight book (a snapshot every 10 minutes) trending through a gtc order
    that rests on the first book at or just off its best price (a sell after buying what it
    sells); before the next book other orders compete with it: buys of either side, sells of
    the same contracts, on little cash."""
    side = draw(st.sampled_from(["yes", "no"]))
    action = draw(st.sampled_from(["buy", "sell"]))
    # buying YES or selling NO is crossed when the YES price falls, the others when it rises
    down = (side == "yes") == (action == "buy")
    step = (-1 if down else 1) * draw(st.integers(3, 10))
    mid = 50 + draw(st.integers(-15, 15))
    snapshots = tuple(
        (10 * k, draw(snapshot_rows(min(max(mid + k * step, 2), 98), tight=True)))
        for k in range(draw(st.integers(2, 5)))
    )
    fee_type = draw(st.sampled_from(FEE_TYPES))
    market = Market("A", "S1", fee_type, 1.0, 600, 700, "yes", snapshots, ())
    events: list[tuple[int, str, object]] = []
    if action == "sell":
        events.append((1, "submit", OrderSpec("buy", "A", side, "buy", 20, 99, None, "ioc")))
    best = (
        min(offered(market, side, action, 2))
        if action == "buy"
        else max(offered(market, side, action, 2))
    )
    off = draw(st.integers(1, 4))  # cents short of the best price: it rests whole
    limit = min(max(best - off if action == "buy" else best + off, 1), 99)
    count = draw(st.integers(1, 30 if action == "buy" else 10))  # a sell: of the 20 bought
    rest = OrderSpec("rest", "A", side, action, count, limit, None, "gtc")
    events.append((2, "submit", rest))
    other = "no" if side == "yes" else "yes"
    for i in range(draw(st.integers(1, 4))):
        # the other side bought, the same contracts sold or bought (spending cash), or anything
        rival_side, rival_action = draw(
            st.sampled_from([(other, "buy"), (side, "sell"), (side, "buy")])
        )
        if draw(st.integers(0, 3)) == 0:
            rival_side = draw(st.sampled_from(["yes", "no"]))
            rival_action = draw(st.sampled_from(["buy", "sell"]))
        rival = OrderSpec(
            f"rival{i}",
            "A",
            rival_side,
            rival_action,
            draw(st.integers(1, 30 if rival_action == "buy" else 10)),
            draw(st.one_of(st.integers(80, 99), st.integers(1, 99)))
            if rival_action == "buy"
            else draw(st.one_of(st.integers(1, 20), st.integers(1, 99))),
            None,
            "ioc",
        )
        events.append((draw(st.integers(3, 9)), "submit", rival))
    events.sort(key=lambda e: e[0])
    events.append((END, "poll", None))
    return Case(
        markets=(market,),
        taker_fee_rate=0.07,
        max_fill_share=draw(SHARES),
        max_volume_share=1.0,
        cash=draw(st.integers(200, 1_500)),
        events=tuple(events),
    )


# --- running a case ------------------------------------------------------------------------------


def build_exchange(case: Case) -> SimulatedKalshiExchange:
    book = [
        {"ticker": m.ticker, "snapshot_ts": at(t), "side": s, "price": p / 100, "count": c}
        for m in case.markets
        for t, rows in m.snapshots
        for s, p, c in rows
    ]
    candles = [
        {
            "ticker": m.ticker,
            "period_minutes": period,
            "end_period_ts": at(end),
            "yes_bid_close": bid / 100,
            "yes_ask_close": ask / 100,
            "volume": volume,
        }
        for m in case.markets
        for end, period, bid, ask, volume in m.candles
    ]
    markets = pd.DataFrame(
        {
            "ticker": [m.ticker for m in case.markets],
            "event_ticker": EVENT,
            "series_ticker": [m.series for m in case.markets],
            "close_time": [at(m.close) for m in case.markets],
            "settlement_ts": [pd.NaT if m.settle is None else at(m.settle) for m in case.markets],
            "result": [m.result for m in case.markets],
        }
    )
    series = pd.DataFrame(
        {
            "series_ticker": [m.series for m in case.markets],
            "fee_type": [m.fee_type for m in case.markets],
            "fee_multiplier": [m.fee_multiplier for m in case.markets],
        }
    ).drop_duplicates("series_ticker")
    return SimulatedKalshiExchange(
        pa.Table.from_pylist(book, schema=ORDERBOOK).to_pandas(),
        pa.Table.from_pylist(candles, schema=CANDLES).to_pandas(),
        markets,
        series,
        case.taker_fee_rate,
        case.max_fill_share,
        case.max_volume_share,
        case.cash,
        None if case.max_quote_age_minutes is None else case.max_quote_age_minutes / 60,
    )


@dataclass(frozen=True)
class Booked:
    """One fill as the bot received it, with what the bot knew of its order then."""

    fill: Fill
    spec: OrderSpec
    sent: pd.Timestamp
    cancelled: pd.Timestamp | None  # when the order was cancelled, if it was by then
    polled: pd.Timestamp | None  # ``until`` of the fills() call that reported a maker fill
    remaining: int  # contracts of the order not filled before this fill


@dataclass(frozen=True)
class State:
    """After one event: the venue's ledger, the bot's, and the bot's ledger identity."""

    venue_balance: int
    venue_positions: dict[str, tuple[str, int]]
    cash: int
    positions: dict[str, tuple[str, int]]
    initial_plus_realized: int
    cash_plus_basis: int


@dataclass
class Trace:
    booked: list[Booked] = field(default_factory=list)
    settled: list[SettledMarket] = field(default_factory=list)
    states: list[State] = field(default_factory=list)


class Bot:
    """Sends the case's orders as drawn and books everything the venue reports in its own
    account. It guards nothing itself: keeping resting orders within the cash and the
    positions is the venue's job (as on Kalshi). It polls right after a cancel, for what
    traded through the rest before it: booked later, those fills could come after a sell of
    the contracts they bought, which the bot's account (booking in order) would refuse."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.ex = build_exchange(case)
        self.account = KalshiAccount(case.cash)
        self.specs: dict[str, OrderSpec] = {}
        self.orders: dict[str, ContractOrder] = {}
        self.sent: dict[str, pd.Timestamp] = {}
        self.cancelled: dict[str, pd.Timestamp] = {}
        self.filled: dict[str, int] = defaultdict(int)
        self.trace = Trace()

    def run(self) -> Trace:
        for minute, kind, payload in self.case.events:
            ts = at(minute)
            if kind == "submit":
                assert isinstance(payload, OrderSpec)
                self.submit(payload, ts)
            elif kind == "cancel":
                self.ex.cancel(self.orders[payload], ts)
                self.cancelled.setdefault(payload, ts)
                self.poll(ts)  # what traded through the rest before the cancel
            else:
                self.poll(ts)
            self._record_state()
        return self.trace

    def submit(self, spec: OrderSpec, ts: pd.Timestamp) -> None:
        self.specs[spec.oid], self.sent[spec.oid] = spec, ts
        self.orders[spec.oid] = ContractOrder(
            spec.ticker,
            EVENT,
            spec.side,
            spec.action,
            spec.count,
            spec.limit,
            ts,
            max_cost_cents=spec.max_cost,
            time_in_force=spec.tif,
            client_order_id=spec.oid,
        )
        for fill in self.ex.submit(self.orders[spec.oid], ts):
            self.book(fill, None)

    def poll(self, ts: pd.Timestamp) -> None:
        for fill in self.ex.fills(ts):
            self.book(fill, ts)
        for s in self.ex.settlements(ts):
            self.trace.settled.append(s)
            self.account.settle(s.ticker, s.result, s.ts)

    def book(self, fill: Fill, polled: pd.Timestamp | None) -> None:
        oid = fill.order_id
        spec = self.specs[oid]
        self.trace.booked.append(
            Booked(
                fill,
                spec,
                self.sent[oid],
                self.cancelled.get(oid),
                polled,
                spec.count - self.filled[oid],
            )
        )
        self.filled[oid] += fill.count
        self.account.apply(fill, EVENT)

    def _record_state(self) -> None:
        account = self.account
        self.trace.states.append(
            State(
                venue_balance=self.ex.balance_cents(),
                venue_positions=self.ex.positions(),
                cash=account.cash_cents,
                positions={t: (p.side, p.contracts) for t, p in account.positions.items()},
                initial_plus_realized=account.initial_cash_cents + account.realized_pnl_cents,
                cash_plus_basis=account.cash_cents + account.open_basis_cents,
            )
        )


def simulate(case: Case) -> Trace:
    """Run the case's events against a fresh exchange."""
    return Bot(case).run()


# --- the reference: quotes and levels from the raw case ----------------------------------------


@dataclass
class Reference:
    """What the case's data quote at a time, and the depth each level has left."""

    case: Case
    taken: dict[tuple[object, ...], int] = field(default_factory=lambda: defaultdict(int))

    def market(self, ticker: str) -> Market:
        return next(m for m in self.case.markets if m.ticker == ticker)

    def quote(self, ticker: str, ts: pd.Timestamp) -> tuple[str, pd.Timestamp] | None:
        """(source, quote time) at ts: the fresher of the latest snapshot at or before it and
        the latest candle that ended at or before it (the snapshot at a tie); None without
        either, or when it is older than the case's maximum age."""
        m = self.market(ticker)
        quotes = [("book", at(t)) for t, _ in m.snapshots if at(t) <= ts]
        quotes += [("candle", at(c[0])) for c in m.candles if at(c[0]) <= ts]
        if not quotes:
            return None
        source, quote_ts = max(quotes, key=lambda q: (q[1], q[0] == "book"))
        age = self.case.max_quote_age_minutes
        if age is not None and ts - quote_ts > age * MINUTE:
            return None
        return source, quote_ts

    def levels(self, fill: Fill) -> list[tuple[int, tuple[object, ...], int]]:
        """(price paid or received, consumption key, capacity) of the levels the fill's quote
        offers its order, best first."""
        m = self.market(fill.ticker)
        buy = fill.action == "buy"
        book_side = ("no" if fill.side == "yes" else "yes") if buy else fill.side
        if fill.source == "book":
            minute = next(t for t, _ in m.snapshots if at(t) == fill.quote_ts)
            rows = next(r for t, r in m.snapshots if t == minute)
            sizes: dict[int, Fraction] = defaultdict(Fraction)
            for side, price, size in rows:
                if side == book_side:
                    sizes[price] += exact(size)
            share = exact(self.case.max_fill_share)
            return [
                (
                    100 - bid if buy else bid,
                    (fill.ticker, fill.quote_ts, book_side, bid),
                    math.floor(share * size),
                )
                for bid, size in sorted(sizes.items(), reverse=True)
            ]
        # the shortest period among the candles ending then quotes
        end, period, yes_bid, yes_ask, volume = min(
            (c for c in m.candles if at(c[0]) == fill.quote_ts), key=lambda c: c[1]
        )
        bid = yes_bid if book_side == "yes" else 100 - yes_ask
        if not 1 <= bid <= 99:
            return []
        cap = math.floor(exact(self.case.max_volume_share) * exact(volume))
        return [(100 - bid if buy else bid, (fill.ticker, "candle", fill.quote_ts), cap)]

    def walk(self, b: Booked) -> list[tuple[int, int]]:
        """Books the fill on the levels its order may take (taker: within the limit; maker:
        strictly through it), best first, as far as each has depth left; returns (price,
        contracts) per level. Fails if the levels cannot hold the fill."""
        fill, limit = b.fill, b.spec.limit
        buy = fill.action == "buy"
        maker = fill.liquidity == "maker"
        out, left = [], fill.count
        for price, key, capacity in self.levels(fill):
            if maker:
                usable = price < limit if buy else price > limit
            else:
                usable = price <= limit if buy else price >= limit
            if not usable or not left:
                break
            n = min(left, max(capacity - self.taken[key], 0))
            self.taken[key] += n
            left -= n
            if n:
                out.append((price, n))
        assert left == 0, (
            f"{fill} takes {left} more contracts than its quote's levels "
            f"{self.levels(fill)} had left ({dict(self.taken)})"
        )
        return out


def ceil_fee(rate: Fraction, units: int) -> int:
    return math.ceil(rate * units / 100)


# --- the properties ------------------------------------------------------------------------------
# Building an exchange costs most of an example (pandas), so one simulation per example is
# checked for every property; each check names what it guards.


def check_fills_stay_within_their_order_and_pay_the_exact_fee(case: Case, trace: Trace) -> None:
    ref = Reference(case)
    for b in trace.booked:
        f, spec = b.fill, b.spec
        m = ref.market(f.ticker)
        assert (f.ticker, f.side, f.action) == (spec.ticker, spec.side, spec.action)
        assert 0 < f.count <= b.remaining, f"{f} fills more than the {b.remaining} remaining"
        if f.action == "buy":
            assert f.cost_cents <= f.count * spec.limit, f"{f} pays above its limit {spec.limit}"
        else:
            assert f.cost_cents >= f.count * spec.limit, f"{f} gets below its limit {spec.limit}"
        levels = ref.walk(b)
        multiplier = exact(m.fee_multiplier)
        if f.liquidity == "taker":
            # the displayed prices, best first; one fee on the units of all levels
            assert f.cost_cents == sum(p * n for p, n in levels), (f, levels)
            units = sum(n * p * (100 - p) for p, n in levels)
            fee = ceil_fee(exact(case.taker_fee_rate) * multiplier, units)
            assert f.fee_cents == fee, (f, levels, fee)
        else:
            assert spec.tif == "gtc", f"{f}: an ioc order never rests"
            assert f.cost_cents == f.count * spec.limit, f"{f}: a maker fills at its limit"
            # makers pay only on series that charge them, "quadratic" ones never
            charged = m.fee_type == "quadratic_with_maker_fees"
            maker_rate = Fraction("0.0175") * multiplier if charged else Fraction(0)
            fee = ceil_fee(maker_rate, f.count * spec.limit * (100 - spec.limit))
            assert f.fee_cents == fee, (f, m.fee_type, fee)


def check_no_level_or_candle_gives_more_than_its_share(case: Case, trace: Trace) -> None:
    """Books every fill on the levels of its quote, in the order the venue made them; walk()
    fails as soon as a snapshot's level gives more than floor(max_fill_share x size), or a
    candle more than floor(max_volume_share x volume), to all orders together."""
    ref = Reference(case)
    for b in trace.booked:
        ref.walk(b)


def check_fills_use_the_latest_quote_known_when_sent(case: Case, trace: Trace) -> None:
    ref = Reference(case)
    for b in trace.booked:
        f = b.fill
        close = at(ref.market(f.ticker).close)
        assert f.quote_ts <= f.ts < close, f"{f}: a quote from later, or a fill after the close"
        assert ref.quote(f.ticker, f.ts) == (f.source, f.quote_ts), f"{f}: not the quote of then"
        if f.liquidity == "taker":
            assert b.polled is None and f.ts == b.sent, f"{f}: a taker fills when sent"
        else:
            # the market traded through the rest after it was sent and before any cancel,
            # reported no earlier
            assert b.polled is not None and b.sent < f.ts == f.quote_ts <= b.polled, (f, b)
            assert b.cancelled is None or f.ts <= b.cancelled, f"{f}: filled after its cancel"


def check_budgets_cash_positions_and_ledgers(case: Case, trace: Trace) -> None:
    spent: dict[str, int] = defaultdict(int)
    for b in trace.booked:
        spent[b.spec.oid] += b.fill.cost_cents + b.fill.fee_cents
        budget = b.spec.max_cost
        assert budget is None or spent[b.spec.oid] <= budget, f"{b.fill}: over {budget}"
    for s in trace.states:
        assert s.venue_balance >= 0
        assert all(n > 0 for _, n in s.venue_positions.values()), s.venue_positions
        assert s.initial_plus_realized == s.cash_plus_basis, s
        # every fill is reported when made (a send's at once, a rest's by the next poll, which
        # the bot makes right after a cancel), so the ledgers agree after every event
        assert (s.cash, s.positions) == (s.venue_balance, s.venue_positions), s
    settled = {m.ticker for m in case.markets if m.settle is not None and m.result is not None}
    assert not settled & set(trace.states[-1].positions), "a settled market is still held"


# taker fees that are exact integers (4 at 50 cents: 0.07 x 4 x 50 x 50 / 100 = 7, where the
# float product is 7.000000000000001), a walk over two levels, a maker sell, a settlement
EXACT_FEES = Case(
    markets=(
        Market(
            ticker="A",
            series="S1",
            fee_type="quadratic_with_maker_fees",
            fee_multiplier=1.0,
            close=600,
            settle=700,
            result="yes",
            snapshots=(
                (0, (("yes", 40, 10.0), ("yes", 38, 5.5), ("no", 50, 6.0), ("no", 45, 20.25))),
                (120, (("yes", 47, 10.0), ("no", 30, 10.0))),
            ),
            candles=(),
        ),
    ),
    taker_fee_rate=0.07,
    max_fill_share=1.0,
    max_volume_share=1.0,
    cash=10_000,
    events=(
        (10, "submit", OrderSpec("o0", "A", "yes", "buy", 4, 50, None, "ioc")),
        (20, "submit", OrderSpec("o1", "A", "yes", "buy", 30, 55, 900, "gtc")),
        (30, "submit", OrderSpec("o2", "A", "yes", "sell", 6, 45, None, "gtc")),
        (130, "poll", None),
        (END, "poll", None),
    ),
)

# edges: a budget between the cost of two contracts and that cost with its fee buys one; a buy
# limited one cent below the ask fills nothing; a rest sent just after a quote that would have
# crossed it (YES ask 40 at minute 0, 50 from minute 30) never fills against that quote
EDGES = Case(
    markets=(
        Market(
            ticker="A",
            series="S1",
            fee_type="quadratic",
            fee_multiplier=1.0,
            close=600,
            settle=None,
            result=None,
            snapshots=(
                (0, (("yes", 30, 10.0), ("no", 60, 10.0))),
                (30, (("yes", 30, 10.0), ("no", 50, 10.0))),
            ),
            candles=(),
        ),
    ),
    taker_fee_rate=0.07,
    max_fill_share=1.0,
    max_volume_share=1.0,
    cash=10_000,
    events=(
        (35, "submit", OrderSpec("o0", "A", "yes", "buy", 3, 50, 100, "ioc")),  # 50 + fee 2
        (40, "submit", OrderSpec("o1", "A", "yes", "buy", 3, 49, None, "ioc")),
        (41, "submit", OrderSpec("o2", "A", "yes", "buy", 5, 45, None, "gtc")),
        (END, "poll", None),
    ),
)


@PROPERTY
@example(EXACT_FEES)
@example(EDGES)
@given(cases())
def test_every_fill_and_ledger_obeys_the_venue_rules(case):
    trace = simulate(case)
    check_fills_stay_within_their_order_and_pay_the_exact_fee(case, trace)
    check_no_level_or_candle_gives_more_than_its_share(case, trace)
    check_fills_use_the_latest_quote_known_when_sent(case, trace)
    check_budgets_cash_positions_and_ledgers(case, trace)


@settings(PROPERTY, max_examples=100)
@given(rests_and_rivals())
def test_resting_orders_stay_within_the_venues_cash_and_positions(case):
    trace = simulate(case)
    check_fills_stay_within_their_order_and_pay_the_exact_fee(case, trace)
    check_no_level_or_candle_gives_more_than_its_share(case, trace)
    check_fills_use_the_latest_quote_known_when_sent(case, trace)
    check_budgets_cash_positions_and_ledgers(case, trace)


@settings(PROPERTY, max_examples=15)
@given(cases())
def test_the_same_inputs_give_the_same_fills(case):
    first, second = simulate(case), simulate(case)
    assert [b.fill for b in first.booked] == [b.fill for b in second.booked]
    assert first.settled == second.settled
    assert first.states == second.states


# --- regressions: what the properties found -------------------------------------------------
# A resting gtc order used to be checked against the venue's cash and positions only when sent:
# when the market later traded through it, fills() booked it on the venue's ledger, which raised
# (OverdraftError or ValueError, after the rest had recorded the fill and taken the depth); and a
# cancel dropped what had traded through the rest since the last fills() call.

H = pd.Timedelta(hours=1)


def venue(rows: list[tuple[pd.Timestamp, str, float, float]], cash: int) -> SimulatedKalshiExchange:
    """Market A (closes at T0 + 10h, quadratic fees) with the given bids: (ts, side, $, size)."""
    book = [
        {"ticker": "A", "snapshot_ts": ts, "side": s, "price": p, "count": c}
        for ts, s, p, c in rows
    ]
    markets = pd.DataFrame(
        {
            "ticker": ["A"],
            "event_ticker": [EVENT],
            "series_ticker": ["S"],
            "close_time": [T0 + 10 * H],
            "settlement_ts": [pd.NaT],
            "result": [None],
        }
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    return SimulatedKalshiExchange(
        pa.Table.from_pylist(book, schema=ORDERBOOK).to_pandas(),
        pa.Table.from_pylist([], schema=CANDLES).to_pandas(),
        markets,
        series,
        0.07,
        1.0,
        1.0,
        cash,
    )


def limit_order(oid: str, side: str, action: str, count: int, limit: int, tif: str = "ioc"):
    return ContractOrder(
        "A", EVENT, side, action, count, limit, T0, time_in_force=tif, client_order_id=oid
    )


def assert_venue_sound(ex: SimulatedKalshiExchange) -> None:
    assert ex.balance_cents() >= 0
    assert all(n > 0 for _, n in ex.positions().values())


def test_a_resting_buy_never_overdraws_the_venue():
    # YES ask 50 at T0, 38 from T0 + 2h
    ex = venue(
        [
            (T0, "yes", 0.42, 10.0),
            (T0, "no", 0.50, 10.0),
            (T0 + 2 * H, "yes", 0.30, 10.0),
            (T0 + 2 * H, "no", 0.62, 10.0),
        ],
        cash=500,
    )
    assert ex.submit(limit_order("rest", "yes", "buy", 10, 45, "gtc"), T0) == []  # rests
    (fill,) = ex.submit(limit_order("take", "yes", "buy", 9, 50), T0 + H)  # 9 x 50 + fee 16
    assert ex.balance_cents() == 500 - 466
    # the ask falls through 45: 34 cents of cash buy no contract at 45 (was: OverdraftError)
    assert ex.fills(T0 + 3 * H) == []
    assert_venue_sound(ex)
    assert (ex.balance_cents(), ex.positions()) == (34, {"A": ("yes", 9)})


def test_a_resting_buy_never_fills_opposite_a_position_held():
    # NO ask 58 and YES ask 50 at T0; NO ask 40 from T0 + 2h
    ex = venue(
        [
            (T0, "yes", 0.42, 10.0),
            (T0, "no", 0.50, 10.0),
            (T0 + 2 * H, "yes", 0.60, 10.0),
            (T0 + 2 * H, "no", 0.30, 10.0),
        ],
        cash=100_000,
    )
    assert ex.submit(limit_order("rest", "no", "buy", 5, 45, "gtc"), T0) == []  # rests
    assert len(ex.submit(limit_order("take", "yes", "buy", 5, 50), T0 + H)) == 1
    assert ex.positions() == {"A": ("yes", 5)}
    assert ex.fills(T0 + 3 * H) == []  # was: ValueError: A: buying no while holding yes
    assert_venue_sound(ex)
    assert ex.positions() == {"A": ("yes", 5)}
    assert ex.unfilled["rest cancelled: a position of the other side is held"] == 1


def test_a_resting_sell_never_sells_contracts_no_longer_held():
    # YES bid 42 at T0, 60 from T0 + 2h
    ex = venue(
        [
            (T0, "yes", 0.42, 10.0),
            (T0, "no", 0.50, 10.0),
            (T0 + 2 * H, "yes", 0.60, 10.0),
            (T0 + 2 * H, "no", 0.30, 10.0),
        ],
        cash=100_000,
    )
    assert len(ex.submit(limit_order("buy", "yes", "buy", 10, 50), T0)) == 1
    assert ex.submit(limit_order("rest", "yes", "sell", 10, 55, "gtc"), T0 + H) == []  # rests
    assert len(ex.submit(limit_order("take", "yes", "sell", 10, 40), T0 + H)) == 1
    assert ex.positions() == {}
    assert ex.fills(T0 + 3 * H) == []  # was: ValueError: A: selling 10 yes not held
    assert_venue_sound(ex)
    assert ex.unfilled["rest cancelled: the contracts to sell are no longer held"] == 1


def test_a_cancel_keeps_the_fills_made_before_it():
    # YES ask 50 at T0, 38 from T0 + 2h: the rest at 45 is traded through at T0 + 2h
    rows = [
        (T0, "yes", 0.42, 10.0),
        (T0, "no", 0.50, 10.0),
        (T0 + 2 * H, "yes", 0.30, 10.0),
        (T0 + 2 * H, "no", 0.62, 10.0),
    ]
    polled, unpolled = venue(rows, 100_000), venue(rows, 100_000)
    for ex in (polled, unpolled):
        rest = limit_order("rest", "yes", "buy", 6, 45, "gtc")
        assert ex.submit(rest, T0) == []
        if ex is polled:
            assert [f.ts for f in ex.fills(T0 + 3 * H)] == [T0 + 2 * H]
        ex.cancel(rest, T0 + 3 * H)
    assert unpolled.fills(T0 + 9 * H) == polled.fills(T0 + 9 * H) + [
        Fill(T0 + 2 * H, T0 + 2 * H, "A", "yes", "buy", 6, 270, 0, "book", "rest", "maker")
    ]  # was []: the fill at T0 + 2h was lost
