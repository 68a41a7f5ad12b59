"""data=kalshi against the local Kalshi-compatible server: the fetched data is the served data.

The server serves a simulated dataset (all markets closed, settled, split into live and
historical by a cutoff). The fetch must come back with exactly the same tables (no lost,
duplicated or extra markets, candles or trades), through every fault the server can inject,
after being killed mid-way, and without asking anything twice for a closed range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from fetch_support import assert_same_partitions, kalshi_params
from kalshi_lab.client import KalshiClient, NotFoundError
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import (
    KINDS,
    RawWriter,
    iter_records,
    raw_partitions,
    read_manifest,
)
from kalshi_lab.errors import DataError
from kalshi_lab.fetch import kalshi
from kalshi_lab.fetch.kalshi import fetch_kalshi, write_partition
from kalshi_lab.params import DataParams
from kalshi_lab.server import FaultConfig, LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw

CUTOFF = dt.datetime(2025, 1, 12, tzinfo=dt.UTC)
#: the fetch's frozen clock: long after every served market settled
FROZEN = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()
COMPARED = ("series", "events", "markets", "candles", "trades")
KEYS = {
    "series": ["series_ticker"],
    "events": ["event_ticker"],
    "markets": ["ticker"],
    "candles": ["ticker", "period_minutes", "end_period_ts"],
    "trades": ["trade_id"],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    return write_simulated_raw(tmp_path_factory.mktemp("served") / "raw")


@pytest.fixture(scope="module")
def served_tables(served) -> dict[str, pd.DataFrame]:
    return tables(served)


@pytest.fixture(scope="module")
def series(served) -> list[str]:
    return sorted(
        {
            r["response"]["series"]["ticker"]
            for p in raw_partitions(served)
            for r in iter_records(p, "series")
        }
    )


@pytest.fixture
def server(served):
    config = ServerConfig(cutoff=CUTOFF, rate_limit=False)
    with LocalKalshiServer(served, config) as srv:
        yield srv


def tables(raw: Path) -> dict[str, pd.DataFrame]:
    parsed = parse_raw(raw)
    return {
        name: parsed[name].to_pandas().sort_values(KEYS[name], kind="stable").reset_index(drop=True)
        for name in COMPARED
    }


def params(base_url: str, series: list[str], **overrides) -> DataParams:
    return kalshi_params(base_url, series=series, **overrides)


def client(base_url: str, **kw) -> KalshiClient:
    kw.setdefault("clock", lambda: FROZEN)
    return KalshiClient(
        base_url, timeout_s=1.0, max_retries=8, reads_per_s=2000, backoff_factor=0.01, **kw
    )


def fetch(server, series, out: Path, cache: Path, **overrides) -> KalshiClient:
    with client(server.base_url) as c:
        fetch_kalshi(params(server.base_url, series, **overrides), out, client=c, cache_dir=cache)
    return c


def assert_same_data(fetched: Path, served_tables: dict[str, pd.DataFrame]) -> None:
    got = tables(fetched)
    for name in COMPARED:
        pd.testing.assert_frame_equal(got[name], served_tables[name], obj=name)


def test_fetched_data_equals_the_served_data(server, served_tables, series, tmp_path):
    c = fetch(server, series, tmp_path / "raw", tmp_path / "cache")
    assert_same_data(tmp_path / "raw", served_tables)
    hits = server.stats.requests
    # the cutoff splits the data: both the live and the archived endpoints were needed
    for kind in ("candlesticks", "trades", "markets"):
        assert hits.get(kind, 0) > 0 and hits.get(f"historical_{kind}", 0) > 0, hits
    assert c.transport.stats.requests == server.stats.total_requests
    # all markets closed when fetched: no book to record, and every partition's file still
    # exists, its manifest saying the source may leave it empty: no book is not an error
    for part in raw_partitions(tmp_path / "raw"):
        assert (part / KINDS["orderbooks"]).exists()
        manifest = read_manifest(part)
        assert manifest.records["orderbooks"] == 0 and manifest.may_be_empty == {"orderbooks"}
    assert parse_raw(tmp_path / "raw")["orderbook"].num_rows == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limited": 0.15},
        {"server_error": 0.15},
        {"bad_gateway": 0.15},
        {"slow": 0.05, "slow_delay_s": 1.5},
        {"truncated": 0.15},
        {"reset": 0.15},
    ],
    ids=lambda f: next(iter(f)),
)
def test_every_fault_is_survived_without_loss(server, served_tables, series, tmp_path, fault):
    server.set_faults(FaultConfig(seed=3, **fault))
    c = fetch(server, series, tmp_path / "raw", tmp_path / "cache")
    injected = server.stats.faults
    assert sum(injected.values()) > 0, "the fault never fired: the test proves nothing"
    assert c.transport.stats.retries >= sum(injected.values())
    assert_same_data(tmp_path / "raw", served_tables)


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it on the way."""


