"""LiveKalshiExchange against the local Kalshi-compatible server, over real HTTP (no network).

What the bot relies on: quotes are the served book and never call a closed market open; an
order is placed once, whatever the network does, and its fills come back exactly (integer
cents, one report each); positions and balance read back equal an account that booked what the
exchange reported; a dry run sends nothing. The record mappings are checked against documents
drawn from the spec's shapes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.client import KalshiClient, KalshiSigner
from kalshi_lab.client.client import Settlement
from kalshi_lab.client.records import Fill as ApiFill
from kalshi_lab.client.records import MarketPosition, Orderbook
from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.errors import DataError
from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import SettledMarket, SimulatedKalshiExchange
from kalshi_lab.execution.lifecycle import OrderMismatchError
from kalshi_lab.execution.live import (
    QUOTE_COLUMNS,
    LiveKalshiExchange,
    book_quote,
    fill_from_api,
    positions_from_api,
    settled_market,
)
from kalshi_lab.execution.quotes import CANDLE_COLUMNS
from kalshi_lab.execution.reconcile import ReconciliationError, reconcile
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from openapi_shapes import SPEC_PATH, extract, strategy
from server_support import BOOK_A, KEY_ID

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NOW = T0 + 5 * DAY  # the server's clock: the latest book snapshot
TS = pd.Timestamp(NOW)
START = 100_000  # cents
# A and C trade at NOW; B closed on day 2; E says "active" but closed on day 4 (a stale
# status); F's times say it trades but its status says it no longer does
A, B, C, E, F = "KXTEST-E1-A", "KXTEST-E1-B", "KXHALF-E2-C", "KXTEST-E3-E", "KXTEST-E4-F"
EVENT = {A: "KXTEST-E1", B: "KXTEST-E1", C: "KXHALF-E2", E: "KXTEST-E3", F: "KXTEST-E4"}
BOOK_C = {"yes_dollars": [["0.3000", "10.00"], ["0.3500", "4.00"]], "no_dollars": [["0.6000", "5.00"]]}  # fmt: skip


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _series(ticker: str, multiplier: float) -> dict[str, Any]:
    return {"ticker": ticker, "title": ticker, "category": "Test", "frequency": "daily",
            "fee_type": "quadratic", "fee_multiplier": multiplier, "tags": []}  # fmt: skip


def _market(ticker: str, status: str, close: dt.datetime, settled: dt.datetime | None = None):
    return {
        "ticker": ticker,
        "event_ticker": EVENT[ticker],
        "market_type": "binary",
        "created_time": _iso(T0 - DAY),
        "open_time": _iso(T0),
        "close_time": _iso(close),
        "updated_time": _iso(T0),
        "settlement_ts": None if settled is None else _iso(settled),
        "status": status,
        "result": "yes" if settled is not None else "",
        "yes_bid_dollars": "0.0100",  # stale on purpose: quotes come from the book
        "yes_ask_dollars": "0.9900",
        "fractional_trading_enabled": False,
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    }


def write_live_raw(raw: Path) -> Path:
    """Series KXTEST (fee multiplier 1) and KXHALF (0.5); markets A..F as described above."""
    markets = [
        _market(A, "active", T0 + 10 * DAY),
        _market(B, "finalized", T0 + 2 * DAY, T0 + 2 * DAY + dt.timedelta(hours=1)),
        _market(C, "active", T0 + 10 * DAY),
        _market(E, "active", T0 + 4 * DAY),
        _market(F, "finalized", T0 + 10 * DAY, T0 + 11 * DAY),
    ]
    with RawWriter(raw) as w:
        w.write("series", "/series/KXTEST", {}, T0, {"series": _series("KXTEST", 1.0)})
        w.write("series", "/series/KXHALF", {}, T0, {"series": _series("KXHALF", 0.5)})
        for event in sorted(set(EVENT.values())):
            series = event.split("-")[0]
            doc = {"event_ticker": event, "series_ticker": series, "title": event}
            w.write("events", f"/events/{event}", {}, T0, {"event": doc, "markets": []})
        w.write("markets", "/markets", {}, NOW, {"markets": markets, "cursor": ""})
        for ticker, book, at in (
            (A, BOOK_A, NOW),
            (C, BOOK_C, NOW),
            (B, BOOK_A, T0 + DAY),
            (E, BOOK_A, T0 + DAY),
            (F, BOOK_A, NOW),
        ):
            w.write("orderbooks", f"/markets/{ticker}/orderbook", {}, at, {"orderbook_fp": book})
    return raw


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    return Dataset.load(write_live_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def start_server(dataset: Dataset, key: rsa.RSAPrivateKey) -> LocalKalshiServer:
    config = ServerConfig(
        rate_limit=False,
        cutoff=T0,
        now=NOW,
        public_key=key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=START,
    )
    return LocalKalshiServer(dataset, config).start()


@pytest.fixture
def server(dataset, private_key):
    srv = start_server(dataset, private_key)
    try:
        yield srv
    finally:
        srv.stop()


def make_client(srv: LocalKalshiServer, key: rsa.RSAPrivateKey, **kw: Any) -> KalshiClient:
    kw.setdefault("timeout_s", 1.0)
    return KalshiClient(
        srv.base_url,
        signer=KalshiSigner(KEY_ID, key),
        backoff_factor=0.01,
        reads_per_s=1000,
        writes_per_s=1000,
        **kw,
    )


@pytest.fixture
def client(server, private_key) -> KalshiClient:
    return make_client(server, private_key)


@pytest.fixture
def exchange(client) -> LiveKalshiExchange:
    return LiveKalshiExchange(client, since=TS - pd.Timedelta(hours=1))


def order(ticker=A, side="yes", action="buy", count=10, limit=48, **kw) -> ContractOrder:
    return ContractOrder(ticker, EVENT[ticker], side, action, count, limit, TS, **kw)


def total(fills: list[Fill]) -> tuple[int, int, int]:
    """Contracts, cost and fees of several fills, in cents."""
    return (
        sum(f.count for f in fills),
        sum(f.cost_cents for f in fills),
        sum(f.fee_cents for f in fills),
    )


def book(account: KalshiAccount, o: ContractOrder, fills: list[Fill]) -> None:
    for f in fills:
        account.apply(f, o.event_ticker)
        o.record(f)


def server_orders(srv: LocalKalshiServer, client_order_id: str) -> list[dict[str, Any]]:
    return [d for _, d in srv.portfolio.order_docs() if d["client_order_id"] == client_order_id]


# --- quotes ------------------------------------------------------------------------------------


def test_quotes_are_the_served_book_and_closed_markets_are_never_open(exchange, client, server):
    q = exchange.quotes([A, C, B, E, F, "KXNOPE-1"], TS)
    assert list(q.index) == [A, C, B, E, F, "KXNOPE-1"]
    assert list(q.columns) == QUOTE_COLUMNS
    # A's book: YES bids ... 0.45 x 20 (best), NO bids ... 0.53 x 4 (best)
    a = q.loc[A]
    assert a[["yes_bid", "yes_bid_size", "no_bid", "no_bid_size"]].tolist() == [45, 20, 53, 4]
    assert a[["yes_ask", "no_ask"]].tolist() == [47, 55]
    assert (a["is_open"], a["source"], a["quote_ts"], a["taker_rate"]) == (True, "book", TS, 0.07)
    c = q.loc[C]  # series KXHALF: half the taker rate
    assert c[["yes_bid", "no_bid", "yes_ask", "no_ask", "taker_rate"]].tolist() == [
        35,
        60,
        40,
        65,
        0.035,
    ]
    for closed in (B, E, F, "KXNOPE-1"):
        assert not q.at[closed, "is_open"]
        assert q.loc[closed, ["yes_bid", "no_bid", "yes_ask", "no_ask"]].isna().all()
        assert pd.isna(q.at[closed, "quote_ts"])
    assert q.loc[[B, E, F], "taker_rate"].tolist() == [0.07] * 3
    assert pd.isna(q.at["KXNOPE-1", "taker_rate"])
    # one markets page for all six, one book per OPEN market
    assert (server.stats.requests["markets"], server.stats.requests["orderbook"]) == (1, 2)
    # what orders take is gone from the quotes, as from the served book
    client.create_order(A, "yes", "buy", 4, yes_price=Decimal("0.47"))
    served = client.get_orderbook(A)
    after = exchange.quotes([A], TS).loc[A]
    assert (after["no_bid"], after["no_bid_size"]) == (52, 10)
    assert (Decimal(after["no_bid"]) / 100, Decimal(after["no_bid_size"])) == served.no[-1]


def test_the_quote_frame_has_the_simulator_s_columns_and_types(exchange):
    frame = pd.DataFrame(
        {"ticker": [A], "snapshot_ts": [TS], "side": ["yes"], "price": [0.45], "count": [20.0]}
    )
    markets = pd.DataFrame(
        {"ticker": [A], "event_ticker": ["E"], "series_ticker": ["S"],
         "close_time": [TS + pd.Timedelta(days=1)], "settlement_ts": [pd.NaT], "result": [None]}
    )  # fmt: skip
    series = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})  # fmt: skip
    candles = pd.DataFrame(columns=CANDLE_COLUMNS)
    sim = SimulatedKalshiExchange(frame, candles, markets, series, 0.07, 1.0, 0.1, 0)
    simulated = sim.quotes([A], TS)
    live = exchange.quotes([A, B], TS)
    assert list(live.columns) == list(simulated.columns)
    assert live.dtypes.astype(str).to_dict() == simulated.dtypes.astype(str).to_dict()


# --- orders ------------------------------------------------------------------------------------


def test_an_ioc_buy_that_crosses_fills_exactly_and_is_booked(exchange, client, server):
    o = order(count=10, limit=48)  # takes NO bids 0.53 x 4 and 0.52 x 6: 4 @ 47c, 6 @ 48c
    fills = exchange.submit(o, TS)
    # one Fill per venue fill, each with its own fee: ceil(6.97), ceil(10.48)
    assert fills == [
        Fill(
            ts=TS,
            quote_ts=TS,
            ticker=A,
            side="yes",
            action="buy",
            count=count,
            cost_cents=count * cents,
            fee_cents=fee,
            source="book",
            order_id=o.client_order_id,
            liquidity="taker",
        )
        for count, cents, fee in ((4, 47, 7), (6, 48, 11))
    ]
    order_id = exchange.exchange_order_id(o.client_order_id)
    listed = client.get_fills(order_id=order_id)
    assert total(fills) == (
        sum(f.count for f in listed),
        sum(f.count * f.yes_price * 100 for f in listed),
        sum(f.fee_cost * 100 for f in listed),
    )
    assert all(f.is_taker for f in listed)
    (placed,) = server_orders(server, o.client_order_id)
    assert placed["status"] == "executed"
    account = KalshiAccount(START)
    book(account, o, fills)
    reconcile(account, exchange)
    assert exchange.positions() == {A: ("yes", 10)}
    assert exchange.balance_cents() == account.cash_cents == START - 476 - 18
    assert exchange.fills(TS) == []  # reported by submit, never again
    assert exchange.unresolved() == {} and exchange.resolve(TS) == []


def test_the_rest_of_an_ioc_order_is_cancelled(exchange, server):
    o = order(count=30, limit=48)  # only 4 + 10 within 48c
    assert total(exchange.submit(o, TS)) == (14, 4 * 47 + 10 * 48, 7 + 18)
    (placed,) = server_orders(server, o.client_order_id)
    assert (placed["status"], placed["remaining_count_fp"]) == ("canceled", "0.00")


def test_a_gtc_order_rests_until_cancelled(exchange, server, client):
    account = KalshiAccount(START)
    resting = order(count=10, limit=30, time_in_force="gtc")  # the YES asks start at 47c
    assert exchange.submit(resting, TS) == []
    (placed,) = server_orders(server, resting.client_order_id)
    assert (placed["status"], placed["remaining_count_fp"]) == ("resting", "10.00")
    # the venue's available balance holds the resting buy back: cash agrees only without it
    reconcile(account, exchange, check_cash=False)
    with pytest.raises(ReconciliationError, match=r"cash: ours 100000 cents, exchange 99700"):
        reconcile(account, exchange)
    exchange.cancel(resting, TS)
    (placed,) = server_orders(server, resting.client_order_id)
    assert (placed["status"], placed["remaining_count_fp"]) == ("canceled", "0.00")
    reconcile(account, exchange)
    exchange.cancel(resting, TS)  # nothing rests any more: nothing happens
    exchange.cancel(order(count=1, limit=20, client_order_id="never-sent"), TS)
    # part fills at once, the rest rests; a restarted exchange finds and cancels it by its id
    partial = order(count=20, limit=48, time_in_force="gtc", client_order_id="partial")
    fills = exchange.submit(partial, TS)
    book(account, partial, fills)
    assert total(fills)[0] == 14
    (placed,) = server_orders(server, partial.client_order_id)
    assert (placed["status"], placed["remaining_count_fp"]) == ("resting", "6.00")
    LiveKalshiExchange(client, since=TS).cancel(partial, TS)
    assert server_orders(server, partial.client_order_id)[0]["status"] == "canceled"
    reconcile(account, exchange)
    assert exchange.fills(TS + pd.Timedelta(hours=1)) == []


def test_positions_and_balance_read_back_equal_the_booked_account(exchange):
    account = KalshiAccount(START)
    for o in (
        order(A, "yes", "buy", 10, 48),
        order(A, "yes", "sell", 4, 44),  # hits the 45c YES bid
        order(C, "no", "buy", 3, 70),  # YES bid 35c x 4 is a NO ask at 65c; half fee rate
    ):
        book(account, o, exchange.submit(o, TS))
        reconcile(account, exchange)
    assert exchange.positions() == {A: ("yes", 6), C: ("no", 3)}
    # 476 + 18 paid, 4 * 45 - ceil(6.93) received, 3 * 65 + ceil(2.39) paid
    assert exchange.balance_cents() == START - 494 + 180 - 7 - 195 - 3
    # a sell of more than is held is refused (reduce_only): nothing fills, nothing raises
    assert exchange.submit(order(A, "yes", "sell", 20, 40, client_order_id="too-many"), TS) == []
    assert [k for k in exchange.unfilled if k.startswith("refused")] != []
    reconcile(account, exchange)


def test_a_budget_caps_the_count_sent_at_the_worst_case_cost(exchange, server):
    # at 48c a contract costs at most 48 + fee: 6 contracts 288 + 11 = 299 <= 300, 7 do not
    o = order(count=10, limit=48, max_cost_cents=300)
    assert exchange.affordable_count(o) == 6
    count, cost, fee = total(exchange.submit(o, TS))
    assert (count, cost + fee) == (6, 4 * 47 + 2 * 48 + 7 + 4)
    assert server_orders(server, o.client_order_id)[0]["initial_count_fp"] == "6.00"
    poor = order(count=1, limit=48, max_cost_cents=49, client_order_id="poor")  # needs 48 + 2
    assert exchange.submit(poor, TS) == []
    assert exchange.unfilled["budget below one contract"] == 1


def _seed(p: float, pattern: list[bool]) -> int:
    """A fault seed whose first draws hit (True) or miss (False) a fault of probability p."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if all((rng.random() < p) == hit for hit in pattern):
            return seed
    raise AssertionError("no seed")


