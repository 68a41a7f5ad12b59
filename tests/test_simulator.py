"""The offline market simulator: it writes the API's documents, and its markets behave as designed.

Field lists are those marked required in Kalshi's OpenAPI spec v3.13 (shared/kalshi/openapi.yaml),
hard-coded so that the suite runs without the spec.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from kalshi_lab.data.raw_store import API_PREFIX, KINDS, RawWriter, iter_records, raw_partitions
from kalshi_lab.errors import ParamError
from kalshi_lab.params import ComputeParams, DataParams, SyntheticParams
from kalshi_lab.simulator import emit, simulate, write_synthetic_raw
from kalshi_lab.simulator.books import Books
from kalshi_lab.simulator.paging import page_slices
from kalshi_lab.simulator.segments import linear_recurrence, segmented_cumsum

SERIES_REQUIRED = {
    "ticker", "frequency", "title", "category", "tags", "settlement_sources", "contract_url",
    "contract_terms_url", "fee_type", "fee_multiplier", "additional_prohibitions",
}  # fmt: skip
EVENT_REQUIRED = {
    "event_ticker", "series_ticker", "sub_title", "title", "collateral_return_type",
    "mutually_exclusive", "available_on_brokers", "product_metadata",
}  # fmt: skip
MARKET_REQUIRED = {
    "ticker", "event_ticker", "market_type", "yes_sub_title", "no_sub_title", "created_time",
    "updated_time", "open_time", "close_time", "latest_expiration_time", "settlement_timer_seconds",
    "status", "notional_value_dollars", "yes_bid_dollars", "yes_ask_dollars", "no_bid_dollars",
    "no_ask_dollars", "yes_bid_size_fp", "yes_ask_size_fp", "last_price_dollars",
    "previous_yes_bid_dollars", "previous_yes_ask_dollars", "previous_price_dollars", "volume_fp",
    "volume_24h_fp", "liquidity_dollars", "open_interest_fp", "result", "can_close_early",
    "fractional_trading_enabled", "expiration_value", "rules_primary", "rules_secondary",
    "price_level_structure", "price_ranges",
}  # fmt: skip
CANDLE_REQUIRED = {"end_period_ts", "yes_bid", "yes_ask", "price", "volume_fp", "open_interest_fp"}
QUOTE_REQUIRED = {"open_dollars", "low_dollars", "high_dollars", "close_dollars"}
PRICE_FIELDS = QUOTE_REQUIRED | {"mean_dollars", "previous_dollars", "min_dollars", "max_dollars"}
TRADE_REQUIRED = {
    "trade_id", "ticker", "count_fp", "yes_price_dollars", "no_price_dollars", "taker_side",
    "created_time",
}  # fmt: skip
#: integer fields Kalshi removed on 2026-03-12: the current format must not carry them
LEGACY_MARKET = {
    "yes_bid", "yes_ask", "no_bid", "no_ask", "last_price", "previous_price", "previous_yes_bid",
    "previous_yes_ask", "volume", "volume_24h", "open_interest", "liquidity",
}  # fmt: skip
LEGACY_CANDLE = {"volume", "open_interest"}
LEGACY_TRADE = {"count", "yes_price", "no_price", "price"}
DOLLARS = re.compile(r"^[01]\.\d{4}$")
COUNT = re.compile(r"^\d+\.\d{2}$")
TIME_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TIME_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

SMALL = {
    "seed": 3,
    "n_markets": 130,
    "max_strikes": 4,
    "event_shares": {"ladder": 0.4, "bracket": 0.3, "binary": 0.3},
    "min_duration_days": 4,
    "max_duration_days": 12,
    "information_rate": 1.2,
    "news_floor_hours": 6.0,
    "price_lag_hours": 18.0,
    "price_noise": 0.25,
    "price_noise_close": 0.25,
    "longshot_bias": 0.85,
    "longshot_bias_close": 0.85,
    "accuracy_horizon_days": 7.0,
    "half_spread_cents": 1.5,
    "depth_contracts": 200.0,
    "book_levels": 5,
    "trades_per_day": 14.0,
    "informed_share": 0.3,
    "longshot_taker_share": 0.5,
}


def make_data(start: str = "2025-01-01", end: str = "2025-02-10", **synthetic: Any) -> DataParams:
    return DataParams(
        source="synthetic",
        start=dt.date.fromisoformat(start),
        end=dt.date.fromisoformat(end),
        hourly_candles=True,
        orderbook_snapshots_per_day=4,
        synthetic=SyntheticParams(**{**SMALL, **synthetic}),
    )


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def money(text: str) -> int:
    """A dollar string in whole cents (exact: the simulator trades on a one-cent grid)."""
    cents = round(float(text) * 100)
    assert abs(float(text) * 100 - cents) < 1e-9, text
    return cents


#: markets per /markets page in the ``raw`` fixture: small, so that partitions have several
MARKETS_PAGE = 7


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """The small universe's raw directory, written in this process (one worker) so that the
    /markets pages can be made small."""
    out = tmp_path_factory.mktemp("raw")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emit, "MARKETS_PAGE_LIMIT", MARKETS_PAGE)
        counts = write_synthetic_raw(make_data(), out, ComputeParams(workers=1))
    (out / "counts.txt").write_text(repr(counts))
    return out


def records(raw: Path, kind: str) -> list[dict[str, Any]]:
    """Every record of ``kind``, partition after partition."""
    return [r for part in raw_partitions(raw) for r in iter_records(part, kind)]


def raw_files(raw: Path) -> list[Path]:
    """Every file of a raw directory, relative to it, sorted."""
    return sorted(p.relative_to(raw) for p in raw.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def markets(raw) -> dict[str, dict[str, Any]]:
    return {m["ticker"]: m for r in records(raw, "markets") for m in r["response"]["markets"]}


@pytest.fixture(scope="module")
def trades(raw) -> dict[str, list[dict[str, Any]]]:
    """Per ticker, its trades de-duplicated by trade_id, oldest first."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records(raw, "trades"):
        for t in r["response"]["trades"]:
            seen.setdefault(t["trade_id"], t)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in sorted(seen.values(), key=lambda t: t["created_time"]):
        out[t["ticker"]].append(t)
    return out


