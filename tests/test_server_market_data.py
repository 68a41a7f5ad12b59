"""The local server's public endpoints over HTTP: pagination, filters, the historical split,
candles, orderbooks and errors, against datasets whose contents the tests know."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kalshi_lab.data.raw_store import iter_records, raw_partitions
from kalshi_lab.server import Dataset, LocalKalshiServer, ServerConfig
from server_support import (
    B_TRADES,
    BOOK_A,
    CANDLE_A,
    CLOSED_B,
    CUTOFF,
    DAY,
    HALF_C,
    HANDMADE_TRADES,
    LATE_D,
    NOW,
    OPEN_A,
    T0,
    TRADE_STEP,
    follow,
    ts,
    write_handmade_raw,
    write_simulated_raw,
)

ERROR_FIELDS = {"code", "message", "details", "service"}


def unix(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def simulated_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_simulated_raw(tmp_path_factory.mktemp("simulated_raw"))


@pytest.fixture(scope="module")
def simulated(simulated_raw: Path) -> Dataset:
    return Dataset.load(simulated_raw)


@pytest.fixture(scope="module")
def handmade_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_handmade_raw(tmp_path_factory.mktemp("handmade_raw"))


@pytest.fixture(scope="module")
def handmade(handmade_raw: Path) -> Dataset:
    return Dataset.load(handmade_raw)


@pytest.fixture(scope="module")
def sim(simulated: Dataset) -> Iterator[tuple[LocalKalshiServer, requests.Session]]:
    with (
        LocalKalshiServer(simulated, ServerConfig(rate_limit=False)) as srv,
        requests.Session() as s,
    ):
        yield srv, s


@pytest.fixture(scope="module")
def hand(handmade: Dataset) -> Iterator[tuple[LocalKalshiServer, requests.Session]]:
    config = ServerConfig(rate_limit=False, cutoff=CUTOFF)
    with LocalKalshiServer(handmade, config) as srv, requests.Session() as s:
        yield srv, s


def get(
    server: tuple[LocalKalshiServer, requests.Session], path: str, **params: Any
) -> requests.Response:
    srv, s = server
    return s.get(srv.base_url + path, params=params)


def items(
    server: tuple[LocalKalshiServer, requests.Session], path: str, key: str, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a listing, following cursors; each page holds at most ``limit``."""
    srv, s = server
    out = []
    for page in follow(s, srv.base_url + path, params, key):
        assert len(page) <= int(params.get("limit", 100))
        out.extend(page)
    return out


