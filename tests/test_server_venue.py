"""One venue model: the local server's account fills, charges and settles as the backtest's
exchange does, at a clock that moves.

The properties run the server's Portfolio (no HTTP: the same object the endpoints call) and
``SimulatedKalshiExchange`` on the same random books and orders, and require the same fills,
costs and fees, taker and maker; the rest follows one scenario over HTTP through the handmade
dataset: a resting order filled by a later snapshot, a GTD order expiring, a DELETE, a
settlement with its record, and fills listed late.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pandas as pd
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kalshi_lab.client import KalshiClient
from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.data.tables import CANDLES
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SimulatedKalshiExchange
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from kalshi_lab.server.books import BookStore
from kalshi_lab.server.clock import ServerClock
from kalshi_lab.server.dataset import BookHistory, MarketEntry
from kalshi_lab.server.orders import parse_order_request
from kalshi_lab.server.portfolio import Portfolio
from server_support import CUTOFF, DAY, KEY_ID, NOW, OPEN_A, T0, KalshiAuth, write_handmade_raw

T = 1_735_689_600  # 2025-01-01T00:00:00Z
HOUR = 3600
TICKER, EVENT, SERIES = "KXV-E1-A", "KXV-E1", "KXV"
CLOSE, SETTLE = T + 10 * HOUR, T + 11 * HOUR
CASH = 10_000_000  # cents: neither venue runs short in the properties
NO_CANDLES = CANDLES.empty_table().to_pandas()
#: a book: side -> {price in cents: contracts}
Book = dict[str, dict[int, int]]
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stamp(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def book_doc(book: Book) -> dict[str, Any]:
    return {
        "orderbook_fp": {
            f"{side}_dollars": [[f"0.{p:02d}00", f"{n}.00"] for p, n in sorted(book[side].items())]
            for side in ("yes", "no")
        }
    }


def dataset(snapshots: list[tuple[int, Book]], fee_type: str, multiplier: float, result: str):
    """One market, open from T to CLOSE and settled at SETTLE, with these book snapshots."""
    doc = {
        "ticker": TICKER,
        "event_ticker": EVENT,
        "status": "active",
        "result": result,
        "price_level_structure": "linear_cent",
    }
    market = MarketEntry(
        doc, TICKER, EVENT, SERIES, "open", T, T, CLOSE, SETTLE, None, False, received_ts=T
    )
    times = [t for t, _ in snapshots]
    return Dataset(
        series={SERIES: {"ticker": SERIES, "fee_type": fee_type, "fee_multiplier": multiplier}},
        events={},
        markets={TICKER: market},
        candles={},
        trades=[],
        books={TICKER: BookHistory(times, [book_doc(b) for _, b in snapshots])},
        last_book_ts=max(times),
        last_received_ts=T,
    )


def server_account(snapshots, fee_type="quadratic", multiplier=1.0, result="yes", at=T + 60):
    ds = dataset(snapshots, fee_type, multiplier, result)
    clock = ServerClock(at)
    return Portfolio(ds, BookStore(ds.books), clock, CASH), clock


def backtest_venue(snapshots, fee_type="quadratic", multiplier=1.0, result="yes"):
    rows = [
        (TICKER, stamp(t), side, p / 100, float(n))
        for t, book in snapshots
        for side in ("yes", "no")
        for p, n in sorted(book[side].items())
    ]
    markets = pd.DataFrame(
        {
            "ticker": [TICKER],
            "event_ticker": [EVENT],
            "series_ticker": [SERIES],
            "close_time": [stamp(CLOSE)],
            "settlement_ts": [stamp(SETTLE)],
            "result": [result],
        }
    )
    series = pd.DataFrame(
        {"series_ticker": [SERIES], "fee_type": [fee_type], "fee_multiplier": [multiplier]}
    )
    orderbook = pd.DataFrame(rows, columns=["ticker", "snapshot_ts", "side", "price", "count"])
    return SimulatedKalshiExchange(orderbook, NO_CANDLES, markets, series, 0.07, 1.0, 1.0, CASH)


def request(side: str, count: int, limit: int, tif: str, action: str = "buy"):
    body = {
        "ticker": TICKER,
        "side": side,
        "action": action,
        "count": count,
        f"{side}_price": limit,
        "time_in_force": tif,
    }
    return parse_order_request(orjson.dumps(body))


def cents(dollars: str) -> int:
    value = Decimal(dollars) * 100
    assert value == value.to_integral_value()
    return int(value)


def same_execution(doc: dict[str, Any], fills: list[Fill], kind: str) -> None:
    """The server's order shows, for ``kind`` (taker/maker), what the backtest filled."""
    assert cents(doc[f"{kind}_fill_cost_dollars"]) == sum(f.cost_cents for f in fills)
    assert cents(doc[f"{kind}_fees_dollars"]) == sum(f.fee_cents for f in fills)


