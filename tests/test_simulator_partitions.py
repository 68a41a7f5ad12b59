"""The simulated raw directory is partitioned by series and month of close, and its data are the
ones the simulator wrote before it was: chunking the simulation changes no draw.

The pinned digests below were computed from the flat raw directory that the simulator of
commit 200366e (one pass over every event, one file per kind) wrote for :func:`small_data`:
the sorted rows of every table parsed from it (series de-duplicated: each partition repeats
its series document). The parser's tables and the parquet stage's are the same rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest

from kalshi_lab.compute import map_partitions
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import (
    KINDS,
    MANIFEST,
    PARTITIONS,
    iter_records,
    raw_partitions,
    read_manifest,
)
from kalshi_lab.params import ComputeParams, DataParams, SyntheticParams
from kalshi_lab.simulator import partitions, simulate, write_synthetic_raw
from kalshi_lab.simulator.simulate import simulate_chunks

PINNED = {
    "candles": [27423, "3ae7f7701771b5668341ea6ce69d5e1b8eef4acc3e48e10a184a52c1606fc0c0"],
    "events": [51, "e01d4fe5fe543bb21c95dacf1129e2524b0ea22bbce84890d3b6abe790e22c16"],
    "markets": [130, "7d2f71e5403f921849e6db4a06bb01abf81e3e244f5826e72cf9636d29f75c59"],
    "orderbook": [40569, "4d66aedaf95d0f8812e5acdbd0587f8c9e78b382a90fe5705892cd3b028ddc6a"],
    "series": [5, "8b0c9a368fe7134342f6e15d222a45ea2d952a6e0b0c1e00d6fdd7cdddfe9bf5"],
    "trades": [14948, "49a31531cd54cdbef7ac104f269730c33d16adbb0f26cab1d93c84d2bd49530a"],
}
simulate_module = importlib.import_module("kalshi_lab.simulator.simulate")
#: outcome-hours per chunk small enough to cut this universe into many chunks
SMALL_CHUNK = 3000


def small_data() -> DataParams:
    synthetic = SyntheticParams(
        seed=3,
        n_markets=130,
        max_strikes=4,
        event_shares={"ladder": 0.4, "bracket": 0.3, "binary": 0.3},
        min_duration_days=4,
        max_duration_days=12,
        information_rate=1.2,
        news_floor_hours=6.0,
        price_lag_hours=18.0,
        price_noise=0.25,
        price_noise_close=0.25,
        longshot_bias=0.85,
        longshot_bias_close=0.85,
        accuracy_horizon_days=7.0,
        half_spread_cents=1.5,
        depth_contracts=200.0,
        book_levels=5,
        trades_per_day=14.0,
        informed_share=0.3,
        longshot_taker_share=0.5,
    )
    return DataParams(
        source="synthetic",
        start=dt.date(2025, 1, 1),
        end=dt.date(2025, 3, 10),
        hourly_candles=True,
        orderbook_snapshots_per_day=4,
        synthetic=synthetic,
    )


def table_digests(raw: Path) -> dict[str, list[object]]:
    """Rows and sha256 of the sorted rows of every table parsed from ``raw``'s partitions."""
    rows: dict[str, list[bytes]] = defaultdict(list)
    for part in raw_partitions(raw):
        for name, table in parse_raw(part).items():
            rows[name] += [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in table.to_pylist()]
    rows["series"] = list(set(rows["series"]))
    return {
        name: [len(found), hashlib.sha256(b"\n".join(sorted(found))).hexdigest()]
        for name, found in sorted(rows.items())
        if name in PINNED
    }


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """The small universe, simulated in many chunks, rendered on two worker processes."""
    out = tmp_path_factory.mktemp("raw")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulate_module, "CHUNK_OUTCOME_HOURS", SMALL_CHUNK)
        write_synthetic_raw(small_data(), out, ComputeParams(workers=2))
    return out


def test_the_parsed_tables_are_those_of_the_simulator_before_partitions(raw):
    assert table_digests(raw) == PINNED


def test_simulating_in_chunks_draws_what_one_pass_draws():
    """Every array, chunk after chunk, is the same slice of the one-pass simulation: each draw's
    generator starts where the one pass would be (the partitions' data depend on it)."""
    whole = simulate(small_data())
    _, chunks = simulate_chunks(small_data(), outcome_hours=SMALL_CHUNK)
    done = 0
    for events, chunk in chunks:
        assert events[0] == done
        done = events[-1] + 1
        expected = whole.subset(events)
        for part in ("latent", "quotes", "trades", "stats", "books"):
            got, want = getattr(chunk, part), getattr(expected, part)
            for field in dataclasses.fields(got):
                np.testing.assert_array_equal(
                    getattr(got, field.name), getattr(want, field.name), err_msg=part
                )
        assert chunk.trade_pages == expected.trade_pages
    assert done == len(whole.latent.winner) and done > 20  # many chunks


