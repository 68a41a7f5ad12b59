"""Where the bot trades: the base URL of each mode, the client, and the venue's clock.

The bot runs on the VENUE's time, read from the ``Date`` header of its answers: a market is
open, an order fills and a fill is new by the exchange's clock, so the machine's clock never
decides (a skewed one, or a local Kalshi server that serves history and keeps its own ``now``,
which its ``Date`` header tells).
"""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime
from typing import Any

import pandas as pd
import requests

from kalshi_lab.client import DEMO_URL, PRODUCTION_URL, KalshiClient, KalshiSigner

logger = logging.getLogger(__name__)

MODES = ("backtest", "paper", "live")
#: paper trades Kalshi's demo exchange, live the production one (API.md section 1)
DEFAULT_URLS = {"paper": DEMO_URL, "live": PRODUCTION_URL}
#: requests per second Kalshi allows each usage tier: (reads, writes), as conf/data/kalshi.yaml
TIERS = {
    "basic": (20.0, 10.0),
    "advanced": (30.0, 30.0),
    "premier": (100.0, 100.0),
    "prime": (400.0, 400.0),
}


def make_client(
    base_url: str, signer: KalshiSigner, tier: str, timeout_s: float, max_retries: int
) -> KalshiClient:
    """A client paced for ``tier``, signing with ``signer`` (the environment's key)."""
    reads, writes = TIERS[tier]
    return KalshiClient(
        base_url,
        signer=signer,
        timeout_s=timeout_s,
        max_retries=max_retries,
        reads_per_s=reads,
        writes_per_s=writes,
        concurrency=1,
    )


class VenueClock:
    """The venue's time: the ``Date`` header of its latest answer (1 s resolution)."""

    def __init__(self, client: KalshiClient) -> None:
        self.client = client
        self.latest: pd.Timestamp | None = None
        client.transport.session.hooks["response"].append(self._seen)

    def _seen(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        text = response.headers.get("Date")
        if not text:
            return
        try:
            when = pd.Timestamp(parsedate_to_datetime(text))
        except (TypeError, ValueError):
            return
        self.latest = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")

    def now(self) -> tuple[pd.Timestamp, bool]:
        """``GET /exchange/status``: (the venue's time, whether it takes orders now)."""
        self.latest = None
        body = self.client.transport.get("/exchange/status").body
        now = self.latest
        if now is None:
            now = pd.Timestamp.now(tz="UTC").floor("s")
            logger.warning("the exchange sent no Date header: using this machine's clock")
        trading = bool(body.get("exchange_active", True)) and bool(body.get("trading_active", True))
        return now, trading