# --- random books and orders -------------------------------------------------------------------


@st.composite
def books(draw: st.DrawFn) -> Book:
    """Bids that never cross: YES bids below a split, NO bids below 100 minus it."""
    split = draw(st.integers(2, 98))
    sizes = st.integers(1, 40)
    yes = draw(st.dictionaries(st.integers(1, split - 1), sizes, min_size=1, max_size=4))
    no = draw(st.dictionaries(st.integers(1, 99 - split), sizes, min_size=1, max_size=4))
    return {"yes": yes, "no": no}


def ask(book: Book, side: str) -> int:
    """The best ask of ``side`` in cents: 100 - the other side's best bid."""
    return 100 - max(book["no" if side == "yes" else "yes"])


def near_the_ask(draw: st.DrawFn, book: Book, side: str) -> int:
    """A limit for a buy of ``side`` around its best ask: mostly crossing a few levels,
    sometimes short of the ask, sometimes anywhere."""
    offset = draw(st.one_of(st.integers(-3, 12), st.integers(-99, 99)))
    return min(max(ask(book, side) + offset, 1), 99)


FEES = st.sampled_from([("quadratic", 1.0), ("quadratic", 0.5), ("quadratic_with_maker_fees", 1.0)])


@PROPERTY
@given(data=st.data(), book=books(), side=st.sampled_from(["yes", "no"]),
       count=st.integers(1, 120), fees=FEES)  # fmt: skip
def test_a_taker_execution_fills_and_costs_what_it_does_in_the_backtest(
    data, book, side, count, fees
):
    limit = near_the_ask(data.draw, book, side)
    snapshots = [(T, book)]
    account, _ = server_account(snapshots, *fees)
    doc = account.create_order(request(side, count, limit, "immediate_or_cancel"))
    venue = backtest_venue(snapshots, *fees)
    order = ContractOrder(TICKER, EVENT, side, "buy", count, limit, stamp(T + 60))
    fills = venue.submit(order, stamp(T + 60))
    event(f"levels taken: {len(account.fill_docs())}")
    assert Decimal(doc["fill_count_fp"]) == sum(f.count for f in fills)
    same_execution(doc, fills, "taker")
    listed = [f for _, f in account.fill_docs()]
    # one fill per level, their fees adding up to the one fee of the execution
    assert sum(cents(f["fee_cost"]) for f in listed) == sum(f.fee_cents for f in fills)
    assert len(listed) == len({f["yes_price_dollars"] for f in listed})
    assert account.cash_cents == venue.balance_cents()


def test_a_split_order_pays_one_fee_on_the_server_as_in_the_backtest():
    # the brief's case: 10 @ 3c + 10 @ 4c is ceil(4.725) = 5 cents, not 3 + 3 (a fee per level)
    snapshots = [(T, {"yes": {}, "no": {97: 10, 96: 10}})]  # YES asks 3c x 10, 4c x 10
    account, _ = server_account(snapshots)
    doc = account.create_order(request("yes", 20, 4, "immediate_or_cancel"))
    (fill,) = backtest_venue(snapshots).submit(
        ContractOrder(TICKER, EVENT, "yes", "buy", 20, 4, stamp(T + 60)), stamp(T + 60)
    )
    assert fill.fee_cents == 5 and doc["taker_fees_dollars"] == "0.0500"
    assert [f["fee_cost"] for _, f in account.fill_docs()] == ["0.0200", "0.0300"]  # newest first