def test_a_reset_create_order_is_retried_and_placed_once(exchange, server):
    server.set_faults(
        FaultConfig(reset=0.5, seed=_seed(0.5, [True, False]), path_prefix="/portfolio/orders")
    )
    o = order(count=10, limit=48)
    fills = exchange.submit(o, TS)
    server.set_faults(FaultConfig())
    assert server.stats.faults["reset"] >= 1
    assert server.stats.requests["create_order"] >= 2
    assert len(server_orders(server, o.client_order_id)) == 1
    assert len(server.portfolio.order_docs()) == 1
    assert total(fills) == (10, 476, 18)


def test_an_order_placed_but_unanswered_is_read_back_not_placed_again(server, private_key):
    # the first POST is processed but answered after the client's timeout; the retry gets
    # 409 (same client_order_id) and the client reads the placed order back
    client = make_client(server, private_key, timeout_s=0.3)
    exchange = LiveKalshiExchange(client, since=TS)
    seed = _seed(0.5, [True, False, False])
    server.set_faults(
        FaultConfig(slow=0.5, slow_delay_s=0.6, seed=seed, path_prefix="/portfolio/orders")
    )
    o = order(count=10, limit=48)
    fills = exchange.submit(o, TS)
    server.set_faults(FaultConfig())
    assert server.stats.faults["slow"] >= 1
    assert server.stats.statuses.get(409, 0) >= 1
    assert len(server.portfolio.order_docs()) == 1
    assert total(fills) == (10, 476, 18)
    assert exchange.fills(TS) == []


