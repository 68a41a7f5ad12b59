"""SimulatedKalshiExchange: asks derived from the other side's bids, depth, no look-ahead, hours."""

import pandas as pd
import pytest

from kalshi_lab.data.tables import CANDLES
from kalshi_lab.errors import DataError
from kalshi_lab.execution.decision import ContractOrder
from kalshi_lab.execution.exchange import SimulatedKalshiExchange

NO_CANDLES = CANDLES.empty_table().to_pandas()  # books only

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
COLUMNS = ["ticker", "snapshot_ts", "side", "price", "count"]
# bids only, ascending, best bid LAST (as the API returns them)
BOOK = [
    ("A", T0, "yes", 0.40, 10.0),
    ("A", T0, "yes", 0.42, 5.0),
    ("A", T0, "no", 0.50, 3.0),
    ("A", T0, "no", 0.55, 4.0),
    # a later snapshot with very different prices: must never be seen before T0 + 6h
    ("A", T0 + 6 * H, "yes", 0.80, 10.0),
    ("A", T0 + 6 * H, "no", 0.15, 10.0),
]
MARKETS = pd.DataFrame(
    {
        "ticker": ["A"],
        "event_ticker": ["E"],
        "series_ticker": ["S"],
        "close_time": [T0 + 10 * H],
        "settlement_ts": [pd.NaT],
        "result": [None],
    }
)
SERIES = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})
CASH = 1_000_000  # the venue's balance in cents


def exchange(rows=BOOK, share: float = 1.0) -> SimulatedKalshiExchange:
    return SimulatedKalshiExchange(
        pd.DataFrame(rows, columns=COLUMNS), NO_CANDLES, MARKETS, SERIES, 0.07, share, 0.1, CASH
    )


def order(side="yes", action="buy", count=5, limit=50, **kw) -> ContractOrder:
    return ContractOrder("A", "E", side, action, count, limit, T0, **kw)


def take(ex: SimulatedKalshiExchange, o: ContractOrder, ts: pd.Timestamp):
    """The taker fill of an ioc order sent at ts, or None."""
    fills = ex.submit(o, ts)
    assert len(fills) <= 1
    return fills[0] if fills else None


def test_quotes_take_the_last_bid_as_best_and_derive_asks():
    q = exchange().quotes(["A"], T0).loc["A"]
    assert q[["yes_bid", "no_bid", "yes_ask", "no_ask"]].tolist() == [42, 55, 45, 58]


def test_buying_yes_walks_no_bids_from_the_best_and_pays_one_minus_price():
    fill = take(exchange(), order(count=5, limit=50), T0)
    # 4 at 100 - 55 = 45, then 1 at 100 - 50 = 50
    assert (fill.count, fill.cost_cents) == (5, 4 * 45 + 50)
    assert fill.fee_cents == 9  # ceil(0.07 * (4 * 45 * 55 + 50 * 50) / 100) = ceil(8.68)
    assert take(exchange(), order(count=5, limit=45), T0).count == 4  # the limit stops it


def test_selling_hits_bids_and_buying_no_takes_yes_bids():
    ex = exchange()
    take(ex, order(count=6, limit=50), T0)  # buying YES takes NO bids, leaves YES bids
    sell = take(ex, order(action="sell", count=6, limit=40), T0)
    assert (sell.count, sell.cost_cents) == (6, 5 * 42 + 40)
    buy_no = take(exchange(), order(side="no", count=3, limit=60), T0)
    assert (buy_no.count, buy_no.cost_cents) == (3, 3 * 58)


def test_depth_consumed_stays_consumed_for_the_snapshot():
    ex = exchange()
    assert take(ex, order(count=4, limit=45), T0).count == 4
    assert take(ex, order(count=4, limit=45), T0 + H) is None  # same snapshot, level gone
    # buying NO and selling YES share the YES bids
    assert take(ex, order(action="sell", count=4, limit=42), T0).count == 4
    assert take(ex, order(side="no", count=5, limit=58), T0).count == 1  # 5 at 42, 4 sold
    # the next snapshot shows a fresh book
    assert take(ex, order(side="no", count=4, limit=90), T0 + 6 * H).count == 4  # 100 - 80


