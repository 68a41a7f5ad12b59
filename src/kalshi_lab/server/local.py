"""``LocalKalshiServer``: a Kalshi-compatible HTTP server over a raw dataset, in a background
thread, for tests (``with LocalKalshiServer(raw_dir) as srv: srv.base_url``) and for the
``kalshi-lab serve`` command, with its WebSocket stream on a second port (``srv.ws_url``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kalshi_lab.data.raw_store import API_PREFIX
from kalshi_lab.server.app import KalshiApp
from kalshi_lab.server.auth import SignatureVerifier
from kalshi_lab.server.books import BookStore
from kalshi_lab.server.clock import ServerClock
from kalshi_lab.server.config import LOOPBACK, ServerConfig
from kalshi_lab.server.dataset import Dataset
from kalshi_lab.server.errors import ServerSetupError
from kalshi_lab.server.faults import FaultConfig, FaultInjector
from kalshi_lab.server.handler import KalshiHTTPServer
from kalshi_lab.server.historical import Cutoff, default_cutoff
from kalshi_lab.server.limits import RequestLimiter
from kalshi_lab.server.market_data import MarketData
from kalshi_lab.server.paging import CursorCodec
from kalshi_lab.server.portfolio import Portfolio
from kalshi_lab.server.portfolio_api import PortfolioApi
from kalshi_lab.server.routes import Router
from kalshi_lab.server.stats import ServerStats, StatsSnapshot
from kalshi_lab.server.stream import StreamEndpoint
from kalshi_lab.server.units import iso

logger = logging.getLogger(__name__)


class LocalKalshiServer:
    """Serves ``raw`` (a raw directory, or a Dataset already loaded, to share between servers).

    Times: the clock starts at ``config.now``, else when the data was recorded (its latest
    ``received_at``, which is also at or after its latest orderbook snapshot), so that by
    default every document is served as recorded, and runs at ``config.clock_speed``
    (:mod:`kalshi_lab.server.clock`; :meth:`advance` moves it on). The cutoff is
    ``config.cutoff``, else the median settlement time. Markets are shown as they stand at the
    clock (:mod:`kalshi_lab.server.lifecycle`), the account is caught up with it before each
    request (:mod:`kalshi_lab.server.portfolio`), and every answer's ``Date`` header is it.
    Each server has its own portfolio, book depth, counters and cursors.
    """

    def __init__(self, raw: Path | Dataset, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.dataset = raw if isinstance(raw, Dataset) else Dataset.load(Path(raw))
        if not self.dataset.markets:
            raise ServerSetupError("the raw data holds no markets: there is nothing to serve")
        data_now = max(self.dataset.last_book_ts or 0, self.dataset.last_received_ts)
        start = self.config.now_ts if self.config.now_ts is not None else data_now
        self.clock = ServerClock(start, self.config.clock_speed)
        cutoff = self.config.cutoff_ts
        self.cutoff = Cutoff(cutoff if cutoff is not None else default_cutoff(self.dataset))
        self.books = BookStore(self.dataset.books)
        self.faults = FaultInjector(self.config.faults)
        self.portfolio = Portfolio(
            self.dataset,
            self.books,
            self.clock,
            self.config.starting_balance_cents,
            listing_delay=self.faults.listing_delay,
        )
        self._stats = ServerStats()
        cursors = CursorCodec()
        router = Router()
        market_data = MarketData(
            self.dataset, self.cutoff, self.books, self.portfolio.catch_up, cursors
        )
        market_data.register(router)
        PortfolioApi(self.portfolio, cursors).register(router)
        verifier = None
        if self.config.public_key is not None and self.config.key_id is not None:
            verifier = SignatureVerifier(self.config.public_key, self.config.key_id)
        limiter = RequestLimiter(
            self.config.reads_per_s, self.config.writes_per_s, enabled=self.config.rate_limit
        )
        self.app = KalshiApp(router, limiter, self.faults, verifier, self._stats)
        self.stream = StreamEndpoint(
            self.dataset,
            self.cutoff,
            self.books,
            self.portfolio,
            verifier,
            self.faults,
            self._stats,
        )
        self._httpd: KalshiHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> LocalKalshiServer:
        if self._httpd is not None:
            raise RuntimeError("the server is already running")
        try:
            self._httpd = KalshiHTTPServer(
                (LOOPBACK, self.config.port),
                self.app,
                clock=self.clock.now,
                max_connections=self.config.max_connections,
                read_timeout_s=self.config.read_timeout_s,
            )
        except OSError as exc:
            raise ServerSetupError(
                f"cannot listen on {LOOPBACK}:{self.config.port} ({exc.strerror})"
            ) from None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"kalshi-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        try:
            self.stream.start(self.config.ws_port)
        except ServerSetupError:
            self.stop()
            raise
        logger.info(
            "serving %s and %s (now %s, clock speed %g, cutoff %s)",
            self.base_url,
            self.ws_url,
            iso(self.now),
            self.clock.speed,
            iso(self.cutoff.ts),
        )
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; answers still sleeping are abandoned."""
        if self._httpd is None:
            return
        self.stream.stop()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LocalKalshiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the clock ----------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """The server's time (Unix seconds)."""
        return self.clock.now()

    def advance(self, seconds: int) -> int:
        """Move the clock on by ``seconds`` and do what falls due (fills of resting orders,
        cancels at expiry and close, settlements); returns the new time."""
        self.clock.advance(seconds)
        return self.portfolio.catch_up()

    # --- what tests look at -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/trade-api/v2``: what a client takes as its base URL."""
        return f"http://{LOOPBACK}:{self.port}{API_PREFIX}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/trade-api/ws/v2``: the stream, on its own port."""
        return self.stream.url

    @property
    def stats(self) -> StatsSnapshot:
        """Requests per route kind, answers per status, faults per kind, 429s from the limiter."""
        return self._stats.snapshot()

    @property
    def open_connections(self) -> int:
        """Connections held now, each by a thread (at most ``config.max_connections``)."""
        return 0 if self._httpd is None else self._httpd.open_connections

    def set_faults(self, faults: FaultConfig) -> None:
        """Swap the fault configuration while serving (the seed restarts the draws)."""
        self.faults.configure(faults)
