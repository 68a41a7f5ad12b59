"""The JSON bodies of the API's responses (Series, EventData, Market, MarketCandlestick, Trade,
orderbook), field for field as in Kalshi's OpenAPI spec v3.13, current fixed-point format only.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from kalshi_lab.simulator.books import Books
from kalshi_lab.simulator.candles import Candles
from kalshi_lab.simulator.formats import (
    COUNT_FP,
    count_fp,
    dollar_strings,
    dollars,
    dollars_of,
    timestamp,
    timestamps_us,
    uuids,
)
from kalshi_lab.simulator.simulate import Simulation
from kalshi_lab.simulator.trades import Trades
from kalshi_lab.simulator.universe import (
    SERIES,
    SETTLEMENT_TIMER_S,
    VALUE_DECIMALS,
    SeriesSpec,
    bucket_low,
)

#: every market quotes in whole cents from 0 to 1 dollar
PRICE_RANGES = ({"start": "0.0000", "end": "1.0000", "step": "0.0100"},)
#: how long after close a market could still expire at the latest (contract terms)
LATEST_EXPIRATION_S = 7 * 86400
Doc = dict[str, Any]


def series_doc(spec: SeriesSpec, volume: int, updated_ts: int) -> Doc:
    slug = spec.ticker.lower()
    return {
        "ticker": spec.ticker,
        "frequency": spec.frequency,
        "title": spec.title,
        "category": spec.category,
        "tags": list(spec.tags),
        "settlement_sources": [{"name": spec.source, "url": f"https://example.com/sim/{slug}"}],
        "contract_url": f"https://example.com/sim/{slug}/contract.pdf",
        "contract_terms_url": f"https://example.com/sim/{slug}/terms.pdf",
        "fee_type": "quadratic",
        "fee_multiplier": spec.fee_multiplier,
        "additional_prohibitions": [],
        "product_metadata": None,
        "volume_fp": count_fp(volume),
        "last_updated_ts": timestamp(updated_ts),
    }


def _day(unix_s: int) -> str:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).strftime("%b %d, %Y")


def _event_text(sim: Simulation, e: int) -> tuple[str, str]:
    """(title, sub_title) of event ``e``."""
    u = sim.universe
    spec = SERIES[u.event_series[e]]
    day = _day(int(u.close_ts[e]))
    if u.binary[e]:
        return (
            f"Will {spec.title} event {u.event_ticker[e].rsplit('-', 1)[1]} happen by {day}?",
            f"By {day}",
        )
    return f"{spec.title} on {day}?", f"On {day}"


def event_doc(sim: Simulation, e: int) -> Doc:
    """An ``EventData``: only a bracket set is mutually exclusive (one market resolves YES), so
    only it nets collateral across its markets (``MECNET``); a ladder's strikes can all resolve
    YES together and, like a single binary, it reports ``false`` and no netting."""
    u = sim.universe
    title, sub_title = _event_text(sim, e)
    exclusive = bool(u.mutually_exclusive[e])
    return {
        "event_ticker": u.event_ticker[e],
        "series_ticker": SERIES[u.event_series[e]].ticker,
        "sub_title": sub_title,
        "title": title,
        "collateral_return_type": "MECNET" if exclusive else "",
        "mutually_exclusive": exclusive,
        "available_on_brokers": True,
        "product_metadata": None,
        "strike_date": timestamp(int(u.close_ts[e])),
        "last_updated_ts": timestamp(int(u.settlement_ts[e])),
    }


def _expiration_value(sim: Simulation, e: int) -> str:
    """The settled value of the event's underlying: inside the winning bucket by construction,
    so that every market of the event agrees with it (a ladder strike is YES iff the value is
    above its floor_strike, a bracket iff the value is in its range)."""
    u = sim.universe
    if u.binary[e]:
        return "Yes" if sim.latent.winner[e] == 0 else "No"
    lo = bucket_low(u.level[e], u.step[e], u.n_outcomes[e], sim.latent.winner[e])
    inside = 0.05 + 0.9 * u.value_u[e]  # clear of both edges, also after rounding to a tick
    return f"{lo + inside * u.step[e]:.{VALUE_DECIMALS}f}"


def market_doc(sim: Simulation, m: int) -> Doc:
    u, s = sim.universe, sim.stats
    e = int(u.market_event[m])
    title, _ = _event_text(sim, e)
    open_ts, close_ts = int(u.open_ts[e]), int(u.close_ts[e])
    settled = int(u.settlement_ts[e])
    yes = bool(sim.yes[m])
    spec = SERIES[u.event_series[e]]
    doc: Doc = {
        "ticker": u.ticker[m],
        "event_ticker": u.event_ticker[e],
        "market_type": "binary",
        "title": title,
        "yes_sub_title": u.yes_sub_title[m],
        "no_sub_title": u.yes_sub_title[m],
        "created_time": timestamp(open_ts - int(u.created_s[e])),
        "updated_time": timestamp(settled),
        "open_time": timestamp(open_ts),
        "close_time": timestamp(close_ts),
        "expected_expiration_time": timestamp(close_ts + 3600),
        "latest_expiration_time": timestamp(close_ts + LATEST_EXPIRATION_S),
        "settlement_timer_seconds": SETTLEMENT_TIMER_S,
        "status": "finalized",
        "yes_bid_dollars": dollars(int(s.bid[m])),
        "yes_bid_size_fp": count_fp(int(s.bid_size[m])),
        "yes_ask_dollars": dollars(int(s.ask[m])),
        "yes_ask_size_fp": count_fp(int(s.ask_size[m])),
        "no_bid_dollars": dollars(100 - int(s.ask[m])),
        "no_ask_dollars": dollars(100 - int(s.bid[m])),
        "last_price_dollars": dollars(int(s.last_price[m])),
        "volume_fp": count_fp(int(s.volume[m])),
        "volume_24h_fp": count_fp(int(s.volume_24h[m])),
        "result": "yes" if yes else "no",
        "can_close_early": False,
        "fractional_trading_enabled": False,
        "open_interest_fp": count_fp(int(s.open_interest[m])),
        "notional_value_dollars": "1.0000",
        "previous_yes_bid_dollars": dollars(int(s.previous_bid[m])),
        "previous_yes_ask_dollars": dollars(int(s.previous_ask[m])),
        "previous_price_dollars": dollars(int(s.previous_price[m])),
        "liquidity_dollars": "0.0000",
        "settlement_value_dollars": dollars(100 if yes else 0),
        "settlement_ts": timestamp(settled),
        "expiration_value": _expiration_value(sim, e),
    }
    if u.strike_type[m] is not None:
        doc["strike_type"] = u.strike_type[m]
        for name, value in (("floor_strike", u.floor_strike[m]), ("cap_strike", u.cap_strike[m])):
            if not math.isnan(value):
                doc[name] = float(value)
    doc["rules_primary"] = _rules(sim, m, e)
    doc["rules_secondary"] = (
        f"The market settles on the value reported by {spec.source}. Simulated market, not a Kalshi contract."
    )
    doc["price_level_structure"] = "linear_cent"
    doc["price_ranges"] = [dict(r) for r in PRICE_RANGES]
    return doc


def _rules(sim: Simulation, m: int, e: int) -> str:
    """The contract's YES condition in words, from the strikes (Kalshi: ``greater`` is strictly
    above ``floor_strike``, ``less`` strictly below ``cap_strike``, ``between`` inclusive)."""
    u = sim.universe
    day = _day(int(u.close_ts[e]))
    if u.binary[e]:
        return f"If event {u.event_ticker[e]} happens by {day}, then the market resolves to Yes."
    floor, cap = u.floor_strike[m], u.cap_strike[m]
    condition = {
        "greater": f"above {floor:g}",
        "less": f"below {cap:g}",
        "between": f"between {floor:g} and {cap:g}, both included",
    }[u.strike_type[m]]
    subject = SERIES[u.event_series[e]].title.lower()
    return f"If the {subject} value on {day} is {condition}, then the market resolves to Yes."


_TRADE = (
    '{"trade_id":"%s","ticker":"%s","count_fp":"' + COUNT_FP + '","yes_price_dollars":"%s",'
    '"no_price_dollars":"%s","taker_side":"%s","created_time":"%s"}'
)


class TradeTape:
    """Every trade as a ``Trade`` document, rendered as JSON text.

    Trades are a third of what the simulator writes: their fields are formatted once for all
    trades as columns, and each document is one %-format of a fixed template.
    """

    def __init__(self, trades: Trades) -> None:
        self._ids = uuids(trades.uuid_bytes)
        self._times = timestamps_us(trades.time_us)
        self._counts = trades.count.tolist()
        self._yes = dollar_strings(trades.yes_price).tolist()
        self._no = dollar_strings(100 - trades.yes_price).tolist()
        self._side = np.where(trades.taker_yes, "yes", "no").tolist()

    def newest_first(self, ticker: str, rows: slice) -> list[str]:
        """The trades ``rows`` of market ``ticker`` (oldest first in ``trades``), newest first."""
        columns = (self._ids, self._counts, self._yes, self._no, self._side, self._times)
        tape = [
            _TRADE % (trade_id, ticker, n, yes, no, side, at)
            for trade_id, n, yes, no, side, at in zip(*(c[rows] for c in columns), strict=True)
        ]
        tape.reverse()
        return tape


def _quote(ohlc: list[int]) -> Doc:
    return {
        "open_dollars": dollars(ohlc[0]),
        "low_dollars": dollars(ohlc[1]),
        "high_dollars": dollars(ohlc[2]),
        "close_dollars": dollars(ohlc[3]),
    }


def candle_docs(candles: Candles, rows: slice) -> list[Doc]:
    """The candlesticks of one market (``rows`` of ``candles``), oldest first.

    Columns are turned into Python lists once: indexing numpy arrays per candle costs more
    than formatting the candle.
    """
    columns = zip(
        candles.end_ts[rows].tolist(),
        candles.bid[rows].tolist(),
        candles.ask[rows].tolist(),
        candles.price[rows].tolist(),
        candles.n_trades[rows].tolist(),
        candles.mean_price[rows].tolist(),
        candles.previous[rows].tolist(),
        candles.volume[rows].tolist(),
        candles.open_interest[rows].tolist(),
        strict=True,
    )
    out = []
    for end_ts, bid, ask, price, n_trades, mean, previous, volume, oi in columns:
        # the API returns null trade prices for a period without trades
        first, low, high, last = (dollars(c) for c in price) if n_trades else (None,) * 4
        out.append(
            {
                "end_period_ts": end_ts,
                "yes_bid": _quote(bid),
                "yes_ask": _quote(ask),
                "price": {
                    "open_dollars": first,
                    "low_dollars": low,
                    "high_dollars": high,
                    "close_dollars": last,
                    "mean_dollars": dollars_of(mean) if n_trades else None,
                    "previous_dollars": dollars(previous) if previous >= 0 else None,
                    "min_dollars": low,
                    "max_dollars": high,
                },
                "volume_fp": count_fp(volume),
                "open_interest_fp": count_fp(oi),
            }
        )
    return out


def book_lines(books: Books, rows: slice, heads: np.ndarray, stamps: np.ndarray) -> str:
    """The raw-file lines of snapshots ``rows`` (``RawWriter.write_lines``), one per snapshot,
    in order: ``heads`` (the envelope of each snapshot's request up to its ``received_at``
    value, ``raw_store.envelope_head``) and ``stamps`` (its ``received_at`` text) are object
    arrays with one item per snapshot of ``rows``.

    The body is an orderbook: bids only, ascending, so the best bid is the LAST level; levels
    at price 0 do not exist. Books are most of the records the simulator writes, so each line
    is rendered as text, not built as an envelope of nested lists and serialised: snapshots
    are grouped by which levels exist on either side, and each group goes through one
    %-template of the whole line, a C-level format per snapshot.
    """
    # worst to best: level j of a side is j cents away from its touch
    price = np.concatenate([books.yes_price[rows][:, ::-1], books.no_price[rows][:, ::-1]], axis=1)
    size = np.concatenate([books.yes_size[rows][:, ::-1], books.no_size[rows][:, ::-1]], axis=1)
    exists = price > 0
    pattern = exists @ (1 << np.arange(price.shape[1]))
    price_text = dollar_strings(price)
    levels = books.yes_price.shape[1]
    lines = np.empty(len(price), dtype=object)
    for bits in np.unique(pattern).tolist():
        group = np.flatnonzero(pattern == bits)
        present = exists[group[0]]
        yes, no = (
            ",".join([f'["%s","{COUNT_FP}"]'] * int(n))
            for n in (present[:levels].sum(), present[levels:].sum())
        )
        template = (
            '%s"%s","response":{"orderbook_fp":'
            f'{{"yes_dollars":[{yes}],"no_dollars":[{no}]}}}}}}\n'
        )
        columns = [heads[group], stamps[group]] + [
            c for j in np.flatnonzero(present) for c in (price_text[group, j], size[group, j])
        ]
        lines[group] = [template % v for v in zip(*(c.tolist() for c in columns), strict=True)]
    return "".join(lines.tolist())


def series_volume(sim: Simulation) -> np.ndarray:
    """Contracts traded per series (``Series.volume_fp``)."""
    series_of_market = sim.universe.event_series[sim.universe.market_event]
    return np.bincount(series_of_market, weights=sim.stats.volume, minlength=len(SERIES)).astype(
        np.int64
    )
