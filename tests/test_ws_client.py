"""The WebSocket client against the message shapes of Kalshi's AsyncAPI spec
(docs.kalshi.com/websockets; examples copied into tests/fixtures/asyncapi_messages.json).

The stream itself is tested against a scripted server (websockets' sync server in a thread)
that plays spec-shaped messages and records the commands the client sends.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.sync.client import reconnect
from websockets.sync.server import Server, ServerConnection, serve

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.client.errors import AuthError
from kalshi_lab.client.records import Orderbook
from kalshi_lab.client.ws import WS_PATH, KalshiStream, StreamError, ws_url_for
from kalshi_lab.client.ws_books import StreamBooks
from kalshi_lab.client.ws_sequence import Sequencer, StreamStats
from kalshi_lab.server.auth import SignatureVerifier
from ws_support import no_wait, wait_until

SPEC = json.loads((Path(__file__).parent / "fixtures" / "asyncapi_messages.json").read_text())
KEY_ID = "0b6c7c2e-0000-4000-8000-00000000beef"
D = Decimal


def spec(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of a spec example, with ``msg`` fields or top-level fields changed."""
    out = copy.deepcopy(SPEC[name])
    for key, value in changes.items():
        if key in ("sid", "seq", "id", "type"):
            out[key] = value
        else:
            out["msg"][key] = value
    return out


# --- books ----------------------------------------------------------------------------------


def test_snapshot_in_both_formats_reads_as_the_rest_client_reads_it() -> None:
    current, legacy = StreamBooks(), StreamBooks()
    current.apply(SPEC["orderbook_snapshot"])
    legacy.apply(SPEC["legacy_orderbook_snapshot"])
    expected = Orderbook.model_validate({"orderbook_fp": {
        "yes_dollars": [["0.08", "300"], ["0.22", "333"]],
        "no_dollars": [["0.54", "20"], ["0.56", "146"]],
    }})  # fmt: skip
    book = current.book("FED-23DEC-T3.00")
    assert book == legacy.book("FED-23DEC-T3.00")
    assert book.yes == expected.yes and book.no == expected.no
    assert book.yes_ask == D("0.44") and book.no_ask == D("0.78")


@pytest.mark.parametrize(("delta", "price_field"), [
    ("orderbook_delta", {"price_dollars": "0.2200"}),
    ("legacy_orderbook_delta", {"price": 22}),
])  # fmt: skip
def test_delta_moves_one_level_in_both_formats(delta: str, price_field: dict[str, Any]) -> None:
    books = StreamBooks()
    books.apply(SPEC["orderbook_snapshot"])
    books.apply(spec(delta, **price_field))  # -54 at 0.22 YES
    assert dict(books.book("FED-23DEC-T3.00").yes) == {D("0.08"): D(300), D("0.22"): D(279)}
    books.apply(spec(delta, **price_field, **{"delta_fp": "-279.00", "delta": -279}))
    assert dict(books.book("FED-23DEC-T3.00").yes) == {D("0.08"): D(300)}
    books.apply(spec(delta, **price_field, side="no", **{"delta_fp": "5.00", "delta": 5}))
    assert dict(books.book("FED-23DEC-T3.00").no)[D("0.22")] == D(5)
    assert books.negative_levels == 0 and books.orphan_deltas == 0


def test_spec_delta_below_zero_and_before_snapshot_are_counted() -> None:
    books = StreamBooks()
    books.apply(SPEC["orderbook_delta"])  # no snapshot yet
    assert books.orphan_deltas == 1 and "FED-23DEC-T3.00" not in books
    books.apply(SPEC["orderbook_snapshot"])
    books.apply(SPEC["orderbook_delta"])  # -54 at 0.96, a level the snapshot does not show
    assert books.negative_levels == 1
    assert D("0.96") not in dict(books.book("FED-23DEC-T3.00").yes)


def test_a_delta_without_price_names_the_market() -> None:
    books = StreamBooks()
    books.apply(SPEC["orderbook_snapshot"])
    bad = spec("orderbook_delta")
    del bad["msg"]["price_dollars"]
    with pytest.raises(Exception, match="FED-23DEC-T3.00"):
        books.apply(bad)