def test_a_dry_run_logs_each_order_and_sends_nothing(client, server, caplog):
    caplog.set_level(logging.DEBUG)
    exchange = LiveKalshiExchange(client, dry_run=True, since=TS)
    o = order(count=10, limit=48)
    assert exchange.submit(o, TS) == []
    exchange.cancel(o, TS)
    assert server.stats.requests.get("create_order", 0) == 0
    assert server.stats.requests.get("cancel_order", 0) == 0
    assert server.stats.requests.get("orders", 0) == 0
    (record,) = [r for r in caplog.records if "dry run" in r.getMessage()]
    line = record.getMessage()
    assert record.levelno == logging.INFO
    for part in (A, "yes", "buy", "10", "48c", o.client_order_id):
        assert part in line
    # a real send logs no credential either
    LiveKalshiExchange(client, since=TS).submit(order(count=1, client_order_id="real"), TS)
    assert "KALSHI-ACCESS" not in caplog.text and "SIGNATURE" not in caplog.text.upper()


def test_fills_reports_other_orders_fills_once_with_their_client_order_id(exchange, client):
    client.create_order(A, "yes", "buy", 2, yes_price=Decimal("0.47"), client_order_id="manual-1")
    (fill,) = exchange.fills(TS)
    assert (fill.order_id, fill.count, fill.cost_cents, fill.fee_cents) == ("manual-1", 2, 94, 4)
    assert (fill.ts, fill.liquidity) == (TS, "taker")
    assert exchange.fills(TS + pd.Timedelta(hours=1)) == []
    # fills from before the exchange started are already in the account: not reported
    assert LiveKalshiExchange(client, since=TS + pd.Timedelta(seconds=1)).fills(TS) == []


