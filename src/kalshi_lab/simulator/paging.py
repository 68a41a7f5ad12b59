"""Cursor pagination as the API does it: opaque cursors, and "" after the last page.

Trade pages can overlap: when a trade arrives while a client pages through a market's tape,
the next page starts one trade later than expected, so the last trade of one page comes back
first on the next. The simulator reproduces that (seeded), so a parser that does not
de-duplicate by ``trade_id`` double-counts volume.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np

#: the API default; small enough that active markets need several pages
TRADES_PAGE_LIMIT = 100
#: share of trade-page boundaries at which a new trade shifts the next page by one
TRADE_PAGE_REPEAT_SHARE = 0.25


def cursor(seed: int, scope: str, offset: int) -> str:
    """Deterministic opaque token naming where the next page of ``scope`` starts."""
    digest = hashlib.blake2b(f"{seed}:{scope}:{offset}".encode(), digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).decode()


def page_slices(
    n_items: int, limit: int, repeat_share: float = 0.0, rng: np.random.Generator | None = None
) -> list[tuple[int, int]]:
    """``[start, stop)`` of each page; a page may repeat the previous page's last item.

    An empty collection still has one (empty) page. ``limit`` must be >= 2 when items repeat,
    so that every page makes progress.
    """
    pages = [(0, min(limit, n_items))]
    while pages[-1][1] < n_items:
        stop = pages[-1][1]
        start = stop - 1 if rng is not None and rng.random() < repeat_share else stop
        pages.append((start, min(start + limit, n_items)))
    return pages
