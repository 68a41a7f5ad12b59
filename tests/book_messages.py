"""A deterministic, consistent stream of Kalshi ``orderbook_delta`` channel messages.

Shaped as Kalshi's AsyncAPI spec defines them (https://docs.kalshi.com/asyncapi.yaml): first an
``orderbook_snapshot`` per market, then ``orderbook_delta`` messages (``price_dollars``,
``delta_fp``, ``side``) that never take a level below zero, and now and then a ``trade``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def tickers(n: int) -> list[str]:
    return [f"KXREC-26DEC07-T{k:03d}" for k in range(n)]


def stream(markets: list[str], seed: int = 0, limit: int | None = None) -> Iterator[dict]:
    """Messages of one subscription (``sid`` 1, ``seq`` from 1), endless without ``limit``."""
    rng = random.Random(seed)
    books = {t: {} for t in markets}
    seq = trades = 0
    for ticker in markets:
        seq += 1
        levels = {
            (s, rng.randrange(1, 99)): rng.randrange(1, 500)
            for s in ("yes", "no")
            for _ in range(3)
        }
        books[ticker] = levels
        body = {"market_ticker": ticker, "market_id": f"id-{ticker}"}
        for side in ("yes", "no"):
            body[f"{side}_dollars_fp"] = [
                [f"{p / 100:.4f}", f"{c:.2f}"] for (s, p), c in sorted(levels.items()) if s == side
            ]
        yield {"type": "orderbook_snapshot", "sid": 1, "seq": seq, "msg": body}
    while limit is None or seq < limit:
        seq += 1
        ticker = rng.choice(markets)
        if rng.random() < 0.05:
            trades += 1
            yield {
                "type": "trade",
                "sid": 2,
                "seq": trades,
                "msg": {
                    "trade_id": f"t{seq}",
                    "market_ticker": ticker,
                    "yes_price_dollars": "0.5000",
                    "no_price_dollars": "0.5000",
                    "count_fp": "1.00",
                    "taker_side": "yes",
                    "ts": 1765116000,
                },
            }
            seq -= 1  # a trade counts on its own subscription
            continue
        side, price = rng.choice(("yes", "no")), rng.randrange(1, 99)
        have = books[ticker].get((side, price), 0)
        delta = rng.randrange(-have, 200) or 1
        books[ticker][side, price] = have + delta
        body = {
            "market_ticker": ticker,
            "market_id": f"id-{ticker}",
            "price_dollars": f"{price / 100:.4f}",
            "delta_fp": f"{delta:.2f}",
            "side": side,
        }
        yield {"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": body}
