"""The local server's WebSocket stream, through the client: books equal to the REST books as the
clock moves (also under dropped connections, seq gaps and duplicated messages), trades and
fills as the clock and the venue make them, the signed handshake, and the spec's errors."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.sync.client import connect

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import AuthError, NotFoundError
from kalshi_lab.client.ws import WS_PATH, KalshiStream, StreamError
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from kalshi_lab.server.errors import ServerSetupError
from server_support import (
    CLOSED_B,
    CUTOFF,
    HALF_C,
    KEY_ID,
    NOW,
    OPEN_A,
    T0,
    KalshiAuth,
    write_handmade_raw,
    write_simulated_raw,
)
from ws_support import Consumer, books_match, no_wait, open_markets, rest_book, wait_until

#: the simulated data's markets open from early January; its snapshots are 6 hours apart
SIM_START = dt.datetime(2025, 1, 8, tzinfo=dt.UTC)
STEP_S = 6 * 3600
#: for the raw connections of these tests: websockets logs handshake headers at DEBUG
QUIET = logging.getLogger("tests.ws.raw")
QUIET.setLevel(logging.INFO)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_simulated_raw(tmp_path_factory.mktemp("sim") / "raw"))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed_config(key: rsa.RSAPrivateKey, **options: Any) -> ServerConfig:
    return ServerConfig(rate_limit=False, public_key=key.public_key(), key_id=KEY_ID, **options)


def converge(consumer: Consumer, srv: LocalKalshiServer, tickers: list[str]) -> None:
    assert wait_until(lambda: not books_match(consumer, srv, tickers)), (
        f"books differ from REST at {srv.now}: {books_match(consumer, srv, tickers)}; "
        f"stream {consumer.stream.stats}; error {consumer.error!r}"
    )


# --- books ------------------------------------------------------------------------------------


def test_books_follow_the_moving_clock_as_rest_shows_them(simulated, key) -> None:
    with LocalKalshiServer(simulated, signed_config(key, now=SIM_START)) as srv:
        tickers = open_markets(srv)
        assert len(tickers) >= 5
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=tickers,
                              auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            for _ in range(6):
                converge(consumer, srv, tickers)
                srv.advance(STEP_S)
            converge(consumer, srv, tickers)
        published = srv.stats.published
    snapshots, deltas = consumer.of_type("orderbook_snapshot"), consumer.of_type("orderbook_delta")
    assert len(snapshots) == len(tickers)  # one each, then deltas only
    assert len(deltas) > 100
    # the server counts what it sent: every delta, and a snapshot per market (and per probe)
    assert published["orderbook_delta"] == len(deltas)
    assert published["orderbook_snapshot"] == len(tickers) + stream.stats.probes
    assert {"market_ticker", "market_id", "price_dollars", "delta_fp", "side", "ts_ms"} <= set(
        deltas[0]["msg"]
    )
    seqs = [m["seq"] for m in consumer.messages]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_books_stay_equal_to_rest_under_drops_gaps_and_duplicates(simulated, key, seed) -> None:
    faults = FaultConfig(stream_drop=0.01, stream_gap=0.03, stream_duplicate=0.05, seed=seed)
    with LocalKalshiServer(simulated, signed_config(key, now=SIM_START, faults=faults)) as srv:
        tickers = open_markets(srv)
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=tickers,
                              auth=KalshiSigner(KEY_ID, key), reconnect_delays=no_wait)  # fmt: skip
        with Consumer(stream) as consumer:
            for _ in range(8):
                converge(consumer, srv, tickers)
                srv.advance(STEP_S)
            converge(consumer, srv, tickers)
        served = srv.stats
    stats = stream.stats
    assert consumer.error is None
    assert stats.duplicates > 0 and stats.gaps > 0 and stats.resnapshots > 0
    assert stats.reconnects > 0  # each connection signed afresh, or the server would refuse
    assert served.requests["stream_connect"] == stats.reconnects + 1
    assert served.faults.get("stream_duplicate", 0) > 0 and served.faults.get("stream_gap", 0) > 0
    assert consumer.books.negative_levels == 0 and consumer.books.orphan_deltas == 0


def test_a_gap_is_followed_by_a_fresh_snapshot_of_each_market(simulated, key) -> None:
    faults = FaultConfig(stream_gap=0.05, seed=7)
    with LocalKalshiServer(simulated, signed_config(key, now=SIM_START, faults=faults)) as srv:
        tickers = open_markets(srv)
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=tickers,
                              auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            for _ in range(4):
                converge(consumer, srv, tickers)
                srv.advance(STEP_S)
            converge(consumer, srv, tickers)
    assert stream.stats.gaps > 0
    # after a gap (a seq jump between two passed messages), each market's next message is
    # a snapshot answering the client's get_snapshot (it carries the command's id)
    messages = consumer.messages
    for i in range(1, len(messages)):
        if messages[i]["seq"] > messages[i - 1]["seq"] + 1 and messages[i - 1].get("id") is None:
            seen: set[str] = set()
            for m in messages[i:]:
                ticker = m["msg"]["market_ticker"]
                if ticker not in seen:
                    seen.add(ticker)
                    assert m["type"] == "orderbook_snapshot", (i, m)
            break
    else:
        pytest.fail("no gap reached the consumer")


# --- trades and fills -------------------------------------------------------------------------


def test_trades_stream_as_the_clock_passes_them(handmade, key) -> None:
    start = T0 + 60 * dt.timedelta(hours=1)  # between trades 8 and 9 of the handmade data
    config = signed_config(key, now=start, cutoff=CUTOFF)
    with LocalKalshiServer(handmade, config) as srv:
        stream = KalshiStream(srv.ws_url, channels=["trade"], auth=KalshiSigner(KEY_ID, key))
        with Consumer(stream) as consumer:
            assert wait_until(lambda: stream.connected)
            time.sleep(0.2)
            assert consumer.messages == []  # nothing before the subscription is replayed
            srv.advance(int((NOW - start).total_seconds()))
            assert wait_until(lambda: len(consumer.messages) == 7)
            time.sleep(0.2)
        by_id = {
            t["trade_id"]: t
            for path in ("/markets/trades", "/historical/trades")  # split at the cutoff
            for t in requests.get(srv.base_url + path, params={"ticker": OPEN_A}).json()["trades"]
        }
    trades = [m["msg"] for m in consumer.messages]
    assert [t["ts_ms"] for t in trades] == sorted(t["ts_ms"] for t in trades)
    assert len(trades) == 7 and {t["trade_id"] for t in trades} <= by_id.keys()
    for t in trades:
        r = by_id[t["trade_id"]]
        assert (t["market_ticker"], t["count_fp"], t["yes_price_dollars"], t["taker_side"]) == (
            r["ticker"], r["count_fp"], r["yes_price_dollars"], r["taker_side"]
        )  # fmt: skip
        assert t["taker_book_side"] == ("bid" if t["taker_side"] == "yes" else "ask")


def test_fills_orders_and_books_come_once_even_when_every_message_comes_twice(
    handmade, key
) -> None:
    faults = FaultConfig(stream_duplicate=1.0)
    config = signed_config(key, cutoff=CUTOFF, faults=faults)
    with LocalKalshiServer(handmade, config) as srv:
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta", "fill", "user_orders"],
                              market_tickers=[OPEN_A], auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            assert wait_until(lambda: OPEN_A in consumer.books)
            session = requests.Session()
            session.auth = KalshiAuth(KalshiSigner(KEY_ID, key))
            r = session.post(f"{srv.base_url}/portfolio/orders", json={
                "ticker": OPEN_A, "side": "yes", "action": "buy", "count": 6,
                "yes_price_dollars": "0.4800", "client_order_id": "ws-1",
            })  # fmt: skip
            assert r.status_code == 201, r.text
            assert wait_until(lambda: len(consumer.of_type("fill")) == 2)
            converge(consumer, srv, [OPEN_A])
            assert wait_until(lambda: consumer.of_type("user_order"))
            time.sleep(0.2)
            rest_fills = session.get(f"{srv.base_url}/portfolio/fills").json()["fills"]
    fills = [m["msg"] for m in consumer.of_type("fill")]
    assert len(fills) == 2 and stream.stats.duplicates > 0
    # AsyncAPI fillPayload: no seq, and trade_id but no fill_id; OpenAPI Fill: trade_id is
    # "the same as fill_id", which is what the stream's trade_id is
    assert not any("seq" in m for m in consumer.of_type("fill"))
    assert not any("fill_id" in f for f in fills)
    assert all(f["trade_id"] == f["fill_id"] for f in rest_fills)
    assert {f["trade_id"] for f in fills} == {f["fill_id"] for f in rest_fills}
    assert [(f["yes_price_dollars"], f["count_fp"], f["post_position_fp"]) for f in fills] == [
        ("0.4700", "4.00", "4.00"), ("0.4800", "2.00", "6.00"),
    ]  # fmt: skip
    assert all(f["outcome_side"] == "yes" and f["book_side"] == "bid" for f in fills)
    assert all(f["client_order_id"] == "ws-1" and f["is_taker"] for f in fills)
    (order,) = [m["msg"] for m in consumer.of_type("user_order")]
    assert order["status"] == "executed" and order["fill_count_fp"] == "6.00"
    assert order["ticker"] == OPEN_A and order["is_yes"] and order["book_side"] == "bid"
    no = dict(consumer.books.book(OPEN_A).no)
    assert no[Decimal("0.52")] == Decimal(8) and Decimal("0.53") not in no


# --- the handshake ----------------------------------------------------------------------------


def test_unsigned_stale_and_misplaced_handshakes_are_refused(
    handmade, key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stale = KalshiSigner(KEY_ID, key, clock_ms=lambda: time.time_ns() // 1_000_000 - 120_000)
    with LocalKalshiServer(handmade, signed_config(key, cutoff=CUTOFF)) as srv:
        with pytest.raises(AuthError) as unsigned:
            list(KalshiStream(srv.ws_url, channels=["trade"]))
        with pytest.raises(AuthError) as old:
            list(KalshiStream(srv.ws_url, channels=["trade"], auth=stale))
        with pytest.raises(NotFoundError) as misplaced:
            list(KalshiStream(srv.ws_url.replace(WS_PATH, "/ws"), channels=["trade"]))
        signed = KalshiSigner(KEY_ID, key).headers("GET", WS_PATH)
        with connect(srv.ws_url, additional_headers=signed, logger=QUIET) as ws:
            ws.send(json.dumps({"id": 1, "cmd": "list_subscriptions"}))
            assert json.loads(ws.recv(timeout=5)) == {"id": 1, "type": "ok", "msg": []}
        assert srv.stats.statuses.get(401) == 2
    assert unsigned.value.status == 401 and "KALSHI-ACCESS-KEY is missing" in str(unsigned.value)
    assert old.value.status == 401 and "120 s away" in str(old.value)
    assert isinstance(misplaced.value, NotFoundError) and misplaced.value.status == 404
    for text in (str(unsigned.value), str(old.value), caplog.text):
        assert KEY_ID not in text and signed["KALSHI-ACCESS-SIGNATURE"] not in text


def test_without_a_key_public_channels_stream_and_private_ones_are_refused(handmade) -> None:
    with LocalKalshiServer(handmade, ServerConfig(rate_limit=False, cutoff=CUTOFF)) as srv:
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=[HALF_C])
        with Consumer(stream) as consumer:
            converge(consumer, srv, [HALF_C])  # C's book was recorded in the legacy format
        assert consumer.books.book(HALF_C) == rest_book(srv, HALF_C)
        with pytest.raises(StreamError, match="error 9") as private:
            list(KalshiStream(srv.ws_url, channels=["fill"]))
    assert private.value.code == 9


# --- commands ---------------------------------------------------------------------------------


def test_commands_are_answered_with_the_spec_codes(handmade, key) -> None:
    def ask(ws: Any, command: Any) -> dict[str, Any]:
        ws.send(command if isinstance(command, str) else json.dumps(command))
        return json.loads(ws.recv(timeout=5))

    with LocalKalshiServer(handmade, signed_config(key, cutoff=CUTOFF)) as srv:
        headers = KalshiSigner(KEY_ID, key).headers("GET", WS_PATH)
        with connect(srv.ws_url, additional_headers=headers, logger=QUIET) as ws:
            codes = [
                ask(ws, "not json")["msg"]["code"],
                ask(ws, {"id": 2, "cmd": "subscribe"})["msg"]["code"],
                ask(ws, {"id": 3, "cmd": "subscribe", "params": {}})["msg"]["code"],
                ask(ws, {"id": 4, "cmd": "nope", "params": {}})["msg"]["code"],
                ask(ws, {"id": 5, "cmd": "subscribe", "params": {"channels": ["x"]}})["msg"][
                    "code"
                ],
                ask(ws, {"id": 6, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}})[
                    "msg"
                ]["code"],  # fmt: skip
                ask(ws, {"id": 7, "cmd": "unsubscribe", "params": {"sids": [9]}})["msg"]["code"],
                ask(ws, {"id": 8, "cmd": "update_subscription", "params": {"sid": 9}})["msg"][
                    "code"
                ],  # fmt: skip
            ]
            assert codes == [1, 2, 3, 5, 8, 14, 7, 15]
            unknown = ask(ws, {"id": 9, "cmd": "subscribe", "params": {
                "channels": ["trade"], "market_tickers": ["NOPE-1", CLOSED_B]}})  # fmt: skip
            assert unknown["msg"]["code"] == 11
            assert unknown["msg"]["market_tickers"] == sorted(["NOPE-1", CLOSED_B])  # B: archived
            sub = {"id": 10, "cmd": "subscribe",
                   "params": {"channels": ["orderbook_delta"], "market_ticker": OPEN_A}}  # fmt: skip
            assert ask(ws, sub) == {"id": 10, "type": "subscribed",
                                    "msg": {"channel": "orderbook_delta", "sid": 1}}  # fmt: skip
            snapshot = json.loads(ws.recv(timeout=5))
            assert snapshot["type"] == "orderbook_snapshot" and snapshot["seq"] == 1
            assert snapshot["msg"]["yes_dollars_fp"][-1] == ["0.4500", "20.00"]
            again = ask(ws, {"id": 11, "cmd": "update_subscription",
                             "params": {"sids": [1], "market_tickers": [OPEN_A],
                                        "action": "get_snapshot"}})  # fmt: skip
            assert (again["id"], again["seq"], again["msg"]) == (11, 2, snapshot["msg"])
            added = ask(ws, {"id": 12, "cmd": "update_subscription",
                             "params": {"sid": 1, "market_tickers": [HALF_C],
                                        "action": "add_markets"}})  # fmt: skip
            assert added["type"] == "orderbook_snapshot"  # C's book first, then the ok
            ok = json.loads(ws.recv(timeout=5))
            assert ok == {"id": 12, "sid": 1, "seq": 3, "type": "ok",
                          "msg": {"market_tickers": sorted([OPEN_A, HALF_C])}}  # fmt: skip
            gone = ask(ws, {"id": 13, "cmd": "unsubscribe", "params": {"sids": [1]}})
            assert gone == {"id": 13, "sid": 1, "seq": 4, "type": "unsubscribed"}


def test_stream_fault_probabilities_are_checked() -> None:
    with pytest.raises(ServerSetupError, match="stream_gap"):
        FaultConfig(stream_gap=1.5)
    with pytest.raises(ServerSetupError, match="at most 1"):
        FaultConfig(stream_gap=0.6, stream_drop=0.6)


def test_the_stream_listens_where_asked_and_says_when_it_cannot(handmade) -> None:
    with LocalKalshiServer(handmade, ServerConfig(rate_limit=False)) as first:
        taken = first.stream.port
        config = ServerConfig(rate_limit=False, ws_port=taken)
        with pytest.raises(ServerSetupError, match=f"{taken} for the stream"):
            LocalKalshiServer(handmade, config).start()


def test_markets_added_while_streaming_are_kept_across_reconnects(simulated, key) -> None:
    faults = FaultConfig(stream_drop=0.01, stream_gap=0.03, seed=5)
    with LocalKalshiServer(simulated, signed_config(key, now=SIM_START, faults=faults)) as srv:
        tickers = open_markets(srv)
        half = len(tickers) // 2
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta", "fill"],
                              auth=KalshiSigner(KEY_ID, key), reconnect_delays=no_wait)  # fmt: skip
        with Consumer(stream) as consumer:
            assert stream.add_markets(tickers[:half]) == tickers[:half]
            converge(consumer, srv, tickers[:half])
            assert stream.add_markets(tickers) == tickers[half:]  # only the new ones
            for _ in range(6):
                converge(consumer, srv, tickers)
                srv.advance(STEP_S)
            converge(consumer, srv, tickers)
    assert stream.stats.reconnects > 0 and stream.stats.gaps > 0
    # the still clock leaves the stream quiet: probes are what show a lost last message
    assert stream.stats.probes > 0
    with pytest.raises(ValueError, match="no market_tickers"):
        KalshiStream(
            "ws://127.0.0.1:1/", channels=["orderbook_delta"], market_tickers=[OPEN_A]
        ).add_markets([HALF_C])


def test_a_clock_jump_shows_every_snapshot_it_passed_at_its_time(simulated, key) -> None:
    with LocalKalshiServer(simulated, signed_config(key, now=SIM_START)) as srv:
        tickers = open_markets(srv)[:1]
        history = srv.dataset.books[tickers[0]]
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=tickers,
                              auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            converge(consumer, srv, tickers)
            start = srv.now
            srv.advance(24 * 3600)  # four recorded snapshots a day
            converge(consumer, srv, tickers)
    passed = [t for t in history.times if start < t <= srv.now]
    stamps = [m["msg"]["ts_ms"] // 1000 for m in consumer.of_type("orderbook_delta")]
    assert len(passed) >= 3 and stamps == sorted(stamps)
    assert set(stamps) <= {*passed, srv.now} and set(passed[:-1]) <= set(stamps)


def test_a_clock_jump_over_many_markets_streams_their_snapshots_in_time_order(
    simulated, key
) -> None:
    """As Kalshi streams in real time: a day's jump of the clock over four snapshot times of
    many markets, one of which closes within it, arrives in time order across the markets (a
    rebuild times the books by ts_ms: a stamp running back is held level), and each market's
    deltas up to each snapshot time passed give its recorded book of that time, the last one
    of a market that closed in the jump included."""
    from kalshi_lab.server.books import parse_levels

    day = 24 * 3600
    sim_start = int(SIM_START.timestamp())
    start = next(  # a 6-hourly time where an open market has a snapshot and closes within a day
        t
        for t in range(sim_start, sim_start + 10 * day, STEP_S)
        if any(
            m.trading_at(t)
            and m.close_ts < t + day
            and any(t < s < m.close_ts for s in simulated.books[m.ticker].times)
            for m in simulated.markets.values()
        )
    )
    # nothing archived: a market settling in the jump is live until then
    config = signed_config(key, now=dt.datetime.fromtimestamp(start, dt.UTC), cutoff=SIM_START)
    with LocalKalshiServer(simulated, config) as srv:
        tickers = open_markets(srv)
        closing = [t for t in tickers if srv.dataset.markets[t].close_ts < start + day]
        assert len(tickers) >= 5 and closing
        stream = KalshiStream(srv.ws_url, channels=["orderbook_delta"], market_tickers=tickers,
                              auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            converge(consumer, srv, tickers)
            seen = len(consumer.messages)
            books = {t: consumer.books.book(t) for t in tickers}
            srv.advance(day)
            converge(consumer, srv, tickers)
    jump = [m["msg"] for m in consumer.messages[seen:] if m["type"] == "orderbook_delta"]
    stamps = [m["ts_ms"] for m in jump]
    assert stamps == sorted(stamps)
    for ticker in tickers:
        history = srv.dataset.books[ticker]
        deltas = [m for m in jump if m["market_ticker"] == ticker]
        for i, at in enumerate(history.times):
            if not start < at <= start + day:
                continue
            book = {(s, p): n for s in ("yes", "no") for p, n in getattr(books[ticker], s)}
            for m in deltas:
                if m["ts_ms"] <= at * 1000:
                    level = (m["side"], Decimal(m["price_dollars"]))
                    book[level] = book.get(level, Decimal(0)) + Decimal(m["delta_fp"])
            want = {(s, p): n for s in ("yes", "no") for p, n in parse_levels(history.docs[i], s)}
            got = {level: n for level, n in book.items() if n}
            assert got == want, (
                f"{ticker} at {at}: closes at {srv.dataset.markets[ticker].close_ts}"
            )


def test_ticker_says_the_best_bid_and_ask_when_they_change(handmade, key) -> None:
    config = signed_config(key, now=NOW - dt.timedelta(hours=12), cutoff=CUTOFF)
    with LocalKalshiServer(handmade, config) as srv:
        stream = KalshiStream(srv.ws_url, channels=["ticker"], market_tickers=[OPEN_A],
                              auth=KalshiSigner(KEY_ID, key))  # fmt: skip
        with Consumer(stream) as consumer:
            assert wait_until(lambda: stream.connected)
            time.sleep(0.2)
            assert consumer.messages == []  # no change yet, no initial snapshot asked for
            srv.advance(12 * 3600)  # A's book at NOW: best YES bid 0.45 x 20, NO 0.53 x 4
            assert wait_until(lambda: len(consumer.messages) == 1)
            time.sleep(0.2)
    (msg,) = [m["msg"] for m in consumer.messages]
    expected = {"market_ticker": OPEN_A, "yes_bid_dollars": "0.4500", "yes_ask_dollars": "0.4700",
                "yes_bid_size_fp": "20.00", "yes_ask_size_fp": "4.00", "ts": int(NOW.timestamp())}  # fmt: skip
    assert expected.items() <= msg.items()
    required = ["market_id", "price_dollars", "volume_fp", "open_interest_fp", "dollar_volume",
                "dollar_open_interest", "last_trade_size_fp", "ts_ms", "time"]  # fmt: skip
    assert set(required) <= msg.keys()