def assert_error(r: requests.Response, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body.keys() == ERROR_FIELDS and body["code"]
    for word in words:
        assert word in body["message"], body["message"]
    return body


# --- pagination and the historical split -------------------------------------------------------


def recorded_markets(raw: Path) -> dict[str, dict[str, Any]]:
    return {
        m["ticker"]: m
        for part in raw_partitions(raw)
        for r in iter_records(part, "markets")
        for m in r["response"]["markets"]
    }


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_market_pages_show_every_market_once_split_at_the_cutoff(sim, simulated_raw, limit):
    cutoff = unix(get(sim, "/historical/cutoff").json()["market_settled_ts"])
    live = items(sim, "/markets", "markets", limit=limit)
    archived = items(sim, "/historical/markets", "markets", limit=limit)
    live_t, archived_t = [m["ticker"] for m in live], [m["ticker"] for m in archived]
    assert len(set(live_t)) == len(live_t) and len(set(archived_t)) == len(archived_t)
    recorded = recorded_markets(simulated_raw)
    expected_archived = {t for t, m in recorded.items() if unix(m["settlement_ts"]) < cutoff}
    assert set(archived_t) == expected_archived
    assert set(live_t) == recorded.keys() - expected_archived
    assert live and archived  # the default cutoff (median settlement) exercises both paths
    assert all(m == recorded[m["ticker"]] for m in live + archived)  # verbatim documents


def recorded_trades(raw: Path) -> dict[str, dict[str, Any]]:
    return {
        t["trade_id"]: t
        for part in raw_partitions(raw)
        for r in iter_records(part, "trades")
        for t in r["response"]["trades"]
    }


@pytest.mark.parametrize("limit", [13, 1000])
def test_trade_pages_show_every_trade_once_newest_first_split_at_the_cutoff(
    sim, simulated_raw, limit
):
    cutoff = unix(get(sim, "/historical/cutoff").json()["trades_created_ts"])
    live = items(sim, "/markets/trades", "trades", limit=limit)
    old = items(sim, "/historical/trades", "trades", limit=limit)
    ids = [t["trade_id"] for t in live + old]
    assert len(ids) == len(set(ids))
    assert set(ids) == recorded_trades(simulated_raw).keys()
    assert live and old
    assert all(unix(t["created_time"]) >= cutoff for t in live)
    assert all(unix(t["created_time"]) < cutoff for t in old)
    times = [t["created_time"] for t in live + old]
    assert times == sorted(times, reverse=True)


def test_one_markets_trades_page_by_page_with_a_time_window(hand):
    # A's trades are i = 1..15 except 3 and 6, at T0 + 7 h * i; CUTOFF splits them at i = 10
    wanted = [i for i in range(HANDMADE_TRADES, 0, -1) if i not in B_TRADES]
    got = items(hand, "/markets/trades", "trades", ticker=OPEN_A, limit=2)
    got += items(hand, "/historical/trades", "trades", ticker=OPEN_A, limit=2)
    assert [int(t["trade_id"][-12:]) for t in got] == wanted
    # both window ends are inclusive, to the second
    lo, hi = ts(T0 + 11 * TRADE_STEP), ts(T0 + 13 * TRADE_STEP)
    window = items(hand, "/markets/trades", "trades", ticker=OPEN_A, min_ts=lo, max_ts=hi, limit=1)
    assert [int(t["trade_id"][-12:]) for t in window] == [13, 12, 11]
    assert get(hand, "/markets/trades", ticker="NOPE").json() == {"trades": [], "cursor": ""}


def test_duplicate_observations_are_served_once_and_the_latest_wins(hand):
    trades = items(hand, "/markets/trades", "trades") + items(hand, "/historical/trades", "trades")
    assert len(trades) == HANDMADE_TRADES  # the two recorded pages overlap by one trade
    # an older /markets page showed A with a stale bid; the later observation is served
    assert get(hand, f"/markets/{OPEN_A}").json()["market"]["yes_bid_dollars"] == "0.4500"


def test_an_archived_market_is_only_historical_and_a_live_one_only_live(hand):
    assert_error(get(hand, f"/markets/{CLOSED_B}"), 404, CLOSED_B)
    assert get(hand, f"/historical/markets/{CLOSED_B}").json()["market"]["ticker"] == CLOSED_B
    assert_error(get(hand, f"/historical/markets/{OPEN_A}"), 404, OPEN_A)
    window = {"start_ts": ts(T0), "end_ts": ts(T0 + 3 * DAY), "period_interval": 1440}
    assert_error(get(hand, f"/series/KXTEST/markets/{CLOSED_B}/candlesticks", **window), 404)
    assert_error(get(hand, f"/historical/markets/{OPEN_A}/candlesticks", **window), 404)
    assert_error(get(hand, f"/markets/{CLOSED_B}/orderbook"), 404)
    event = get(hand, "/events/KXTEST-E1", with_nested_markets="true").json()
    assert [m["ticker"] for m in event["markets"]] == [OPEN_A]
    assert [m["ticker"] for m in event["event"]["markets"]] == [OPEN_A]
    assert get(hand, "/historical/cutoff").json() == {
        "market_settled_ts": "2025-01-04T00:00:00Z",
        "trades_created_ts": "2025-01-04T00:00:00Z",
        "orders_updated_ts": "2025-01-04T00:00:00Z",
    }


# --- candlesticks ------------------------------------------------------------------------------

HISTORICAL_KEYS = {"end_period_ts", "yes_bid", "yes_ask", "price", "volume", "open_interest"}


def test_historical_candles_use_the_unsuffixed_schema_with_the_recorded_values(sim, simulated):
    srv, _ = sim
    archived = next(m for m in simulated.markets.values() if srv.cutoff.archived(m))
    recorded = simulated.candles[(archived.ticker, 60)].docs
    window = {"start_ts": recorded[0]["end_period_ts"], "end_ts": recorded[-1]["end_period_ts"]}
    r = get(
        sim, f"/historical/markets/{archived.ticker}/candlesticks", period_interval=60, **window
    )
    assert r.status_code == 200, r.text
    candles = r.json()["candlesticks"]
    assert len(candles) == len(recorded)
    for got, rec in zip(candles, recorded, strict=True):
        assert got.keys() == HISTORICAL_KEYS
        assert got["end_period_ts"] == rec["end_period_ts"]
        for side in ("yes_bid", "yes_ask"):
            assert got[side] == {
                f: rec[side][f"{f}_dollars"] for f in ("open", "low", "high", "close")
            }
        fields = ("open", "low", "high", "close", "mean", "previous")
        assert got["price"] == {f: rec["price"][f"{f}_dollars"] for f in fields}
        assert (got["volume"], got["open_interest"]) == (rec["volume_fp"], rec["open_interest_fp"])


def test_legacy_cent_candles_are_converted_to_historical_dollar_strings(hand):
    r = get(
        hand,
        f"/historical/markets/{CLOSED_B}/candlesticks",
        start_ts=ts(T0),
        end_ts=ts(T0 + DAY),
        period_interval=1440,
    )
    assert r.json()["candlesticks"] == [
        {
            "end_period_ts": ts(T0 + DAY),
            "yes_bid": {"open": "0.3000", "low": "0.2800", "high": "0.3500", "close": "0.3300"},
            "yes_ask": {"open": "0.3200", "low": "0.3000", "high": "0.3700", "close": "0.3500"},
            "price": {"open": "0.3100", "low": "0.3100", "high": "0.3400", "close": None, "mean": "0.3250", "previous": "0.2900"},
            "volume": "7.00",
            "open_interest": "5.00",
        }
    ]  # fmt: skip


def test_live_candles_are_those_ending_inside_the_window(hand):
    path = f"/series/KXTEST/markets/{OPEN_A}/candlesticks"
    end = CANDLE_A["end_period_ts"]

    def candles(start: int, stop: int, period: int = 1440) -> list[dict[str, Any]]:
        r = get(hand, path, start_ts=start, end_ts=stop, period_interval=period)
        assert r.status_code == 200, r.text
        assert r.json()["ticker"] == OPEN_A
        return r.json()["candlesticks"]

    assert candles(end, end) == [CANDLE_A]
    assert candles(end - 86_400, end - 1) == []
    assert candles(end + 1, end + 86_400) == []
    assert candles(end - 3600, end, period=60) == []  # no hourly candles were recorded
    assert_error(
        get(
            hand,
            f"/series/KXHALF/markets/{OPEN_A}/candlesticks",
            start_ts=end,
            end_ts=end,
            period_interval=1440,
        ),
        404,
    )
    assert_error(
        get(hand, path, start_ts=end, end_ts=end, period_interval=5), 400, "period_interval"
    )
    assert_error(get(hand, path, start_ts=end, period_interval=1440), 400, "end_ts")
    assert_error(get(hand, path, start_ts=end, end_ts=end - 1, period_interval=1440), 400)


def test_more_than_5000_candles_is_refused_as_kalshi_refuses_it(hand):
    path = f"/series/KXTEST/markets/{OPEN_A}/candlesticks"
    start = ts(T0)  # a whole minute: the window holds one period end per minute from start
    ok = get(hand, path, start_ts=start, end_ts=start + 4999 * 60, period_interval=1)
    assert ok.status_code == 200
    body = assert_error(
        get(hand, path, start_ts=start, end_ts=start + 5000 * 60, period_interval=1), 400
    )
    assert body["message"] == "too many candlesticks requested: 5001 > 5000"
    assert (
        get(hand, path, start_ts=start, end_ts=start + 4999 * 3600, period_interval=60).status_code
        == 200
    )


# --- orderbooks --------------------------------------------------------------------------------


def test_orderbook_is_the_latest_snapshot_with_depth_keeping_the_best_levels(hand):
    assert get(hand, f"/markets/{OPEN_A}/orderbook").json() == {"orderbook_fp": BOOK_A}
    best = get(hand, f"/markets/{OPEN_A}/orderbook", depth=1).json()["orderbook_fp"]
    assert best == {
        "yes_dollars": [BOOK_A["yes_dollars"][-1]],
        "no_dollars": [BOOK_A["no_dollars"][-1]],
    }
    # a legacy integer-cents book is served in the current format
    assert get(hand, f"/markets/{HALF_C}/orderbook").json() == {
        "orderbook_fp": {
            "yes_dollars": [["0.3000", "10.00"], ["0.3500", "4.00"]],
            "no_dollars": [["0.6000", "5.00"]],
        }
    }
    assert get(hand, f"/markets/{LATE_D}/orderbook").json() == {
        "orderbook_fp": {"yes_dollars": [], "no_dollars": []}
    }
    assert_error(get(hand, f"/markets/{OPEN_A}/orderbook", depth=101), 400, "depth")
    assert_error(get(hand, "/markets/NOPE/orderbook"), 404, "NOPE")


def test_orderbook_follows_the_clock_and_is_empty_once_the_market_closed(handmade):
    early = ServerConfig(rate_limit=False, now=NOW - dt.timedelta(hours=1), cutoff=T0)
    with LocalKalshiServer(handmade, early) as srv:
        book = requests.get(f"{srv.base_url}/markets/{OPEN_A}/orderbook").json()["orderbook_fp"]
        assert book == {"yes_dollars": [["0.3000", "1.00"]], "no_dollars": [["0.6000", "1.00"]]}
        # B is live under this cutoff, has a snapshot, but closed before now
        closed = requests.get(f"{srv.base_url}/markets/{CLOSED_B}/orderbook").json()
        assert closed == {"orderbook_fp": {"yes_dollars": [], "no_dollars": []}}


# --- filters -----------------------------------------------------------------------------------


def tickers(server, path: str = "/markets", **params: Any) -> list[str]:
    return [m["ticker"] for m in items(server, path, "markets", **params)]


def test_market_filters(hand):
    # newest created first: D was created a week after the others
    assert tickers(hand) == [LATE_D, HALF_C, OPEN_A]
    assert tickers(hand, event_ticker="KXTEST-E1") == [OPEN_A]
    assert tickers(hand, series_ticker="KXTEST") == [LATE_D, OPEN_A]
    assert tickers(hand, tickers=f"{OPEN_A},{CLOSED_B},NOPE") == [OPEN_A]
    assert tickers(hand, status="unopened") == [LATE_D]
    assert tickers(hand, status="settled") == [HALF_C, OPEN_A]
    assert tickers(hand, status="open") == []  # the recorded status, not the clock's
    close_a = ts(T0 + 10 * DAY)
    assert tickers(hand, min_close_ts=close_a, max_close_ts=close_a) == [HALF_C, OPEN_A]
    assert tickers(hand, min_close_ts=close_a + 1) == [LATE_D]
    assert tickers(hand, max_created_ts=ts(T0), status="unopened") == []
    assert tickers(hand, min_settled_ts=ts(T0 + 10 * DAY)) == [LATE_D, HALF_C, OPEN_A]
    assert tickers(hand, "/historical/markets", series_ticker="KXTEST") == [CLOSED_B]
    assert tickers(hand, "/historical/markets", event_ticker="KXHALF-E2") == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (
            {"min_close_ts": 1, "min_created_ts": 1},
            ["mutually exclusive", "min_close_ts", "min_created_ts"],
        ),
        ({"max_settled_ts": 1, "max_close_ts": 1}, ["mutually exclusive"]),
        ({"status": "open", "min_close_ts": 1}, ["status=open", "min_close_ts"]),
        ({"status": "settled", "max_created_ts": 1}, ["status=settled"]),
        ({"status": "closed", "min_settled_ts": 1}, ["status=closed"]),
        ({"min_updated_ts": 1, "series_ticker": "KXTEST"}, ["min_updated_ts", "series_ticker"]),
        ({"status": "open,closed"}, ["one status"]),
        ({"status": "active"}, ["status must be one of"]),
        ({"limit": 1001}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"min_close_ts": "yesterday"}, ["min_close_ts"]),
        ({"event_ticker": "A,B"}, ["event_ticker"]),
    ],
)
def test_bad_market_queries_are_400_naming_the_parameter(hand, params, words):
    assert_error(get(hand, "/markets", **params), 400, *words)