# --- sequence numbers -----------------------------------------------------------------------


def test_duplicates_are_dropped_and_counted() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    seq.subscribed(2, "orderbook_delta")
    assert seq.admit(spec("orderbook_snapshot", seq=1)).keep
    assert seq.admit(spec("orderbook_delta", seq=2, price_dollars="0.2200")).keep
    assert not seq.admit(spec("orderbook_delta", seq=2, price_dollars="0.2200")).keep
    assert not seq.admit(spec("orderbook_snapshot", seq=1)).keep  # seq 1 again
    assert (stats.messages, stats.duplicates, stats.gaps) == (2, 2, 0)


def test_a_gap_asks_for_snapshots_and_holds_deltas_until_they_come() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    seq.subscribed(2, "orderbook_delta")
    seq.admit(spec("orderbook_snapshot", seq=1))
    seq.admit(spec("orderbook_snapshot", seq=2, market_ticker="CORIVER-2024-T1030"))
    seq.admit(spec("orderbook_delta", seq=3))
    verdict = seq.admit(spec("orderbook_delta", seq=6))
    assert not verdict.keep  # its market may have missed seq 4 or 5
    assert verdict.resnapshot == (2, ("CORIVER-2024-T1030", "FED-23DEC-T3.00"))
    assert stats.gaps == 1 and stats.stale_deltas == 1
    assert not seq.admit(spec("orderbook_delta", seq=7)).keep
    assert seq.admit(spec("orderbook_snapshot", seq=8)).keep
    assert seq.admit(spec("orderbook_delta", seq=9)).keep  # fresh again
    assert not seq.admit(spec("orderbook_delta", seq=10, market_ticker="CORIVER-2024-T1030")).keep
    assert seq.stale(2) == {"CORIVER-2024-T1030"}
    assert stats.resnapshots == 1 and stats.stale_deltas == 3


def test_a_trade_gap_is_counted_but_trades_go_on() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    seq.subscribed(11, "trade")
    assert seq.admit(spec("trade", seq=1)).keep
    verdict = seq.admit(spec("trade", seq=5))
    assert verdict.keep and verdict.resnapshot is None and stats.gaps == 1


def test_a_fill_seen_twice_is_booked_once_even_across_connections() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    assert seq.admit(SPEC["fill"]).keep
    seq.reset()  # reconnected
    assert not seq.admit(spec("fill", sid=99)).keep
    assert seq.admit(spec("fill", trade_id="another")).keep
    assert (stats.messages, stats.duplicates) == (2, 1)


# --- the stream against a scripted server ----------------------------------------------------


class Scripted:
    """A websockets server that runs ``script(connection, commands)`` for each connection;
    ``commands`` collects what the client sent, ``handshakes`` each handshake's headers."""

    def __init__(
        self,
        script: Callable[[ServerConnection, list[dict[str, Any]]], None],
        verifier: SignatureVerifier | None = None,
    ) -> None:
        self.commands: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, str]] = []
        self.script = script
        self.verifier = verifier
        quiet = logging.getLogger("tests.ws.scripted")
        quiet.setLevel(logging.INFO)  # websockets logs handshake headers at DEBUG
        self.server: Server = serve(
            self._handle, "127.0.0.1", 0, process_request=self._check, logger=quiet
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}{WS_PATH}"

    def _check(self, connection: ServerConnection, request: Any) -> Any:
        self.handshakes.append({k.lower(): v for k, v in request.headers.raw_items()})
        if self.verifier is None:
            return None
        try:
            self.verifier.verify("GET", request.path, request.headers)
        except Exception as exc:  # noqa: BLE001 - the ApiError becomes a 401
            return connection.respond(401, str(exc))
        return None

    def recv(self, ws: ServerConnection) -> dict[str, Any]:
        command = json.loads(ws.recv(timeout=5))
        self.commands.append(command)
        return command

    def _handle(self, ws: ServerConnection) -> None:
        self.script(ws, self.commands)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


