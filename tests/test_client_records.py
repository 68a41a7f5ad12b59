"""Client records read every dialect Kalshi sends into one shape, with exact Decimal money.

Documents are drawn from the shapes of the official OpenAPI spec (tests/openapi_shapes.py), so
these tests follow what the real API sends, not what the simulator writes.
"""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.client.records import (
    Balance,
    Candlestick,
    Event,
    Fill,
    HistoricalCutoff,
    Market,
    MarketPosition,
    Order,
    Orderbook,
    Series,
    Trade,
)
from openapi_shapes import SHAPES_PATH, SPEC_PATH, extract, shapes, strategy


@pytest.mark.skipif(not SPEC_PATH.exists(), reason="the full OpenAPI spec is not in this checkout")
def test_the_shape_fixture_is_the_spec_s():
    import yaml

    full = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert extract(full) == shapes(), f"{SHAPES_PATH} is stale: run python tests/openapi_shapes.py"


SPEC = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SPEC
@given(strategy("GetMarketsResponse"))
def test_spec_shaped_markets_read_exactly(body):
    for doc in body["markets"]:
        market = Market.model_validate(doc)
        assert market.ticker == doc["ticker"]
        assert market.yes_bid == Decimal(doc["yes_bid_dollars"])
        assert market.volume == Decimal(doc["volume_fp"])
        assert market.result == (doc["result"] or None)


@SPEC
@given(strategy("GetTradesResponse"))
def test_spec_shaped_trades_read_exactly(body):
    for doc in body["trades"]:
        trade = Trade.model_validate(doc)
        assert trade.count == Decimal(doc["count_fp"])
        assert trade.yes_price == Decimal(doc["yes_price_dollars"])
        assert trade.taker_side == doc["taker_side"]


@SPEC
@given(
    strategy("GetMarketCandlesticksResponse"), strategy("GetMarketCandlesticksHistoricalResponse")
)
def test_both_candle_schemas_read_as_dollars(live, archived):
    for doc in live["candlesticks"]:
        candle = Candlestick.model_validate(doc)
        assert candle.yes_ask.close == Decimal(doc["yes_ask"]["close_dollars"])
        assert candle.volume == Decimal(doc["volume_fp"])
    for doc in archived["candlesticks"]:
        candle = Candlestick.model_validate(doc)
        # historical candles carry dollar STRINGS under unsuffixed names: never cents
        assert candle.yes_bid.close == Decimal(doc["yes_bid"]["close"])
        assert candle.volume == Decimal(doc["volume"])
        close = doc["price"]["close"]
        assert candle.price.close == (None if close is None else Decimal(close))


def test_the_same_candle_in_all_three_dialects_is_one_record():
    current = {
        "end_period_ts": 1735776000,
        "yes_bid": {
            "open_dollars": "0.0600",
            "low_dollars": "0.0500",
            "high_dollars": "0.0800",
            "close_dollars": "0.0700",
        },
        "yes_ask": {
            "open_dollars": "0.0800",
            "low_dollars": "0.0700",
            "high_dollars": "0.1000",
            "close_dollars": "0.0900",
        },
        "price": {
            "open_dollars": "0.0700",
            "low_dollars": "0.0600",
            "high_dollars": "0.0900",
            "close_dollars": "0.0800",
            "mean_dollars": "0.0750",
            "previous_dollars": "0.0700",
        },
        "volume_fp": "120.00",
        "open_interest_fp": "300.00",
    }
    legacy = {
        "end_period_ts": 1735776000,
        "yes_bid": {"open": 6, "low": 5, "high": 8, "close": 7},
        "yes_ask": {"open": 8, "low": 7, "high": 10, "close": 9},
        "price": {"open": 7, "low": 6, "high": 9, "close": 8, "mean": "0.0750", "previous": 7},
        "volume": 120,
        "open_interest": 300,
    }
    historical = {
        "end_period_ts": 1735776000,
        "yes_bid": {"open": "0.0600", "low": "0.0500", "high": "0.0800", "close": "0.0700"},
        "yes_ask": {"open": "0.0800", "low": "0.0700", "high": "0.1000", "close": "0.0900"},
        "price": {
            "open": "0.0700",
            "low": "0.0600",
            "high": "0.0900",
            "close": "0.0800",
            "mean": "0.0750",
            "previous": "0.0700",
        },
        "volume": "120.00",
        "open_interest": "300.00",
    }
    records = [Candlestick.model_validate(d) for d in (current, legacy, historical)]
    assert records[0] == records[1] == records[2]
    assert records[0].yes_bid.close == Decimal("0.07")


