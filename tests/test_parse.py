"""Raw API documents -> typed tables: both formats, one unit, de-duplication, clear errors."""

import datetime as dt
import gzip

import pytest

from kalshi_lab.data import tables
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import KINDS, RawWriter
from kalshi_lab.errors import DataError

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)

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


def current_market(ticker: str, result: str = "yes") -> dict:
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


def write_raw(raw_dir, *, trades_pages=None, markets=None, orderbook=None, candles=None):
    with RawWriter(raw_dir) as w:
        w.write("series", "/series/KXS", {}, T0, SERIES)
        w.write("events", "/events/KXS-25MAR", {}, T0, EVENT)
        w.write(
            "markets",
            "/markets",
            {"limit": 100},
            T0,
            {
                "markets": [current_market("KXS-25MAR-A")] if markets is None else markets,
                "cursor": "",
            },
        )
        for page in trades_pages or []:
            w.write("trades", "/markets/trades", {"ticker": "KXS-25MAR-A"}, T0, page)
        if orderbook is not None:
            w.write("orderbooks", "/markets/KXS-25MAR-A/orderbook", {"depth": 3}, T0, orderbook)
        if candles is not None:
            w.write(
                "candlesticks",
                "/series/KXS/markets/KXS-25MAR-A/candlesticks",
                {"period_interval": 1440},
                T0,
                candles,
            )


def test_current_and_legacy_formats_give_the_same_units(tmp_path):
    write_raw(tmp_path, markets=[current_market("KXS-25MAR-A"), legacy_market("KXS-25MAR-B")])
    markets = parse_raw(tmp_path)["markets"].to_pandas().set_index("ticker")
    assert markets.loc["KXS-25MAR-A", "last_price"] == pytest.approx(0.97)
    assert markets.loc["KXS-25MAR-B", "last_price"] == pytest.approx(0.03)
    assert markets.loc["KXS-25MAR-B", "volume"] == 120.0
    assert markets.loc["KXS-25MAR-A", "series_ticker"] == "KXS"
    assert str(markets["close_time"].dt.tz) == "UTC"


def test_trades_are_deduplicated_by_trade_id_across_pages(tmp_path):
    t1 = {
        "trade_id": "a",
        "ticker": "KXS-25MAR-A",
        "count_fp": "5.00",
        "yes_price_dollars": "0.4200",
        "no_price_dollars": "0.5800",
        "taker_side": "yes",
        "created_time": "2025-03-02T10:00:00.123456Z",
    }
    t2 = {
        "trade_id": "b",
        "ticker": "KXS-25MAR-A",
        "count": 2,
        "yes_price": 40,
        "no_price": 60,
        "taker_side": "no",
        "created_time": "2025-03-02T09:00:00Z",
    }
    write_raw(
        tmp_path,
        trades_pages=[{"trades": [t1], "cursor": "c1"}, {"trades": [t1, t2], "cursor": ""}],
    )
    trades = parse_raw(tmp_path)["trades"].to_pandas()
    assert sorted(trades["trade_id"]) == ["a", "b"]
    legacy = trades.set_index("trade_id").loc["b"]
    assert (legacy["yes_price"], legacy["no_price"], legacy["count"]) == pytest.approx(
        (0.40, 0.60, 2.0)
    )
    assert trades["created_time"].is_monotonic_increasing


def test_orderbook_keeps_both_sides_as_bids_in_dollars(tmp_path):
    book = {
        "orderbook_fp": {
            "yes_dollars": [["0.4000", "10.00"], ["0.4100", "3.00"]],
            "no_dollars": [["0.5700", "7.00"]],
        }
    }
    write_raw(tmp_path, orderbook=book)
    ob = parse_raw(tmp_path)["orderbook"].to_pandas()
    assert set(ob["ticker"]) == {"KXS-25MAR-A"}
    yes = ob[ob["side"] == "yes"]
    assert yes["price"].max() == pytest.approx(0.41)
    assert ob[ob["side"] == "no"]["count"].tolist() == [7.0]
    assert ob["snapshot_ts"].iloc[0] == T0


def test_legacy_orderbook_in_cents(tmp_path):
    write_raw(tmp_path, orderbook={"orderbook": {"yes": [[41, 3]], "no": None}})
    ob = parse_raw(tmp_path)["orderbook"].to_pandas()
    assert ob["price"].tolist() == pytest.approx([0.41])


def test_candle_without_trades_has_null_price_and_end_timestamp(tmp_path):
    quote = {
        "open_dollars": "0.40",
        "low_dollars": "0.40",
        "high_dollars": "0.42",
        "close_dollars": "0.41",
    }
    empty_price = dict.fromkeys(
        [
            "open_dollars",
            "low_dollars",
            "high_dollars",
            "close_dollars",
            "mean_dollars",
            "previous_dollars",
        ]
    )
    candles = {
        "ticker": "KXS-25MAR-A",
        "candlesticks": [
            {
                "end_period_ts": 1740873600,
                "yes_bid": quote,
                "yes_ask": quote,
                "price": empty_price,
                "volume_fp": "0.00",
                "open_interest_fp": "0.00",
            }
        ],
    }
    write_raw(tmp_path, candles=candles)
    c = parse_raw(tmp_path)["candles"].to_pandas()
    assert c["price_mean"].isna().all()
    assert c["end_period_ts"].iloc[0] == dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
    assert c["yes_bid_close"].iloc[0] == pytest.approx(0.41)


def test_tables_match_their_schemas(tmp_path):
    write_raw(tmp_path)
    for name, table in parse_raw(tmp_path).items():
        assert table.schema.equals(tables.TABLES[name]), name


def test_malformed_trade_names_the_file_and_field(tmp_path):
    bad = {
        "trade_id": "x",
        "ticker": "KXS-25MAR-A",
        "taker_side": "yes",
        "created_time": "2025-03-02T10:00:00Z",
        "count_fp": "1.00",
    }
    write_raw(tmp_path, trades_pages=[{"trades": [bad], "cursor": ""}])
    with pytest.raises(DataError, match=r"trades\.jsonl\.gz record 1: field yes_price_dollars"):
        parse_raw(tmp_path)


def test_unknown_ticker_and_broken_json_are_data_errors(tmp_path):
    t = {
        "trade_id": "a",
        "ticker": "NOPE",
        "count_fp": "1.00",
        "yes_price_dollars": "0.5",
        "taker_side": "yes",
        "created_time": "2025-03-02T10:00:00Z",
    }
    write_raw(tmp_path, trades_pages=[{"trades": [t], "cursor": ""}])
    with pytest.raises(DataError, match="NOPE"):
        parse_raw(tmp_path)
    with gzip.open(tmp_path / KINDS["markets"], "wt") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match="not valid JSON"):
        parse_raw(tmp_path)


def test_no_markets_is_a_data_error(tmp_path):
    write_raw(tmp_path, markets=[])
    with pytest.raises(DataError, match="no markets"):
        parse_raw(tmp_path)
