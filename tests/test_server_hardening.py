"""What no client can do to the local server: crash an answer with malformed input (each is a
400 with Kalshi's error JSON), hold its threads with idle or trickling connections, or starve
a signed client with an unsigned flood."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from kalshi_lab.server.auth import KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureVerifier
from kalshi_lab.server.books import BookStore
from kalshi_lab.server.clock import ServerClock
from kalshi_lab.server.errors import ApiError
from kalshi_lab.server.orders import parse_order_request
from kalshi_lab.server.portfolio import Portfolio
from kalshi_lab.server.query import Query
from server_support import CUTOFF, HALF_C, KEY_ID, NOW, OPEN_A, KalshiAuth, write_handmade_raw

ERROR_KEYS = {"code", "message", "details", "service"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def config(key: rsa.RSAPrivateKey | None = None, **kw: Any) -> ServerConfig:
    keys = {} if key is None else {"public_key": key.public_key(), "key_id": KEY_ID}
    return ServerConfig(cutoff=CUTOFF, **{"rate_limit": False, **keys, **kw})


@pytest.fixture
def srv(handmade, private_key) -> Iterator[LocalKalshiServer]:
    with LocalKalshiServer(handmade, config(private_key)) as server:
        yield server


def session(key: rsa.RSAPrivateKey) -> requests.Session:
    s = requests.Session()
    s.auth = KalshiAuth(KalshiSigner(KEY_ID, key))
    return s


def exchange(srv: LocalKalshiServer, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send raw bytes on a fresh connection; (status, JSON body) of the answer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    return int(head.split()[1]), orjson.loads(body)


def request(method: str, path: str, headers: dict[str, bytes], body: bytes = b"") -> bytes:
    lines = [f"{method} /trade-api/v2{path} HTTP/1.1".encode(), b"Host: x", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --- malformed input: 400, never 500 or silence ------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [b"1" * 5000, "١٧٣٥٦٨٩٦٠٠٠٠٠".encode(), b"\xb2\xb3", b"yesterday", b"-1"],
    ids=["5000-digits", "arabic-digits", "latin1-superscripts", "words", "negative"],
)
def test_a_malformed_timestamp_is_a_400_naming_the_header(srv, private_key, stamp):
    good = KalshiSigner(KEY_ID, private_key).headers("GET", "/trade-api/v2/portfolio/balance")
    headers = {k: v.encode() for k, v in good.items()}
    status, body = exchange(
        srv, request("GET", "/portfolio/balance", {**headers, TIMESTAMP_HEADER: stamp})
    )
    assert (status, body.keys()) == (400, ERROR_KEYS)
    assert TIMESTAMP_HEADER in body["message"]


@pytest.mark.parametrize(
    "lengths",
    [[b"abc"], [b"\xb2"], [b"-1"], [b"1" * 5000], [b"2", b"3"], [str(2 << 20).encode()]],
    ids=["letters", "superscript", "negative", "5000-digits", "two-values", "too-large"],
)
def test_a_malformed_content_length_is_a_400(srv, lengths):
    lines = [b"POST /trade-api/v2/portfolio/orders HTTP/1.1", b"Host: x"]
    lines += [b"Content-Length: " + value for value in lengths]
    status, body = exchange(srv, b"\r\n".join(lines) + b"\r\n\r\n{}")
    assert (status, body.keys()) == (400, ERROR_KEYS)
    assert "Content-Length" in body["message"]


def test_malformed_numbers_and_requests_are_400s(srv, private_key):
    s = session(private_key)
    base = {"ticker": OPEN_A, "side": "yes", "action": "buy", "count": 1}
    for change, word in (
        ({"yes_price_dollars": "0.5e99999999"}, "between 0 and 1"),
        ({"yes_price_dollars": "1e-999999999"}, "decimals"),
        ({"yes_price_dollars": "0.50", "expiration_ts": 2**62}, "expiration_ts"),
        ({"yes_price_dollars": "0.50", "count": None, "count_fp": "１２"}, "count_fp"),
        ({"yes_price_dollars": "0.50", "count": 10**12}, "count"),
    ):
        body = {k: v for k, v in {**base, **change}.items() if v is not None}
        r = s.post(srv.base_url + "/portfolio/orders", json=body)
        assert (r.status_code, r.json().keys()) == (400, ERROR_KEYS), (change, r.text)
        assert word in r.json()["message"]
    r = requests.get(srv.base_url + "/markets", params={"limit": "9" * 5000})
    assert r.status_code == 400 and len(r.text) < 300  # the value is not echoed whole
    assert (
        requests.get(srv.base_url + "/markets", params={"min_close_ts": "--5"}).status_code == 400
    )
    for raw, status in (
        (b"GET /trade-api/v2/markets HTTP/1.1 extra\r\n\r\n", 400),  # a garbled request line
        (b"GET /trade-api/v2/markets HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (request("PATCH", "/markets", {}), 501),
    ):
        answer = exchange(srv, raw)
        assert (answer[0], answer[1].keys()) == (status, ERROR_KEYS)
    assert srv.stats.statuses.get(500, 0) == 0


# --- fuzzing the request parsing ---------------------------------------------------------------

ORDER_FIELDS = (
    "ticker", "side", "action", "count", "count_fp", "yes_price", "no_price", "yes_price_dollars",
    "no_price_dollars", "client_order_id", "time_in_force", "expiration_ts", "buy_max_cost",
    "post_only", "reduce_only", "sell_position_floor", "self_trade_prevention_type", "subaccount",
)  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "0.5e99999999",
            "1e-99999",
            "NaN",
            "Infinity",
            "-0",
            "0.4700",
            "0.475",
            "0.000001",
            "2.50",
            "١٢",
            "10.00",
            "10.001",
            "yes",
            "no",
            "buy",
            "sell",
            OPEN_A,
            HALF_C,
            "good_till_canceled",
            "immediate_or_cancel",
            "fill_or_kill",
        ]
    ),  # fmt: skip
)
VALID = {"ticker": OPEN_A, "side": "yes", "action": "buy", "count": 2, "yes_price_dollars": "0.50"}


@pytest.fixture(scope="module")
def fuzz_account(handmade) -> Portfolio:
    # one account for all examples: orders pile up, which only makes the states more varied
    return Portfolio(handmade, BookStore(handmade.books), ServerClock(int(NOW.timestamp())), 10**6)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(ORDER_FIELDS), VALUES, max_size=6),
    start=st.sampled_from([{}, VALID]),
)
def test_any_order_body_is_an_order_or_a_4xx(fuzz_account, changes, start):
    """Parsing, the market's rules and the account: an ApiError of 400/404/409, or an Order
    document that serialises (nothing raised on the way is anything else)."""
    body = orjson.dumps({**start, **changes})
    try:
        doc = fuzz_account.create_order(parse_order_request(body))
    except ApiError as error:
        assert error.status in (400, 404, 409), error
        return
    orjson.dumps(doc)
    assert Decimal(doc["fill_count_fp"]) + Decimal(doc["remaining_count_fp"]) <= Decimal(
        doc["initial_count_fp"]
    )


@FUZZ
@given(raw=st.binary(max_size=64))
def test_any_body_bytes_parse_or_are_a_400(raw):
    try:
        parse_order_request(raw)
    except ApiError as error:
        assert error.status == 400


@FUZZ
@given(
    key=st.one_of(st.just(KEY_ID), st.text(max_size=8)),
    stamp=st.one_of(st.text(max_size=20), st.from_regex(r"[0-9]{1,30}", fullmatch=True)),
    signature=st.text(max_size=40),
)
def test_any_signature_headers_are_accepted_or_a_400_or_401(private_key, key, stamp, signature):
    verifier = SignatureVerifier(private_key.public_key(), KEY_ID)
    headers = {KEY_HEADER: key, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}
    with pytest.raises(ApiError) as refused:
        verifier.verify("GET", "/trade-api/v2/portfolio/balance", headers)
    assert refused.value.status in (400, 401)


@FUZZ
@given(value=st.text(max_size=30))
def test_any_query_value_parses_or_is_a_400(value):
    q = Query({name: [value] for name in ("limit", "n", "flag", "names")})
    for read in (
        lambda: q.limit(100, 1000),
        lambda: q.integer("n", minimum=0),
        lambda: q.boolean("flag"),
        lambda: q.names("names", most=10),
    ):
        try:
            read()
        except ApiError as error:
            assert error.status == 400


# --- connections: bounded threads, read timeouts -----------------------------------------------


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """The server closed ``sock`` (EOF or reset) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_cannot_hold_threads(handmade):
    with LocalKalshiServer(handmade, config(max_connections=8, read_timeout_s=30)) as srv:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(400)]
        for sock in idle[::2]:  # half of them are half-way through a request line
            sock.sendall(b"GET /trade-api/v2/mar")
        # the server admits the flood from its listen backlog one connection at a time, each
        # closing the longest-idle one: all but the 8 newest, oldest first. Until it has taken
        # them all in, a new client queues behind them in the backlog (under load that took
        # longer than the 1 s bound below, which is about a client finding room, not the flood)
        assert all(closed_by_server(sock, 5.0) for sock in idle[:-8])
        # an evicted connection's thread ends once it reads the EOF its eviction caused: on a
        # loaded machine a few may still be ending when the last connection is admitted
        deadline = time.monotonic() + 5.0
        while threading.active_count() - before > 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() - before <= 8
        assert srv.open_connections <= 8
        # a client still gets in (and out) at once: the longest-idle connection made room
        began = time.monotonic()
        assert requests.get(srv.base_url + "/exchange/status", timeout=5).status_code == 200
        assert time.monotonic() - began < 1.0
        assert sum(closed_by_server(sock, 0.01) for sock in idle) >= len(idle) - 8
        for sock in idle:
            sock.close()