def test_no_look_ahead():
    ex = exchange()
    before = ex.quotes(["A"], T0 - H).loc["A"]
    assert pd.isna(before["quote_ts"]) and pd.isna(before["yes_bid"])
    assert take(ex, order(), T0 - H) is None
    q = ex.quotes(["A"], T0 + 6 * H - pd.Timedelta(microseconds=1)).loc["A"]
    assert q["quote_ts"] == T0 and q["yes_bid"] == 42
    fill = take(ex, order(count=1), T0 + 5 * H)
    assert fill.quote_ts == T0 and fill.ts == T0 + 5 * H and fill.cost_cents == 45
    assert ex.quotes(["A"], T0 + 6 * H).loc["A", "yes_bid"] == 80


def test_the_venue_refuses_sells_not_held_and_buys_beyond_its_balance():
    ex = exchange()
    assert take(ex, order(action="sell", count=1, limit=1), T0) is None
    assert ex.unfilled["sell of contracts not held on the venue"] == 1
    poor = SimulatedKalshiExchange(
        pd.DataFrame(BOOK, columns=COLUMNS), NO_CANDLES, MARKETS, SERIES, 0.07, 1.0, 0.1, 100
    )
    fill = take(poor, order(count=5, limit=50), T0)
    assert fill.count == 2 and poor.balance_cents() == 100 - 90 - 4


def test_max_fill_share_caps_each_level():
    fill = take(exchange(share=0.5), order(count=10, limit=50), T0)
    assert fill.count == 2 + 1  # half of 4, half of 3 (rounded down)


def test_budget_caps_cost_plus_fee():
    fill = take(exchange(), order(count=5, limit=50, max_cost_cents=100), T0)
    assert fill.count == 2 and fill.cost_cents + fill.fee_cents <= 100  # 90 + 4
    assert take(exchange(), order(count=5, max_cost_cents=46), T0) is None  # 45 + fee 2


def test_no_trading_at_or_after_close():
    ex = exchange()
    assert ex.is_open("A", T0 + 10 * H - pd.Timedelta(microseconds=1))
    assert not ex.is_open("A", T0 + 10 * H)
    assert take(ex, order(), T0 + 10 * H) is None
    with pytest.raises(DataError, match="markets table"):
        ex.is_open("Z", T0)


def test_quotes_between_snapshots_flag_open_markets_and_their_fee_rate():
    ex = exchange()
    q = ex.quotes(["A", "Z"], T0 + H)
    assert q.loc["A", ["yes_bid", "no_bid", "yes_ask", "no_ask"]].tolist() == [42, 55, 45, 58]
    assert q.loc["A", "quote_ts"] == T0 and q.loc["A", "is_open"]
    assert q.loc["A", "taker_rate"] == pytest.approx(0.07)
    assert q.loc["Z"].isna()["yes_bid"] and not q.loc["Z", "is_open"]


# a resting buy of YES at 45: the ask is 50 when sent; 2 hours later asks of 40 and 42 trade
# through it; 6 hours later the ask is back at 50
RESTING_BOOK = [
    ("A", T0, "no", 0.50, 10.0),
    ("A", T0 + 2 * H, "no", 0.58, 5.0),
    ("A", T0 + 2 * H, "no", 0.60, 3.0),
    ("A", T0 + 6 * H, "no", 0.50, 10.0),
]


def test_gtc_rest_fills_as_maker_at_its_limit_once_the_market_trades_through_it():
    ex = exchange(RESTING_BOOK)
    o = order(count=6, limit=45, time_in_force="gtc")
    assert ex.submit(o, T0) == []  # the ask of 50 is above the limit: nothing crosses
    assert ex.fills(T0 + H) == []  # nothing traded through yet: no look-ahead
    (fill,) = ex.fills(T0 + 3 * H)
    assert (fill.ts, fill.count, fill.cost_cents, fill.liquidity) == (T0 + 2 * H, 6, 270, "maker")
    assert fill.fee_cents == 0 and fill.order_id == o.client_order_id  # quadratic: makers pay 0
    assert ex.fills(T0 + 9 * H) == []  # filled: nothing rests any more
    assert ex.positions() == {"A": ("yes", 6)}


