"""A flat raw directory split record by record into the partitioned form (raw_store), and a
partitioned one flattened, for tests and benchmarks: the same data, flat or partitioned, must
give the same tables.

A partition is ``series=<S>/month=<YYYY-MM>``: an event's series and the UTC month of its
latest market close, as the parquet stage places rows. Each partition is a raw directory of its
own (RawWriter: six files and a manifest) holding whole events: its events, its markets (a
page of markets split by partition), their candles, trades (a page split by ticker) and
books, and the series record of its series (every partition of a series repeats it). Records
keep their order within a partition.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kalshi_lab.data.parse import parse_events, parse_markets
from kalshi_lab.data.raw_store import (
    API_PREFIX,
    KINDS,
    ORDERBOOK_PATH,
    RawWriter,
    iter_records,
    partition_name,
    raw_partitions,
    read_manifest,
    write_partition_list,
)
from kalshi_lab.data.table_writer import month_of_events

#: (kind, partition) -> whether to leave that partition's records of that kind out
Drop = Callable[[str, str], bool]


def split_raw(flat: Path, out: Path, drop: Drop = lambda kind, partition: False) -> list[str]:
    """Write ``flat``'s records into the partitions of ``out``; returns their names, listed."""
    events = parse_events(flat)
    markets = parse_markets(flat, events)
    month = month_of_events(markets)
    of_market = {
        t: partition_name(s, month[e])
        for t, e, s in zip(
            markets.column("ticker").to_pylist(),
            markets.column("event_ticker").to_pylist(),
            markets.column("series_ticker").to_pylist(),
            strict=True,
        )
    }
    of_event = {}
    for ticker, event in zip(
        markets.column("ticker").to_pylist(),
        markets.column("event_ticker").to_pylist(),
        strict=True,
    ):
        of_event[event] = of_market[ticker]
    names = sorted(set(of_market.values()))
    of_series: dict[str, list[str]] = {}
    for name in names:
        of_series.setdefault(name.split("/")[0].removeprefix("series="), []).append(name)
    manifest = read_manifest(flat)
    writers = {n: RawWriter(out / n, may_be_empty=manifest.may_be_empty) for n in names}
    book = re.compile(ORDERBOOK_PATH)

    def to(kind: str, name: str, record: dict[str, Any], response: dict[str, Any]) -> None:
        if drop(kind, name):
            return
        writers[name].write(
            kind,
            record["path"].removeprefix(API_PREFIX),
            record["params"],
            dt.datetime.fromisoformat(record["received_at"]),
            response,
            record["method"],
        )

    def by(key: Callable[[dict[str, Any]], str], items: list[dict[str, Any]]) -> dict[str, list]:
        split: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            split.setdefault(key(item), []).append(item)
        return split

    for kind in KINDS:
        for record in iter_records(flat, kind):
            response = record["response"]
            if kind == "series":
                for name in of_series.get(response["series"]["ticker"], []):
                    to(kind, name, record, response)
            elif kind == "events":
                to(kind, of_event[response["event"]["event_ticker"]], record, response)
            elif kind in ("markets", "trades"):
                items = by(lambda i: of_market[i["ticker"]], response[kind])
                for name, part in items.items():
                    to(kind, name, record, {**response, kind: part})
            elif kind == "candlesticks":
                to(kind, of_market[response["ticker"]], record, response)
            else:
                to(kind, of_market[book.fullmatch(record["path"])["ticker"]], record, response)
    for writer in writers.values():
        writer.close()
    write_partition_list(out, names)
    return names


def flatten_raw(partitioned: Path, flat: Path) -> None:
    """Write the records of every partition of ``partitioned`` into the one raw directory
    ``flat``, partition after partition, each series' record once (as a flat fetch has it)."""
    parts = raw_partitions(partitioned)
    may_be_empty = set.intersection(*(set(read_manifest(p).may_be_empty) for p in parts))
    seen: set[str] = set()
    with RawWriter(flat, may_be_empty=may_be_empty) as writer:
        for kind in KINDS:
            for part in parts:
                for record in iter_records(part, kind):
                    if kind == "series":
                        ticker = record["response"]["series"]["ticker"]
                        if ticker in seen:
                            continue
                        seen.add(ticker)
                    writer.write(
                        kind,
                        record["path"].removeprefix(API_PREFIX),
                        record["params"],
                        dt.datetime.fromisoformat(record["received_at"]),
                        record["response"],
                        record["method"],
                    )