def test_a_connection_that_sends_nothing_or_trickles_is_closed_after_the_read_timeout(handmade):
    with LocalKalshiServer(handmade, config(read_timeout_s=0.3)) as srv:
        idle = socket.create_connection(("127.0.0.1", srv.port))
        trickle = socket.create_connection(("127.0.0.1", srv.port))
        trickle.sendall(request("POST", "/portfolio/orders", {"Content-Length": b"100"}, b"{"))
        stop = threading.Event()

        def drip() -> None:  # a byte every 0.1 s: each read is quick, the body never whole
            while not stop.wait(0.1):
                try:
                    trickle.sendall(b" ")
                except OSError:
                    return

        dripper = threading.Thread(target=drip)
        dripper.start()
        began = time.monotonic()
        assert closed_by_server(idle, 3.0)
        trickle.settimeout(3.0)
        answer = b""  # the body never came whole within the timeout: a 408, then closed
        while chunk := trickle.recv(4096):  # headers and body may come in separate packets
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer
        assert time.monotonic() - began < 1.5
        stop.set()
        dripper.join()
        idle.close()
        trickle.close()


def test_when_every_connection_is_busy_a_new_one_is_answered_503(handmade):
    slow = FaultConfig(slow=1.0, slow_delay_s=0.8, path_prefix="/series")
    with LocalKalshiServer(handmade, config(max_connections=2, faults=slow)) as srv:
        busy = [
            threading.Thread(target=requests.get, args=(srv.base_url + "/series",))
            for _ in range(2)
        ]
        for t in busy:
            t.start()
        time.sleep(0.3)
        r = requests.get(srv.base_url + "/exchange/status", timeout=5)
        assert (r.status_code, r.json()["code"]) == (503, "service_unavailable")
        for t in busy:
            t.join()
        assert requests.get(srv.base_url + "/exchange/status").status_code == 200


# --- rate limits per key ------------------------------------------------------------------------


def test_an_unsigned_flood_cannot_starve_a_signed_client(handmade, private_key):
    limited = config(private_key, rate_limit=True, reads_per_s=60, writes_per_s=10)
    with LocalKalshiServer(handmade, limited) as srv:
        stop = threading.Event()
        flooded: list[Counter[int]] = [Counter() for _ in range(3)]

        def flood(codes: Counter[int]) -> None:
            with requests.Session() as s:
                while not stop.is_set():
                    codes[s.get(srv.base_url + "/markets", params={"limit": 1}).status_code] += 1

        threads = [threading.Thread(target=flood, args=(c,)) for c in flooded]
        for t in threads:
            t.start()
        time.sleep(0.2)  # the unsigned budget is spent
        signed = session(private_key)
        codes = []
        for _ in range(40):  # at most ~50 a second: within the key's 60
            codes.append(signed.get(srv.base_url + "/portfolio/balance").status_code)
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join()
    assert codes == [200] * 40
    flood_codes = sum(flooded, Counter())
    assert flood_codes[429] > flood_codes[200] > 0  # the flood ran into its own limit