@pytest.fixture(scope="module")
def candles(raw) -> dict[tuple[str, int], dict[int, dict[str, Any]]]:
    """(ticker, period minutes) -> end_period_ts -> candle."""
    out: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for r in records(raw, "candlesticks"):
        key = (r["response"]["ticker"], r["params"]["period_interval"])
        out[key] = {c["end_period_ts"]: c for c in r["response"]["candlesticks"]}
    return out


def walk(doc: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """Every (path, key, value) in a JSON document."""
    found = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found.append((path, k, v))
            found.extend(walk(v, f"{path}.{k}"))
    elif isinstance(doc, list):
        for v in doc:
            found.extend(walk(v, path))
    return found


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(raw, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emit, "MARKETS_PAGE_LIMIT", MARKETS_PAGE)
        write_synthetic_raw(make_data(), tmp_path / "again", ComputeParams(workers=1))
    write_synthetic_raw(make_data(seed=4), tmp_path / "other")
    files = [f for f in raw_files(raw) if f.name != "counts.txt"]
    assert raw_files(tmp_path / "again") == files
    for name in files:
        assert (tmp_path / "again" / name).read_bytes() == (raw / name).read_bytes(), name
    for kind in ("markets", "candlesticks", "trades", "orderbooks"):
        assert [r["response"] for r in records(tmp_path / "other", kind)] != [
            r["response"] for r in records(raw, kind)
        ], kind


def test_every_record_is_the_compact_json_of_its_values(raw):
    """Trades and books are rendered from text templates, not by a JSON encoder: their bytes
    must still be exactly what the encoder writes for the values they hold."""
    for name in (f for f in raw_files(raw) if f.suffix == ".gz"):
        for line in gzip.decompress((raw / name).read_bytes()).splitlines():
            assert orjson.dumps(orjson.loads(line)) == line, (name, line[:200])


def test_trade_pages_are_the_records_of_their_envelopes(raw, tmp_path):
    """Trade pages are rendered as whole lines: each must be byte for byte what the writer
    makes of its values, with the request's and the response's fields in the API's order."""
    for i, part in enumerate(raw_partitions(raw)):
        with RawWriter(tmp_path / str(i), kinds=["trades"]) as w:
            for r in iter_records(part, "trades"):
                assert list(r["params"])[:2] == ["ticker", "limit"]
                assert list(r["response"]) == ["trades", "cursor"]
                at = dt.datetime.strptime(r["received_at"], "%Y-%m-%dT%H:%M:%SZ")
                path = r["path"].removeprefix(API_PREFIX)
                w.write("trades", path, r["params"], at.replace(tzinfo=dt.UTC), r["response"])
        assert w.counts["trades"] > 0
        name = KINDS["trades"]
        written = gzip.decompress((part / name).read_bytes())
        assert written == gzip.decompress((tmp_path / str(i) / name).read_bytes()), part


def test_returned_counts_are_the_records_written(raw):
    counts = eval((raw / "counts.txt").read_text())  # noqa: S307 - our own repr of a dict of ints
    assert counts == {kind: len(records(raw, kind)) for kind in KINDS}
    assert all(counts[kind] > 0 for kind in KINDS)


# --- shapes and formats -----------------------------------------------------------------------


def test_every_required_field_is_present_in_the_current_format(raw):
    for r in records(raw, "series"):
        assert r["response"]["series"].keys() >= SERIES_REQUIRED
    for r in records(raw, "events"):
        assert r["response"]["event"].keys() >= EVENT_REQUIRED
        for m in r["response"]["markets"]:
            assert m.keys() >= MARKET_REQUIRED, MARKET_REQUIRED - m.keys()
            assert not LEGACY_MARKET & m.keys()
    for r in records(raw, "markets"):
        assert {"markets", "cursor"} <= r["response"].keys()
        for m in r["response"]["markets"]:
            assert m.keys() >= MARKET_REQUIRED
    for r in records(raw, "candlesticks"):
        assert {"ticker", "candlesticks"} <= r["response"].keys()
        for c in r["response"]["candlesticks"]:
            assert c.keys() >= CANDLE_REQUIRED and not LEGACY_CANDLE & c.keys()
            assert QUOTE_REQUIRED == c["yes_bid"].keys() == c["yes_ask"].keys()
            assert c["price"].keys() == PRICE_FIELDS
    for r in records(raw, "trades"):
        assert {"trades", "cursor"} <= r["response"].keys()
        for t in r["response"]["trades"]:
            assert t.keys() >= TRADE_REQUIRED and not LEGACY_TRADE & t.keys()
            assert TIME_US.match(t["created_time"]) and t["taker_side"] in ("yes", "no")
            assert money(t["yes_price_dollars"]) + money(t["no_price_dollars"]) == 100
    for r in records(raw, "orderbooks"):
        book = r["response"]["orderbook_fp"]
        assert r["response"].keys() == {"orderbook_fp"} and book.keys() == {
            "yes_dollars",
            "no_dollars",
        }
        for level in book["yes_dollars"] + book["no_dollars"]:
            assert len(level) == 2 and DOLLARS.match(level[0]) and COUNT.match(level[1])


def test_dollar_fields_have_4_decimals_counts_2_and_times_are_utc(raw):
    for kind in ("series", "events", "markets", "candlesticks"):
        for r in records(raw, kind):
            for path, key, value in walk(r["response"]):
                if key.endswith("_dollars") and not path.endswith("price_ranges"):
                    assert value is None or DOLLARS.match(value), (path, key, value)
                elif key.endswith("_fp"):
                    assert COUNT.match(value), (key, value)
                elif key.endswith(("_time", "_ts")) and isinstance(value, str):
                    assert TIME_S.match(value), (key, value)


def test_series_fees_and_market_structure(raw, markets):
    # each partition repeats its series' document, whole
    by_ticker = {r["response"]["series"]["ticker"]: r["response"] for r in records(raw, "series")}
    assert all(
        r["response"] == by_ticker[r["response"]["series"]["ticker"]]
        for r in records(raw, "series")
    )
    series = [body["series"] for body in by_ticker.values()]
    assert 3 <= len(series) <= 6 and all(s["ticker"].startswith("KXSIM") for s in series)
    assert {s["fee_type"] for s in series} == {"quadratic"}
    assert sorted({s["fee_multiplier"] for s in series}) == [0.5, 1.0]
    assert len(markets) == SMALL["n_markets"]
    for m in markets.values():
        assert m["market_type"] == "binary" and m["price_level_structure"] == "linear_cent"
        assert m["price_ranges"] == [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]
        assert m["notional_value_dollars"] == "1.0000"


# --- pagination -------------------------------------------------------------------------------


def assert_chain(pages: list[dict[str, Any]]) -> None:
    """First page without a cursor, each next page asks for the previous cursor, "" ends it."""
    assert "cursor" not in pages[0]["params"]
    for before, after in zip(pages, pages[1:], strict=False):
        assert before["response"]["cursor"] != ""
        assert after["params"]["cursor"] == before["response"]["cursor"]
    assert pages[-1]["response"]["cursor"] == ""


def test_markets_pages_form_one_cursor_chain_per_partition_over_all_markets(raw, markets):
    listed = []
    for part in raw_partitions(raw):
        pages = list(iter_records(part, "markets"))
        assert_chain(pages)
        listed += [m["ticker"] for p in pages for m in p["response"]["markets"]]
    assert max(len(list(iter_records(p, "markets"))) for p in raw_partitions(raw)) >= 2
    assert len(listed) == len(set(listed)) == len(markets)


def test_trade_pages_chain_per_ticker_and_sometimes_repeat_a_trade(raw, markets):
    by_ticker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records(raw, "trades"):
        by_ticker[r["params"]["ticker"]].append(r)
    assert by_ticker.keys() == markets.keys()
    repeats = 0
    for pages in by_ticker.values():
        assert_chain(pages)
        for before, after in zip(pages, pages[1:], strict=False):
            repeats += after["response"]["trades"][0] == before["response"]["trades"][-1]
        tape = [t["created_time"] for p in pages for t in p["response"]["trades"]]
        assert tape == sorted(tape, reverse=True)  # newest first
    assert max(len(p) for p in by_ticker.values()) >= 3
    assert repeats > 0


# --- events, outcomes, settlement -------------------------------------------------------------


def structure_of(event: dict[str, Any], listed: list[dict[str, Any]]) -> str:
    """The structure an event's documents claim: the flag, then the listing."""
    if event["mutually_exclusive"]:
        return "bracket"
    if len(listed) == 1 and "strike_type" not in listed[0]:
        return "binary"
    return "ladder"


def check_ladder(event: dict[str, Any], listed: list[dict[str, Any]]) -> int:
    """Thresholds "above X", ascending, settled together by one value; returns the YES count."""
    assert event["collateral_return_type"] == ""
    assert 2 <= len(listed) <= SMALL["max_strikes"]
    floors = [m["floor_strike"] for m in listed]
    assert floors == sorted(set(floors))  # strictly increasing
    value = float(listed[0]["expiration_value"])
    for m in listed:
        assert m["strike_type"] == "greater" and "cap_strike" not in m
        assert m["ticker"] == f"{event['event_ticker']}-T{m['floor_strike']:g}"
        assert m["yes_sub_title"] == f"Above {m['floor_strike']:g}"
        assert m["expiration_value"] == listed[0]["expiration_value"]
        assert m["result"] == ("yes" if value > m["floor_strike"] else "no")
    results = [m["result"] for m in listed]
    n_yes = results.count("yes")
    assert results == ["yes"] * n_yes + ["no"] * (len(listed) - n_yes)  # YES below every NO
    return n_yes


def check_bracket(event: dict[str, Any], listed: list[dict[str, Any]]) -> None:
    """Open tails around adjacent inclusive ranges; exactly one holds the settled value."""
    assert event["collateral_return_type"] == "MECNET"
    assert 3 <= len(listed) <= SMALL["max_strikes"]
    kinds = [m["strike_type"] for m in listed]
    assert kinds == ["less"] + ["between"] * (len(listed) - 2) + ["greater"]
    low, *ranges, high = listed
    base = event["event_ticker"]
    assert low["ticker"] == f"{base}-T{low['cap_strike']:g}" and "floor_strike" not in low
    assert high["ticker"] == f"{base}-T{high['floor_strike']:g}" and "cap_strike" not in high
    # each range starts where the one below ends (a tail's strike is open, a range includes its
    # cap, so the next floor is one reporting tick, 0.01, above it)
    edges = [low["cap_strike"]]
    for m in ranges:
        assert m["floor_strike"] == pytest.approx(edges[-1])
        assert m["ticker"].startswith(f"{base}-B") and m["floor_strike"] < m["cap_strike"]
        edges.append(m["cap_strike"] + 0.01)
    assert high["floor_strike"] == pytest.approx(edges[-1])
    value = float(low["expiration_value"])
    holds = [
        value < low["cap_strike"],
        *(m["floor_strike"] <= value <= m["cap_strike"] for m in ranges),
        value > high["floor_strike"],
    ]
    assert sum(holds) == 1
    assert [m["result"] for m in listed] == ["yes" if h else "no" for h in holds]


def test_events_are_ladders_brackets_or_binaries_settled_by_one_value(raw, markets):
    seen: dict[str, int] = defaultdict(int)
    several_yes = 0
    for r in records(raw, "events"):
        event, listed = r["response"]["event"], r["response"]["markets"]
        assert all(m == markets[m["ticker"]] for m in listed)  # the same documents as /markets
        assert len({(m["open_time"], m["close_time"]) for m in listed}) == 1
        kind = structure_of(event, listed)
        seen[kind] += 1
        if kind == "ladder":
            several_yes += check_ladder(event, listed) >= 2
        elif kind == "bracket":
            check_bracket(event, listed)
        else:
            (m,) = listed
            assert event["collateral_return_type"] == ""
            assert m["ticker"] == f"{event['event_ticker']}-Y"
            assert m["expiration_value"] == ("Yes" if m["result"] == "yes" else "No")
    assert min(seen["ladder"], seen["bracket"], seen["binary"]) > 0, seen
    assert several_yes > 0  # a ladder is not mutually exclusive: strikes resolve YES together


def test_every_market_has_closed_and_settled_by_the_snapshot(raw, markets):
    snapshot = ts(records(raw, "markets")[0]["received_at"])
    assert snapshot == ts("2025-02-11T00:00:00Z")
    for m in markets.values():
        assert m["status"] == "finalized" and m["result"] in ("yes", "no")
        assert m["settlement_value_dollars"] == ("1.0000" if m["result"] == "yes" else "0.0000")
        opened, closed, settled = ts(m["open_time"]), ts(m["close_time"]), ts(m["settlement_ts"])
        assert ts("2025-01-01T00:00:00Z") <= opened < closed
        assert closed + 3600 <= settled <= closed + 3 * 3600 and settled <= snapshot


# --- candles, trades, books agree -------------------------------------------------------------


def test_daily_candles_are_keyed_by_period_end_and_null_exactly_without_trades(
    markets, trades, candles
):
    no_trade_days = 0
    for ticker, m in markets.items():
        daily = candles[(ticker, 1440)]
        ends = sorted(daily)
        assert all(end % 86400 == 0 for end in ends)
        assert np.all(np.diff(ends) == 86400)
        assert ends[0] - 86400 <= ts(m["open_time"]) < ends[0]
        assert ends[-1] - 86400 < ts(m["close_time"]) <= ends[-1]
        for end, c in daily.items():
            inside = [t for t in trades[ticker] if end - 86400 <= ts(t["created_time"]) < end]
            if not inside:
                no_trade_days += 1
                assert all(c["price"][f] is None for f in PRICE_FIELDS - {"previous_dollars"})
                assert c["volume_fp"] == "0.00"
                continue
            prices = [money(t["yes_price_dollars"]) for t in inside]
            assert money(c["price"]["open_dollars"]) == prices[0]
            assert money(c["price"]["close_dollars"]) == prices[-1]
            assert money(c["price"]["low_dollars"]) == min(prices)
            assert money(c["price"]["high_dollars"]) == max(prices)
            assert float(c["volume_fp"]) == sum(float(t["count_fp"]) for t in inside)
        assert float(m["volume_fp"]) == sum(float(t["count_fp"]) for t in trades[ticker])
        if daily:
            assert m["open_interest_fp"] == daily[ends[-1]]["open_interest_fp"]
    assert no_trade_days > 0


def test_open_interest_moves_by_at_most_the_volume(markets, candles):
    for ticker in markets:
        before = 0.0
        for _, c in sorted(candles[(ticker, 1440)].items()):
            now = float(c["open_interest_fp"])
            assert now >= 0 and abs(now - before) <= float(c["volume_fp"])
            before = now


def test_takers_pay_the_ask_for_yes_and_the_bid_for_no(trades, candles):
    checked = 0
    for ticker, tape in trades.items():
        hourly = candles[(ticker, 60)]
        for t in tape:
            candle = hourly[int(ts(t["created_time"]) // 3600 * 3600 + 3600)]
            side = "yes_ask" if t["taker_side"] == "yes" else "yes_bid"
            assert money(t["yes_price_dollars"]) == money(candle[side]["open_dollars"])
            checked += 1
    assert checked > 1000


def test_orderbooks_ascend_and_their_touch_is_the_quote_of_that_instant(raw, markets, candles):
    seen: dict[str, int] = defaultdict(int)
    for r in records(raw, "orderbooks"):
        ticker = r["path"].split("/")[-2]
        at = ts(r["received_at"])
        m = markets[ticker]
        assert at % (6 * 3600) == 0 and ts(m["open_time"]) <= at < ts(m["close_time"])
        seen[ticker] += 1
        quote = candles[(ticker, 60)][int(at) + 3600]
        book = r["response"]["orderbook_fp"]
        for side, best in (
            ("yes_dollars", money(quote["yes_bid"]["open_dollars"])),
            ("no_dollars", 100 - money(quote["yes_ask"]["open_dollars"])),
        ):
            prices = [money(p) for p, _ in book[side]]
            sizes = [float(n) for _, n in book[side]]
            assert 1 <= len(prices) <= SMALL["book_levels"]
            assert prices == list(range(prices[0], prices[0] + len(prices)))  # ascending by 1 cent
            assert prices[-1] == best  # best bid LAST
            assert sizes == sorted(sizes) and sizes[0] >= 1  # thinner away from the touch
    for ticker, m in markets.items():
        opened, closed = ts(m["open_time"]), ts(m["close_time"])
        expected = sum(1 for t in range(0, int(closed), 6 * 3600) if t >= opened)
        assert seen[ticker] == expected


@pytest.mark.parametrize("seed", range(3))
def test_book_lines_are_the_records_of_their_envelopes(tmp_path, monkeypatch, seed):
    """Books are rendered as whole lines from templates: they must be byte for byte what the
    writer makes of each snapshot's envelope built from the values, levels missing on either
    side, the extremes of price and size, and chunk boundaries included."""
    monkeypatch.setattr(emit, "BOOK_CHUNK", 7)
    rng = np.random.default_rng(seed)
    n, levels, tickers = 60, 3, ["KXA-25JAN01-B1", "KXB-25", "KXC-X"]
    price = rng.choice([0, 1, 2, 50, 99, 100], size=(2, n, levels))
    size = rng.choice([0, 1, 7, 10**9], size=(2, n, levels))
    books = Books(
        market=np.sort(rng.integers(0, len(tickers), n)),
        ts=rng.choice([0, 1735689600, 1767225599, 1750000001], n),
        yes_price=price[0],
        yes_size=size[0],
        no_price=price[1],
        no_size=size[1],
    )
    sim = SimpleNamespace(
        books=books,
        syn=SimpleNamespace(book_levels=levels),
        universe=SimpleNamespace(ticker=tickers),
    )
    with RawWriter(tmp_path / "lines", kinds=["orderbooks"]) as w:
        emit.write_books(sim, w)
    with RawWriter(tmp_path / "envelopes", kinds=["orderbooks"]) as expected:
        for i in range(n):
            book = {
                side: [
                    [f"{p // 100}.{p % 100:02d}00", f"{q}.00"]
                    for p, q in zip(ps[i][::-1].tolist(), qs[i][::-1].tolist(), strict=True)
                    if p > 0
                ]
                for side, ps, qs in (
                    ("yes_dollars", books.yes_price, books.yes_size),
                    ("no_dollars", books.no_price, books.no_size),
                )
            }
            expected.write(
                "orderbooks",
                f"/markets/{tickers[books.market[i]]}/orderbook",
                {"depth": levels},
                dt.datetime.fromtimestamp(int(books.ts[i]), dt.UTC),
                {"orderbook_fp": book},
            )
    assert w.counts == expected.counts == {"orderbooks": n}
    name = KINDS["orderbooks"]
    lines = gzip.decompress((tmp_path / "lines" / name).read_bytes())
    assert lines == gzip.decompress((tmp_path / "envelopes" / name).read_bytes())


def test_some_days_have_no_trade_at_all(candles):
    days = [c for (_, period), day in candles.items() if period == 1440 for c in day.values()]
    assert any(c["price"]["close_dollars"] is None for c in days)
    assert any(c["price"]["close_dollars"] is not None for c in days)


# --- the price model --------------------------------------------------------------------------

MEDIUM = {"n_markets": 1500, "min_duration_days": 10, "max_duration_days": 40}


@pytest.fixture(scope="module")
def medium():
    return simulate(make_data(end="2025-05-31", **MEDIUM))


def longshot_gap(sim) -> tuple[float, float]:
    """(mean daily closing mid, YES rate) over market-days quoted in [0.05, 0.15)."""
    c = sim.candles(24)
    mid = (c.bid[:, 3] + c.ask[:, 3]) / 200
    cheap = (mid >= 0.05) & (mid < 0.15)
    return float(mid[cheap].mean()), float(sim.yes[c.market[cheap]].mean())


def test_longshots_are_over_priced(medium):
    price, rate = longshot_gap(medium)
    assert rate < price - 0.02
    unbiased_price, unbiased_rate = longshot_gap(
        simulate(make_data(end="2025-05-31", **MEDIUM, longshot_bias=1.0))
    )
    assert price - rate > unbiased_price - unbiased_rate  # the distortion causes the gap


def test_latent_probability_is_calibrated_and_resolves_by_close(medium):
    g, latent = medium.grid, medium.latent.prob
    np.testing.assert_allclose(latent[g.starts], medium.latent.prior)  # no news yet at open
    yes = medium.yes[g.market]
    for share in (0.0, 0.3, 0.6, 0.9):
        at = g.pos == (share * g.lengths[g.market]).astype(int)
        p, y = latent[at], yes[at]
        z = (y.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
        assert abs(z) < 4, (share, z)
    assert np.mean(np.abs(latent[g.last] - medium.yes)) < 0.05


def test_a_ladder_strike_is_the_calibrated_probability_of_its_bucket_or_above(medium):
    """Its latent is the tail sum of its event's buckets: calibrated against "winner >= j",
    ordered across the strikes at every hour, and at close the strikes agree with one winner."""
    u, g, latent = medium.universe, medium.grid, medium.latent.prob
    ladder = u.pays_above
    assert ladder.sum() > 300
    on = ladder[g.market]
    yes = medium.yes[g.market]
    for share in (0.0, 0.3, 0.6, 0.9):
        at = on & (g.pos == (share * g.lengths[g.market]).astype(int))
        p, y = latent[at], yes[at]
        z = (y.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
        assert abs(z) < 4, (share, z)
    higher = np.flatnonzero(on & (u.market_outcome[g.market] >= 2))
    # the strike below, same hour: the event's markets are consecutive and equally long
    assert np.all(latent[higher] <= latent[higher - g.lengths[g.market[higher]]] + 1e-12)
    strikes_yes = np.bincount(u.market_event[ladder], medium.yes[ladder], minlength=u.n_events)
    winner = medium.latent.winner[u.ladder]
    assert np.array_equal(strikes_yes[u.ladder], winner)  # buckets 1..W are the YES strikes


def test_prices_carry_most_but_not_all_of_the_latent_information(medium):
    g, q = medium.grid, medium.quotes
    mid = (q.bid + q.ask) / 200
    yes = medium.yes[g.market].astype(float)
    brier_latent = np.mean((medium.latent.prob - yes) ** 2)
    brier_mid = np.mean((mid - yes) ** 2)
    brier_base = np.mean((yes.mean() - yes) ** 2)
    assert brier_latent < brier_mid < 0.5 * brier_base
    assert np.all((q.ask - q.bid >= 1) & (q.bid >= 1) & (q.ask <= 99))


# --- errors and helpers -----------------------------------------------------------------------


def test_a_range_with_no_room_for_a_market_is_rejected():
    with pytest.raises(ParamError, match=r"data\.end: leaves 4 days"):
        make_data(start="2025-01-01", end="2025-01-04", min_duration_days=4)


def test_linear_recurrence_matches_a_loop_and_restarts_per_segment():
    rng = np.random.default_rng(0)
    lengths = np.array([5, 1, 0, 9, 3])
    coef, innov = rng.uniform(0, 1, lengths.sum()), rng.normal(size=lengths.sum())
    expected, i = [], 0
    for n in lengths:
        y = 0.0
        for _ in range(n):
            y = coef[i] * y + innov[i]
            expected.append(y)
            i += 1
    np.testing.assert_allclose(linear_recurrence(coef, innov, lengths), expected)


def test_page_slices_cover_everything_and_repeat_only_the_previous_last_item():
    assert page_slices(0, 10) == [(0, 0)]
    assert page_slices(25, 10) == [(0, 10), (10, 20), (20, 25)]
    overlapping = page_slices(25, 10, 1.0, np.random.default_rng(0))
    assert overlapping == [(0, 10), (9, 19), (18, 25)]


def test_segmented_cumsum_restarts_and_allows_empty_segments_at_the_end():
    values = np.array([1, 2, 3, 4, 5])
    lengths = np.array([0, 2, 3, 0, 0])
    assert segmented_cumsum(values, lengths).tolist() == [1, 3, 3, 7, 12]
    assert segmented_cumsum(np.array([], dtype=int), np.array([0, 0])).tolist() == []


def test_markets_without_any_trade_are_simulated(tmp_path):
    data = make_data(n_markets=30, trades_per_day=0.05)
    counts = write_synthetic_raw(data, tmp_path)
    assert counts["markets"] > 0 and counts["candlesticks"] > 0


def test_a_candle_closes_on_the_quote_a_book_snapshot_shows_at_its_end():
    """Both are the market's state at the candle's END: a daily close an hour stale would show
    a model priced off candles 'edges' against the book that are only the last hour's news."""
    sim = simulate(make_data())
    books = sim.books
    for hours in (24, 1):
        candles = sim.candles(hours)
        at = zip(books.market.tolist(), books.ts.tolist(), strict=True)
        key = {pair: snap for snap, pair in enumerate(at)}
        matched = 0
        ends = zip(candles.market.tolist(), candles.end_ts.tolist(), strict=True)
        for row, (m, end) in enumerate(ends):
            snap = key.get((m, end))
            if snap is None:
                continue  # no snapshot at the end: the market closed within the period
            matched += 1
            assert candles.bid[row, 3] == books.yes_price[snap, 0], (hours, m, end)
            assert candles.ask[row, 3] == 100 - books.no_price[snap, 0], (hours, m, end)
            assert candles.bid[row, 1] <= candles.bid[row, 3] <= candles.bid[row, 2]
        assert matched > 100