def test_settlements_come_from_the_portfolio_endpoint(exchange, client, server):
    assert exchange.settlements(TS + pd.Timedelta(days=30)) == []
    body = client.transport.get("/portfolio/settlements", {"limit": 5}, signed=True).body
    assert body == {"settlements": [], "cursor": ""}
    assert server.stats.requests["settlements"] == 2
    for bad in ({"event_ticker": "A,B"}, {"subaccount": 3}, {"limit": 5000}):
        with pytest.raises(Exception, match="400"):
            client.transport.get("/portfolio/settlements", bad, signed=True)


# --- record mappings, on documents of the spec's shapes -------------------------------------

SPEC = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cents(value: Decimal) -> int | None:
    return int(value) if value == value.to_integral_value() else None


whole_cents = st.integers(1, 99).map(lambda c: f"0.{c:02d}00")


@SPEC
@given(strategy("GetFillsResponse"), st.data())
def test_spec_shaped_fills_map_to_exact_cents_or_refuse(body, data):
    for doc in body["fills"]:
        if data.draw(st.booleans(), "whole contracts and cents"):
            yes = data.draw(whole_cents)
            doc = {
                **doc,
                "count_fp": f"{data.draw(st.integers(1, 500))}.00",
                "yes_price_dollars": yes,
                "no_price_dollars": f"{1 - Decimal(yes):.4f}",
                "fee_cost": data.draw(whole_cents),
            }
        record = ApiFill.model_validate(doc)
        count = Decimal(doc["count_fp"])
        price = Decimal(doc["yes_price_dollars" if doc["side"] == "yes" else "no_price_dollars"])
        cost, fee = _cents(count * price * 100), _cents(Decimal(doc["fee_cost"]) * 100)
        exact = count > 0 and count == int(count) and cost is not None and fee is not None
        if not exact:
            with pytest.raises(DataError):
                fill_from_api(record, "c1", TS)
            continue
        fill = fill_from_api(record, "c1", TS)
        assert (fill.count, fill.cost_cents, fill.fee_cents) == (int(count), cost, fee)
        assert (fill.side, fill.action, fill.ticker) == (doc["side"], doc["action"], doc["ticker"])
        assert fill.liquidity == ("taker" if doc["is_taker"] else "maker")
        assert fill.order_id == "c1"
        if "created_time" in doc:
            assert fill.ts == pd.Timestamp(doc["created_time"])


