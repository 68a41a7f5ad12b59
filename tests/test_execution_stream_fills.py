"""LiveKalshiExchange books each fill once, from whichever source tells it first: the stream's
``fill`` messages (a ``FillSource``) or the REST listings.

The fills are real: orders the exchange placed on the local server, their fills as
``GET /portfolio/fills`` lists them and as the server's ``fill`` channel sent them (the
AsyncAPI ``fillPayload``: ``trade_id``, no ``fill_id``, no ``seq``). The examples then play
them back through a venue that lists the fills it is told to show, and a stream that delivers
the messages it is told to, in any order, any number of times, or never.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kalshi_lab.bot import journal as journal_module
from kalshi_lab.bot.journal import JOURNAL, Journal, JournalSchemaError
from kalshi_lab.bot.stream_feed import StreamFeed
from kalshi_lab.client import KalshiClient, KalshiError, KalshiSigner
from kalshi_lab.client.records import Fill as ApiFill
from kalshi_lab.client.ws import KalshiStream
from kalshi_lab.execution.decision import ContractOrder
from kalshi_lab.execution.lifecycle import VenueOrder
from kalshi_lab.execution.live import STREAM, LiveKalshiExchange, fill_from_api
from kalshi_lab.server import Dataset, LocalKalshiServer, ServerConfig
from server_support import CUTOFF, KEY_ID, NOW, OPEN_A, write_handmade_raw
from ws_support import Consumer, wait_until

TS = pd.Timestamp(NOW)
EVENT_A = "KXTEST-E1"
#: orders crossing A's book (NO bids 0.53 x4, 0.52 x10; YES bids 0.45 x20): six fills
ORDERS = [("yes", 2, 47), ("yes", 3, 48), ("no", 3, 58), ("no", 2, 58), ("yes", 4, 48)]


@dataclass(frozen=True)
class Captured:
    """What the server told of the fills of ``orders``: ``listed`` as the REST listing shows
    them (oldest first), ``streamed`` as the stream sent them, in the same order."""

    orders: list[VenueOrder]
    listed: list[ApiFill]
    streamed: list[ApiFill]


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dataset = Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))
    config = ServerConfig(rate_limit=False, cutoff=CUTOFF, now=NOW, public_key=key.public_key(),
                          key_id=KEY_ID)  # fmt: skip
    signer = KalshiSigner(KEY_ID, key)
    with LocalKalshiServer(dataset, config) as srv:
        client = KalshiClient(srv.base_url, signer=signer, reads_per_s=1000, writes_per_s=1000)
        stream = KalshiStream(srv.ws_url, channels=["fill"], auth=signer)
        with client, Consumer(stream) as consumer:
            assert wait_until(lambda: stream.connected)
            exchange = LiveKalshiExchange(client, since=TS - pd.Timedelta(hours=1))
            for i, (side, count, limit) in enumerate(ORDERS):
                order = ContractOrder(
                    OPEN_A, EVENT_A, side, "buy", count, limit, TS, client_order_id=f"sf-{i}"
                )
                assert exchange.submit(order, TS)
            listed = client.get_fills()[::-1]
            assert wait_until(lambda: len(consumer.of_type("fill")) == len(listed))
        messages = [m["msg"] for m in consumer.of_type("fill")]
    assert len(listed) == 6 and all(not {"fill_id", "seq"} & m.keys() for m in messages)
    by_trade = {m["trade_id"]: ApiFill.model_validate(m) for m in messages}
    return Captured(
        orders=list(exchange.orders.values()),
        listed=listed,
        streamed=[by_trade[doc.trade_id] for doc in listed],  # type: ignore[index]
    )


class Venue:
    """The venue's REST side as the exchange reads it: the listings show the fills of
    ``shown`` (indexes into ``listed``), newest first, within min_ts/max_ts; ``failing``
    listings raise."""

    def __init__(self, listed: list[ApiFill]) -> None:
        self.listed = listed
        self.shown: set[int] = set()
        self.failing = 0

    def get_fills(self, ticker=None, order_id=None, min_ts=None, max_ts=None) -> list[ApiFill]:
        if self.failing:
            self.failing -= 1
            raise KalshiError("GET /portfolio/fills: connection reset")
        out = []
        for i in sorted(self.shown, reverse=True):
            doc = self.listed[i]
            s = int(pd.Timestamp(doc.created_time).timestamp())
            if order_id not in (None, doc.order_id):
                continue
            if (min_ts is None or s >= min_ts) and (max_ts is None or s <= max_ts):
                out.append(doc)
        return out


class Stream:
    """A FillSource: hands over what was ``sent`` since the last take."""

    def __init__(self) -> None:
        self.sent: list[ApiFill] = []

    def take_fills(self) -> list[ApiFill]:
        taken, self.sent = self.sent, []
        return taken


def listed_as(captured: Captured, distinct: bool) -> list[ApiFill]:
    """The listing's documents; ``distinct``: a venue whose fill_id differs from its trade_id
    (Kalshi's spec makes them the same; the exchange must not depend on it)."""
    if not distinct:
        return captured.listed
    return [d.model_copy(update={"fill_id": f"fill-{d.trade_id}"}) for d in captured.listed]


@pytest.fixture
def journal_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def journaled(folder: Path, captured: Captured) -> Journal:
    journal = Journal.create(folder / JOURNAL, {"mode": "paper"})
    for venue in captured.orders:
        journal.record_order(venue)
    return journal


def exchange_on(
    venue: Venue, stream: Stream, journal: Journal, **restore: Any
) -> LiveKalshiExchange:
    exchange = LiveKalshiExchange(
        venue,  # type: ignore[arg-type]
        since=TS - pd.Timedelta(hours=1),
        journal=journal,
        fill_source=stream,
    )
    exchange.restore(journal.venue_orders(), **restore)
    return exchange


def booked(fills) -> Counter[tuple[Any, ...]]:
    return Counter((f.order_id, f.side, f.count, f.cost_cents, f.fee_cents) for f in fills)


STEP = st.one_of(
    st.tuples(st.just("stream"), st.integers(0, 5)),
    st.tuples(st.just("reveal"), st.integers(0, 5)),
    st.tuples(st.sampled_from(["fills", "resolve"]), st.just(0)),
)


@given(data=st.data())
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_interleaving_of_stream_and_listing_books_each_fill_once(captured, data) -> None:
    """Stream messages delivered in any order, twice or never, listings showing any subset at
    any step, and the two ids equal (the spec) or not: each fill is booked once, from the
    source that told it first, journaled with both ids; and after a restart from the journal,
    neither a replay of the stream nor the listing books any again."""
    distinct = data.draw(st.booleans(), label="distinct ids")
    steps = data.draw(st.lists(STEP, max_size=30), label="steps")
    listed = listed_as(captured, distinct)
    venue, stream = Venue(listed), Stream()
    with tempfile.TemporaryDirectory() as tmp:
        journal = journaled(Path(tmp), captured)
        exchange = exchange_on(venue, stream, journal)
        reported: list[Any] = []
        first: dict[int, str] = {}
        delivered: set[int] = set()

        def call(kind: str) -> None:
            reported.extend(getattr(exchange, kind)(TS))
            for i in sorted(delivered):
                first.setdefault(i, "stream")  # taken before the listing was asked
            for i in sorted(venue.shown):
                first.setdefault(i, "rest")

        for kind, i in steps:
            if kind == "stream":
                stream.sent.append(captured.streamed[i])
                delivered.add(i)
            elif kind == "reveal":
                venue.shown.add(i)
            else:
                call(kind)
        venue.shown = set(range(len(listed)))
        call("fills")

        expected = [
            fill_from_api(d, o, TS) for d, o in zip(listed, client_ids(captured), strict=True)
        ]
        assert booked(reported) == booked(expected) and len(reported) == len(listed)
        assert exchange.fills_first_seen == Counter(first.values())
        rows = [r for r in journal.ledger() if r["kind"] == "fill"]
        assert sorted(r["trade_id"] for r in rows) == sorted(d.trade_id for d in listed)
        assert sorted(r["key"] for r in rows) == sorted(d.fill_id for d in listed)
        source = {r["trade_id"]: r["source"] for r in rows}
        assert source == {listed[i].trade_id: s for i, s in first.items()}

        journal.release()  # a restart: the next exchange knows the journal's fills only
        with Journal.open(Path(tmp) / JOURNAL) as again:
            later = exchange_on(venue, Stream(), again, fill_ids=again.fill_ids())
            later.fill_source.sent = list(captured.streamed) * 2  # type: ignore[union-attr]
            assert later.fills(TS) == [] and later.resolve(TS) == []
            assert not later.fills_first_seen


def client_ids(captured: Captured) -> list[str]:
    by_order = {v.order_id: v.client_order_id for v in captured.orders}
    return [by_order[d.order_id] for d in captured.listed]


def test_a_stream_fill_stamped_after_until_waits_for_its_time(captured, journal_dir) -> None:
    """No look-ahead: ``fills(until)`` books only stream fills stamped up to ``until``."""
    venue, stream = Venue(captured.listed), Stream()
    exchange = exchange_on(venue, stream, journaled(journal_dir, captured))
    stream.sent = [captured.streamed[0]]
    assert exchange.fills(TS - pd.Timedelta(seconds=1)) == []
    assert exchange.resolve(TS - pd.Timedelta(seconds=1)) == []
    (fill,) = exchange.fills(TS)
    assert fill.ts == TS and exchange.fills_first_seen == Counter({STREAM: 1})


def test_a_listing_that_fails_loses_none_of_the_stream_s_fills(captured, journal_dir) -> None:
    """The stream's fills are taken before the listing is asked: a listing that fails raises
    as before, and the fills wait for the next call, which books them once."""
    venue, stream = Venue(captured.listed), Stream()
    exchange = exchange_on(venue, stream, journaled(journal_dir, captured))
    stream.sent = captured.streamed[:3]
    venue.failing = 1
    with pytest.raises(KalshiError):
        exchange.fills(TS)
    venue.shown = {0, 1, 2, 3}
    fills = exchange.fills(TS)
    assert len(fills) == 4 and exchange.fills_first_seen == Counter(stream=3, rest=1)


def test_a_listed_fill_is_known_by_its_trade_id_after_the_stream_told_it(
    captured, journal_dir
) -> None:
    """A venue whose fill_id differs from its trade_id: the fill the stream told (trade_id
    only) is not booked again when listed; the journal then keys it by its fill_id."""
    listed = listed_as(captured, distinct=True)
    venue, stream = Venue(listed), Stream()
    journal = journaled(journal_dir, captured)
    exchange = exchange_on(venue, stream, journal)
    stream.sent = [captured.streamed[1]]
    assert len(exchange.fills(TS)) == 1
    (row,) = [r for r in journal.ledger() if r["kind"] == "fill"]
    assert row["key"] == row["trade_id"] == listed[1].trade_id and row["source"] == "stream"
    venue.shown = {1}
    assert exchange.fills(TS) == []
    (row,) = [r for r in journal.ledger() if r["kind"] == "fill"]
    assert (row["key"], row["trade_id"]) == (listed[1].fill_id, listed[1].trade_id)
    assert journal.fill_ids() == {listed[1].fill_id, listed[1].trade_id}


def test_the_feed_hands_over_fill_messages_and_counts_those_it_cannot_read(
    captured, caplog
) -> None:
    """StreamFeed parses each fill message into the listing's record; one it cannot read is
    counted and logged (the listing books its fill), and never stops the stream."""
    feed = StreamFeed("ws://127.0.0.1:9/trade-api/ws/v2", KalshiSigner(KEY_ID, _key()))
    assert feed.stream.channels == ["orderbook_delta", "fill"]
    assert StreamFeed("ws://127.0.0.1:9/trade-api/ws/v2", None).stream.channels == [
        "orderbook_delta"
    ]  # unauthenticated, the fill channel is refused (error 9)
    good = captured.streamed[0].model_dump(mode="json")
    message = {"trade_id": good["trade_id"], "order_id": good["order_id"],
               "market_ticker": OPEN_A, "side": "yes", "action": "buy", "count_fp": "2.00",
               "yes_price_dollars": "0.4700", "fee_cost": "0.0200", "is_taker": True,
               "ts": int(TS.timestamp()), "ts_ms": int(TS.timestamp()) * 1000}  # fmt: skip
    caplog.set_level(logging.ERROR, logger="kalshi_lab")
    feed._take({"type": "fill", "sid": 2, "msg": message})
    feed._take({"type": "fill", "sid": 2, "msg": {**message, "count_fp": "two"}})
    feed._take({"type": "fill", "sid": 2, "msg": {k: v for k, v in message.items()
                                                   if k != "trade_id"}})  # fmt: skip
    (fill,) = feed.take_fills()
    assert feed.take_fills() == [] and feed.bad_fills == 2
    assert fill.trade_id == good["trade_id"] and fill.ticker == OPEN_A
    assert pd.Timestamp(fill.created_time) == TS and fill.count == 2
    assert len([r for r in caplog.records if "fill message" in r.getMessage()]) == 2


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- the journal's schema ----------------------------------------------------------------------

#: the journal layout of schema 1: schema 2 added the ledger's trade_id and source
SCHEMA_V1 = journal_module.SCHEMA.replace(",\n    trade_id TEXT,\n    source TEXT\n", "\n")


def v1_journal(path: Path, captured: Captured) -> None:
    """A journal as schema 1 wrote it: one order, one fill keyed by its fill_id."""
    assert SCHEMA_V1 != journal_module.SCHEMA
    venue, doc = captured.orders[0], captured.listed[0]
    fill = fill_from_api(doc, venue.client_order_id, TS)
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA_V1)
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
            ("schema", "1"), ("session", '{"mode": "paper"}'),
            ("start", json.dumps({"initial_cash_cents": 10_000})),
        ])  # fmt: skip
        db.execute(
            "INSERT INTO venue_orders (client_order_id, ticker, event_ticker, side, action, "
            "count, limit_cents, time_in_force, decided_at, state, order_id, venue_filled, "
            "reason, cancel_pending, sent_at, updated_at) VALUES "
            "(?, ?, ?, ?, 'buy', ?, ?, 'ioc', ?, 'placed', ?, ?, '', 0, ?, ?)",
            (venue.client_order_id, venue.ticker, venue.event_ticker, venue.side, venue.count,
             venue.limit_cents, TS.isoformat(), venue.order_id, fill.count, TS.isoformat(),
             TS.isoformat()),
        )  # fmt: skip
        db.execute(
            "INSERT INTO ledger (kind, key, client_order_id, ticker, event_ticker, side, action, "
            "count, cost_cents, fee_cents, liquidity, ts, written_at) VALUES "
            "('fill', ?, ?, ?, ?, ?, 'buy', ?, ?, ?, 'taker', ?, ?)",
            (doc.fill_id, venue.client_order_id, venue.ticker, venue.event_ticker, venue.side,
             fill.count, fill.cost_cents, fill.fee_cents, TS.isoformat(), TS.isoformat()),
        )  # fmt: skip