def test_each_partition_holds_whole_events_of_its_series_and_month_of_close(raw):
    names = orjson.loads((raw / PARTITIONS).read_bytes())["partitions"]
    assert names == sorted(names) and len(names) >= 10
    events_seen: set[str] = set()
    for part in raw_partitions(raw):
        series = part.parent.name.removeprefix("series=")
        month = part.name.removeprefix("month=")
        assert (part / MANIFEST).is_file() and all((part / f).is_file() for f in KINDS.values())
        [doc] = [r["response"]["series"] for r in iter_records(part, "series")]
        assert doc["ticker"] == series
        events = {}
        for record in iter_records(part, "events"):
            event = record["response"]["event"]
            assert event["series_ticker"] == series
            assert event["strike_date"][:7] == month  # the event's close
            events[event["event_ticker"]] = {m["ticker"] for m in record["response"]["markets"]}
        tickers = set().union(*events.values())
        paged = [m for r in iter_records(part, "markets") for m in r["response"]["markets"]]
        assert sorted(m["ticker"] for m in paged) == sorted(tickers)
        assert {m["event_ticker"] for m in paged} == events.keys()
        for kind, key in (("candlesticks", "ticker"), ("trades", "ticker")):
            assert {
                r["response"].get(key) or r["params"][key] for r in iter_records(part, kind)
            } == tickers
        books = {r["path"].split("/")[-2] for r in iter_records(part, "orderbooks")}
        assert books == tickers
        assert not events_seen & events.keys()
        events_seen |= events.keys()
        manifest = read_manifest(part)
        assert manifest.records == {k: sum(1 for _ in iter_records(part, k)) for k in KINDS}
    assert len(events_seen) == PINNED["events"][0]


def test_one_worker_or_two_write_the_same_bytes(raw, tmp_path):
    write_synthetic_raw(small_data(), tmp_path, ComputeParams(workers=1))
    files = sorted(p.relative_to(raw) for p in raw.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / name).read_bytes() == (raw / name).read_bytes(), name


def test_a_small_simulation_starts_no_workers_unless_asked_to():
    """Worker start-up costs more than a second core saves on small data: one process then,
    unless ``compute`` names the workers or another engine."""
    universe, _ = simulate_chunks(small_data())
    assert partitions._engine(universe, None).workers == 1
    assert partitions._engine(universe, ComputeParams(workers=2)).workers == 2
    dask = ComputeParams(engine="dask")
    assert partitions._engine(universe, dask) == dask
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(partitions, "PARALLEL_MARKET_HOURS", 1)
        assert partitions._engine(universe, None).workers is None


def test_pieces_are_spilled_inside_the_raw_directory_and_gone_when_it_is_written(
    tmp_path, monkeypatch
):
    """Inside the output, so that a Dask worker on another machine sharing the project's files
    reads them; removed before the directory is complete, so no partition list or reader
    ever sees them."""
    spilled: list[Path] = []
    real = partitions.spill

    def recording(path: Path, piece) -> None:
        spilled.append(path)
        real(path, piece)

    monkeypatch.setattr(partitions, "spill", recording)
    out = tmp_path / "raw"
    write_synthetic_raw(small_data(), out, ComputeParams(workers=1))
    assert spilled and all(path.is_relative_to(out) for path in spilled)
    assert not any(path.exists() for path in spilled)
    listed = {part.relative_to(out).parts[0] for part in raw_partitions(out)}
    assert {p.name for p in out.iterdir()} == {PARTITIONS, *listed}


def assert_whole_series_volumes(raw: Path) -> None:
    """Every partition's series document counts the contracts traded in every partition of
    the series, the last drawn included."""
    documents: dict[str, list[dict]] = defaultdict(list)
    traded: dict[str, float] = defaultdict(float)
    for part in raw_partitions(raw):
        [doc] = [r["response"]["series"] for r in iter_records(part, "series")]
        documents[doc["ticker"]].append(doc)
        for record in iter_records(part, "markets"):
            for market in record["response"]["markets"]:
                traded[doc["ticker"]] += float(market["volume_fp"])
    assert documents.keys() == traded.keys() and len(documents) > 1
    for ticker, docs in documents.items():
        assert len(docs) > 1  # several months
        assert all(doc == docs[0] for doc in docs), ticker
        assert float(docs[0]["volume_fp"]) == traded[ticker] > 0


def test_every_partition_of_a_series_has_the_volume_of_the_whole_series(raw):
    """A partition is rendered as soon as its events are drawn; its series document waits for
    the volume of them all."""
    assert_whole_series_volumes(raw)