@PROPERTY
@given(data=st.data(), first=books(), later=books(), side=st.sampled_from(["yes", "no"]),
       count=st.integers(1, 120), fees=FEES)  # fmt: skip
def test_a_resting_order_fills_as_maker_as_it_does_in_the_backtest(
    data, first, later, side, count, fees
):
    if ask(later, side) > ask(first, side):  # the market comes down to the order: maker fills
        first, later = later, first
    low, high = ask(later, side) + 1, max(ask(later, side) + 1, ask(first, side))
    limit = data.draw(st.one_of(st.integers(min(low, 99), min(high, 99)), st.integers(1, 99)))
    snapshots = [(T, first), (T + HOUR, later)]
    account, clock = server_account(snapshots, *fees)
    placed = account.create_order(request(side, count, limit, "good_till_canceled"))
    venue = backtest_venue(snapshots, *fees)
    order = ContractOrder(
        TICKER, EVENT, side, "buy", count, limit, stamp(T + 60), time_in_force="gtc"
    )
    taker = venue.submit(order, stamp(T + 60))
    clock.advance(2 * HOUR)
    maker = venue.fills(stamp(T + 2 * HOUR))
    doc = account.order_doc(placed["order_id"])
    event(
        f"taker {bool(taker)}, maker {bool(maker)}, maker fee {sum(f.fee_cents for f in maker) > 0}"
    )
    assert all(f.liquidity == "maker" for f in maker)
    same_execution(doc, taker, "taker")
    same_execution(doc, maker, "maker")
    filled = sum(f.count for f in taker + maker)
    assert Decimal(doc["fill_count_fp"]) == filled
    assert doc["status"] == ("executed" if filled == count else "resting")
    listed = [f for _, f in account.fill_docs() if not f["is_taker"]]
    assert [(Decimal(f["count_fp"]), f["ts"]) for f in listed] == [
        (f.count, T + HOUR) for f in maker
    ]
    # the maker fill took the depth that traded through: the book shows what is left
    assert account.cash_cents == venue.balance_cents()


@pytest.mark.parametrize("result", ["yes", "no", "void"])
def test_settlement_pays_what_the_backtest_pays_and_leaves_a_record(result):
    snapshots = [(T, {"yes": {40: 10}, "no": {55: 6, 50: 10}})]
    account, clock = server_account(snapshots, result=result)
    account.create_order(request("yes", 8, 50, "immediate_or_cancel"))  # 6 @ 45, 2 @ 50
    resting = account.create_order(request("no", 5, 20, "good_till_canceled"))
    venue = backtest_venue(snapshots, result=result)
    venue.submit(ContractOrder(TICKER, EVENT, "yes", "buy", 8, 50, stamp(T + 60)), stamp(T + 60))
    clock.advance(SETTLE - T - 61)  # a second before the settlement: nothing yet
    assert account.settlement_docs() == []
    assert account.order_doc(resting["order_id"])["status"] == "canceled"  # at the close
    clock.advance(1)
    (settled,) = venue.settlements(stamp(SETTLE))
    assert settled.result == result
    assert account.cash_cents == venue.balance_cents()
    ((_, doc),) = account.settlement_docs()
    revenue = {"yes": 800, "no": 0, "void": 6 * 45 + 2 * 50}[result]
    assert doc == {
        "ticker": TICKER,
        "event_ticker": EVENT,
        "market_result": result,
        "yes_count_fp": "8.00",
        "yes_total_cost_dollars": "3.7000",
        "no_count_fp": "0.00",
        "no_total_cost_dollars": "0.0000",
        "revenue": revenue,
        "settled_time": "2025-01-01T11:00:00Z",
        "fee_cost": "0.1400",  # ceil(0.07 * (6 * 45 * 55 + 2 * 50 * 50) / 100) = ceil(13.895)
        "value": {"yes": 100, "no": 0, "void": None}[result],
    }
    assert account.positions() == {TICKER: Decimal(0)}
    clock.advance(HOUR)
    assert len(account.settlement_docs()) == 1  # settled once


