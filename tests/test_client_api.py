"""KalshiClient against the local Kalshi-compatible server, over real HTTP.

What a user relies on: an order is placed once however the network fails; a credential never
shows up in a log line or an error; unknown things are named; the API's limits (5,000 candles
a request, cursor pages) are handled; the historical split is invisible.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client import (
    ApiResponse,
    AuthError,
    CredentialsError,
    KalshiClient,
    KalshiSigner,
    NotFoundError,
    PaginationError,
    TransportError,
    candle_windows,
)
from kalshi_lab.client.client import MAX_CANDLES
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from server_support import CLOSED_B, CUTOFF, KEY_ID, OPEN_A, write_handmade_raw


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(handmade, private_key):
    config = ServerConfig(
        rate_limit=False, cutoff=CUTOFF, public_key=private_key.public_key(), key_id=KEY_ID
    )
    with LocalKalshiServer(handmade, config) as srv:
        yield srv


def signed_client(srv: LocalKalshiServer, key: rsa.RSAPrivateKey, **kw) -> KalshiClient:
    kw.setdefault("timeout_s", 1.0)
    return KalshiClient(
        srv.base_url, signer=KalshiSigner(KEY_ID, key), backoff_factor=0.01, reads_per_s=500, **kw
    )


def test_an_order_is_placed_once_when_the_answer_comes_too_late(server, private_key):
    # every portfolio answer comes after the client's timeout: the first attempt is placed
    # but unanswered, the retry (same client_order_id) gets 409, the client reads it back
    server.set_faults(FaultConfig(slow=1.0, slow_delay_s=1.5, path_prefix="/portfolio/orders"))
    client = signed_client(server, private_key, timeout_s=0.5, max_retries=2)
    with pytest.raises(TransportError, match="timed out"):
        client.create_order(
            OPEN_A, "yes", "buy", 3, yes_price=Decimal("0.60"), client_order_id="x1"
        )
    server.set_faults(FaultConfig())
    order = client.create_order(
        OPEN_A, "yes", "buy", 3, yes_price=Decimal("0.60"), client_order_id="x1"
    )
    placed = [o for o in client.get_orders(ticker=OPEN_A) if o.client_order_id == "x1"]
    assert len(placed) == 1, "a retried create-order placed a second order"
    assert order.order_id == placed[0].order_id
    assert order.fill_count == 3  # it took the NO bid at 0.47 (ask 0.47 <= limit 0.60)


def test_an_order_survives_a_reset_connection_and_is_placed_once(server, private_key):
    server.set_faults(FaultConfig(reset=0.5, seed=1, path_prefix="/portfolio"))
    client = signed_client(server, private_key)
    for i in range(6):
        client.create_order(
            OPEN_A, "no", "buy", 1, no_price=Decimal("0.80"), client_order_id=f"r{i}"
        )
    assert server.stats.faults.get("reset", 0) > 0
    server.set_faults(FaultConfig())
    ids = [o.client_order_id for o in client.get_orders(ticker=OPEN_A)]
    assert sorted(ids) == [f"r{i}" for i in range(6)]


def test_portfolio_reads_are_typed(server, private_key):
    client = signed_client(server, private_key)
    before = client.get_balance().balance
    order = client.create_order(OPEN_A, "yes", "buy", 2, yes_price=Decimal("0.47"))
    assert order.status == "executed" and order.fill_count == 2
    (position,) = client.get_positions(ticker=OPEN_A)
    assert position.position == 2
    fills = client.get_fills(ticker=OPEN_A)
    assert sum(f.count for f in fills) == 2
    cost = sum(f.count * f.yes_price for f in fills) + sum(f.fee_cost for f in fills)
    assert client.get_balance().balance == before - int(cost * 100)
    resting = client.create_order(OPEN_A, "yes", "buy", 1, yes_price=Decimal("0.10"))
    assert resting.status == "resting"
    assert client.cancel_order(resting.order_id).status == "canceled"


def test_no_secret_appears_in_logs_or_errors(server, private_key, caplog, tmp_path, monkeypatch):
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key_file = tmp_path / "kalshi.pem"
    key_file.write_bytes(pem)
    monkeypatch.setenv("KALSHI_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(key_file))
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request at DEBUG
    seen: list[str] = []
    client = KalshiClient(server.base_url, backoff_factor=0.01, max_retries=1)  # key from env
    client.get_balance()
    client.create_order(OPEN_A, "yes", "buy", 1, yes_price=Decimal("0.47"))
    seen.append(repr(client.transport.signer))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthError) as refused:  # a key the exchange does not know
        KalshiClient(server.base_url, signer=KalshiSigner(KEY_ID, other)).get_balance()
    seen.append(str(refused.value))
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH")
    with pytest.raises(CredentialsError) as missing:
        KalshiClient(server.base_url).get_positions()
    seen.append(str(missing.value))
    assert "KALSHI_PRIVATE_KEY_PATH" in str(missing.value)
    text = caplog.text + "\n".join(seen)
    assert "/portfolio/balance" in caplog.text  # the log did capture the signed requests
    assert KEY_ID not in text
    body = pem.decode().splitlines()[1:-1]
    assert not any(line in text for line in body)


def test_an_unsigned_portfolio_call_is_refused_by_the_exchange_and_says_what_is_missing(server):
    client = KalshiClient(server.base_url)
    with pytest.raises(AuthError, match="KALSHI-ACCESS"):
        client.transport.get("/portfolio/balance")


def test_unknown_series_and_tickers_are_named(server):
    client = KalshiClient(server.base_url, backoff_factor=0.01)
    with pytest.raises(NotFoundError, match="series KXNOPE"):
        client.get_series_information("KXNOPE")
    with pytest.raises(NotFoundError, match="market KXNOPE-1"):
        client.get_market("KXNOPE-1")


def test_archived_and_live_markets_read_alike(server):
    client = KalshiClient(server.base_url)
    assert client.get_market(CLOSED_B).ticker == CLOSED_B  # archived: /historical/markets/{t}
    tickers = {m.ticker for m in client.get_markets(series_ticker="KXTEST")}
    assert {OPEN_A, CLOSED_B} <= tickers
    frame = client.get_markets_data("KXTEST")
    assert set(frame["ticker"]) == tickers and frame["yes_bid"].dtype == "float64"


def test_long_candle_ranges_are_split_to_the_api_cap(server):
    client = KalshiClient(server.base_url)
    start = 1735689600  # 2025-01-01
    end = start + 12 * 86400  # 17,280 one-minute candles: the server refuses more than 5,000
    pages = list(client.candlestick_responses("KXTEST", OPEN_A, start, end, 1))
    assert len(pages) == 4
    windows = [(p.params["start_ts"], p.params["end_ts"]) for p in pages]
    assert windows == candle_windows(start, end, 1)


@pytest.mark.parametrize("period", [1, 60, 1440])
def test_candle_windows_cover_the_range_once_within_the_cap(period):
    start, end = 1_700_000_000, 1_700_000_000 + 40_000 * period * 60 + 17
    windows = candle_windows(start, end, period)
    assert windows[0][0] == start and windows[-1][1] == end
    for (_, b), (a, _) in zip(windows, windows[1:], strict=False):
        assert a == b + 1
    step = period * 60
    for a, b in windows:
        assert b // step - -(-a // step) + 1 <= MAX_CANDLES  # period ends inside [a, b]


def test_a_repeated_cursor_stops_with_an_error(monkeypatch):
    client = KalshiClient("http://127.0.0.1:9/trade-api/v2")
    pages = iter(["a", "b", "a"])

    def fake_get(path, params=None, **kw):
        import datetime as dt

        body = {"markets": [], "cursor": next(pages)}
        return ApiResponse("GET", path, dict(params or {}), dt.datetime.now(dt.UTC), 200, body)

    monkeypatch.setattr(client.transport, "get", fake_get)
    with pytest.raises(PaginationError, match="repeated cursor"):
        list(client.transport.pages("/markets", {}))


def test_the_rate_limit_paces_concurrent_workers(handmade, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    config = ServerConfig(rate_limit=True, reads_per_s=40, cutoff=CUTOFF)
    with LocalKalshiServer(handmade, config) as srv:
        client = KalshiClient(srv.base_url, reads_per_s=40, concurrency=4, backoff_factor=0.05)
        import time

        began = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: client.get_series_information("KXTEST"), range(60)))
        elapsed = time.perf_counter() - began
        assert elapsed >= 59 / 40 * 0.95  # never faster than the limit
        assert srv.stats.rate_limited <= 2  # and the server hardly ever had to refuse


def test_retry_after_is_honoured_when_a_server_sends_it():
    """Kalshi usually sends no Retry-After; when a server does, the client waits that long."""
    import http.server
    import threading
    import time

    answers = iter([(429, {"Retry-After": "1"}, b'{"error": "too many requests"}'),
                    (200, {}, b'{"series": {"ticker": "KXA"}}')])  # fmt: skip

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            status, headers, body = next(answers)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = KalshiClient(
            f"http://127.0.0.1:{httpd.server_address[1]}/trade-api/v2", backoff_factor=0.01
        )
        began = time.perf_counter()
        assert client.get_series_information("KXA").ticker == "KXA"
        assert time.perf_counter() - began >= 1.0
        assert client.transport.stats.retries == 1 and client.transport.stats.throttled == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": "not_found", "message": "market not found"}',
        b'{"error": {"code": "not_found", "message": "market not found", "service": "exchange"}}',
    ],
    ids=["flat", "wrapped"],
)
def test_error_bodies_are_read_flat_or_wrapped(body):
    from kalshi_lab.client.transport import _api_error

    error = _api_error("GET /trade-api/v2/markets/X", 404, body, signed=False)
    assert isinstance(error, NotFoundError)
    assert error.code == "not_found" and error.api_message == "market not found"