def _take(stream: KalshiStream, n: int) -> list[dict[str, Any]]:
    out = []
    for message in stream:
        out.append(message)
        if len(out) == n:
            stream.close()
    return out


def test_stream_subscribes_as_the_spec_shows_and_resnapshots_after_a_gap() -> None:
    server: Scripted

    def script(ws: ServerConnection, commands: list[dict[str, Any]]) -> None:
        sub = server.recv(ws)
        ws.send(json.dumps({"id": sub["id"], "type": "subscribed",
                            "msg": {"channel": "orderbook_delta", "sid": 2}}))  # fmt: skip
        ws.send(json.dumps(spec("orderbook_snapshot", seq=1)))
        ws.send(json.dumps(spec("orderbook_delta", seq=2, price_dollars="0.2200")))
        ws.send(json.dumps(spec("orderbook_delta", seq=2, price_dollars="0.2200")))  # again
        ws.send(json.dumps(spec("orderbook_delta", seq=4, price_dollars="0.0800")))  # 3 lost
        ask = server.recv(ws)
        assert ask["cmd"] == "update_subscription"
        fresh = spec("orderbook_snapshot", seq=5, id=ask["id"], yes_dollars_fp=[["0.0800", "1.00"]])
        ws.send(json.dumps(fresh))
        ws.send(json.dumps(spec("orderbook_delta", seq=6, price_dollars="0.0800", delta_fp="2.00")))
        ws.recv()  # until the client closes

    server = Scripted(script)
    with server:
        stream = KalshiStream(
            server.url, channels=["orderbook_delta", "ticker"],
            market_tickers=["FED-23DEC-T3.00", "CORIVER-2024-T1030"],
        )  # fmt: skip
        messages = _take(stream, 4)
    books = StreamBooks()
    for m in messages:
        books.apply(m)
    assert [(m["type"], m["seq"]) for m in messages] == [
        ("orderbook_snapshot", 1), ("orderbook_delta", 2),
        ("orderbook_snapshot", 5), ("orderbook_delta", 6),
    ]  # fmt: skip
    subscribe, ask = server.commands
    want = SPEC["subscribe_multiple_channels"]
    assert subscribe["cmd"] == want["cmd"] and subscribe["params"] == want["params"]
    assert set(ask) == set(SPEC["get_snapshot"]) and set(ask["params"]) == set(
        SPEC["get_snapshot"]["params"]
    )
    assert ask["params"] == {  # every market subscribed: any of them may have lost a delta
        "sids": [2], "market_tickers": ["CORIVER-2024-T1030", "FED-23DEC-T3.00"],
        "action": "get_snapshot",
    }  # fmt: skip
    assert ask["id"] > subscribe["id"]
    assert dict(books.book("FED-23DEC-T3.00").yes) == {D("0.08"): D(3)}  # the fresh 1, + 2
    s = stream.stats
    assert (s.messages, s.duplicates, s.gaps, s.resnapshots, s.stale_deltas) == (4, 1, 1, 1, 1)


def test_subscribe_error_is_fatal_and_carries_the_spec_code() -> None:
    server: Scripted

    def script(ws: ServerConnection, commands: list[dict[str, Any]]) -> None:
        sub = server.recv(ws)
        ws.send(json.dumps({**SPEC["error_market_ticker_required"], "id": sub["id"]}))
        ws.recv()

    server = Scripted(script)
    with server, pytest.raises(StreamError, match="error 14") as err:
        list(KalshiStream(server.url, channels=["trade"], market_tickers=["FED-23DEC-T3.00"]))
    assert err.value.code == 14