def test_a_reduce_only_rest_with_nothing_left_to_reduce_is_cancelled():
    snapshots = [(T, {"yes": {40: 10}, "no": {55: 10}}), (T + HOUR, {"yes": {70: 10}, "no": {}})]
    account, clock = server_account(snapshots)
    account.create_order(request("yes", 4, 45, "immediate_or_cancel"))
    exit_ = parse_order_request(
        orjson.dumps(
            {"ticker": TICKER, "side": "yes", "action": "sell", "count": 4, "yes_price": 60,
             "reduce_only": True}
        )
    )  # fmt: skip
    rest = account.create_order(exit_)
    assert rest["status"] == "resting"
    account.create_order(request("yes", 4, 40, "immediate_or_cancel", action="sell"))  # sold
    clock.advance(HOUR)  # the 70c bid trades through 60c, but nothing is held to sell
    doc = account.order_doc(rest["order_id"])
    assert (doc["status"], doc["fill_count_fp"]) == ("canceled", "0.00")


# --- over HTTP: the clock, maker fills, expiry, cancel, settlement, late listings ---------------


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def srv(handmade, private_key) -> Iterator[LocalKalshiServer]:
    config = ServerConfig(
        rate_limit=False,
        cutoff=CUTOFF,
        now=NOW - DAY + dt.timedelta(hours=1),  # the older book of A shows
        public_key=private_key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=10_000,
    )
    with LocalKalshiServer(handmade, config) as server:
        yield server


def session(key: rsa.RSAPrivateKey) -> requests.Session:
    s = requests.Session()
    s.auth = KalshiAuth(KalshiSigner(KEY_ID, key))
    return s