@SPEC
@given(strategy("GetPositionsResponse"), st.data())
def test_spec_shaped_positions_map_to_sides_and_whole_contracts(body, data):
    docs = body["market_positions"]
    for i, doc in enumerate(docs):
        count = doc["position_fp"]
        if data.draw(st.booleans(), "whole contracts"):
            count = f"{data.draw(st.integers(0, 50))}.00"
        docs[i] = {**doc, "position_fp": data.draw(st.sampled_from(["", "-"])) + count}
    records = [MarketPosition.model_validate(d) for d in docs]
    if any(r.position != r.position.to_integral_value() for r in records):
        with pytest.raises(DataError):
            positions_from_api(records)
        return
    expected = {}
    for r in records:  # the last position of a ticker wins, as in a dict
        if r.position != 0:
            expected[r.ticker] = ("yes" if r.position > 0 else "no", abs(int(r.position)))
        else:
            expected.pop(r.ticker, None)
    assert positions_from_api(records) == expected


@SPEC
@given(strategy("GetMarketOrderbookResponse"))
def test_spec_shaped_books_quote_their_last_levels(body):
    levels = Orderbook.model_validate(body)
    q = book_quote(levels)
    for side, other in (("yes", "no"), ("no", "yes")):
        best = getattr(levels, side)
        if best:
            assert q[f"{side}_bid"] == float(best[-1][0] * 100)
            assert q[f"{side}_bid_size"] == float(best[-1][1])
            assert q[f"{other}_ask"] == 100 - q[f"{side}_bid"]
        else:
            assert pd.isna(q[f"{side}_bid"]) and pd.isna(q[f"{other}_ask"])