def test_a_schema_1_journal_is_upgraded_and_its_fills_are_never_booked_again(
    captured, journal_dir
) -> None:
    """A journal written before fills had two ids opens (schema 2 from then on), replays the
    same account, and a restart from it books neither the stream's nor the listing's copy of
    the fill it holds."""
    path = journal_dir / JOURNAL
    v1_journal(path, captured)
    with Journal.open(path) as journal:
        assert journal.meta("schema") == journal_module.SCHEMA_VERSION == 2
        (old,) = journal.ledger()
        assert old["trade_id"] is None and old["source"] is None
        account = journal.replay()
        assert account is not None and account.positions[OPEN_A].contracts == old["count"]
        venue, stream = Venue(captured.listed), Stream()
        exchange = exchange_on(venue, stream, journal, fill_ids=journal.fill_ids())
        stream.sent = [captured.streamed[0]]
        venue.shown = {0}
        assert exchange.fills(TS) == [] and exchange.resolve(TS) == []
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM ledger").fetchone()[0] == 1


def test_a_journal_of_a_newer_schema_is_refused_unchanged_with_one_line(journal_dir) -> None:
    path = journal_dir / JOURNAL
    Journal.create(path, {"mode": "paper"}).release()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    before = path.read_bytes()
    with pytest.raises(JournalSchemaError) as raised:
        Journal.open(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and "schema 3" in message
    assert path.read_bytes() == before
    Journal.peek(path)  # not left locked
    with pytest.raises(JournalSchemaError):
        Journal.open(path)