def test_a_paper_trading_day_rests_fills_expires_cancels_and_settles(srv, private_key):
    s, base = session(private_key), srv.base_url
    start = srv.now

    def place(**body: Any) -> dict[str, Any]:
        r = s.post(base + "/portfolio/orders", json={"ticker": OPEN_A, "action": "buy", **body})
        assert r.status_code == 201, r.text
        return r.json()["order"]

    # the older book of A: YES bid 0.30 x 1, NO bid 0.60 x 1 (a YES ask at 0.40)
    rest = place(side="yes", count=10, yes_price_dollars="0.5500", client_order_id="rest")
    assert (rest["status"], rest["fill_count_fp"], rest["taker_fees_dollars"]) == (
        "resting",
        "1.00",
        "0.0200",  # ceil(0.07 * 40 * 60 / 100) = ceil(1.68)
    )
    gtd = place(side="yes", count=3, yes_price_dollars="0.2000", expiration_ts=start + 1800)
    stale = place(side="no", count=5, no_price_dollars="0.1000")
    # 40 + 2 paid; 9 x 55 + 3 x 20 + 5 x 10 held by the rests
    assert s.get(base + "/portfolio/balance").json()["balance"] == 10_000 - 42 - 495 - 60 - 50
    assert s.get(f"{base}/markets/{OPEN_A}/orderbook").json()["orderbook_fp"]["no_dollars"] == []

    srv.advance(int(DAY.total_seconds()) - HOUR)  # the book of NOW: asks 0.47 x 4, 0.48 x 10
    date = email.utils.parsedate_to_datetime(s.get(base + "/exchange/status").headers["Date"])
    assert int(date.timestamp()) == srv.now == start + int(DAY.total_seconds()) - HOUR
    filled = s.get(f"{base}/portfolio/orders/{rest['order_id']}").json()["order"]
    assert (filled["status"], filled["fill_count_fp"], filled["maker_fill_cost_dollars"]) == (
        "executed",
        "10.00",
        "4.9500",  # 9 at its limit 0.55: a maker fill is at the limit, not the better ask
    )
    assert filled["maker_fees_dollars"] == "0.0000"  # a quadratic series charges makers nothing
    (maker,) = [f for f in s.get(base + "/portfolio/fills").json()["fills"] if not f["is_taker"]]
    assert (maker["count_fp"], maker["yes_price_dollars"], maker["ts"]) == (
        "9.00",
        "0.5500",
        srv.now,
    )
    # the 9 took the 0.53 x 4 and 5 of the 0.52 NO bids: the book shows what is left
    book = s.get(f"{base}/markets/{OPEN_A}/orderbook").json()["orderbook_fp"]["no_dollars"]
    assert book == [["0.5000", "8.00"], ["0.5200", "5.00"]]
    expired = s.get(f"{base}/portfolio/orders/{gtd['order_id']}").json()["order"]
    assert (expired["status"], expired["last_update_time"]) == (
        "canceled",
        pd.Timestamp(start + 1800, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    r = s.delete(f"{base}/portfolio/orders/{stale['order_id']}")
    assert (r.status_code, r.json()["reduced_by_fp"]) == (200, "5.00")
    assert s.get(base + "/portfolio/balance").json()["balance"] == 10_000 - 42 - 495

    # A closes at T0 + 10 d and settles an hour later, YES
    settle = int((T0 + 10 * DAY).timestamp()) + HOUR
    srv.advance(settle - 1 - srv.now)
    assert s.get(base + "/portfolio/settlements").json() == {"settlements": [], "cursor": ""}
    srv.advance(1)
    client = KalshiClient(base, signer=KalshiSigner(KEY_ID, private_key))
    (record,) = client.get_settlements()  # as the bot reads it
    assert (record.ticker, record.market_result, record.yes_count, record.revenue) == (
        OPEN_A,
        "yes",
        Decimal(10),
        1000,
    )
    assert (record.yes_total_cost, record.fee_cost, record.value) == (
        Decimal("5.35"),
        Decimal("0.02"),
        100,
    )
    assert client.get_settlements(min_ts=settle + 1) == []
    assert s.get(base + "/portfolio/balance").json()["balance"] == 10_000 - 42 - 495 + 1000
    position = s.get(base + "/portfolio/positions", params={"ticker": OPEN_A}).json()
    assert position["market_positions"][0]["position_fp"] == "0.00"
    assert position["market_positions"][0]["realized_pnl_dollars"] == "4.6500"  # 10 - 5.35


def test_a_moving_clock_moves_the_served_state(handmade):
    # 10 hours a second: A's book changes at NOW, B closes at T0 + 2 d
    config = ServerConfig(rate_limit=False, now=NOW - dt.timedelta(seconds=20), clock_speed=36_000)
    with LocalKalshiServer(handmade, config) as server:
        first = server.now
        time.sleep(0.2)
        assert server.now - first >= 7200
        book = requests.get(f"{server.base_url}/markets/{OPEN_A}/orderbook").json()
        assert book["orderbook_fp"]["yes_dollars"][-1] == ["0.4500", "20.00"]  # NOW's book


def test_fills_can_be_listed_late(srv, private_key):
    s, base = session(private_key), srv.base_url
    srv.set_faults(FaultConfig(late_fill=1.0, late_fill_delay_s=0.4))
    body = {"ticker": OPEN_A, "side": "yes", "action": "buy", "count": 1,
            "yes_price_dollars": "0.4000", "time_in_force": "immediate_or_cancel"}  # fmt: skip
    order = s.post(base + "/portfolio/orders", json=body).json()["order"]
    assert order["fill_count_fp"] == "1.00"  # the order counts its fill at once ...
    listed = s.get(base + "/portfolio/fills", params={"order_id": order["order_id"]})
    assert listed.json()["fills"] == []  # ... the listing only later
    time.sleep(0.45)
    (fill,) = s.get(base + "/portfolio/fills", params={"order_id": order["order_id"]}).json()[
        "fills"
    ]
    assert (fill["count_fp"], fill["ts"]) == ("1.00", srv.now)  # stamped when it happened
    srv.set_faults(FaultConfig())  # a NO bought at the 0.70 ask (YES bid 0.30) is listed at once
    again = s.post(base + "/portfolio/orders", json={**body, "side": "no", "yes_price_dollars": None,
                                                       "no_price_dollars": "0.7000"})  # fmt: skip
    listed = s.get(
        base + "/portfolio/fills", params={"order_id": again.json()["order"]["order_id"]}
    )
    assert [f["count_fp"] for f in listed.json()["fills"]] == ["1.00"]