@SPEC
@given(strategy("GetMarketOrderbookResponse"))
def test_orderbook_best_bid_is_the_last_level(body):
    book = Orderbook.model_validate(body)
    yes = body["orderbook_fp"]["yes_dollars"]
    no = body["orderbook_fp"]["no_dollars"]
    assert book.best_yes_bid == (Decimal(yes[-1][0]) if yes else None)
    assert book.yes_ask == (1 - Decimal(no[-1][0]) if no else None)


def test_legacy_orderbook_is_in_cents():
    book = Orderbook.model_validate({"orderbook": {"yes": [[40, 10], [42, 13]], "no": [[55, 5]]}})
    assert book.best_yes_bid == Decimal("0.42")
    assert book.yes_ask == Decimal("0.45")
    assert book.no_ask == Decimal("0.58")


def test_legacy_market_and_trade_equal_their_current_form():
    current = Trade.model_validate(
        {
            "trade_id": "t1",
            "ticker": "A",
            "count_fp": "3.00",
            "yes_price_dollars": "0.4300",
            "no_price_dollars": "0.5700",
            "taker_side": "yes",
            "created_time": "2025-07-19T14:22:42.193311Z",
        }
    )
    legacy = Trade.model_validate(
        {
            "trade_id": "t1",
            "ticker": "A",
            "count": 3,
            "yes_price": 43,
            "no_price": 57,
            "price": 0.43,
            "taker_side": "yes",
            "created_time": "2025-07-19T14:22:42.193311Z",
        }
    )
    assert current == legacy
    assert legacy.yes_price == Decimal("0.43")  # exact: 43 cents, not a float


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", 1.5, True])
def test_a_price_that_is_not_an_exact_number_is_refused(bad):
    with pytest.raises(ValueError, match="yes_price"):
        Trade.model_validate(
            {
                "trade_id": "t",
                "ticker": "A",
                "count_fp": "1.00",
                "yes_price_dollars": bad,
                "taker_side": "yes",
                "created_time": "2025-01-01T00:00:00Z",
            }
        )


@SPEC
@given(
    strategy("GetSeriesResponse"),
    strategy("GetEventResponse"),
    strategy("GetHistoricalCutoffResponse"),
    strategy("GetBalanceResponse"),
)
def test_spec_shaped_series_event_cutoff_balance(series, event, cutoff, balance):
    assert Series.model_validate(series["series"]).ticker == series["series"]["ticker"]
    assert Event.model_validate(event["event"]).event_ticker == event["event"]["event_ticker"]
    assert HistoricalCutoff.model_validate(cutoff).market_settled_ts.tzinfo is not None
    assert Balance.model_validate(balance).balance == balance["balance"]


@SPEC
@given(
    strategy("GetPositionsResponse"),
    strategy("GetOrdersResponse"),
    strategy("GetFillsResponse"),
    strategy("CancelOrderResponse"),
)
def test_spec_shaped_portfolio_documents(positions, orders, fills, cancelled):
    for doc in positions["market_positions"]:
        assert MarketPosition.model_validate(doc).position == Decimal(doc["position_fp"])
    for doc in [*orders["orders"], cancelled["order"]]:
        order = Order.model_validate(doc)
        assert order.fill_count == Decimal(doc["fill_count_fp"])
        assert order.yes_price == Decimal(doc["yes_price_dollars"])
    for doc in fills["fills"]:
        fill = Fill.model_validate(doc)
        assert fill.count == Decimal(doc["count_fp"])
        assert fill.fee_cost == Decimal(doc["fee_cost"])


@given(st.integers(1, 99))
def test_legacy_cents_convert_exactly(cents):
    trade = Trade.model_validate(
        {
            "trade_id": "t",
            "ticker": "A",
            "count": 1,
            "yes_price": cents,
            "taker_side": "no",
            "created_time": "2025-01-01T00:00:00Z",
        }
    )
    assert trade.yes_price * 100 == cents
    assert trade.no_price == 1 - trade.yes_price