SETTLEMENT = {
    "ticker": A,
    "event_ticker": "KXTEST-E1",
    "market_result": "no",
    "yes_count_fp": "0.00",
    "yes_total_cost_dollars": "0.0000",
    "no_count_fp": "3.00",
    "no_total_cost_dollars": "1.9500",
    "revenue": 300,
    "settled_time": "2025-01-12T01:00:00Z",
    "fee_cost": "0.3400",
    "value": 0,
}


def test_a_settlement_maps_to_the_market_the_account_settles():
    record = Settlement.model_validate(SETTLEMENT)
    assert (record.no_count, record.no_total_cost, record.fee_cost) == (
        Decimal(3),
        Decimal("1.95"),
        Decimal("0.34"),
    )
    assert settled_market(record) == SettledMarket(A, "no", pd.Timestamp("2025-01-12T01:00Z"))
    legacy = {**SETTLEMENT, "no_count": 3, "no_total_cost": 195}
    for key in ("yes_count_fp", "no_count_fp", "yes_total_cost_dollars", "no_total_cost_dollars"):
        del legacy[key]
    assert Settlement.model_validate(legacy).no_total_cost == Decimal("1.95")
    empty = Settlement.model_validate({**SETTLEMENT, "no_count_fp": "0.00"})
    assert settled_market(empty) is None  # nothing held: nothing to book
    with pytest.raises(DataError, match="scalar"):
        settled_market(Settlement.model_validate({**SETTLEMENT, "market_result": "scalar"}))


@pytest.mark.skipif(not SPEC_PATH.exists(), reason="the full OpenAPI spec is not in this checkout")
def test_spec_shaped_settlements_read_exactly():
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: 10x faster
    full = yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    # the shape fixture lacks Settlement: take it from the spec (its fields' types are there)
    settlement = extract(full, ("GetSettlementsResponse",))["Settlement"]
    node = {
        "type": "object",
        "required": ["settlements"],
        "properties": {"settlements": {"type": "array", "items": settlement}},
    }

    @SPEC
    @given(strategy(node))
    def check(body):
        for doc in body["settlements"]:
            record = Settlement.model_validate(doc)
            assert record.yes_count == Decimal(doc["yes_count_fp"])
            assert record.no_total_cost == Decimal(doc["no_total_cost_dollars"])
            assert record.revenue == doc["revenue"]
            held = record.yes_count or record.no_count
            if not held:
                assert settled_market(record) is None
            elif doc["market_result"] == "scalar":
                with pytest.raises(DataError):
                    settled_market(record)
            else:
                assert settled_market(record).result == doc["market_result"]

    check()


