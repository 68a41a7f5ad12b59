"""The ``msg`` bodies of the local server's stream, shaped as Kalshi's AsyncAPI spec shapes them
(docs.kalshi.com/websockets: ``orderbookSnapshotPayload``, ``orderbookDeltaPayload``,
``tradePayload``, ``tickerPayload``, ``fillPayload``, ``userOrderPayload``), current
fixed-point format only (``*_dollars`` / ``*_fp`` strings), whatever format the data was
recorded in.

Deltas are the difference between two books per price level, so that a client applying them to
the earlier book holds exactly the later one (what ``GET /markets/{t}/orderbook`` shows then).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from kalshi_lab.client.records import Trade
from kalshi_lab.server.books import Book, BookSide
from kalshi_lab.server.dataset import MarketEntry, TradeEntry
from kalshi_lab.server.records import FillState
from kalshi_lab.server.units import ONE, ZERO, cents_text, count_text, dollars_text, iso

Msg = dict[str, Any]
#: a book as the stream tracks it: (side, price) -> contracts
LevelMap = dict[tuple[BookSide, Decimal], Decimal]


def market_id(market: MarketEntry) -> str:
    """The market's UUID: recorded documents may lack one, so a stable one is derived."""
    recorded = market.doc.get("market_id") or market.doc.get("id")
    return str(recorded) if recorded else str(uuid.uuid5(uuid.NAMESPACE_URL, market.ticker))


def level_map(book: Book) -> LevelMap:
    out: LevelMap = {("yes", p): n for p, n in book.yes}
    out.update({("no", p): n for p, n in book.no})
    return out


def snapshot_msg(market: MarketEntry, book: Book) -> Msg:
    """``orderbook_snapshot``: a side with no bids is left out, as the spec says."""
    msg: Msg = {"market_ticker": market.ticker, "market_id": market_id(market)}
    doc = book.doc()["orderbook_fp"]
    for side in ("yes", "no"):
        if doc[f"{side}_dollars"]:
            msg[f"{side}_dollars_fp"] = doc[f"{side}_dollars"]
    return msg


def delta_msgs(market: MarketEntry, before: LevelMap, after: LevelMap, now: int) -> list[Msg]:
    """``orderbook_delta`` bodies turning ``before`` into ``after``, one per changed level."""
    out = []
    for side, price in sorted(before.keys() | after.keys()):
        change = after.get((side, price), ZERO) - before.get((side, price), ZERO)
        if change:
            out.append(
                {
                    "market_ticker": market.ticker,
                    "market_id": market_id(market),
                    "price_dollars": dollars_text(price),
                    "delta_fp": count_text(change),
                    "side": side,
                    "ts": iso(now),
                    "ts_ms": now * 1000,
                }
            )
    return out


def trade_msg(entry: TradeEntry) -> Msg:
    """``trade`` from a recorded trade document (either format)."""
    trade = Trade.model_validate(entry.doc)
    taker = trade.taker_side
    return {
        "trade_id": trade.trade_id,
        "market_ticker": trade.ticker,
        "yes_price_dollars": dollars_text(trade.yes_price),
        "no_price_dollars": dollars_text(trade.no_price),
        "count_fp": count_text(trade.count),
        "taker_side": taker,
        "taker_outcome_side": taker,
        "taker_book_side": "bid" if taker == "yes" else "ask",
        "is_block_trade": False,
        "ts": entry.us // 1_000_000,
        "ts_ms": entry.us // 1000,
    }


def ticker_msg(market: MarketEntry, book: Book, last: Trade | None, now: int) -> Msg:
    """``ticker``: the best YES bid and ask of the book (the ask is 1 - best NO bid), the last
    trade, and volume and open interest as the market's document recorded them."""
    bid = book.yes[-1] if book.yes else (ZERO, ZERO)
    no_bid = book.no[-1] if book.no else None
    ask = (ONE - no_bid[0], no_bid[1]) if no_bid else (ONE, ZERO)
    volume = _count_field(market.doc, "volume")
    interest = _count_field(market.doc, "open_interest")
    price = last.yes_price if last else ZERO
    return {
        "market_id": market_id(market),
        "market_ticker": market.ticker,
        "price_dollars": dollars_text(price),
        "yes_bid_dollars": dollars_text(bid[0]),
        "yes_ask_dollars": dollars_text(ask[0]),
        "volume_fp": count_text(volume),
        "open_interest_fp": count_text(interest),
        "dollar_volume": int(volume * price),
        "dollar_open_interest": int(interest * price),
        "yes_bid_size_fp": count_text(bid[1]),
        "yes_ask_size_fp": count_text(ask[1]),
        "last_trade_size_fp": count_text(last.count if last else ZERO),
        "ts": now,
        "ts_ms": now * 1000,
        "time": iso(now),
    }


def _count_field(doc: dict[str, Any], name: str) -> Decimal:
    value = doc.get(f"{name}_fp", doc.get(name))
    try:
        return Decimal(str(value)) if value is not None else ZERO
    except ArithmeticError:
        return ZERO


def outcome_side(side: str, action: str) -> str:
    """Buy-yes and sell-no position for YES; buy-no and sell-yes for NO (spec ``outcome_side``)."""
    return side if action == "buy" else ("no" if side == "yes" else "yes")


def fill_msg(fill: FillState, post_position: Decimal) -> Msg:
    """``fill``; ``post_position`` is the signed position after it (> 0 YES, < 0 NO). As the
    spec's ``fillPayload``, it names the fill by ``trade_id`` only, which REST's ``Fill``
    says is the same as its ``fill_id``; no ``seq``."""
    outcome = outcome_side(fill.side, fill.action)
    return {
        "trade_id": fill.fill_id,
        "order_id": fill.order_id,
        "client_order_id": fill.client_order_id,
        "market_ticker": fill.ticker,
        "exchange_index": 0,
        "is_taker": fill.is_taker,
        "side": fill.side,
        "yes_price_dollars": dollars_text(fill.yes_price),
        "count_fp": count_text(fill.count),
        "fee_cost": cents_text(fill.fee_cents),
        "action": fill.action,
        "ts": fill.ts,
        "ts_ms": fill.ts * 1000,
        "post_position_fp": count_text(post_position),
        "purchased_side": outcome,
        "outcome_side": outcome,
        "book_side": "bid" if outcome == "yes" else "ask",
    }


def signed_change(fill: FillState) -> Decimal:
    """What a fill adds to the signed YES position."""
    return fill.count if outcome_side(fill.side, fill.action) == "yes" else -fill.count


def user_order_msg(order_doc: Msg) -> Msg:
    """``user_order`` from the REST ``Order`` document of the same order."""
    outcome = outcome_side(order_doc["side"], order_doc["action"])
    return {
        **order_doc,
        "exchange_index": 0,
        "is_yes": order_doc["side"] == "yes",
        "outcome_side": outcome,
        "book_side": "bid" if outcome == "yes" else "ask",
    }
