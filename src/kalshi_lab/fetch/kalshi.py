"""``data=kalshi``: record Kalshi API responses into the raw layout the simulator writes.

Steps, each a set of cacheable units (see :mod:`kalshi_lab.fetch.cache`):

1. ``GET /series/{s}`` for every configured series (an unknown one stops the fetch here);
2. discovery: the series' markets closing after ``start`` (live and archived pages), narrowed
   to the markets open on some day of ``[start, end]`` and to ``events``/``tickers``;
3. ``GET /events/{e}`` of the chosen markets' events (which names each event's series, and so
   its partition: :func:`kalshi_lab.fetch.plan.partitions`) and the markets' documents
   (``GET /markets?tickers=``, live and archived);
4. per market, in parallel: daily (and hourly) candles and all trades over its life, and the
   orderbook if it is open now (stamped with the time of the request: history has no books,
   so this is how a user accumulates real book history going forward).

Every unit is in the cache once fetched; then the raw directory is written partition by
partition (``series=<S>/month=<YYYY-MM>/``, each a flat raw directory, as the simulator's),
each from its units read back from the cache in a fixed order, so that its bytes do not depend
on thread timing and memory holds one partition's responses, not the run's; ``partitions.json``
comes last. A run killed at any point resumes from the units it completed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydantic
from tqdm import tqdm

from kalshi_lab import paths
from kalshi_lab.client import ApiResponse, KalshiClient
from kalshi_lab.client.records import Market
from kalshi_lab.data.raw_store import KINDS, PARTITIONS, RawWriter, write_partition_list
from kalshi_lab.errors import DataError
from kalshi_lab.fetch.cache import ResponseCache, Run, fingerprint
from kalshi_lab.fetch.plan import (
    DAILY,
    HOURLY,
    Partition,
    Window,
    candle_windows,
    day_bounds,
    in_range,
    is_open_at,
    partitions,
    trade_windows,
)
from kalshi_lab.params import DataParams

logger = logging.getLogger(__name__)

#: tickers per ``GET /markets?tickers=`` request (keeps the URL short)
TICKERS_PER_REQUEST = 50
CACHE_FILE = "kalshi.sqlite"
#: books are of markets open now only: a range that is over has none
MAY_BE_EMPTY = ("orderbooks",)
#: the per-market kinds, in the order a partition's files are written
MARKET_KINDS = ("candlesticks", "trades", "orderbooks")

Responses = list[dict[str, Any]]
#: per kind, the cache keys of one market's units, in order (:meth:`KalshiFetch.load`)
UnitKeys = dict[str, list[str]]


def _record(response: ApiResponse) -> dict[str, Any]:
    return {
        "method": response.method,
        "path": response.path,
        "params": response.params,
        "received_at": response.received_at.isoformat(),
        "response": response.body,
    }


class KalshiFetch:
    """One fetch of ``data`` through ``client``, resumable through ``cache``."""

    def __init__(
        self, data: DataParams, client: KalshiClient, cache: ResponseCache, run: Run
    ) -> None:
        assert data.series is not None
        self.data = data
        self.client = client
        self.cache = cache
        self.run = run
        self.start_ts, self.after_end_ts = day_bounds(data.start, data.end)
        self.periods = (DAILY, HOURLY) if data.hourly_candles else (DAILY,)
        self.series_of_event: dict[str, str] = {}

    # --- units ------------------------------------------------------------------------------

    def unit(
        self,
        key: str,
        fetch: Callable[[], Iterable[ApiResponse]],
        final: bool | Callable[[Responses], bool],
    ) -> Responses:
        """The responses of unit ``key``: from the cache, else fetched and stored.

        ``final`` may be decided from the responses themselves (e.g. all markets settled).
        """
        full_key = self._key(key)
        cached = self.cache.get(full_key, self.run)
        if cached is not None:
            return cached
        return self._store(full_key, fetch, final)

    def ensure(self, key: str, fetch: Callable[[], Iterable[ApiResponse]], final: bool) -> str:
        """Unit ``key`` in the cache, fetched unless it is there; returns the key to
        :meth:`load` it with when its partition is written (not read now: memory holds one
        partition's responses at a time)."""
        full_key = self._key(key)
        if not self.cache.has(full_key, self.run):
            self._store(full_key, fetch, final)
        return full_key

    def load(self, full_key: str) -> Responses:
        """The responses of a unit :meth:`ensure` or :meth:`unit` put in the cache."""
        return self.cache.load(full_key, self.run)

    def _store(
        self,
        full_key: str,
        fetch: Callable[[], Iterable[ApiResponse]],
        final: bool | Callable[[Responses], bool],
    ) -> Responses:
        responses = [_record(r) for r in fetch()]
        is_final = final(responses) if callable(final) else final
        self.cache.put(full_key, responses, self.run, final=is_final)
        return responses

    def _key(self, key: str) -> str:
        return f"{self.client.transport.base_url}|{key}"

    # --- steps ------------------------------------------------------------------------------

    def series(self) -> dict[str, Responses]:
        """``GET /series/{s}`` of every configured series; provisional until :meth:`close_range`."""
        assert self.data.series is not None
        return {
            s: self.unit(f"series|{s}", lambda s=s: [self.client.series_response(s)], final=False)
            for s in sorted(set(self.data.series))
        }

    def close_range(self, series: dict[str, Responses], markets: list[Market]) -> None:
        """Once the range is over and all its markets settled, the series documents are final."""
        if self.after_end_ts <= self.run.now and all(m.is_settled for m in markets):
            for s, responses in series.items():
                self.cache.put(self._key(f"series|{s}"), responses, self.run, final=True)

    def discover(self) -> list[Market]:
        """The markets to fetch, sorted by ticker; an empty or unmatched selection is an error."""
        data = self.data
        assert data.series is not None
        scopes = [("event_ticker", e) for e in sorted(set(data.events or []))] or [
            ("series_ticker", s) for s in sorted(set(data.series))
        ]
        found: dict[str, Market] = {}
        listed: set[str] = set()
        for name, value in scopes:
            pages = self.unit(
                f"discover|{name}={value}|{self.start_ts}-{self.after_end_ts}",
                lambda name=name, value=value: self.client.market_responses(
                    **{name: value}, min_close_ts=self.start_ts
                ),
                final=self._range_closed,
            )
            for market in _markets(pages):
                listed.add(market.ticker)
                if in_range(market, self.start_ts, self.after_end_ts):
                    found.setdefault(market.ticker, market)
        logger.info(
            "discovery: %d markets listed for %s, %d open between %s and %s, "
            "%d left out (not open on any day of the range)",
            len(listed),
            _scope(data),
            len(found),
            data.start,
            data.end,
            len(listed) - len(found),
        )
        if data.tickers:
            missing = sorted(set(data.tickers) - set(found))
            if missing:
                raise DataError(
                    f"data.tickers: {missing[:5]} are not markets of {_scope(data)} "
                    f"open between {data.start} and {data.end}"
                )
            logger.info("data.tickers keeps %d of those %d markets", len(data.tickers), len(found))
            found = {t: found[t] for t in data.tickers}
        if data.events:
            missing = sorted(set(data.events) - {m.event_ticker for m in found.values()})
            if missing:
                raise DataError(
                    f"data.events: {missing[:5]} have no market open between "
                    f"{data.start} and {data.end}"
                )
        if not found:
            raise DataError(
                f"no market of {_scope(data)} was open between {data.start} and {data.end}"
            )
        return [found[t] for t in sorted(found)]

    def _range_closed(self, pages: Responses) -> bool:
        """A discovery is final once the range is over and every market in it settled."""
        if self.after_end_ts > self.run.now:
            return False
        markets = _markets(pages)
        return all(m.is_settled for m in markets if in_range(m, self.start_ts, self.after_end_ts))

    def market_documents(self, markets: list[Market]) -> dict[str, str]:
        """The markets' documents, in batches; the archive is asked only where one may be.

        Returns the cache key of each ticker's batch. A listed market that was not asked for
        goes to no partition, nor does a page listing no market (e.g. the live page of a batch
        that is all archived): both counted and logged.
        """
        out: dict[str, str] = {}
        strays = empty = 0
        for first in range(0, len(markets), TICKERS_PER_REQUEST):
            batch = markets[first : first + TICKERS_PER_REQUEST]
            tickers = [m.ticker for m in batch]
            archive = any(m.settlement_ts is not None for m in batch)  # never an open market
            key = f"markets|{','.join(tickers)}"
            pages = self.unit(
                key,
                lambda tickers=tickers, archive=archive: self.client.market_responses(
                    tickers=tickers, historical=archive
                ),
                final=all(m.is_settled for m in batch),
            )
            asked = set(tickers)
            strays += sum(
                doc.get("ticker") not in asked
                for page in pages
                for doc in page["response"].get("markets") or []
            )
            empty += sum(not page["response"].get("markets") for page in pages)
            out.update(dict.fromkeys(tickers, self._key(key)))
        if strays:
            logger.warning(
                "GET /markets?tickers=: dropped %d listed markets that were not asked for "
                "(no partition holds them)",
                strays,
            )
        if empty:
            logger.info(
                "GET /markets?tickers=: %d pages listed no market and are not recorded "
                "(a partition records the pages holding its markets)",
                empty,
            )
        return out

    def events(self, markets: list[Market]) -> dict[str, str]:
        """``GET /events/{e}`` of the markets' events; learns each event's series.

        Returns each event's cache key. An event of a series not in ``data.series`` is a
        DataError: its partition would have no series document.
        """
        assert self.data.series is not None
        settled: dict[str, bool] = {}
        for m in markets:
            settled[m.event_ticker] = settled.get(m.event_ticker, True) and m.is_settled
        out = {}
        for e in sorted(settled):
            key = f"event|{e}"
            responses = self.unit(
                key, lambda e=e: [self.client.event_response(e)], final=settled[e]
            )
            event = responses[0]["response"].get("event") or {}
            series = event.get("series_ticker")
            if not series:
                raise DataError(f"GET /events/{e}: the event has no series_ticker")
            if series not in self.data.series:
                raise DataError(
                    f"data.events: {e} is an event of series {series}, not among data.series "
                    f"{sorted(set(self.data.series))}"
                )
            self.series_of_event[e] = series
            out[e] = self._key(key)
        return out

    def market_data(self, market: Market) -> UnitKeys:
        """Candles, trades and (if open now) the book of one market, in the cache: their keys."""
        series = self.series_of_event[market.event_ticker]
        out: UnitKeys = {kind: [] for kind in MARKET_KINDS}
        for period in self.periods:
            for w in candle_windows(market, period, self.run.now):
                out["candlesticks"].append(
                    self.ensure(
                        f"candles|{market.ticker}|{period}|{w.key}",
                        self._candles(series, market, period, w),
                        final=w.final,
                    )
                )
        for w in trade_windows(market, self.run.now):
            out["trades"].append(
                self.ensure(
                    f"trades|{market.ticker}|{w.key}",
                    lambda w=w: self.client.trade_responses(market.ticker, w.start_ts, w.end_ts),
                    final=w.final,
                )
            )
        if is_open_at(market, self.run.now):
            depth = self.data.orderbook_depth or 0
            out["orderbooks"].append(
                self.ensure(
                    f"book|{market.ticker}",
                    lambda: [self.client.orderbook_response(market.ticker, depth)],
                    final=False,
                )
            )
        return out

    def _candles(
        self, series: str, market: Market, period: int, w: Window
    ) -> Callable[[], Iterator[ApiResponse]]:
        return lambda: self.client.candlestick_responses(
            series, market.ticker, w.start_ts, w.end_ts, period, settled_at=market.settlement_ts
        )


def _scope(data: DataParams) -> str:
    return f"events {data.events}" if data.events else f"series {data.series}"


def _markets(pages: Responses) -> Iterator[Market]:
    for i, page in enumerate(pages, start=1):
        for j, doc in enumerate(page["response"].get("markets") or [], start=1):
            try:
                yield Market.model_validate(doc)
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "market"
                raise DataError(
                    f"{page['path']} page {i}, market {j}: {where}: {first['msg']}"
                ) from None


def write_partition(
    job: KalshiFetch,
    raw_dir: Path,
    part: Partition,
    series: dict[str, Responses],
    events: dict[str, str],
    documents: dict[str, str],
    per_market: dict[str, UnitKeys],
) -> dict[str, int]:
    """Write ``part`` from the cache into its raw directory; returns records written per kind.

    Its series document, its events, the pages of its markets' batches holding its markets
    (each recorded with the request that fetched the batch, listing only this partition's
    markets: a batch may span partitions; a page holding none of them is not recorded here),
    then per market in ticker order its candles, trades and books.
    """
    tickers = {m.ticker for m in part.markets}
    batches = list(dict.fromkeys(documents[t] for t in sorted(tickers)))
    with RawWriter(raw_dir / part.name, may_be_empty=MAY_BE_EMPTY) as writer:
        _write(writer, "series", [series[part.series]])
        _write(writer, "events", (job.load(events[e]) for e in part.events))
        _write(writer, "markets", (_only(job.load(key), tickers) for key in batches))
        for kind in MARKET_KINDS:
            keys = (key for m in part.markets for key in per_market[m.ticker][kind])
            _write(writer, kind, (job.load(key) for key in keys))
        return dict(writer.counts)


def _only(pages: Responses, tickers: set[str]) -> Responses:
    """The ``GET /markets`` pages narrowed to the markets of ``tickers``; empty ones left out."""
    out = []
    for page in pages:
        docs = [d for d in page["response"].get("markets") or [] if d.get("ticker") in tickers]
        if docs:
            out.append({**page, "response": {**page["response"], "markets": docs}})
    return out


def _write(writer: RawWriter, kind: str, units: Iterable[Responses]) -> None:
    for responses in units:
        for r in responses:
            writer.write(
                kind,
                r["path"],
                r["params"],
                dt.datetime.fromisoformat(r["received_at"]),
                r["response"],
            )


def fetch_kalshi(
    data: DataParams,
    raw_dir: Path,
    *,
    client: KalshiClient,
    cache_dir: Path = paths.CACHE_DIR,
) -> dict[str, int]:
    """Fetch ``data`` through ``client`` into the partitions of ``raw_dir``; returns records
    written per kind, over all partitions.

    "Now" is the client's clock (``client.transport.clock``), which also stamps responses.
    """
    identity = {
        "base_url": client.transport.base_url,
        "series": sorted(set(data.series or [])),
        "events": sorted(set(data.events or [])),
        "tickers": sorted(set(data.tickers or [])),
        "start": str(data.start),
        "end": str(data.end),
        "hourly": data.hourly_candles,
        "depth": data.orderbook_depth,
    }
    fetch_id = fingerprint(**identity)
    began = time.perf_counter()
    cache = ResponseCache(Path(cache_dir) / CACHE_FILE)
    try:
        run = cache.begin(fetch_id, client.transport.clock())
        if run.resumed:
            logger.info("resuming the fetch interrupted at %s", _utc(run.now))
        job = KalshiFetch(data, client, cache, run)
        series = job.series()
        markets = job.discover()
        events = job.events(markets)
        documents = job.market_documents(markets)
        job.close_range(series, markets)
        parts = partitions(markets, job.series_of_event)
        logger.info(
            "%d markets of %d events (%d settled) open between %s and %s, in %d partitions",
            len(markets),
            len(events),
            sum(m.is_settled for m in markets),
            data.start,
            data.end,
            len(parts),
        )
        units = _in_parallel(job.market_data, markets, data.concurrency or 1)
        per_market = {m.ticker: u for m, u in zip(markets, units, strict=True)}
        counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
        raw_dir = Path(raw_dir)
        raw_dir.mkdir(parents=True, exist_ok=True)
        (raw_dir / PARTITIONS).unlink(missing_ok=True)  # written again once all are complete
        for part in parts:
            counts.update(
                write_partition(job, raw_dir, part, series, events, documents, per_market)
            )
        write_partition_list(raw_dir, [part.name for part in parts])
        cache.finish(fetch_id, run)
    finally:
        cache.close()
    stats = client.transport.stats
    logger.info(
        "fetch: %d requests (%d retries, %d answered 429, %.1f s waiting for the rate limit), "
        "%d units from the cache, %d records %s in %.1f s",
        stats.requests,
        stats.retries,
        stats.throttled,
        stats.waited_s,
        cache.hits,
        sum(counts.values()),
        dict(counts),
        time.perf_counter() - began,
    )
    return dict(counts)


def _in_parallel(
    work: Callable[[Market], UnitKeys], markets: list[Market], workers: int
) -> list[UnitKeys]:
    """``work`` over ``markets`` in ``workers`` threads, in order, with a progress bar.

    The first failure cancels what has not started and is raised; what completed stays cached.
    """
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        done = pool.map(work, markets)
        out = list(tqdm(done, total=len(markets), desc="fetch", unit="market", disable=None))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return out


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def client_for(data: DataParams) -> KalshiClient:
    """The client ``data`` describes (no key: market data is public)."""
    assert data.base_url is not None and data.rate_limit is not None
    return KalshiClient(
        data.base_url,
        timeout_s=data.timeout_s or 10.0,
        max_retries=data.max_retries or 0,
        reads_per_s=data.rate_limit.reads_per_s,
        writes_per_s=data.rate_limit.writes_per_s,
        concurrency=data.concurrency or 1,
    )


def write_kalshi_raw(data: DataParams, raw_dir: Path) -> dict[str, int]:
    """The fetch stage's entry for ``data.source == "kalshi"``."""
    with client_for(data) as client:
        return fetch_kalshi(data, raw_dir, client=client)