def test_the_client_sends_buy_max_cost_which_makes_an_order_fill_or_kill(client, server):
    from kalshi_lab.client import ConflictError

    # 10 YES up to 50c cost 4 x 47 + 6 x 48 = 476 cents before fees
    kw = {"yes_price": Decimal("0.50"), "time_in_force": "immediate_or_cancel"}
    with pytest.raises(ConflictError, match="fill_or_kill"):
        client.create_order(A, "yes", "buy", 10, buy_max_cost=475, **kw)
    assert server.portfolio.order_docs() == []
    assert client.create_order(A, "yes", "buy", 10, buy_max_cost=476, **kw).fill_count == 10


# --- orders until the venue says they are done (kalshi_lab.execution.lifecycle) ---------------


class LaggingListing(KalshiClient):
    """The real client, whose fills listings do what a lagging venue's do: for the first
    ``hidden`` listings of an order's fills, and in every listing of the whole account, the
    fills of ``lagging`` orders (by the venue's order id) are missing; the others come twice
    and newest last. ``backdate`` moves the lagging fills' times back (listed late, made
    early)."""

    def __init__(self, *args: Any, hidden: int, backdate: pd.Timedelta, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.hidden = hidden
        self.backdate = backdate
        self.lagging: set[str] = set()
        self.by_order: dict[str, int] = {}

    def get_fills(self, ticker=None, order_id=None, min_ts=None, max_ts=None):
        docs = super().get_fills(ticker=ticker, order_id=order_id, min_ts=min_ts, max_ts=max_ts)
        if order_id is not None:
            self.by_order[order_id] = self.by_order.get(order_id, 0) + 1
            if order_id in self.lagging and self.by_order[order_id] <= self.hidden:
                return []
        late = [d for d in docs if d.order_id in self.lagging]
        if order_id is None:
            late = []
        for i, doc in enumerate(late):
            late[i] = doc.model_copy(update={"created_time": doc.created_time - self.backdate})
        shown = [d for d in docs if d.order_id not in self.lagging] + late
        return shown[::-1] + shown  # each twice, oldest first then newest first


def lagging_exchange(server, private_key, hidden: int, **kw) -> LiveKalshiExchange:
    client = LaggingListing(
        server.base_url,
        signer=KalshiSigner(KEY_ID, private_key),
        backoff_factor=0.01,
        reads_per_s=1000,
        writes_per_s=1000,
        hidden=hidden,
        backdate=pd.Timedelta(minutes=30),
    )

    def create_order(*args, **kwargs):  # each order placed is one whose fills lag
        placed = KalshiClient.create_order(client, *args, **kwargs)
        if kwargs.get("client_order_id", "").startswith("lag"):
            client.lagging.add(placed.order_id)
        return placed

    client.create_order = create_order  # type: ignore[method-assign]
    return LiveKalshiExchange(client, since=TS - pd.Timedelta(hours=2), **kw)


def test_fills_counted_but_not_listed_are_asked_for_each_step_and_reported_once(
    server, private_key
):
    exchange = lagging_exchange(server, private_key, hidden=2, max_listing_lag=3)
    first = order(C, "no", "buy", 3, 70, client_order_id="first")  # listed at once
    (listed,) = exchange.submit(first, TS)
    lag = order(count=10, limit=48, client_order_id="lag-1")
    # the venue says 10 filled, its listing shows none of them yet: unresolved, A blocked
    assert exchange.submit(lag, TS) == []
    assert exchange.unresolved() == {"lag-1": A}
    assert exchange.positions()[A] == ("yes", 10)
    assert exchange.resolve(TS) == [] and exchange.overdue() == []  # still hidden
    fills = exchange.resolve(TS)  # listed now, twice over: each fill once
    assert total(fills) == (10, 476, 18) and {f.order_id for f in fills} == {"lag-1"}
    assert exchange.unresolved() == {}
    # made half an hour before the fill already reported, reported after it, in time order
    assert all(f.ts == TS - pd.Timedelta(minutes=30) < listed.ts for f in fills)
    assert [f.cost_cents for f in fills] == [4 * 47, 6 * 48]
    # the account's listing repeats every fill: none is reported again
    assert exchange.fills(TS + pd.Timedelta(hours=1)) == []
    assert exchange.resolve(TS) == [] and exchange.submit(lag, TS) == []  # never sent twice
    account = KalshiAccount(START)
    book(account, first, [listed])
    book(account, lag, fills)
    reconcile(account, exchange)


def test_a_venue_that_never_lists_counted_fills_is_overdue_after_its_bound(server, private_key):
    exchange = lagging_exchange(server, private_key, hidden=100, max_listing_lag=2)
    lag = order(count=10, limit=48, client_order_id="lag-2")
    exchange.submit(lag, TS)
    for _ in range(2):
        exchange.resolve(TS)
        assert exchange.overdue() == []
    exchange.resolve(TS)
    (late,) = exchange.overdue()
    assert late.endswith("(lag-2): 10 contracts filled, 0 listed after 3 steps")


def test_an_order_whose_answer_is_lost_is_unknown_until_a_lookup_finds_it(server, private_key):
    # every request on /portfolio/orders is processed, then answered after the client gave
    # up: the POST lands, the lookups by client_order_id time out
    client = make_client(server, private_key, timeout_s=0.3, max_retries=0)
    exchange = LiveKalshiExchange(client, since=TS, lookup_attempts=2, lookup_backoff_s=0.01)
    server.set_faults(FaultConfig(slow=1.0, slow_delay_s=0.5, path_prefix="/portfolio/orders"))
    o = order(count=10, limit=48)
    assert exchange.submit(o, TS) == []
    assert exchange.orders[o.client_order_id].state == "unknown"
    assert exchange.unresolved() == {o.client_order_id: A}
    assert exchange.resolve(TS) == []  # the venue still does not answer
    server.set_faults(FaultConfig())
    fills = exchange.resolve(TS)
    assert total(fills) == (10, 476, 18) and exchange.unresolved() == {}
    assert exchange.orders[o.client_order_id].state == "placed"
    assert len(server_orders(server, o.client_order_id)) == 1
    assert exchange.submit(o, TS) == []  # never sent again
    assert len(server.portfolio.order_docs()) == 1


def test_a_post_that_never_landed_is_absent_and_blocks_nothing(server, private_key):
    client = make_client(server, private_key, max_retries=0)
    exchange = LiveKalshiExchange(client, since=TS, lookup_attempts=2, lookup_backoff_s=0.01)
    seed = _seed(0.5, [True, False])  # the POST is reset unanswered, the lookup answers
    server.set_faults(FaultConfig(reset=0.5, seed=seed, path_prefix="/portfolio/orders"))
    o = order(count=10, limit=48)
    assert exchange.submit(o, TS) == []
    server.set_faults(FaultConfig())
    assert exchange.orders[o.client_order_id].state == "absent"
    assert exchange.unresolved() == {} and server.portfolio.order_docs() == []


def test_a_409_is_the_same_order_only_if_it_is_the_order_sent(exchange, client, server):
    kw = {"yes_price": Decimal("0.47"), "time_in_force": "immediate_or_cancel"}
    client.create_order(A, "yes", "buy", 3, client_order_id="older", **kw)
    client.create_order(C, "no", "buy", 1, no_price=Decimal("0.70"), client_order_id="elsewhere")
    # the same id, another count: the order found under it is not ours
    with pytest.raises(OrderMismatchError, match=r"count 10 vs 3"):
        exchange.submit(order(count=10, limit=47, client_order_id="older"), TS)
    assert exchange.orders["older"].state == "conflict"
    # the same id on another market: the venue has it, not on A
    with pytest.raises(OrderMismatchError, match=r"holds none on KXTEST-E1-A"):
        exchange.submit(order(count=1, limit=47, client_order_id="elsewhere"), TS)
    assert len(server.portfolio.order_docs()) == 2  # nothing placed twice
    # their fills are the account's, listed as such, never counted as the orders sent
    assert sorted(f.order_id for f in exchange.fills(TS)) == ["elsewhere", "older"]
    assert exchange.orders["older"].listed == exchange.orders["elsewhere"].listed == 0
    # an id an earlier session used is never sent again
    fresh = LiveKalshiExchange(client, since=TS)
    fresh.restore((), used_ids={"earlier"})
    assert fresh.submit(order(count=1, client_order_id="earlier"), TS) == []
    assert fresh.unfilled == {"client_order_id already sent": 1}
    assert len(server.portfolio.order_docs()) == 2
    # the same id, the same order (a retry whose first POST landed): ours
    again = order(count=3, limit=47, client_order_id="older")
    fresh = LiveKalshiExchange(client, since=TS)
    assert total(fresh.submit(again, TS)) == (3, 141, 6)
