"""The parquet stage's partitioned datasets: the same tables from a flat raw directory and from
the same data split into partitions, the same bytes on every run and with any number of
workers, every row in its market's partition, and the readers' rows and order."""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from kalshi_lab.compose_params import compose
from kalshi_lab.data.parquet_build import write_tables
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import KINDS, MANIFEST, raw_partitions, read_manifest
from kalshi_lab.data.stream_store import SegmentWriter, stream_dir
from kalshi_lab.data.table_writer import PartitionWriter, month_of_events
from kalshi_lab.data.tables import TABLES, read_table, table_dataset
from kalshi_lab.errors import DataError
from kalshi_lab.params import ComputeParams, params_from_dict
from kalshi_lab.simulator import write_synthetic_raw
from kalshi_lab.stages import parquet
from kalshi_lab.stages.runner import run_stage
from raw_split import flatten_raw, split_raw
from table_files import files_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict[str, Path]:
    """A small simulation in three forms: partitioned as the simulator writes it, flattened
    into one raw directory, and that flat one split into partitions again record by record."""
    overrides = ["data.synthetic.n_markets=40", "data.start=2025-01-01", "data.end=2025-03-31"]
    data = params_from_dict(compose(overrides, ROOT / "conf")).data
    base = tmp_path_factory.mktemp("raw")
    write_synthetic_raw(data, base / "simulated")
    flatten_raw(base / "simulated", base / "flat")
    names = split_raw(base / "flat", base / "split")
    assert len(names) >= 6 and len({n.split("/")[0] for n in names}) >= 3  # series and months
    assert names == [
        p.relative_to(base / "simulated").as_posix() for p in raw_partitions(base / "simulated")
    ]
    return {"flat": base / "flat", "split": base / "split", "simulated": base / "simulated"}


@pytest.fixture(scope="module")
def written(raw, tmp_path_factory) -> dict[str, Path]:
    """The tables of each raw form (one worker)."""
    out = {}
    for form, raw_dir in raw.items():
        out[form] = tmp_path_factory.mktemp(form)
        write_tables(raw_dir, out[form], compute=ComputeParams(workers=1))
    return out


def test_a_flat_raw_directory_and_its_partitions_give_the_same_tables(written):
    for name in TABLES:
        flat, split = (read_table(name, written[form]) for form in ("flat", "split"))
        assert len(flat) > 0, name
        pd.testing.assert_frame_equal(flat, split, obj=name)
    # the split's partitions land in the same dataset partitions, one file each (of its raw
    # partition), where the flat directory's rows are split row by row into part-0 files
    for name in TABLES:
        flat_dirs = {Path(f).parent for f in table_dataset(name, written["flat"]).files}
        split_files = table_dataset(name, written["split"]).files
        relative = {Path(f).parent.relative_to(written["split"]) for f in split_files}
        assert relative == {d.relative_to(written["flat"]) for d in flat_dirs}, name
        assert len(split_files) == len(relative), name


