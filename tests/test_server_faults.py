"""Rate limiting and fault injection, seen by plain clients (``requests`` and raw sockets), and
the guarantee that faults never corrupt the server's state."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from server_support import CUTOFF, KEY_ID, OPEN_A, KalshiAuth, write_handmade_raw

TOO_MANY = {"error": "too many requests"}


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(handmade, private_key) -> Iterator[LocalKalshiServer]:
    config = ServerConfig(
        rate_limit=False, cutoff=CUTOFF, public_key=private_key.public_key(), key_id=KEY_ID
    )
    with LocalKalshiServer(handmade, config) as srv:
        yield srv


def raw_get(srv: LocalKalshiServer, path: str) -> tuple[bytes, bytes]:
    """(headers, body) of one GET read to EOF from a raw socket (Connection: close)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(
            f"GET /trade-api/v2{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


# --- rate limit --------------------------------------------------------------------------------


def test_reads_over_the_budget_get_429_without_retry_after_and_writes_have_their_own(handmade):
    config = ServerConfig(cutoff=CUTOFF, reads_per_s=5, writes_per_s=2)
    with LocalKalshiServer(handmade, config) as srv, requests.Session() as s:
        answers = [s.get(srv.base_url + "/markets", params={"limit": 1}) for _ in range(40)]
        codes = Counter(r.status_code for r in answers)
        assert set(codes) == {200, 429}
        assert 5 <= codes[200] <= 8  # the 1 s burst, plus what refills during the loop
        throttled = [r for r in answers if r.status_code == 429]
        assert all(r.json() == TOO_MANY and "Retry-After" not in r.headers for r in throttled)
        assert srv.stats.rate_limited == codes[429]
        # the write bucket is untouched by reads: an (unsigned) order is refused by auth, not 429
        assert s.post(srv.base_url + "/portfolio/orders", json={}).status_code == 401
        writes = [s.post(srv.base_url + "/portfolio/orders", json={}).status_code for _ in range(5)]
        assert writes.count(429) >= 3
        time.sleep(0.45)  # two read tokens come back
        assert s.get(srv.base_url + "/exchange/status").status_code == 200


def test_without_rate_limiting_everything_is_answered(server):
    with requests.Session() as s:
        assert {s.get(server.base_url + "/exchange/status").status_code for _ in range(60)} == {200}
    assert server.stats.rate_limited == 0
    assert server.stats.requests["exchange_status"] == 60


# --- each fault, as a plain client sees it -----------------------------------------------------


def only(fault: str, **extra: object) -> FaultConfig:
    return FaultConfig(**{fault: 1.0}, path_prefix="/markets", **extra)


def test_injected_429_500_and_502(server):
    url = server.base_url + "/markets"
    server.set_faults(only("rate_limited"))
    r = requests.get(url)
    assert (r.status_code, r.json()) == (429, TOO_MANY) and "Retry-After" not in r.headers
    server.set_faults(only("server_error"))
    r = requests.get(url)
    assert r.status_code == 500 and r.json()["code"] == "internal_server_error"
    server.set_faults(only("bad_gateway"))
    r = requests.get(url)
    assert r.status_code == 502 and r.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in r.text
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()
    # other paths are not faulted
    assert requests.get(server.base_url + "/series").status_code == 200
    assert server.stats.faults == {"rate_limited": 1, "server_error": 1, "bad_gateway": 1}
    assert server.stats.rate_limited == 0  # injected 429s are faults, not the limiter's


def test_a_slow_answer_outlasts_the_client_timeout(server):
    server.set_faults(only("slow", slow_delay_s=0.8))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.base_url + "/markets", timeout=0.3)
    began = time.monotonic()
    r = requests.get(server.base_url + "/markets", timeout=5)
    assert r.status_code == 200 and r.json()["markets"]
    assert time.monotonic() - began >= 0.8


def test_a_truncated_answer_has_the_full_content_length_and_half_the_body(server):
    whole = requests.get(server.base_url + "/markets").content
    server.set_faults(only("truncated"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.base_url + "/markets")
    head, body = raw_get(server, "/markets")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(whole)}".encode() in head
    assert 0 < len(body) < len(whole) and whole.startswith(body)


def test_a_reset_connection_answers_nothing(server):
    server.set_faults(only("reset"))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.base_url + "/markets")
    with pytest.raises(ConnectionResetError):
        raw_get(server, "/markets")
    assert server.stats.faults == {"reset": 2}


def test_fault_draws_are_seeded(handmade):
    def codes(seed: int) -> list[int]:
        faults = FaultConfig(server_error=0.3, bad_gateway=0.3, seed=seed)
        with LocalKalshiServer(handmade, ServerConfig(rate_limit=False, faults=faults)) as srv:
            return [requests.get(srv.base_url + "/series").status_code for _ in range(30)]

    first = codes(7)
    assert first == codes(7)
    assert set(first) == {200, 500, 502}
    assert first != codes(8)


# --- faults and state --------------------------------------------------------------------------

ORDER = {
    "ticker": OPEN_A,
    "side": "yes",
    "action": "buy",
    "count": 3,
    "yes_price_dollars": "0.4800",
}


@pytest.mark.parametrize(
    "fault", ["rate_limited", "server_error", "bad_gateway", "truncated", "reset"]
)
def test_a_faulted_order_is_not_applied(server, private_key, fault):
    session = requests.Session()
    session.auth = KalshiAuth(KalshiSigner(KEY_ID, private_key))
    book = session.get(f"{server.base_url}/markets/{OPEN_A}/orderbook").json()
    server.set_faults(FaultConfig(**{fault: 1.0}, path_prefix="/portfolio/orders"))
    try:
        r = session.post(
            server.base_url + "/portfolio/orders", json={**ORDER, "client_order_id": "k"}
        )
        assert r.status_code >= 400
    except requests.exceptions.RequestException:
        pass  # truncated and reset answers cannot be read: that is the point
    server.set_faults(FaultConfig())
    assert server.stats.faults == {fault: 1}
    assert server.portfolio.order_docs() == []
    assert server.portfolio.cash_cents == server.config.starting_balance_cents
    assert session.get(f"{server.base_url}/markets/{OPEN_A}/orderbook").json() == book
    # the retry with the same key goes through once
    assert (
        session.post(
            server.base_url + "/portfolio/orders", json={**ORDER, "client_order_id": "k"}
        ).status_code
        == 201
    )


def test_a_slow_order_is_applied_and_its_idempotent_retry_is_a_409(server, private_key):
    session = requests.Session()
    session.auth = KalshiAuth(KalshiSigner(KEY_ID, private_key))
    server.set_faults(FaultConfig(slow=1.0, slow_delay_s=0.8, path_prefix="/portfolio/orders"))
    body = {**ORDER, "client_order_id": "retry-me"}
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.post(server.base_url + "/portfolio/orders", json=body, timeout=0.3)
    server.set_faults(FaultConfig())
    retry = session.post(server.base_url + "/portfolio/orders", json=body)
    assert retry.status_code == 409 and retry.json()["code"] == "order_already_exists"
    orders = session.get(server.base_url + "/portfolio/orders").json()["orders"]
    assert [(o["client_order_id"], o["fill_count_fp"]) for o in orders] == [("retry-me", "3.00")]
    book = session.get(f"{server.base_url}/markets/{OPEN_A}/orderbook").json()["orderbook_fp"]
    assert book["no_dollars"][-1] == ["0.5300", "1.00"]  # 3 of the 4 at the best level, taken once