def test_each_connection_is_signed_afresh_and_a_dropped_one_resubscribes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    clock = iter(range(10**12, 10**12 + 10**6, 1000))
    signer = KalshiSigner(KEY_ID, key, clock_ms=lambda: next(clock))
    server: Scripted

    def script(ws: ServerConnection, commands: list[dict[str, Any]]) -> None:
        sub = server.recv(ws)
        ws.send(json.dumps({"id": sub["id"], "type": "subscribed",
                            "msg": {"channel": "trade", "sid": 11}}))  # fmt: skip
        ws.send(json.dumps(spec("trade", seq=1, trade_id=f"t{len(server.handshakes)}")))
        if len(server.handshakes) == 1:
            ws.close()  # drop the first connection
        else:
            ws.recv()

    verifier = SignatureVerifier(key.public_key(), KEY_ID, clock=lambda: 10**9 + 30)
    server = Scripted(script, verifier)
    with server:
        stream = KalshiStream(server.url, channels=["trade"], auth=signer,
                              reconnect_delays=no_wait)  # fmt: skip
        messages = _take(stream, 2)
    assert [m["msg"]["trade_id"] for m in messages] == ["t1", "t2"]
    assert stream.stats.reconnects == 1
    stamps = [h["kalshi-access-timestamp"] for h in server.handshakes]
    assert len(set(stamps)) == 2  # each handshake signed when it was made
    assert [c["cmd"] for c in server.commands] == ["subscribe", "subscribe"]


def test_refused_handshake_raises_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = Scripted(lambda ws, c: None, SignatureVerifier(key.public_key(), KEY_ID))
    caplog.set_level(logging.DEBUG)
    with server:
        with pytest.raises(AuthError) as unsigned:
            list(KalshiStream(server.url, channels=["trade"]))
        with pytest.raises(AuthError) as wrong_key:
            list(KalshiStream(server.url, channels=["trade"], auth=KalshiSigner(KEY_ID, other)))
    assert unsigned.value.status == 401 and "KALSHI-ACCESS-KEY is missing" in str(unsigned.value)
    assert wrong_key.value.status == 401 and "does not verify" in str(wrong_key.value)
    signature = server.handshakes[-1]["kalshi-access-signature"]
    for text in [str(unsigned.value), str(wrong_key.value), caplog.text]:
        assert KEY_ID not in text and signature not in text


