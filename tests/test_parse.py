"""Raw API documents -> typed tables: three formats, one unit, de-duplication, clear errors.

Documents are shaped as Kalshi's OpenAPI spec v3.13 describes them (``MarketCandlestick``,
``MarketCandlestickHistorical``, ``Trade``, ``Market``, ``GetMarketOrderbookResponse``) and,
for the legacy integer fields, as responses recorded before 2026-03-12 carried them.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.data import tables
from kalshi_lab.data.parse import _then_recorded, parse_raw
from kalshi_lab.data.raw_store import KINDS, RawWriter
from kalshi_lab.errors import DataError
from kalshi_lab.stages import parquet
from kalshi_lab.stages.runner import run_stage
from table_files import files_of

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
TICKER = "KXS-25MAR-A"

SERIES = {
    "series": {
        "ticker": "KXS",
        "title": "S",
        "category": "Econ",
        "frequency": "daily",
        "fee_type": "quadratic",
        "fee_multiplier": 0.5,
    }
}
EVENT = {
    "event": {
        "event_ticker": "KXS-25MAR",
        "series_ticker": "KXS",
        "title": "E",
        "mutually_exclusive": True,
    },
    "markets": [],
}


def current_market(ticker: str = TICKER, result: str = "yes") -> dict:
    return {
        "ticker": ticker,
        "event_ticker": "KXS-25MAR",
        "market_type": "binary",
        "yes_sub_title": ticker,
        "status": "finalized",
        "result": result,
        "open_time": "2025-03-01T00:00:00Z",
        "close_time": "2025-03-05T15:00:00Z",
        "settlement_ts": "2025-03-05T17:00:00Z",
        "last_price_dollars": "0.9700",
        "volume_fp": "120.00",
        "open_interest_fp": "80.00",
        "price_level_structure": "linear_cent",
    }


def legacy_market(ticker: str) -> dict:
    m = current_market(ticker, result="no")
    del m["last_price_dollars"], m["volume_fp"], m["open_interest_fp"]
    m.update(last_price=3, volume=120, open_interest=80)
    return m


def trade(trade_id: str = "a", **fields: Any) -> dict:
    return {
        "trade_id": trade_id,
        "ticker": TICKER,
        "count_fp": "5.00",
        "yes_price_dollars": "0.4200",
        "no_price_dollars": "0.5800",
        "taker_side": "yes",
        "created_time": "2025-03-02T10:00:00.123456Z",
        **fields,
    }


def legacy_trade(trade_id: str = "b") -> dict:
    t = trade(trade_id, count=5, yes_price=42, no_price=58)
    del t["count_fp"], t["yes_price_dollars"], t["no_price_dollars"]
    return t


BOOK = {
    "orderbook_fp": {
        "yes_dollars": [["0.4000", "10.00"], ["0.4100", "3.00"]],
        "no_dollars": [["0.5700", "7.00"]],
    }
}

# --- one candle (2025-03-01, period end 2025-03-02T00:00Z), in the API's three forms ---------
END = 1740873600
CANDLE_VALUES = {  # field -> (cents, dollar string)
    "yes_bid": {"open": (6, "0.0600"), "low": (5, "0.0500"), "high": (8, "0.0800"), "close": (7, "0.0700")},
    "yes_ask": {"open": (8, "0.0800"), "low": (7, "0.0700"), "high": (10, "0.1000"), "close": (9, "0.0900")},
    "price": {"open": (6, "0.0600"), "low": (6, "0.0600"), "high": (9, "0.0900"), "close": (7, "0.0700"), "mean": (7, "0.0700"), "previous": (5, "0.0500")},
}  # fmt: skip


def current_candle() -> dict:
    """``MarketCandlestick``: ``*_dollars`` strings, ``*_fp`` counts."""
    doc: dict[str, Any] = {"end_period_ts": END, "volume_fp": "12.00", "open_interest_fp": "30.00"}
    for part, values in CANDLE_VALUES.items():
        doc[part] = {f"{f}_dollars": text for f, (_, text) in values.items()}
    doc["price"]["min_dollars"], doc["price"]["max_dollars"] = "0.0600", "0.0900"
    return doc


def legacy_candle() -> dict:
    """Before 2026-03-12: unsuffixed integer cents and integer counts."""
    doc: dict[str, Any] = {"end_period_ts": END, "volume": 12, "open_interest": 30}
    for part, values in CANDLE_VALUES.items():
        doc[part] = {f: cents for f, (cents, _) in values.items()}
    return doc


def historical_candle() -> dict:
    """``MarketCandlestickHistorical``: unsuffixed names holding dollar and count STRINGS."""
    doc: dict[str, Any] = {"end_period_ts": END, "volume": "12.00", "open_interest": "30.00"}
    for part, values in CANDLE_VALUES.items():
        doc[part] = {f: text for f, (_, text) in values.items()}
    return doc


def write_raw(
    raw_dir: Path,
    *,
    trades_pages: list[dict] | None = None,
    markets: list[dict] | None = None,
    orderbook: dict | None = None,
    candles: dict | None = None,
    candle_path: str = f"/series/KXS/markets/{TICKER}/candlesticks",
) -> None:
    with RawWriter(raw_dir, may_be_empty=KINDS) as w:  # each test writes what it needs
        w.write("series", "/series/KXS", {}, T0, SERIES)
        w.write("events", "/events/KXS-25MAR", {}, T0, EVENT)
        page = {"markets": [current_market()] if markets is None else markets, "cursor": ""}
        w.write("markets", "/markets", {"limit": 100}, T0, page)
        for page in trades_pages or []:
            w.write("trades", "/markets/trades", {"ticker": TICKER}, T0, page)
        if orderbook is not None:
            w.write("orderbooks", f"/markets/{TICKER}/orderbook", {"depth": 3}, T0, orderbook)
        if candles is not None:
            w.write("candlesticks", candle_path, {"period_interval": 1440}, T0, candles)


def both_readers(raw_dir: Path) -> dict:
    """The tables, checked to be the same from the columnar and the record-by-record reader."""
    fast, by_record = parse_raw(raw_dir), parse_raw(raw_dir, fast=False)
    for name, table in fast.items():
        assert table.equals(by_record[name]), name
    return fast


# --- formats and units ------------------------------------------------------------------------


def test_current_and_legacy_markets_give_the_same_units(tmp_path):
    write_raw(tmp_path, markets=[current_market(), legacy_market("KXS-25MAR-B")])
    markets = both_readers(tmp_path)["markets"].to_pandas().set_index("ticker")
    assert markets.loc[TICKER, "last_price"] == pytest.approx(0.97)
    assert markets.loc["KXS-25MAR-B", "last_price"] == pytest.approx(0.03)
    assert markets.loc["KXS-25MAR-B", "volume"] == 120.0
    assert markets.loc[TICKER, "series_ticker"] == "KXS"
    assert str(markets["close_time"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    ("candle", "path"),
    [
        (legacy_candle, f"/series/KXS/markets/{TICKER}/candlesticks"),
        (historical_candle, f"/historical/markets/{TICKER}/candlesticks"),
    ],
)
def test_the_same_candle_in_every_format_gives_the_same_row(tmp_path, candle, path):
    write_raw(tmp_path / "current", candles={"ticker": TICKER, "candlesticks": [current_candle()]})
    write_raw(
        tmp_path / "other", candles={"ticker": TICKER, "candlesticks": [candle()]}, candle_path=path
    )
    current = both_readers(tmp_path / "current")["candles"]
    assert both_readers(tmp_path / "other")["candles"].equals(current)
    row = current.to_pylist()[0]
    assert (row["price_close"], row["yes_bid_close"], row["yes_ask_open"]) == (0.07, 0.07, 0.08)
    assert (row["volume"], row["open_interest"]) == (12.0, 30.0)
    assert row["end_period_ts"] == dt.datetime(2025, 3, 2, tzinfo=dt.UTC)


def test_legacy_cents_and_dollar_strings_give_the_same_float(tmp_path):
    """7 / 100 and float("0.07") are the same double: the format leaves no trace in a price."""
    legacy = [{**legacy_trade(f"t{c}"), "yes_price": c, "no_price": 100 - c} for c in range(101)]
    current = [
        trade(f"t{c}", yes_price_dollars=f"{c / 100:.4f}", no_price_dollars=f"{1 - c / 100:.4f}")
        for c in range(101)
    ]
    write_raw(tmp_path / "legacy", trades_pages=[{"trades": legacy, "cursor": ""}])
    write_raw(tmp_path / "current", trades_pages=[{"trades": current, "cursor": ""}])
    legacy_prices = both_readers(tmp_path / "legacy")["trades"].column("yes_price")
    assert legacy_prices.equals(both_readers(tmp_path / "current")["trades"].column("yes_price"))


def test_trades_are_deduplicated_by_trade_id_across_pages(tmp_path, caplog):
    t1, t2 = trade("a"), legacy_trade("b")
    t2["created_time"] = "2025-03-02T09:00:00Z"
    pages = [{"trades": [t1], "cursor": "c1"}, {"trades": [t1, t2], "cursor": ""}]
    write_raw(tmp_path, trades_pages=pages)
    with caplog.at_level(logging.INFO, logger="kalshi_lab.data.parse"):
        trades = both_readers(tmp_path)["trades"].to_pandas()
    assert "trades: dropped 1 of 3 rows repeating the trade_id" in caplog.text
    assert trades["trade_id"].tolist() == ["b", "a"]  # by time
    legacy = trades.set_index("trade_id").loc["b"]
    assert (legacy["yes_price"], legacy["no_price"], legacy["count"]) == (0.42, 0.58, 5.0)


def test_a_trade_without_no_price_gets_one_minus_yes(tmp_path):
    t = trade()
    del t["no_price_dollars"]
    write_raw(tmp_path, trades_pages=[{"trades": [t], "cursor": ""}])
    assert both_readers(tmp_path)["trades"].column("no_price").to_pylist() == [1.0 - 0.42]


def test_orderbook_keeps_both_sides_as_bids_in_dollars(tmp_path):
    write_raw(tmp_path, orderbook=BOOK)
    ob = both_readers(tmp_path)["orderbook"].to_pandas()
    assert ob["ticker"].unique().tolist() == [TICKER]
    assert ob["side"].tolist() == ["yes", "yes", "no"]
    assert ob["price"].tolist() == [0.40, 0.41, 0.57]
    assert ob["count"].tolist() == [10.0, 3.0, 7.0]
    assert (ob["snapshot_ts"] == T0).all()


def test_legacy_orderbook_in_cents_and_a_null_side_is_empty(tmp_path):
    write_raw(tmp_path, orderbook={"orderbook": {"yes": [[41, 3]], "no": None}})
    ob = both_readers(tmp_path)["orderbook"].to_pandas()
    assert ob["price"].tolist() == [0.41]
    assert ob["side"].tolist() == ["yes"]


def test_candle_without_trades_has_null_price_and_end_timestamp(tmp_path):
    candle = current_candle()
    candle["price"] = dict.fromkeys(candle["price"])
    write_raw(tmp_path, candles={"ticker": TICKER, "candlesticks": [candle]})
    c = both_readers(tmp_path)["candles"].to_pandas()
    assert c["price_mean"].isna().all() and c["price_close"].isna().all()
    assert c["yes_bid_close"].iloc[0] == 0.07


def test_tables_match_their_schemas(tmp_path):
    write_raw(tmp_path)
    for name, table in both_readers(tmp_path).items():
        assert table.schema.equals(tables.TABLES[name]), name


def test_a_file_of_two_gzip_members_reads_as_one(tmp_path):
    """Appending to a .jsonl.gz makes a second gzip member: still one stream of lines."""
    write_raw(
        tmp_path,
        trades_pages=[
            {"trades": [trade("a")], "cursor": "c"},
            {"trades": [trade("b")], "cursor": ""},
        ],
    )
    before = both_readers(tmp_path)["trades"]
    path = tmp_path / KINDS["trades"]
    first, second = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(first) + gzip.compress(second))
    assert both_readers(tmp_path)["trades"].equals(before)


# --- malformed documents: one DataError naming file, line and field ---------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("yes_price_dollars", "abc", "yes_price_dollars: not a decimal number: 'abc'"),
        ("yes_price_dollars", "42", "yes_price_dollars: not a price between 0 and 1 dollars"),
        ("yes_price_dollars", 0.42, "yes_price_dollars: expected a dollar string, got 0.42"),
        ("yes_price", 4200, "yes_price: not a price between 0 and 1 dollars: 4200"),
        ("count_fp", "-1.00", "count_fp: not a count of contracts"),
        ("taker_side", "buy", "taker_side: expected yes or no, got 'buy'"),
        ("created_time", "2025-03-02T10:00:00", "created_time: not an RFC 3339 time with a zone"),
        ("ticker", "", "ticker: expected a non-empty string, got ''"),
        ("trade_id", 7, "trade_id: expected a non-empty string, got 7"),
    ],
)
def test_a_malformed_trade_names_file_line_and_field(tmp_path, field, value, message):
    t = trade()
    if field == "yes_price":  # a legacy field only counts where the current one is absent
        del t["yes_price_dollars"]
    t[field] = value
    pages = [{"trades": [trade("ok")], "cursor": "c"}, {"trades": [trade("x"), t], "cursor": ""}]
    write_raw(tmp_path, trades_pages=pages)
    for fast in (True, False):
        with pytest.raises(DataError) as caught:
            parse_raw(tmp_path, fast=fast)
        where = f"{tmp_path / KINDS['trades']}:2: response.trades[1].{message}"
        assert str(caught.value).startswith(where), str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(end_period_ts="1740873600"), "candlesticks[0].end_period_ts: expected Unix seconds"),
        (lambda c: c["price"].update(close_dollars=None, close=7.0), "candlesticks[0].price.close: expected integer cents or a dollar string, got 7.0"),
        (lambda c: c["yes_bid"].update(close_dollars="x"), "candlesticks[0].yes_bid.close_dollars: not a decimal number"),
        (lambda c: c.pop("volume_fp"), "candlesticks[0].volume_fp: missing (and no legacy volume)"),
        (lambda c: c.update(yes_ask=[]), "candlesticks[0].yes_ask: expected an object"),
    ],
)  # fmt: skip
def test_a_malformed_candle_names_file_line_and_field(tmp_path, change, message):
    candle = current_candle()
    change(candle)
    write_raw(tmp_path, candles={"ticker": TICKER, "candlesticks": [candle]})
    for fast in (True, False):
        with pytest.raises(DataError, match=re.escape(f":1: response.{message}")):
            parse_raw(tmp_path, fast=fast)


@pytest.mark.parametrize(
    ("book", "message"),
    [
        ({"orderbook_fp": {"yes_dollars": [["0.40"]], "no_dollars": []}}, "response.orderbook_fp.yes_dollars[0]: expected a [price, count] pair"),
        ({"orderbook_fp": {"yes_dollars": [], "no_dollars": [["0.40", "x"]]}}, "response.orderbook_fp.no_dollars[0][1]: not a decimal number: 'x'"),
        ({"orderbook_fp": {"yes_dollars": [[40, "1.00"]], "no_dollars": []}}, "response.orderbook_fp.yes_dollars[0][0]: expected a dollar string, got 40"),
        ({"depth": 3}, "response.orderbook_fp: missing (and no legacy orderbook)"),
    ],
)  # fmt: skip
def test_a_malformed_orderbook_names_file_line_and_field(tmp_path, book, message):
    write_raw(tmp_path, orderbook=book)
    for fast in (True, False):
        with pytest.raises(DataError, match=re.escape(f"orderbooks.jsonl.gz:1: {message}")):
            parse_raw(tmp_path, fast=fast)


def test_a_market_of_an_unknown_event_names_its_line(tmp_path):
    write_raw(tmp_path, markets=[{**current_market(), "event_ticker": "NOPE"}])
    with pytest.raises(
        DataError, match=r"markets\.jsonl\.gz:1: response\.markets\[0\]\.event_ticker: 'NOPE'"
    ):
        parse_raw(tmp_path)


def test_unknown_ticker_and_no_markets_are_data_errors(tmp_path):
    write_raw(tmp_path / "a", trades_pages=[{"trades": [trade(ticker="NOPE")], "cursor": ""}])
    with pytest.raises(DataError, match="trades for tickers not in the markets data: \\['NOPE'\\]"):
        parse_raw(tmp_path / "a")
    write_raw(tmp_path / "b", markets=[])
    with pytest.raises(DataError, match="no markets"):
        parse_raw(tmp_path / "b")


# --- the readers agree on anything: a fuzz over single-field changes ---------------------------

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-200, 200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0.5", "0.0700", "1.5", "12.00", "abc", "yes", "2025-03-02T10:00:00Z"]),
    st.lists(st.sampled_from(["0.4000", "1.00", 3]), max_size=3),
    st.just({}),
)


#: fields the readers know but the documents above lack: legacy names, the legacy book
ADDED_KEYS = ("yes_price", "count", "close", "mean", "volume", "yes", "orderbook", "orderbook_fp")


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in ``doc`` a value can be set: its fields and elements, and new fields."""
    if isinstance(doc, dict):
        new = [(*prefix, k) for k in ADDED_KEYS if k not in doc]
        return new + [p for k, v in doc.items() for p in [(*prefix, k), *_paths(v, (*prefix, k))]]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in [(*prefix, i), *_paths(v, (*prefix, i))]]
    return []