@pytest.fixture(scope="module")
def uninterrupted(served, series, tmp_path_factory) -> tuple[Path, int]:
    """One whole fetch: its raw directory and the requests it took."""
    root = tmp_path_factory.mktemp("whole")
    with LocalKalshiServer(served, ServerConfig(cutoff=CUTOFF, rate_limit=False)) as srv:
        fetch(srv, series, root / "raw", root / "cache")
        return root / "raw", srv.stats.total_requests


@pytest.mark.parametrize("after", [1, 9, 40, 111])
def test_a_killed_fetch_resumes_to_the_same_bytes(server, series, tmp_path, after, uninterrupted):
    whole, complete = uninterrupted
    c = client(server.base_url)
    original = c.transport.request
    made = [0]

    def dying(*a, **kw):
        made[0] += 1
        if made[0] > after:
            raise Killed
        return original(*a, **kw)

    c.transport.request = dying
    out, cache = tmp_path / "raw", tmp_path / "cache"
    with pytest.raises(Killed):
        fetch_kalshi(params(server.base_url, series), out, client=c, cache_dir=cache)
    assert not out.exists(), "a killed fetch must not leave a partial raw directory"

    resumed = fetch(server, series, out, cache)
    assert made[0] > after  # it was killed after `after` requests
    assert resumed.transport.stats.requests < complete  # it resumed, it did not start over
    assert_same_partitions(whole, out)


def test_a_closed_range_is_fetched_once(server, series, tmp_path):
    fetch(server, series, tmp_path / "first", tmp_path / "cache")
    before = server.stats.total_requests
    again = fetch(server, series, tmp_path / "second", tmp_path / "cache")
    assert again.transport.stats.requests == 0
    assert server.stats.total_requests == before
    assert_same_partitions(tmp_path / "first", tmp_path / "second")


def test_only_markets_open_in_the_range_are_fetched(server, served_tables, series, tmp_path):
    start, end = dt.date(2025, 1, 15), dt.date(2025, 1, 16)
    fetch(server, series, tmp_path / "raw", tmp_path / "cache", start=start, end=end)
    got = parse_raw(tmp_path / "raw")["markets"].to_pandas()
    markets = served_tables["markets"]
    first = pd.Timestamp(start, tz="UTC")
    after = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
    expected = markets[(markets["open_time"] <= after) & (markets["close_time"] >= first)]
    assert 0 < len(expected) < len(markets)
    assert sorted(got["ticker"]) == sorted(expected["ticker"])
    trades = parse_raw(tmp_path / "raw")["trades"].to_pandas()
    assert set(trades["ticker"]) <= set(expected["ticker"])
    served_trades = served_tables["trades"]
    assert len(trades) == served_trades["ticker"].isin(expected["ticker"]).sum()


def test_tickers_and_events_narrow_the_fetch(server, served_tables, series, tmp_path):
    markets = served_tables["markets"]
    event = markets["event_ticker"].iloc[0]
    fetch(server, series, tmp_path / "e", tmp_path / "cache", events=[event])
    got = parse_raw(tmp_path / "e")["markets"].to_pandas()
    assert sorted(got["ticker"]) == sorted(markets.loc[markets["event_ticker"] == event, "ticker"])
    ticker = markets["ticker"].iloc[-1]
    fetch(server, series, tmp_path / "t", tmp_path / "cache", tickers=[ticker])
    assert parse_raw(tmp_path / "t")["markets"].column("ticker").to_pylist() == [ticker]