def _closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_time(
    stream: KalshiStream, ready: Callable[[], bool], after_close: Callable[[], None] = lambda: None
) -> float:
    """Iterate ``stream`` in a thread; once ``ready()``, close it from this thread (then run
    ``after_close``) and return how long the iteration took to end after the close."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(list(stream)), daemon=True)
    thread.start()
    assert wait_until(ready, 10.0)
    started = time.monotonic()
    stream.close()
    after_close()
    thread.join(10.0)
    assert not thread.is_alive(), "close() did not end the iteration"
    assert outcome == [[]]  # ended cleanly, no message
    return time.monotonic() - started


def test_close_ends_the_wait_to_reconnect_to_a_server_that_is_gone() -> None:
    waits: list[float] = []

    def long_waits() -> Iterator[float]:
        while True:
            waits.append(60.0)
            yield 60.0

    stream = KalshiStream(f"ws://127.0.0.1:{_closed_port()}{WS_PATH}", channels=["trade"],
                          reconnect_delays=long_waits)  # fmt: skip
    # the first attempt was refused: the stream waits 60 s to try again
    assert _stop_time(stream, lambda: len(waits) == 1) < 1.0


def test_close_cuts_a_handshake_the_server_does_not_answer() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
        stream = KalshiStream(f"ws://127.0.0.1:{port}{WS_PATH}", channels=["trade"],
                              open_timeout=60.0)  # fmt: skip
        # connected: the client waits for an answer to its handshake, for up to 60 s
        assert _stop_time(stream, lambda: bool(accepted)) < 1.0
        accepted[0].close()


def test_close_during_the_tcp_connect_begins_no_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connecting, closed = threading.Event(), threading.Event()
    tcp_connect = reconnect.open_socket

    def slow_connect(self: reconnect, deadline: Any) -> socket.socket:
        connecting.set()
        closed.wait(10.0)  # a connect that outlasts the close (an unanswered SYN)
        return tcp_connect(self, deadline)

    monkeypatch.setattr(reconnect, "open_socket", slow_connect)
    with socket.socket() as listener:  # accepts, never answers the handshake
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stream = KalshiStream(f"ws://127.0.0.1:{listener.getsockname()[1]}{WS_PATH}",
                              channels=["trade"], open_timeout=60.0)  # fmt: skip
        # the connect ends after the close: no handshake waits 60 s for its answer
        assert _stop_time(stream, connecting.is_set, closed.set) < 1.0


def test_ws_url_for_rest_base_urls() -> None:
    assert ws_url_for("https://api.elections.kalshi.com/trade-api/v2") == (
        "wss://api.elections.kalshi.com/trade-api/ws/v2"
    )
    assert ws_url_for("http://127.0.0.1:8765/trade-api/v2") == "ws://127.0.0.1:8765/trade-api/ws/v2"
    with pytest.raises(ValueError, match="not an http"):
        ws_url_for("ftp://x/trade-api/v2")


def test_stream_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        KalshiStream("ws://127.0.0.1:1/x", channels=["orderbook"])
    with pytest.raises(ValueError, match="empty"):
        KalshiStream("ws://127.0.0.1:1/x", channels=[])


def test_a_lost_first_snapshot_makes_its_market_stale_too() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    seq.subscribed(2, "orderbook_delta", ["FED-23DEC-T3.00", "CORIVER-2024-T1030"])
    seq.admit(SPEC["orderbook_snapshot"])  # seq 2; CORIVER's snapshot (seq 3) is lost
    verdict = seq.admit(spec("orderbook_delta", seq=4, market_ticker="CORIVER-2024-T1030"))
    assert not verdict.keep
    assert verdict.resnapshot == (2, ("CORIVER-2024-T1030", "FED-23DEC-T3.00"))


def test_an_order_update_repeated_word_for_word_is_dropped() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    assert seq.admit(SPEC["user_order"]).keep
    assert not seq.admit(SPEC["user_order"]).keep
    assert seq.admit(spec("user_order", status="executed", remaining_count_fp="0.00")).keep
    assert seq.admit(SPEC["user_order"]).keep  # back to an earlier state: passed on
    assert (stats.messages, stats.duplicates) == (3, 1)


def test_losses_at_the_start_and_before_an_ok_answer_are_gaps() -> None:
    stats = StreamStats()
    seq = Sequencer(stats)
    seq.subscribed(2, "orderbook_delta", ["FED-23DEC-T3.00"])
    verdict = seq.admit(spec("orderbook_snapshot", seq=2))  # seq 1 lost: the first message
    assert verdict.keep and verdict.resnapshot == (2, ("FED-23DEC-T3.00",))
    assert seq.answered(2, 2) is None  # nothing lost since
    # the answer's seq is the subscription's last number: one above what came is one lost
    # (a delta before an add_markets answer: found by nothing else until the market moves)
    assert seq.answered(2, 3) == (2, ("FED-23DEC-T3.00",))
    ok = SPEC["ok"]  # an ok answer carries the subscription's latest seq (222)
    assert seq.answered(456, ok["seq"]) is None  # an unknown subscription has no markets
    seq.subscribed(5, "orderbook_delta", ["CORIVER-2024-T1030"])
    assert seq.answered(5, 3) == (5, ("CORIVER-2024-T1030",))  # 1..3 sent, none came
    assert stats.gaps == 4


def test_a_quiet_stream_probes_one_market_per_orderbook_subscription_in_turn() -> None:
    seq = Sequencer(StreamStats())
    seq.subscribed(1, "trade", ["A-1"])
    seq.subscribed(2, "orderbook_delta", ["B-1", "A-1"])
    assert [seq.probe(turn) for turn in range(3)] == [
        [(2, ("A-1",))],
        [(2, ("B-1",))],
        [(2, ("A-1",))],
    ]
    assert seq.pending() == []
    seq.admit(spec("orderbook_snapshot", sid=2, seq=1, market_ticker="A-1"))
    seq.admit(spec("orderbook_delta", sid=2, seq=3, market_ticker="A-1"))  # 2 lost
    assert seq.pending() == [(2, ("A-1", "B-1"))]
