"""The transport's retries and errors, over real HTTP to the local server and real sockets.

* Every attempt is signed afresh: Kalshi refuses a KALSHI-ACCESS-TIMESTAMP more than a minute
  from its clock, so a retry that resent the first attempt's headers after an outage of a
  minute or more would fail as unauthenticated. The server's verifier and the signer read one
  fake wall clock that the transport's backoff moves forward, so the test waits for nothing.
* A failed connection says which failure it was (DNS, refused, timed out), names the host and
  never the URL's credentials.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client import (
    ConnectRefusedError,
    HostNotFoundError,
    KalshiAPIError,
    KalshiSigner,
    NotFoundError,
    RequestTimedOutError,
    TransportError,
)
from kalshi_lab.client.transport import Transport
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from kalshi_lab.server.auth import MAX_SKEW_S, SignatureVerifier
from server_support import CUTOFF, KEY_ID, write_handmade_raw


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(tmp_path_factory, private_key) -> Iterator[LocalKalshiServer]:
    dataset = Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))
    config = ServerConfig(
        rate_limit=False, cutoff=CUTOFF, public_key=private_key.public_key(), key_id=KEY_ID
    )
    with LocalKalshiServer(dataset, config) as srv:
        yield srv


class FakeWallClock:
    """Unix time that moves only when the transport backs off, by the time it backs off."""

    def __init__(self) -> None:
        self.start = self.now = time.time()

    def seconds(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)

    @property
    def elapsed(self) -> float:
        return self.now - self.start


@pytest.mark.parametrize(
    "outage",
    [
        FaultConfig(server_error=1.0, path_prefix="/portfolio"),
        FaultConfig(slow=1.0, slow_delay_s=1.0, path_prefix="/portfolio"),  # > timeout_s
    ],
    ids=["5xx", "slow"],
)
def test_a_retry_later_than_kalshis_timestamp_tolerance_is_signed_afresh(
    server, private_key, outage
):
    clock = FakeWallClock()
    server.app.verifier = SignatureVerifier(private_key.public_key(), KEY_ID, clock=clock.seconds)
    server.set_faults(outage)
    waits: list[float] = []

    def back_off(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds
        if clock.elapsed > MAX_SKEW_S:  # the outage outlasts the first attempt's signature
            server.set_faults(FaultConfig())

    transport = Transport(
        server.base_url,
        signer=KalshiSigner(KEY_ID, private_key, clock_ms=clock.ms),
        timeout_s=0.3,
        max_retries=4,
        backoff_factor=40.0,  # urllib3 retries once at once, then waits 80-120 s
        backoff_max_s=120.0,
        sleep=back_off,
    )
    body = transport.get("/portfolio/balance", signed=True).body
    assert "balance" in body
    assert clock.elapsed > MAX_SKEW_S, "the accepted attempt was not past the tolerance"
    assert transport.stats.retries == 2 and transport.stats.requests == 3
    assert len(waits) == 1  # the first retry goes at once


def test_retries_keep_the_policy_5xx_retried_to_max_retries_4xx_never(server):
    server.set_faults(FaultConfig(server_error=1.0, path_prefix="/series"))
    waits: list[float] = []
    transport = Transport(server.base_url, max_retries=3, backoff_factor=0.5, sleep=waits.append)
    with pytest.raises(KalshiAPIError) as failed:
        transport.get("/series/KXTEST")
    assert failed.value.status == 500
    assert transport.stats.requests == 4 and transport.stats.retries == 3
    # urllib3's backoff with jitter: at once, then factor x 2^(n-1) plus up to factor
    assert len(waits) == 2 and 1.0 <= waits[0] <= 1.5 and 2.0 <= waits[1] <= 2.5
    server.set_faults(FaultConfig())
    with pytest.raises(NotFoundError):
        transport.get("/series/KXNOPE")
    assert transport.stats.requests == 5 and transport.stats.retries == 3


# --- which network failure it was ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose listen queue is full: a new connection gets no answer at all (Linux drops
    the SYN), as a host behind a black-holing firewall."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    queued = []
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        queued.append(client)
    time.sleep(0.05)
    yield port
    for s in (*queued, listener):
        s.close()


def _fails(base_url: str, **kw) -> TransportError:
    transport = Transport(base_url, backoff_factor=0.0, **kw)
    with pytest.raises(TransportError) as failed:
        transport.get("/markets")
    return failed.value


def test_a_host_that_does_not_resolve_is_named_as_a_dns_failure():
    error = _fails("https://kalshi-lab-no-such-host.invalid/trade-api/v2", max_retries=1)
    assert type(error) is HostNotFoundError
    assert "kalshi-lab-no-such-host.invalid" in str(error) and "DNS" in str(error)
    assert "after 1 retry" in str(error)


def test_a_refused_connection_is_named_as_refused_without_the_urls_credentials():
    port = _free_port()
    error = _fails(f"http://trader:s3cret-pw@127.0.0.1:{port}/trade-api/v2", max_retries=2)
    assert type(error) is ConnectRefusedError
    assert f"127.0.0.1:{port} refused the connection" in str(error)
    assert error.host == f"127.0.0.1:{port}"
    assert "s3cret" not in str(error) and "trader" not in str(error)


def test_no_connection_within_the_timeout_is_a_connect_timeout(unaccepting_port):
    error = _fails(
        f"http://127.0.0.1:{unaccepting_port}/trade-api/v2", timeout_s=0.2, max_retries=0
    )
    assert type(error) is RequestTimedOutError
    assert f"no connection to 127.0.0.1:{unaccepting_port} within 0.2 s" in str(error)


def test_no_answer_within_the_timeout_is_a_read_timeout(server):
    server.set_faults(FaultConfig(slow=1.0, slow_delay_s=1.0))
    error = _fails(server.base_url, timeout_s=0.2, max_retries=1)
    assert type(error) is RequestTimedOutError
    assert f"127.0.0.1:{server.port} sent no answer within 0.2 s" in str(error)


def test_a_connection_reset_is_a_transport_error_naming_the_host(server):
    server.set_faults(FaultConfig(reset=1.0))
    error = _fails(server.base_url, max_retries=1)
    assert type(error) is TransportError
    assert f"connection to 127.0.0.1:{server.port} was lost" in str(error)
