"""The local server's pure parts, without HTTP: exact money, netting, matching, cursors,
query parsing, format conversions."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from kalshi_lab.execution.fees import FeeSchedule, quadratic_units
from kalshi_lab.execution.fills import room_through, spread, take
from kalshi_lab.server.books import parse_levels
from kalshi_lab.server.errors import ApiError
from kalshi_lab.server.historical import historical_candle
from kalshi_lab.server.paging import CursorCodec, page
from kalshi_lab.server.positions import Position, floor_cents
from kalshi_lab.server.query import Query
from kalshi_lab.server.units import cents_text, count_text, dollars_text


def test_fees_are_exact_cent_ceilings_on_decimal_counts_and_prices():
    full, half = FeeSchedule(D("0.07")), FeeSchedule(D("0.035"))
    assert full.taker_fee_cents(quadratic_units(D(100), D(50))) == 175  # never 176 from a float
    assert full.taker_fee_cents(quadratic_units(D(10), D(50))) == 18  # ceil(17.5)
    assert full.taker_fee_cents(quadratic_units(D(1), D(50))) == 2  # ceil(1.75)
    assert half.taker_fee_cents(quadratic_units(D(100), D(50))) == 88  # half rate: ceil(87.5)
    # a fractional count at a sub-penny price: ceil(0.07 * 2.5 * 1.5 * 98.5 / 100) = ceil(0.26)
    assert full.taker_fee_cents(quadratic_units(D("2.50"), D("1.5"))) == 1
    assert floor_cents(D("-1.235")) == -124 and floor_cents(D("1.235")) == 123


def test_level_fees_are_what_the_accumulator_charges_and_add_up_to_one_fee():
    # 10 @ 3c + 10 @ 4c: ceil(2.037) = 3 at the first level, ceil(4.725) - 3 = 2 at the second:
    # 5 cents for the order, where a fee per level would charge ceil(2.037) + ceil(2.688) = 6
    fees = FeeSchedule(D("0.07"))
    levels = [quadratic_units(10, 3), quadratic_units(10, 4)]
    assert fees.level_fees_cents(levels) == [3, 2]
    assert fees.level_fees_cents(levels, maker=True) == [0, 0]  # this series charges no maker
    makers = FeeSchedule(D("0.07"), D("0.0175"))
    assert makers.level_fees_cents([quadratic_units(D(40), D(50))], maker=True) == [18]  # 17.5


def test_positions_net_through_zero_with_fifo_costs():
    p = Position("T", "E")
    assert p.trade(True, D(5), D("0.40")) == D("-2.00")  # buy 5 YES
    # sell 8 YES at 0.45: close 5 (+2.25), open 3 NO at 0.55 (-1.65)
    assert p.trade(False, D(8), D("0.45")) == D("0.60")
    assert (p.side, p.signed, p.realized, p.exposure) == ("no", D(-3), D("0.25"), D("1.65"))
    # buy 3 YES at 0.50: each closes a NO contract and returns 1 - 0.50
    assert p.trade(True, D(3), D("0.50")) == D("1.50")
    assert (p.side, p.realized, p.exposure) == (None, D("0.10"), D(0))
    assert count_text(p.signed) == "0.00"  # not "-0.00"
    p.trade(True, D(4), D("0.30"))
    p.settle(400, ts=7)  # 4 YES paid $1 each: realized + 4.00 - 1.20
    assert (p.size, p.side, p.realized, p.updated_ts) == (D(0), None, D("2.90"), 7)


def test_the_shared_fill_rules_work_on_decimal_levels():
    # levels are (price of the order's side in cents, contracts), best first
    asks = [(D(47), D(4)), (D("50"), D(8))]  # YES asks: NO bids at 0.53 and 0.50
    assert take(asks, True, D(49), D(10)) == [D(4)]  # stops at the first ask over the limit
    assert take(asks, True, D(50), D("5.5")) == [D(4), D("1.5")]
    bids = [(D(45), D(20)), (D(40), D(10))]
    assert take(bids, False, D(40), D(25)) == [D(20), D(5)]  # a sell walks down to its limit
    assert take(bids, False, D(46), D(1)) == []
    # a resting buy at 50 is traded through by the 47 ask only (not the 50: strictly better)
    assert room_through(asks, True, D(50)) == D(4)
    assert room_through(bids, False, D(44)) == D(20)
    assert spread(D("6.5"), [D(4), D(8)]) == [D(4), D("2.5")]


def test_orderbook_levels_in_every_recorded_format():
    current = {
        "orderbook_fp": {
            "yes_dollars": [["0.4500", "3.00"], ["0.4000", "1.00"]],
            "no_dollars": None,
        }
    }
    assert parse_levels(current, "yes") == ((D("0.4"), D(1)), (D("0.45"), D(3)))  # sorted ascending
    assert parse_levels(current, "no") == ()
    legacy = {"orderbook": {"yes": [[40, 2], [40, 3], [41, 0]]}}
    assert parse_levels(legacy, "yes") == ((D("0.40"), D(5)),)  # merged; empty levels dropped
    transitional = {"orderbook": {"no_dollars": [["0.5500", 7]], "no": [[55, 7]]}}
    assert parse_levels(transitional, "no") == ((D("0.55"), D(7)),)


def test_cursors_round_trip_and_refuse_anything_else():
    codec = CursorCodec(b"k" * 16)
    token = codec.encode("markets?{}", 41)
    assert codec.decode(token, "markets?{}") == 41
    assert CursorCodec(b"k" * 16).encode("markets?{}", "T-1") != token
    for bad, scope, other in (
        (token, 'markets?{"status":"open"}', codec),
        (token, "markets?{}", CursorCodec(b"x" * 16)),
        (token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "markets?{}", codec),
        ("", "markets?{}", codec),
    ):
        with pytest.raises(ApiError) as exc:
            other.decode(bad, scope)
        assert exc.value.status == 400


def test_page_resumes_after_the_last_key():
    items = ["a", "c", "d", "f"]
    assert page(items, lambda x: x, 2, None) == (["a", "c"], "c")
    assert page(items, lambda x: x, 2, "c") == (["d", "f"], None)
    assert page(items, lambda x: x, 2, "b") == (["c", "d"], "d")  # a key that vanished


def test_query_parsing_rules():
    q = Query({"limit": ["0"], "flag": ["T"], "names": ["A, B,,C"], "cursor": [""]})
    assert q.limit(100, 1000) == 100 and q.boolean("flag") and not q.boolean("absent")
    assert q.names("names") == ["A", "B", "C"] and q.text("cursor") is None
    for params, call in (
        ({"limit": ["-1"]}, lambda q: q.limit(100, 1000)),
        ({"flag": ["yes"]}, lambda q: q.boolean("flag")),
        ({"n": ["1.5"]}, lambda q: q.integer("n")),
    ):
        with pytest.raises(ApiError) as exc:
            call(Query(params))
        assert exc.value.status == 400


def test_money_text_is_exact():
    assert dollars_text(D("0.43")) == "0.4300"
    assert dollars_text(D("0.001")) == "0.0010"
    assert dollars_text(D("0.12345")) == "0.12345"  # sub-penny digits are kept, not rounded
    assert cents_text(-5) == "-0.0500" and count_text(D("2.5")) == "2.50"


def test_historical_candles_pass_through_and_keep_nulls():
    already = {
        "end_period_ts": 60,
        "yes_bid": {"open": "0.1000", "low": "0.1000", "high": "0.1000", "close": "0.1000"},
        "yes_ask": {"open": "0.2000", "low": "0.2000", "high": "0.2000", "close": "0.2000"},
        "price": dict.fromkeys(("open", "low", "high", "close", "mean", "previous")),
        "volume": "0.00",
        "open_interest": "3.00",
    }
    assert historical_candle(already) == already