def test_a_partition_is_done_when_the_last_chunk_holding_its_events_is_drawn(tmp_path):
    """Events are drawn in the order they open; a partition's job comes as soon as the chunk
    holding its last event is spilled, with its pieces in event order, before later chunks."""
    universe, chunks = simulate_chunks(small_data(), outcome_hours=SMALL_CHUNK)
    names, of_event = partitions.event_partitions(universe)
    drawn: list[np.ndarray] = []

    def counted():
        for events, sim in chunks:
            drawn.append(events)
            yield events, sim

    draws = partitions.Draws(np.zeros(len(partitions.SERIES), dtype=np.int64))
    jobs = partitions.drawn_partitions(counted(), of_event, tmp_path, names, tmp_path, draws, 0.0)
    done_after: dict[int, int] = {}
    for job in jobs:
        events = np.flatnonzero(of_event == job.index)
        holding = [c for c, chunk in enumerate(drawn) if np.isin(events, chunk).any()]
        assert holding[-1] == len(drawn) - 1  # the chunk just drawn holds its last events
        assert np.isin(events, np.concatenate(drawn)).all()
        pieces = [partitions.unspill(path).universe for path in job.pieces]
        assert len(pieces) == len(holding)  # one per chunk, in event order:
        assert sum((u.event_ticker for u in pieces), []) == [
            universe.event_ticker[e] for e in events
        ]
        assert job.out == tmp_path / names[job.index]
        done_after[job.index] = len(drawn)
    assert sorted(done_after) == list(range(len(names)))
    assert min(done_after.values()) < len(drawn) / 2  # early months done early
    assert draws.volume.sum() > 0


@pytest.mark.parametrize(
    "compute",
    [
        pytest.param(ComputeParams(workers=1), id="local-1"),
        pytest.param(ComputeParams(workers=2), id="local-2"),
        pytest.param(ComputeParams(engine="dask", workers=2), id="dask-2", marks=pytest.mark.slow),
    ],
)
def test_partitions_are_rendered_before_the_last_chunk_is_drawn(
    raw, tmp_path, monkeypatch, compute
):
    """The draws are sequential, but a partition need not wait for them all: its rendering
    (on a worker, or here with one) starts while the later chunks are drawn. The last chunk
    waits here until a partition is rendered: it would wait forever (up to a timeout here)
    if none were before all were drawn. The files are the same."""
    rendered = threading.Event()
    waited: list[bool] = []
    real_chunks = partitions.simulate_chunks

    def last_chunk_after_a_render(data):
        universe, chunks = real_chunks(data)

        def gated():
            previous = next(chunks)
            for chunk in chunks:
                yield previous
                previous = chunk
            waited.append(rendered.wait(timeout=30))
            yield previous

        return universe, gated()

    busy: list[bool] = []

    def noting_renders(fn, jobs, engine, **options):
        for result in map_partitions(fn, jobs, engine, **options):
            if not rendered.is_set():
                busy.append(options["busy"]())
            rendered.set()
            yield result
        busy.append(options["busy"]())

    monkeypatch.setattr(simulate_module, "CHUNK_OUTCOME_HOURS", SMALL_CHUNK)
    monkeypatch.setattr(partitions, "simulate_chunks", last_chunk_after_a_render)
    monkeypatch.setattr(partitions, "map_partitions", noting_renders)
    write_synthetic_raw(small_data(), tmp_path, compute)
    assert waited == [True]
    # map_partitions leaves the draws a core while they go on (the first render came before
    # the last chunk), and all of them once they are over
    assert busy == [True, False]
    assert_whole_series_volumes(tmp_path)  # rendered early, but the series documents last
    files = sorted(p.relative_to(raw) for p in raw.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / name).read_bytes() == (raw / name).read_bytes(), name


@pytest.mark.parametrize("workers", [1, 2])
def test_a_draw_failing_after_partitions_were_rendered_is_raised_and_leaves_no_pieces(
    tmp_path, monkeypatch, workers
):
    """Once a partition is rendered (the producer waits for it here), a draw fails."""
    real_chunks = partitions.simulate_chunks
    rendered = threading.Event()

    def failing(data):
        universe, chunks = real_chunks(data)

        def draws():
            for c, chunk in enumerate(chunks):
                if c == 12 and rendered.wait(timeout=30):
                    raise FloatingPointError("a draw went wrong")
                yield chunk

        return universe, draws()

    def noting_renders(fn, jobs, engine, **options):
        for result in map_partitions(fn, jobs, engine, **options):
            rendered.set()
            yield result

    monkeypatch.setattr(simulate_module, "CHUNK_OUTCOME_HOURS", SMALL_CHUNK)
    monkeypatch.setattr(partitions, "simulate_chunks", failing)
    monkeypatch.setattr(partitions, "map_partitions", noting_renders)
    with pytest.raises(FloatingPointError, match="a draw went wrong"):
        write_synthetic_raw(small_data(), tmp_path, ComputeParams(workers=workers))
    assert not list(tmp_path.glob(partitions.SPILL_DIR + "*"))
    assert not (tmp_path / PARTITIONS).exists()
    assert not list(tmp_path.rglob(MANIFEST))  # no partition is complete without its series