def test_maker_fee_only_on_series_that_charge_makers():
    series = SERIES.assign(fee_type="quadratic_with_maker_fees")
    ex = SimulatedKalshiExchange(
        pd.DataFrame(RESTING_BOOK, columns=COLUMNS),
        NO_CANDLES,
        MARKETS,
        series,
        0.07,
        1.0,
        0.1,
        CASH,
    )
    ex.submit(order(count=6, limit=45, time_in_force="gtc"), T0)
    (fill,) = ex.fills(T0 + 3 * H)
    assert fill.fee_cents == 3  # ceil(0.0175 * 6 * 0.45 * 0.55 * 100) = ceil(2.599)


def test_ioc_rest_and_cancelled_rest_never_fill():
    ex = exchange(RESTING_BOOK)
    ex.submit(order(count=6, limit=45), T0)  # ioc: the rest is cancelled at once
    gtc = order(count=6, limit=45, time_in_force="gtc", client_order_id="x")
    ex.submit(gtc, T0)
    ex.cancel(gtc, T0 + H)
    assert ex.fills(T0 + 9 * H) == []


def test_a_rest_takes_only_the_depth_that_traded_through_it():
    ex = exchange(RESTING_BOOK)
    ex.submit(order(count=20, limit=45, time_in_force="gtc"), T0)
    assert [f.count for f in ex.fills(T0 + 9 * H)] == [8]  # 5 at 42 and 3 at 40; 50 is not through


def test_settlement_is_an_exchange_event_paid_on_the_venue_ledger():
    markets = MARKETS.assign(settlement_ts=[T0 + 12 * H], result=["yes"])
    ex = SimulatedKalshiExchange(
        pd.DataFrame(BOOK, columns=COLUMNS), NO_CANDLES, markets, SERIES, 0.07, 1.0, 0.1, 10_000
    )
    (fill,) = ex.submit(order(count=4, limit=45), T0)
    assert ex.settlements(T0 + 11 * H) == []
    (settled,) = ex.settlements(T0 + 12 * H)
    assert (settled.ticker, settled.result, settled.ts) == ("A", "yes", T0 + 12 * H)
    assert ex.positions() == {}
    assert ex.balance_cents() == 10_000 - fill.cost_cents - fill.fee_cents + 400
    assert ex.settlements(T0 + 48 * H) == []  # reported once


def test_subpenny_prices_are_refused():
    with pytest.raises(DataError, match="one-cent grid"):
        exchange([("A", T0, "yes", 0.425, 1.0)])


def test_quotes_of_no_markets_is_an_empty_frame():
    q = exchange().quotes([], T0)
    assert q.empty and {"yes_bid", "no_ask", "is_open"} <= set(q.columns)


def test_repeated_rows_of_one_level_are_one_level():
    ex = exchange([("A", T0, "no", 0.55, 2.0), ("A", T0, "no", 0.55, 3.0)])
    assert take(ex, order(count=9, limit=45), T0).count == 5
    assert take(ex, order(count=1, limit=45), T0) is None


def test_market_of_a_series_without_fee_settings_is_a_data_error():
    markets = pd.DataFrame(
        {
            "ticker": ["A"],
            "series_ticker": ["S-MISSING"],
            "close_time": [pd.Timestamp("2025-01-10", tz="UTC")],
        }
    )
    series = pd.DataFrame(
        {"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]}
    )
    orderbook = pd.DataFrame(
        {
            "ticker": ["A"],
            "snapshot_ts": [pd.Timestamp("2025-01-01", tz="UTC")],
            "side": ["yes"],
            "price": [0.4],
            "count": [10.0],
        }
    )
    with pytest.raises(DataError, match="S-MISSING"):
        SimulatedKalshiExchange(orderbook, NO_CANDLES, markets, series, 0.07, 1.0, 0.1)
