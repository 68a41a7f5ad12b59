"""data=kalshi against the local Kalshi-compatible server: the fetched data is the served data.

The server serves a simulated dataset (all markets closed, settled, split into live and
historical by a cutoff). The fetch must come back with exactly the same tables (no lost,
duplicated or extra markets, candles or trades), through every fault the server can inject,
after being killed mid-way, and without asking anything twice for a closed range.
"""

from __future__ import annotations

import datetime as dt
import filecmp
from pathlib import Path

import pandas as pd
import pytest

from fetch_support import kalshi_params
from kalshi_lab.client import KalshiClient, NotFoundError
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import KINDS, read_manifest
from kalshi_lab.errors import DataError
from kalshi_lab.fetch.kalshi import fetch_kalshi
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
def series(served_tables) -> list[str]:
    return sorted(served_tables["series"]["series_ticker"])


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
    # all markets closed when fetched: no book to record, and the file still exists
    assert (tmp_path / "raw" / KINDS["orderbooks"]).exists()
    manifest = read_manifest(tmp_path / "raw")  # the source says so: no book is not an error
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
    for name in KINDS.values():
        assert filecmp.cmp(whole / name, out / name, shallow=False), name


def test_a_closed_range_is_fetched_once(server, served_tables, series, tmp_path):
    fetch(server, series, tmp_path / "first", tmp_path / "cache")
    before = server.stats.total_requests
    again = fetch(server, series, tmp_path / "second", tmp_path / "cache")
    assert again.transport.stats.requests == 0
    assert server.stats.total_requests == before
    for name in KINDS.values():
        assert filecmp.cmp(tmp_path / "first" / name, tmp_path / "second" / name, shallow=False)


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