def _set(doc: Any, path: tuple, value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


DOCS = {
    "trades": {"trades": [trade(), trade("b", created_time="2025-03-02T09:00:00Z")], "cursor": ""},
    "candles": {"ticker": TICKER, "candlesticks": [current_candle()]},
    "orderbook": BOOK,
}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_both_readers_give_the_same_tables_or_both_a_data_error(tmp_path_factory, data):
    kind = data.draw(st.sampled_from(sorted(DOCS)))
    doc = copy.deepcopy(DOCS[kind])
    path = data.draw(st.sampled_from(_paths(doc)))
    _set(doc, path, data.draw(JSON_VALUES))
    raw = tmp_path_factory.mktemp("fuzz")
    write_raw(
        raw,
        trades_pages=[doc] if kind == "trades" else None,
        candles=doc if kind == "candles" else None,
        orderbook=doc if kind == "orderbook" else None,
    )
    outcomes = []
    for fast in (True, False):
        try:
            outcomes.append(parse_raw(raw, fast=fast))
        except DataError as exc:
            outcomes.append(type(exc))
    if isinstance(outcomes[0], dict) and isinstance(outcomes[1], dict):
        for name, table in outcomes[0].items():
            assert table.equals(outcomes[1][name]), (name, path)
    else:
        assert outcomes == [DataError, DataError], path


# --- the stage: one line on stderr, exit code 2, the previous tables left alone ----------------


def run_parquet(workdir: Path, monkeypatch, capsys) -> tuple[int, str]:
    if not (workdir / "params.yaml").exists():  # the stage reads data.book_interval
        shutil.copy(Path(__file__).parents[1] / "params.yaml", workdir / "params.yaml")
    monkeypatch.chdir(workdir)
    try:
        run_stage("parquet", parquet.main, [])
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.fixture
def workdir(tmp_path, monkeypatch, capsys) -> Path:
    """A directory with good raw data and the tables the parquet stage made of it."""
    write_raw(
        tmp_path / "data/raw", trades_pages=[{"trades": [trade()], "cursor": ""}], orderbook=BOOK
    )
    assert run_parquet(tmp_path, monkeypatch, capsys)[0] == 0
    return tmp_path


def _damage(raw: Path, how: str) -> str:
    """Damage the trades file of ``raw``; returns a pattern of the one line the stage prints."""
    path = raw / KINDS["trades"]
    good = gzip.decompress(path.read_bytes())
    if how == "missing":
        path.unlink()
        return r"error: parquet: data/raw/trades\.jsonl\.gz: missing: "
    if how == "truncated":
        path.write_bytes(gzip.compress(good * 3)[:-12])
        return r"error: parquet: data/raw/trades\.jsonl\.gz:3: record: unreadable gzip data "
    if how == "bad checksum":
        data = bytearray(path.read_bytes())
        data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
        path.write_bytes(bytes(data))
        return r"error: parquet: data/raw/trades\.jsonl\.gz:\d: record: unreadable gzip data \(CRC"
    if how == "not json":
        path.write_bytes(gzip.compress(good + b"{not json\n"))
        return r"error: parquet: data/raw/trades\.jsonl\.gz:2: record: not valid JSON "
    path.write_bytes(gzip.compress(good.replace(b'"0.4200"', b'"0.42.00"')))
    return (
        r"error: parquet: data/raw/trades\.jsonl\.gz:1: response\.trades\[0\]\.yes_price_dollars: "
        r"not a decimal number: '0\.42\.00'"
    )


@pytest.mark.parametrize("how", ["missing", "truncated", "bad checksum", "not json", "bad price"])
def test_bad_raw_data_stops_the_stage_with_one_line_and_keeps_the_old_tables(
    workdir, monkeypatch, capsys, how
):
    before = files_of(workdir / "data/parquet")
    expected = _damage(workdir / "data/raw", how)
    code, err = run_parquet(workdir, monkeypatch, capsys)
    assert code == 2
    assert re.match(expected, err), err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert files_of(workdir / "data/parquet") == before
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["parquet", "raw"]


def test_the_stage_writes_every_table_in_its_schema(workdir):
    root = workdir / "data/parquet"
    for name, schema in tables.TABLES.items():
        for file in tables.table_dataset(name, root).files:  # a table without rows has none
            assert pq.read_schema(file).equals(schema), file
    assert len(tables.read_table("orderbook", root)) == 3


def test_without_recorded_books_the_fetched_parts_pass_through_in_order():
    """No recorded rows: the fetched parts come through as they are, in order, then the empty
    recorded table (the stage skips gathering the fetched keys then)."""
    parts = [
        pa.table(
            {
                "ticker": [f"T-{k}"] * 2,
                "snapshot_ts": pa.array([k, k], pa.int64()).cast(tables.UTC_TS),
                "side": ["yes", "no"],
                "price": [0.4, 0.6],
                "count": [1.0, 2.0],
                "source": ["snapshot"] * 2,
            },
            schema=tables.ORDERBOOK,
        )
        for k in range(3)
    ]
    out = list(_then_recorded(iter(parts), tables.ORDERBOOK.empty_table()))
    assert out[:-1] == parts
    assert out[-1].num_rows == 0