def test_historical_market_filters_are_mutually_exclusive(hand):
    assert_error(
        get(hand, "/historical/markets", series_ticker="KXTEST", event_ticker="KXTEST-E1"),
        400,
        "mutually exclusive",
    )


def test_events_pages_filters_and_nested_markets(hand):
    events = items(hand, "/events", "events", limit=1)
    assert [e["event_ticker"] for e in events] == ["KXHALF-E2", "KXTEST-E1", "KXTEST-E3"]
    assert all("markets" not in e for e in events)
    nested = items(hand, "/events", "events", series_ticker="KXTEST", with_nested_markets="true")
    assert {e["event_ticker"]: [m["ticker"] for m in e["markets"]] for e in nested} == {
        "KXTEST-E1": [OPEN_A],  # B is archived
        "KXTEST-E3": [LATE_D],
    }
    assert [e["event_ticker"] for e in items(hand, "/events", "events", status="unopened")] == [
        "KXTEST-E3"
    ]
    assert [
        e["event_ticker"] for e in items(hand, "/events", "events", min_close_ts=ts(T0 + 11 * DAY))
    ] == ["KXTEST-E3"]
    assert_error(get(hand, "/events", limit=201), 400, "limit")
    assert_error(get(hand, "/events/KXNOPE-1"), 404, "KXNOPE-1")


