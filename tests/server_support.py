"""Shared pieces of the local-server tests: small raw datasets whose contents the tests know,
request signing for ``requests``, and a cursor-following reader."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.data.raw_store import RawWriter
from kalshi_lab.params import DataParams, SyntheticParams
from kalshi_lab.simulator import write_synthetic_raw

KEY_ID = "0b6c7c2e-0000-4000-8000-00000000c0de"

# --- the hand-made dataset: every number known --------------------------------------------------

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NOW = T0 + 5 * DAY  # the latest orderbook snapshot
CUTOFF = T0 + 3 * DAY  # B settled before it, A and C after; trades split at it
OPEN_A, CLOSED_B, HALF_C, LATE_D = "KXTEST-E1-A", "KXTEST-E1-B", "KXHALF-E2-C", "KXTEST-E3-D"
#: trade i (1..15) is created at T0 + i * 7 h + 0.25 s: i <= 10 before CUTOFF; B's are 3 and 6
HANDMADE_TRADES = 15
TRADE_STEP = dt.timedelta(hours=7)
SUBSECOND = dt.timedelta(microseconds=250_000)
B_TRADES = (3, 6)
#: A's book at NOW: YES bids and NO bids, ascending (best last)
BOOK_A = {
    "yes_dollars": [["0.4000", "10.00"], ["0.4200", "5.00"], ["0.4500", "20.00"]],
    "no_dollars": [["0.5000", "8.00"], ["0.5200", "10.00"], ["0.5300", "4.00"]],
}


def ts(t: dt.datetime) -> int:
    return int(t.timestamp())


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _series(ticker: str, multiplier: float) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "frequency": "daily",
        "title": f"Series {ticker}",
        "category": "Economics" if multiplier == 1 else "Financials",
        "tags": ["test", ticker.lower()],
        "settlement_sources": [],
        "contract_url": "",
        "contract_terms_url": "",
        "fee_type": "quadratic",
        "fee_multiplier": multiplier,
        "additional_prohibitions": [],
        "last_updated_ts": iso(T0),
    }


def _market(
    ticker: str,
    event: str,
    close: dt.datetime,
    *,
    open_: dt.datetime = T0,
    fractional: bool = False,
    status: str = "finalized",
) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "event_ticker": event,
        "market_type": "binary",
        "created_time": iso(open_ - DAY),
        "open_time": iso(open_),
        "close_time": iso(close),
        "updated_time": iso(close),
        "settlement_ts": iso(close + dt.timedelta(hours=1)),
        "status": status,
        "result": "yes",
        "yes_bid_dollars": "0.4500",
        "yes_ask_dollars": "0.4700",
        "last_price_dollars": "0.4600",
        "volume_fp": "100.00",
        "fractional_trading_enabled": fractional,
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    }


def _trade(i: int, ticker: str, at: dt.datetime, cents: int) -> dict[str, Any]:
    return {
        "trade_id": f"00000000-0000-4000-8000-{i:012d}",
        "ticker": ticker,
        "count_fp": f"{i % 7 + 1}.00",
        "yes_price_dollars": f"0.{cents:02d}00",
        "no_price_dollars": f"0.{100 - cents:02d}00",
        "taker_side": "yes" if i % 2 else "no",
        "created_time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


#: current-format daily candle of A, and a LEGACY integer-cents candle of B
CANDLE_A = {
    "end_period_ts": ts(T0 + DAY),
    "yes_bid": {"open_dollars": "0.4000", "low_dollars": "0.3900", "high_dollars": "0.4500", "close_dollars": "0.4400"},
    "yes_ask": {"open_dollars": "0.4200", "low_dollars": "0.4100", "high_dollars": "0.4700", "close_dollars": "0.4600"},
    "price": {"open_dollars": "0.4100", "low_dollars": "0.4100", "high_dollars": "0.4500", "close_dollars": "0.4500",
              "mean_dollars": "0.4321", "previous_dollars": None, "min_dollars": "0.4100", "max_dollars": "0.4500"},
    "volume_fp": "12.00",
    "open_interest_fp": "10.00",
}  # fmt: skip
LEGACY_CANDLE_B = {
    "end_period_ts": ts(T0 + DAY),
    "yes_bid": {"open": 30, "low": 28, "high": 35, "close": 33},
    "yes_ask": {"open": 32, "low": 30, "high": 37, "close": 35},
    "price": {"open": 31, "low": 31, "high": 34, "close": None, "mean": 32.5, "previous": 29},
    "volume": 7,
    "open_interest": 5,
}


def write_handmade_raw(raw: Path) -> Path:
    """Three markets with known books, candles and trades; see the constants above.

    A (series KXTEST, fee multiplier 1) trades at NOW; B closed on day 2 and settled before
    CUTOFF; C (KXHALF, multiplier 0.5, fractional) trades at NOW with a LEGACY-format book; D
    opens after NOW. Observations repeat (an older copy of A, a trade seen twice) so that
    de-duplication shows.
    """
    with RawWriter(raw) as w:
        w.write("series", "/series/KXTEST", {}, T0, {"series": _series("KXTEST", 1.0)})
        w.write("series", "/series/KXHALF", {}, T0, {"series": _series("KXHALF", 0.5)})
        a, b = (
            _market(OPEN_A, "KXTEST-E1", T0 + 10 * DAY),
            _market(CLOSED_B, "KXTEST-E1", T0 + 2 * DAY),
        )
        c = _market(HALF_C, "KXHALF-E2", T0 + 10 * DAY, fractional=True)
        d = _market(LATE_D, "KXTEST-E3", T0 + 20 * DAY, open_=T0 + 8 * DAY, status="initialized")
        stale_a = {**a, "yes_bid_dollars": "0.0100"}
        events = {
            "KXTEST-E1": ("KXTEST", [stale_a, b]),
            "KXHALF-E2": ("KXHALF", [c]),
            "KXTEST-E3": ("KXTEST", [d]),
        }
        for event, (series, markets) in events.items():
            doc = {"event_ticker": event, "series_ticker": series, "title": event, "sub_title": ""}
            w.write("events", f"/events/{event}", {}, T0, {"event": doc, "markets": markets})
        # A is observed stale before (events, read first) and after (a page read last) in file
        # order, but fresh at the latest time: the latest observation must win
        w.write("markets", "/markets", {}, NOW, {"markets": [a, b, c, d], "cursor": ""})
        w.write("markets", "/markets", {}, T0 - DAY, {"markets": [stale_a], "cursor": ""})
        w.write("candlesticks", f"/series/KXTEST/markets/{OPEN_A}/candlesticks",
                {"period_interval": 1440}, NOW, {"ticker": OPEN_A, "candlesticks": [CANDLE_A]})  # fmt: skip
        w.write("candlesticks", f"/series/KXTEST/markets/{CLOSED_B}/candlesticks",
                {"period_interval": 1440}, NOW, {"ticker": CLOSED_B, "candlesticks": [LEGACY_CANDLE_B]})  # fmt: skip
        trades = [
            _trade(
                i,
                CLOSED_B if i in B_TRADES else OPEN_A,
                T0 + i * TRADE_STEP + SUBSECOND,
                40 + i % 10,
            )
            for i in range(1, HANDMADE_TRADES + 1)
        ]
        w.write("trades", "/markets/trades", {}, NOW, {"trades": trades[::-1][:9], "cursor": "c"})
        w.write(
            "trades",
            "/markets/trades",
            {"cursor": "c"},
            NOW,
            {"trades": trades[::-1][8:], "cursor": ""},
        )
        older = {"yes_dollars": [["0.3000", "1.00"]], "no_dollars": [["0.6000", "1.00"]]}
        w.write(
            "orderbooks", f"/markets/{OPEN_A}/orderbook", {}, NOW - DAY, {"orderbook_fp": older}
        )
        w.write("orderbooks", f"/markets/{OPEN_A}/orderbook", {}, NOW, {"orderbook_fp": BOOK_A})
        legacy = {"orderbook": {"yes": [[30, 10], [35, 4]], "no": [[60, 5]]}}
        w.write("orderbooks", f"/markets/{HALF_C}/orderbook", {}, NOW, legacy)
        w.write(
            "orderbooks", f"/markets/{CLOSED_B}/orderbook", {}, T0 + DAY, {"orderbook_fp": BOOK_A}
        )
    return raw


# --- a small simulated dataset -----------------------------------------------------------------


def write_simulated_raw(raw: Path) -> Path:
    """~40 simulated markets over three weeks: thousands of trades, in well under a second."""
    data = DataParams(
        source="synthetic",
        start=dt.date(2025, 1, 1),
        end=dt.date(2025, 1, 20),
        hourly_candles=True,
        orderbook_snapshots_per_day=4,
        synthetic=SyntheticParams(
            seed=11,
            n_markets=40,
            max_strikes=4,
            event_shares={"ladder": 0.4, "bracket": 0.3, "binary": 0.3},
            min_duration_days=4,
            max_duration_days=10,
            information_rate=1.2,
            news_floor_hours=6.0,
            price_lag_hours=18.0,
            price_noise=0.25,
            price_noise_close=0.25,
            longshot_bias=0.85,
            longshot_bias_close=0.85,
            accuracy_horizon_days=7.0,
            half_spread_cents=1.5,
            depth_contracts=200.0,
            book_levels=5,
            trades_per_day=14.0,
            informed_share=0.3,
            longshot_taker_share=0.5,
        ),
    )
    write_synthetic_raw(data, raw)
    return raw


# --- clients -----------------------------------------------------------------------------------


class KalshiAuth(requests.auth.AuthBase):
    """Signs each request as Kalshi's starter code does (path without the query)."""

    def __init__(self, signer: KalshiSigner) -> None:
        self.signer = signer

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        assert r.method is not None and r.url is not None
        r.headers.update(self.signer.headers(r.method, urlsplit(r.url).path))
        return r


def follow(
    session: requests.Session, url: str, params: dict[str, Any], key: str
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a cursor-paginated listing, asserting the cursor protocol on the way."""
    seen: set[str] = set()
    cursor = None
    while True:
        r = session.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        yield body[key]
        cursor = body["cursor"]
        assert isinstance(cursor, str)
        if cursor == "":
            return
        assert cursor not in seen, "the server repeated a cursor"
        seen.add(cursor)
