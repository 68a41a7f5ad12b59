"""The bot's books from the WebSocket stream: LiveKalshiExchange quotes from the StreamFeed
while it vouches for a book, from REST otherwise, and the quotes are the same either way, also
under dropped connections, gaps and duplicates, and after the stream goes away."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.bot.cli import main
from kalshi_lab.bot.stream_feed import StreamFeed
from kalshi_lab.client import KalshiClient, KalshiSigner
from kalshi_lab.execution.live import LiveKalshiExchange
from kalshi_lab.server import Dataset, FaultConfig, LocalKalshiServer, ServerConfig
from server_support import KEY_ID, write_simulated_raw
from ws_support import no_wait, open_markets, wait_until

START = dt.datetime(2025, 1, 8, tzinfo=dt.UTC)
STEP_S = 6 * 3600


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_simulated_raw(tmp_path_factory.mktemp("sim") / "raw"))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def client_of(srv: LocalKalshiServer, key: rsa.RSAPrivateKey) -> KalshiClient:
    return KalshiClient(srv.base_url, signer=KalshiSigner(KEY_ID, key), reads_per_s=1000,
                        writes_per_s=1000, timeout_s=5.0)  # fmt: skip


def test_quotes_come_from_the_stream_when_it_is_up_and_equal_the_rest_ones(simulated, key) -> None:
    faults = FaultConfig(stream_drop=0.01, stream_gap=0.03, stream_duplicate=0.05, seed=3)
    config = ServerConfig(rate_limit=False, now=START, public_key=key.public_key(), key_id=KEY_ID,
                          faults=faults)  # fmt: skip
    with LocalKalshiServer(simulated, config) as srv:
        tickers = open_markets(srv)
        client = client_of(srv, key)
        feed = StreamFeed(srv.ws_url, KalshiSigner(KEY_ID, key), reconnect_delays=no_wait)
        streamed = LiveKalshiExchange(client, book_source=feed.start())
        plain = LiveKalshiExchange(client)
        try:
            for _ in range(5):
                ts = pd.Timestamp(srv.now, unit="s", tz="UTC")
                streamed.quotes(tickers, ts)  # the first look subscribes the markets
                assert wait_until(lambda: all(feed.book(t) is not None for t in tickers))
                # the stream catches up with the moved clock: then both sources agree
                assert wait_until(
                    lambda at=ts: streamed.quotes(tickers, at).equals(plain.quotes(tickers, at))
                )
                srv.advance(STEP_S)
            reads = streamed.book_reads.copy()  # a Counter: 0 for a source never read
            assert reads["stream"] >= 4 * len(tickers)
            srv.stream.stop()  # the stream goes away: REST at once, same quotes
            assert wait_until(lambda: not feed.up)
            ts = pd.Timestamp(srv.now, unit="s", tz="UTC")
            pd.testing.assert_frame_equal(streamed.quotes(tickers, ts), plain.quotes(tickers, ts))
            assert streamed.book_reads["rest"] == reads["rest"] + len(tickers)
        finally:
            feed.close()
    stats = feed.stream.stats
    assert stats.reconnects > 0 and stats.gaps > 0 and stats.duplicates > 0


def test_stream_url_is_checked_before_anything_starts(capsys) -> None:
    assert main(["--mode", "paper", "--stream-url", "http://x/trade-api/ws/v2", "--once"]) == 2
    err = capsys.readouterr().err
    assert "--stream-url must be a ws:// or wss:// URL" in err
    assert main(["--mode", "backtest", "--stream-url", "auto"]) == 2
    assert "--stream-url" in capsys.readouterr().err


class _Connection:
    """What StreamFeed reads of its KalshiStream: a connection that is up, a reconnect count."""

    def __init__(self) -> None:
        self.connected = True
        self.stats = type("Stats", (), {"reconnects": 0})()

    def stale_markets(self) -> frozenset[str]:
        return frozenset()


def _yes_bids(book) -> list[tuple[float, float]]:
    return [(float(p), float(c)) for p, c in book.yes]


def test_a_book_is_not_vouched_for_after_a_reconnect_until_its_snapshot_comes_again() -> None:
    """Kalshi does not replay what a dropped connection missed: a book kept across a
    reconnect may lack deltas, so even deltas on the new connection do not make it sound;
    only the market's next snapshot does."""
    feed = StreamFeed("ws://127.0.0.1:9/trade-api/ws/v2", None)
    feed.stream = connection = _Connection()  # type: ignore[assignment]
    ticker = "KXS-25MAR-A"

    def snapshot(count: str) -> dict:
        msg = {"market_ticker": ticker, "yes_dollars_fp": [["0.4000", count]]}
        return {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": msg}

    delta = {"type": "orderbook_delta", "sid": 1, "seq": 2,
             "msg": {"market_ticker": ticker, "price_dollars": "0.4000", "delta_fp": "2.00",
                     "side": "yes"}}  # fmt: skip
    feed._take(snapshot("10.00"))
    assert _yes_bids(feed.book(ticker)) == [(0.4, 10.0)]
    connection.stats.reconnects = 1  # dropped and connected again: deltas may have been lost
    assert feed.book(ticker) is None
    feed._take(delta)  # on the new connection, but applied to the old connection's book
    assert feed.book(ticker) is None
    feed._take(snapshot("15.00"))
    assert _yes_bids(feed.book(ticker)) == [(0.4, 15.0)]
    feed._take(delta)
    assert _yes_bids(feed.book(ticker)) == [(0.4, 17.0)]
    connection.connected = False  # down: REST answers
    assert feed.book(ticker) is None
