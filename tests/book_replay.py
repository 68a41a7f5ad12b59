"""The straightforward replay the vectorised book rebuild is held to (and benchmarked against).

Message by message, a dict book per market, sampled at every interval boundary: the rules of
:mod:`kalshi_lab.data.book_rebuild`, written the obvious way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kalshi_lab.data.book_rebuild import COUNT_UNITS, PRICE_UNITS, SIDES, Stream


def replay(stream: Stream, interval_ns: int) -> pd.DataFrame:
    """Rows (ticker, snapshot_ts, side, price, count, segment) in the rebuild's order."""
    levels_of: dict[int, list[tuple[int, int, int]]] = {}
    for m, s, p, q in zip(stream.msg, stream.side, stream.price, stream.qty, strict=True):
        levels_of.setdefault(int(m), []).append((int(s), int(p), int(q)))
    out: list[tuple[str, int, str, float, float, int]] = []
    books: dict[int, dict[tuple[int, int], int]] = {}
    last_seq: dict[int, int] = {}
    segment, last_t, boundary = None, 0, 0

    def sample_until(limit: int) -> None:  # every boundary <= limit
        nonlocal boundary
        while boundary <= limit:
            for market, book in books.items():
                for (side, price), size in book.items():
                    if size > 0:
                        out.append(
                            (
                                stream.tickers[market],
                                boundary,
                                SIDES[side],
                                price / PRICE_UNITS,
                                size / COUNT_UNITS,
                                segment,
                            )
                        )
            boundary += interval_ns

    for i in range(len(stream.seg)):
        seg = int(stream.seg[i])
        if seg != segment:
            if segment is not None:
                sample_until(last_t)
            segment, books, last_seq = seg, {}, {}
            last_t = int(stream.t[i])
            boundary = -(-last_t // interval_ns) * interval_ns
        t = max(last_t, int(stream.t[i]))
        sample_until(t - 1)
        last_t = t
        sid, seq = int(stream.sid[i]), int(stream.seq[i])
        if seq >= 0:
            if sid in last_seq and seq <= last_seq[sid]:
                continue  # duplicate
            if sid in last_seq and seq > last_seq[sid] + 1:
                books = {}  # gap: every book unknown
            last_seq[sid] = seq
        market = int(stream.market[i])
        if stream.snapshot[i]:
            book: dict[tuple[int, int], int] = {}
            for side, price, qty in levels_of.get(i, []):
                book[side, price] = book.get((side, price), 0) + qty
            books[market] = book
        elif market in books:
            for side, price, qty in levels_of[i]:
                books[market][side, price] = books[market].get((side, price), 0) + qty
    if segment is not None:
        sample_until(last_t)
    frame = pd.DataFrame(out, columns=["ticker", "ts", "side", "price", "count", "segment"])
    frame = frame.astype({"price": float, "count": float, "segment": np.int64})
    frame.insert(1, "snapshot_ts", pd.to_datetime(frame.pop("ts").to_numpy(np.int64), utc=True))
    # two segments sampling one market at one time: the later one's book is kept
    latest = frame.groupby(["ticker", "snapshot_ts"])["segment"].transform("max")
    frame = frame[frame["segment"] == latest]
    side_rank = frame["side"].map({s: k for k, s in enumerate(SIDES)})
    frame = frame.assign(_side=side_rank).sort_values(
        ["ticker", "snapshot_ts", "_side", "price"], kind="stable"
    )
    return frame.drop(columns="_side").reset_index(drop=True)