@pytest.mark.parametrize(
    ("overrides", "error", "names"),
    [
        ({"series": ["KXNOPE"]}, NotFoundError, "series KXNOPE"),
        ({"tickers": ["KXNOPE-1"]}, DataError, "KXNOPE-1"),
        ({"events": ["KXNOPE-E"]}, DataError, "KXNOPE-E"),
        ({"start": dt.date(2024, 1, 1), "end": dt.date(2024, 1, 31)}, DataError, "2024-01-01"),
    ],
    ids=["unknown-series", "unknown-ticker", "unknown-event", "empty-range"],
)
def test_bad_input_names_the_thing_and_writes_nothing(
    server, series, tmp_path, overrides, error, names
):
    if "series" not in overrides:
        overrides["series"] = series
    out = tmp_path / "raw"
    with pytest.raises(error, match=names):
        fetch(server, overrides.pop("series"), out, tmp_path / "cache", **overrides)
    assert not out.exists()


# --- the partitions: series=<S>/month=<YYYY-MM>, whole events ----------------------------------

TICKER_IN_PATH = re.compile(r"/markets/(?P<ticker>[^/]+)/(candlesticks|orderbook)$")


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def partition_of_event(raw: Path) -> dict[str, str]:
    """Each event's partition in ``raw``, from the event documents (one partition per event)."""
    out: dict[str, str] = {}
    for part in raw_partitions(raw):
        for r in iter_records(part, "events"):
            event = r["response"]["event"]["event_ticker"]
            assert out.setdefault(event, part.relative_to(raw).as_posix()) == out[event], event
    return out


def tickers_of(kind: str, record: dict) -> set[str]:
    """The markets one recorded response is about."""
    if kind == "trades":
        return {t["ticker"] for t in record["response"]["trades"]}
    match = TICKER_IN_PATH.search(record["path"])
    assert match, record["path"]
    return {match["ticker"]}


def test_every_record_of_an_event_is_in_its_events_partition(server, served, series, tmp_path):
    with client(server.base_url) as c:
        counts = fetch_kalshi(
            params(server.base_url, series), tmp_path / "raw", client=c, cache_dir=tmp_path / "c"
        )
    parts = raw_partitions(tmp_path / "raw")
    names = [p.relative_to(tmp_path / "raw").as_posix() for p in parts]
    assert names == sorted(names)
    # the simulator placed each event by its close month too: the same partition, every event
    assert partition_of_event(tmp_path / "raw") == partition_of_event(served)
    written = dict.fromkeys(KINDS, 0)
    for part, name in zip(parts, names, strict=True):
        manifest = read_manifest(part)
        for kind in KINDS:
            written[kind] += manifest.records[kind]
        s, month = name.removeprefix("series=").split("/month=")
        docs = [r["response"]["series"]["ticker"] for r in iter_records(part, "series")]
        assert docs == [s], name  # the series document, repeated in each of its partitions
        events = {r["response"]["event"]["event_ticker"] for r in iter_records(part, "events")}
        closes: dict[str, list[dt.datetime]] = {e: [] for e in events}
        markets = set()
        for r in iter_records(part, "markets"):
            for m in r["response"]["markets"]:
                assert m["event_ticker"] in events, (name, m["ticker"])
                closes[m["event_ticker"]].append(_at(m["close_time"]))
                markets.add(m["ticker"])
        for e, times in closes.items():  # the month of the latest close of the event's markets
            assert max(times).strftime("%Y-%m") == month, (name, e)
        for kind in ("candlesticks", "trades"):
            about = set().union(*(tickers_of(kind, r) for r in iter_records(part, kind)))
            assert about == markets, (name, kind)  # all its markets' data, no other market's
    assert written == counts


def moved_close(full: Path, out: Path, ticker: str, close: str) -> Path:
    """``full`` as one flat raw directory, ``ticker`` closing at ``close`` instead."""

    def moved(doc: dict) -> dict:
        return {**doc, "close_time": close} if doc["ticker"] == ticker else doc

    with RawWriter(out) as w:
        for kind in KINDS:
            for r in (r for part in raw_partitions(full) for r in iter_records(part, kind)):
                body = r["response"]
                if kind in ("markets", "events"):
                    body = {**body, "markets": [moved(m) for m in body.get("markets", [])]}
                w.write(
                    kind,
                    r["path"].removeprefix("/trade-api/v2"),
                    r["params"],
                    _at(r["received_at"]),
                    body,
                )
    return out