def test_the_same_data_gives_the_same_bytes_whatever_the_workers(raw, written, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    write_tables(raw["split"], again, compute=ComputeParams(workers=2))
    assert files_of(again) == files_of(written["split"])


def test_each_row_lies_in_its_market_s_partition(written, raw):
    """series = the market's series; month = the UTC month of its event's latest close."""
    markets = parse_raw(raw["flat"])["markets"].to_pandas()
    latest = markets.groupby("event_ticker")["close_time"].transform("max")
    expected = dict(
        zip(
            markets["ticker"],
            zip(markets["series_ticker"], latest.dt.strftime("%Y-%m"), strict=True),
            strict=True,
        )
    )
    for name in ("markets", "candles", "trades", "orderbook"):
        table = table_dataset(name, written["flat"]).to_table(columns=["ticker", "series", "month"])
        found = set(
            zip(*(table.column(c).to_pylist() for c in ("ticker", "series", "month")), strict=True)
        )
        assert found == {(t, *expected[t]) for t in {row[0] for row in found}}, name


def test_an_event_s_markets_share_the_month_of_its_latest_close(tmp_path):
    """Across a month's end, in UTC: the markets of E close on 31 January and 1 February."""
    closes = {
        "E-A": "2025-01-31T23:00:00Z",
        "E-B": "2025-02-01T01:00:00Z",
        "F-A": "2025-01-31T23:00:00Z",
    }
    markets = pa.table(
        {
            "ticker": list(closes),
            "event_ticker": [t.split("-")[0] for t in closes],
            "series_ticker": ["S", "S", "T"],
            "close_time": pc.cast(
                pa.array(list(closes.values())), TABLES["markets"].field("close_time").type
            ),
        }
    )
    assert month_of_events(markets) == {"E": "2025-02", "F": "2025-01"}
    writer = PartitionWriter(tmp_path, 3)
    writer.route(markets)
    tickers = ["F-A", "E-B", "E-A", "F-A"]
    rows = pa.table(
        {c: tickers if c == "ticker" else [None] * 4 for c in TABLES["candles"].names},
        schema=TABLES["candles"],
    )
    assert writer.write("candles", iter([rows])) == 4
    assert writer.files["candles"] == [
        "series=S/month=2025-02/part-3.parquet",
        "series=T/month=2025-01/part-3.parquet",
    ]


def _partition_order(table: pa.Table, markets: pa.Table, key: str) -> pd.DataFrame:
    """``table``'s rows (as the parser gives them from the flat directory) in the order of
    their partitions, each partition's rows in their order."""
    months = month_of_events(markets)
    of_key = {
        k: (s, months[e])
        for k, e, s in zip(
            *(markets.column(c).to_pylist() for c in (key, "event_ticker", "series_ticker")),
            strict=True,
        )
    }
    frame = table.to_pandas()
    partition = pd.Series([of_key[k] for k in frame[key]], index=frame.index)
    order = sorted(range(len(frame)), key=lambda i: partition.iloc[i])  # stable
    return frame.iloc[order].reset_index(drop=True)


def test_the_reader_returns_the_parser_s_rows_partition_by_partition(written, raw):
    """Today's rows: the trades in the parser's order (by ticker, then time) across
    partitions; the others partition by partition, each in the raw files' order."""
    whole = parse_raw(raw["flat"])
    root = written["flat"]
    pd.testing.assert_frame_equal(read_table("trades", root), whole["trades"].to_pandas())
    for name, key in (
        ("candles", "ticker"),
        ("orderbook", "ticker"),
        ("markets", "ticker"),
        ("events", "event_ticker"),
    ):
        expected = _partition_order(whole[name], whole["markets"], key)
        pd.testing.assert_frame_equal(read_table(name, root), expected, obj=name)
    series = read_table("series", root)
    assert series["series_ticker"].tolist() == sorted(whole["series"]["series_ticker"].to_pylist())


def test_the_reader_reads_columns_markets_and_partitions(written):
    root = written["split"]
    book = read_table("orderbook", root)
    tickers = set(book["ticker"].iloc[[0, len(book) // 2, -1]])
    some = read_table("orderbook", root, ["ticker", "price"], ("ticker",), tickers)
    expected = book.loc[book["ticker"].isin(tickers), ["ticker", "price"]].reset_index(drop=True)
    assert some["ticker"].dtype == "category"
    pd.testing.assert_frame_equal(some.astype({"ticker": object}), expected)
    series = book["ticker"].iloc[0].split("-")[0]
    trades = read_table("trades", root)
    of_series = read_table("trades", root, filter=ds.field("series") == series)
    expected = trades[trades["ticker"].str.startswith(series + "-")].reset_index(drop=True)
    pd.testing.assert_frame_equal(of_series, expected)
    assert 0 < len(of_series) < len(trades)


def test_a_kind_may_be_empty_in_some_partitions_but_not_in_all(raw, written, tmp_path):
    first = sorted(
        p.relative_to(raw["split"]).parent.as_posix()
        for p in raw["split"].glob("series=*/month=*/manifest.json")
    )[0]
    split_raw(raw["flat"], tmp_path / "some", drop=lambda kind, p: kind == "trades" and p == first)
    out = tmp_path / "some-tables"
    out.mkdir()
    write_tables(tmp_path / "some", out, compute=ComputeParams(workers=1))
    trades = read_table("trades", out)
    everything = read_table("trades", written["split"])
    series, month = (part.split("=")[1] for part in first.split("/"))
    in_first = read_table(
        "trades",
        written["split"],
        filter=(ds.field("series") == series) & (ds.field("month") == month),
    )
    assert len(in_first) > 0
    assert len(trades) == len(everything) - len(in_first)

    none = tmp_path / "none"
    split_raw(raw["flat"], none, drop=lambda kind, p: kind == "trades")
    with pytest.raises(DataError, match=rf"^{none}: no trades in any of its \d+ partitions"):
        write_tables(none, tmp_path, compute=ComputeParams(workers=1))


def test_a_market_in_two_raw_partitions_is_an_error(raw, tmp_path):
    split = tmp_path / "split"
    shutil.copytree(raw["split"], split)
    first, second = sorted(split.glob("series=*/month=*"))[:2]
    manifest = orjson.loads((second / MANIFEST).read_bytes())
    for kind in ("events", "markets"):  # the first's events and markets, again in the second
        path = second / KINDS[kind]
        path.write_bytes((first / KINDS[kind]).read_bytes() + path.read_bytes())
        manifest["records"][kind] += read_manifest(first).records[kind]
    (second / MANIFEST).write_bytes(orjson.dumps(manifest))
    with pytest.raises(
        DataError,
        match=rf"{second}: market \S+ is also in {first}: a raw partition holds whole events",
    ):
        write_tables(split, tmp_path, compute=ComputeParams(workers=1))


def _snapshots(recorded: Path, tickers: list[str], at: dt.datetime) -> None:
    """A recording (Kalshi AsyncAPI, channel orderbook_delta) of one YES level of each market,
    and a later delta, so that the book is sampled until then."""
    writer = SegmentWriter(stream_dir(recorded), {"channels": ["orderbook_delta"]})
    for seq, ticker in enumerate(tickers, start=1):
        snapshot = {"market_ticker": ticker, "yes_dollars_fp": [["0.4000", "10.00"]]}
        writer.write({"type": "orderbook_snapshot", "sid": seq, "seq": 1, "msg": snapshot}, at)
    later = at + dt.timedelta(hours=2)
    for seq, ticker in enumerate(tickers, start=1):
        delta = {
            "market_ticker": ticker,
            "price_dollars": "0.4000",
            "delta_fp": "2.00",
            "side": "yes",
            "ts_ms": int(later.timestamp() * 1000),
        }
        writer.write({"type": "orderbook_delta", "sid": seq, "seq": 2, "msg": delta}, later)
    writer.close()


def test_recorded_books_go_to_their_markets_partitions(raw, written, tmp_path, caplog):
    placed = table_dataset("markets", written["split"]).to_table(
        columns=["ticker", "series", "month"]
    )
    rows = placed.to_pylist()
    one = rows[0]
    other = next(r for r in rows if (r["series"], r["month"]) != (one["series"], one["month"]))
    at = dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
    _snapshots(tmp_path / "recorded", [one["ticker"], other["ticker"], "KXNOWHERE-25JAN01"], at)
    out = tmp_path / "tables"
    out.mkdir()
    with caplog.at_level(logging.INFO):
        write_tables(
            raw["split"], out, recorded_dir=tmp_path / "recorded", compute=ComputeParams(workers=1)
        )
    book = (
        table_dataset("orderbook", out)
        .to_table(
            columns=["ticker", "source", "series", "month"],
            filter=ds.field("source") == "recorded",
        )
        .to_pylist()
    )
    assert {(r["ticker"], r["series"], r["month"]) for r in book} == {
        (r["ticker"], r["series"], r["month"]) for r in (one, other)
    }
    assert len(book) == 2 * 2  # sampled hourly: 01:00 and 02:00, one level each
    assert (
        "left out 2 recorded rows of 1 markets not in the markets data, e.g. KXNOWHERE-25JAN01"
        in caplog.text
    )
    fetched = read_table("orderbook", written["split"])
    assert (
        read_table("orderbook", out)
        .query("source == 'snapshot'")
        .reset_index(drop=True)
        .equals(fetched)
    )


def test_a_series_ticker_that_cannot_name_a_directory_is_an_error(tmp_path):
    close = pa.array(["2025-01-31T23:00:00Z"]).cast(TABLES["markets"].field("close_time").type)
    markets = pa.table(
        {"ticker": ["E-A"], "event_ticker": ["E"], "series_ticker": ["S/T"], "close_time": close}
    )
    with pytest.raises(DataError, match=r"series ticker 'S/T' \(event E\) cannot name a directory"):
        PartitionWriter(tmp_path, 0).route(markets)


def test_bad_data_in_a_partition_stops_the_stage_with_one_line(raw, tmp_path, monkeypatch, capsys):
    """The partitions are parsed in worker processes: an error there is the stage's one line."""
    shutil.copytree(raw["split"], tmp_path / "data/raw")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    bad = sorted((tmp_path / "data/raw").glob("series=*/month=*"))[-1] / KINDS["trades"]
    bad.write_bytes(bad.read_bytes()[:-12])  # cut short
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_stage("parquet", parquet.main, [])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    relative = bad.relative_to(tmp_path)
    assert re.match(rf"error: parquet: {re.escape(str(relative))}:\d+: record: unreadable", err), (
        err
    )
    assert err.count("error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "data/parquet").exists()