def test_series_and_exchange_status(hand, handmade_raw):
    recorded = {
        r["response"]["series"]["ticker"]: r["response"]["series"]
        for r in iter_records(handmade_raw, "series")
    }
    assert get(hand, "/series/KXHALF").json() == {"series": recorded["KXHALF"]}
    assert get(hand, "/series").json() == {"series": [recorded["KXHALF"], recorded["KXTEST"]]}
    assert get(hand, "/series", category="Financials").json() == {"series": [recorded["KXHALF"]]}
    assert get(hand, "/series", tags="kxtest,other").json() == {"series": [recorded["KXTEST"]]}
    assert_error(get(hand, "/series/KXNOPE"), 404, "KXNOPE")
    status = get(hand, "/exchange/status").json()
    assert status["exchange_active"] is True and status["trading_active"] is True


# --- cursors and unknown paths -----------------------------------------------------------------


def test_cursors_are_opaque_bound_to_their_query_and_checked(hand):
    first = get(hand, "/markets", limit=1).json()
    assert first["cursor"] and len(first["markets"]) == 1
    assert_error(get(hand, "/markets", limit=1, cursor="not-a-cursor"), 400, "cursor")
    assert_error(
        get(hand, "/markets", limit=1, cursor=first["cursor"], series_ticker="KXTEST"),
        400,
        "cursor",
    )
    assert_error(get(hand, "/events", limit=1, cursor=first["cursor"]), 400, "cursor")
    # an empty cursor is the first page again; a changed limit keeps the position
    assert get(hand, "/markets", limit=1, cursor="").json() == first
    rest = get(hand, "/markets", limit=5, cursor=first["cursor"]).json()
    assert [m["ticker"] for m in rest["markets"]] == [HALF_C, OPEN_A] and rest["cursor"] == ""


def test_unknown_paths_and_methods_are_errors(hand):
    srv, s = hand
    assert_error(s.get(srv.base_url + "/nothing/here"), 404)
    assert_error(s.get(f"http://127.0.0.1:{srv.port}/markets"), 404)  # no API prefix
    assert_error(s.post(srv.base_url + "/markets"), 405, "POST")