def test_an_event_closing_in_two_months_is_in_the_later_month_whole(served, series, tmp_path):
    where = partition_of_event(served)
    markets_of: dict[str, list[str]] = {}
    for part in raw_partitions(served):
        for r in iter_records(part, "markets"):
            for m in r["response"]["markets"]:
                markets_of.setdefault(m["event_ticker"], []).append(m["ticker"])
    event = next(e for e in sorted(markets_of) if len(set(markets_of[e])) > 1)
    assert where[event].endswith("month=2025-01")
    first, *rest = sorted(set(markets_of[event]))
    source = moved_close(served, tmp_path / "served", first, "2025-02-03T00:00:00Z")
    with LocalKalshiServer(source, ServerConfig(cutoff=CUTOFF, rate_limit=False)) as srv:
        fetch(srv, series, tmp_path / "raw", tmp_path / "cache")
    raw = tmp_path / "raw"
    later = where[event].replace("month=2025-01", "month=2025-02")
    assert partition_of_event(raw)[event] == later
    for part in raw_partitions(raw):
        name = part.relative_to(raw).as_posix()
        for kind in ("markets", "candlesticks", "trades"):
            for r in iter_records(part, kind):
                about = (
                    {m["ticker"] for m in r["response"]["markets"]}
                    if kind == "markets"
                    else tickers_of(kind, r)
                )
                if about & {first, *rest}:
                    assert name == later, (kind, name)  # January's markets too, with the event
    kept = {
        m["ticker"] for r in iter_records(raw / later, "markets") for m in r["response"]["markets"]
    }
    assert {first, *rest} <= kept


def test_the_partitions_do_not_depend_on_thread_timing(server, series, tmp_path):
    fetch(server, series, tmp_path / "four", tmp_path / "cache4", concurrency=4)
    fetch(server, series, tmp_path / "one", tmp_path / "cache1", concurrency=1)
    assert_same_partitions(tmp_path / "four", tmp_path / "one")


def test_a_fetch_killed_while_writing_resumes_to_the_same_bytes(
    server, series, tmp_path, uninterrupted, monkeypatch
):
    whole, _ = uninterrupted
    written = [0]

    def dying(*a, **kw):
        written[0] += 1
        if written[0] == 3:
            raise Killed
        return write_partition(*a, **kw)

    monkeypatch.setattr(kalshi, "write_partition", dying)
    out, cache = tmp_path / "raw", tmp_path / "cache"
    with pytest.raises(Killed):
        fetch(server, series, out, cache)
    with pytest.raises(DataError, match="neither"):  # two partitions, but no list: incomplete
        raw_partitions(out)
    monkeypatch.undo()
    resumed = fetch(server, series, out, cache)
    assert resumed.transport.stats.requests == 0  # every unit was in the cache
    assert_same_partitions(whole, out)


def test_an_event_outside_the_series_is_an_error_naming_it(server, served, tmp_path):
    where = partition_of_event(served)
    event = next(e for e, name in sorted(where.items()) if name.startswith("series=KXSIMB/"))
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=f"data.events: {event} is an event of series KXSIMB"):
        fetch(server, ["KXSIMA"], out, tmp_path / "cache", events=[event])
    assert not out.exists()


def test_listed_markets_not_asked_for_and_empty_pages_are_dropped_and_counted(
    server, served_tables, series, tmp_path, monkeypatch, caplog
):
    """``GET /markets?tickers=`` may list a market that was not asked for (no partition holds
    it) and end on a page that lists none (a cursor's last page): neither is recorded, and
    the log says how many of each were dropped."""
    original = KalshiClient.market_responses
    batches = [0]

    def noisy(self, **kw):
        pages = list(original(self, **kw))
        if kw.get("tickers") is None:
            return iter(pages)
        batches[0] += 1
        first = pages[0]
        stray = first.body["markets"][0] | {"ticker": f"KXSTRAY-{batches[0]}"}
        extra = [
            dataclasses.replace(first, body=first.body | {"markets": [stray]}),
            dataclasses.replace(first, body=first.body | {"markets": []}),
        ]
        return iter([*pages, *extra])

    monkeypatch.setattr(KalshiClient, "market_responses", noisy)
    with caplog.at_level("INFO", logger="kalshi_lab"):
        fetch(server, series, tmp_path / "raw", tmp_path / "cache")
    assert batches[0] > 0
    assert f"dropped {batches[0]} listed markets that were not asked for" in caplog.text
    assert f"{batches[0]} pages listed no market and are not recorded" in caplog.text
    assert_same_data(tmp_path / "raw", served_tables)
