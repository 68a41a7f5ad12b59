"""Fetching while markets are still open: books of open markets, and what is final or not.

A simulated dataset is cut at NOW as if it had been recorded then: markets still open are
active and unresolved, nothing after NOW exists. Served with the server's clock at NOW and
fetched with the fetch's clock at NOW, the books of the open markets are recorded, stamped with
the request time, everything else equals the served data; a later fetch asks again only for
what could have changed (open markets' current windows, books, the listing), never for the
settled markets.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from fetch_support import kalshi_params
from kalshi_lab.client import KalshiClient
from kalshi_lab.client.records import Market
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import KINDS, RawWriter, iter_records, raw_partitions
from kalshi_lab.fetch.kalshi import fetch_kalshi
from kalshi_lab.fetch.plan import candle_windows, in_range, is_open_at, trade_windows
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw

NOW = dt.datetime(2025, 1, 12, 7, 30, tzinfo=dt.UTC)
CUTOFF = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def recorded_at(full: Path, out: Path, now: dt.datetime) -> Path:
    """The raw data as a fetch at ``now`` would have found it (markets open then: active)."""

    def as_then(doc: dict) -> dict:
        if _at(doc["close_time"]) <= now:
            return doc
        status = "active" if _at(doc["open_time"]) <= now else "initialized"
        return {**doc, "status": status, "result": "", "settlement_ts": None}

    with RawWriter(out) as w:  # one flat directory: the partitions' records, in order
        for kind in KINDS:
            for r in (r for part in raw_partitions(full) for r in iter_records(part, kind)):
                body, at = r["response"], min(_at(r["received_at"]), now)
                path = r["path"].removeprefix("/trade-api/v2")
                if kind == "markets":
                    body = {**body, "markets": [as_then(m) for m in body["markets"]]}
                elif kind == "events":
                    body = {**body, "markets": [as_then(m) for m in body.get("markets", [])]}
                elif kind == "trades":
                    body = {
                        **body,
                        "trades": [t for t in body["trades"] if _at(t["created_time"]) <= now],
                    }
                elif kind == "candlesticks":
                    end = now.timestamp()
                    body = {
                        **body,
                        "candlesticks": [
                            c for c in body["candlesticks"] if c["end_period_ts"] <= end
                        ],
                    }
                elif kind == "orderbooks" and _at(r["received_at"]) > now:
                    continue
                w.write(kind, path, r["params"], at, body)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("open")
    return recorded_at(write_simulated_raw(root / "full"), root / "raw", NOW)


def fetch(srv: LocalKalshiServer, out: Path, cache: Path, clock: float) -> KalshiClient:
    data = kalshi_params(srv.base_url, timeout_s=2.0, max_retries=3)
    with KalshiClient(srv.base_url, reads_per_s=2000, clock=lambda: clock) as client:
        fetch_kalshi(data, out, client=client, cache_dir=cache)
    return client


def test_open_markets_get_books_stamped_now_and_the_rest_is_served_data(served, tmp_path):
    config = ServerConfig(rate_limit=False, cutoff=CUTOFF, now=NOW)
    with LocalKalshiServer(served, config) as srv:
        first = fetch(srv, tmp_path / "raw", tmp_path / "cache", NOW.timestamp())
        requests_first = first.transport.stats.requests
        later = fetch(srv, tmp_path / "later", tmp_path / "cache", NOW.timestamp() + 3600)
    got, want = parse_raw(tmp_path / "raw"), parse_raw(served)
    markets = want["markets"].to_pandas()
    open_now = set(markets.loc[markets["status"] == "active", "ticker"])
    assert 0 < len(open_now) < len(markets)

    books = got["orderbook"].to_pandas()
    assert set(books["ticker"]) == open_now  # only the open markets have a book now
    assert (books["snapshot_ts"] == pd.Timestamp(NOW).floor("s")).all()  # stamped with the request
    served_books = want["orderbook"].to_pandas()
    ticker = sorted(open_now)[0]
    latest = served_books[served_books["ticker"] == ticker]
    latest = latest[latest["snapshot_ts"] == latest["snapshot_ts"].max()]
    mine = books[books["ticker"] == ticker]
    assert sorted(zip(mine["side"], mine["price"], mine["count"], strict=True)) == sorted(
        zip(latest["side"], latest["price"], latest["count"], strict=True)
    )
    for name, keys in (("trades", ["trade_id"]), ("markets", ["ticker"])):
        a = got[name].to_pandas().sort_values(keys).reset_index(drop=True)
        b = want[name].to_pandas().sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, obj=name)

    # an hour later: the open markets' current windows, books and listing are asked again,
    # the settled markets' candles and trades never
    asked_again = later.transport.stats.requests
    assert 0 < asked_again < requests_first
    settled = len(markets) - len(open_now)
    assert asked_again <= requests_first - 2 * settled


def market(open_: str, close: str, status: str = "active") -> Market:
    return Market.model_validate(
        {
            "ticker": "T",
            "event_ticker": "E",
            "status": status,
            "open_time": open_,
            "close_time": close,
        }
    )


def test_a_settled_market_is_one_final_window_of_its_whole_life():
    m = market("2025-01-30T10:00:00Z", "2025-03-03T15:00:00Z", status="finalized")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    (daily,) = candle_windows(m, 1440, now)
    assert daily.final and daily.start_ts == int(m.open_time.timestamp())
    assert daily.end_ts == int(
        dt.datetime(2025, 3, 4, tzinfo=dt.UTC).timestamp()
    )  # the candle ending after the close
    (trades,) = trade_windows(m, now)
    assert trades.final and trades.end_ts == int(m.close_time.timestamp())


def test_an_open_market_is_cut_into_months_final_once_they_ended():
    m = market("2025-01-30T10:00:00Z", "2025-06-30T00:00:00Z")
    now = dt.datetime(2025, 3, 10, 12, 34, tzinfo=dt.UTC).timestamp()
    windows = trade_windows(m, now)
    assert [w.final for w in windows] == [True, True, False]
    assert windows[0].start_ts == int(m.open_time.timestamp())
    for a, b in zip(windows, windows[1:], strict=False):
        assert b.start_ts == a.end_ts + 1
    assert windows[1].start_ts == int(dt.datetime(2025, 2, 1, tzinfo=dt.UTC).timestamp())
    assert windows[-1].end_ts == int(now)
    assert windows[-1].key.endswith("-open")  # the current month's key does not move with now
    hourly = candle_windows(m, 60, now)
    assert hourly[-1].end_ts == int(
        dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC).timestamp()
    )  # ended candles only


def test_range_and_open_rules():
    m = market("2025-01-05T00:00:00Z", "2025-01-10T12:00:00Z")
    day = 86400
    jan10 = int(dt.datetime(2025, 1, 10, tzinfo=dt.UTC).timestamp())
    assert in_range(m, jan10, jan10 + day)  # closes on the range's first day
    assert not in_range(m, jan10 + day, jan10 + 2 * day)  # closed before the range
    assert is_open_at(m, jan10)
    assert not is_open_at(m, jan10 + day)
    assert not is_open_at(market("2025-01-05T00:00:00Z", "2025-01-10T12:00:00Z", "closed"), jan10)
