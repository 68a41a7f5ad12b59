"""No silent empty input: every raw file the parquet stage reads holds the records the fetch wrote.

The fetch leaves a manifest next to the raw files (records per kind, and the kinds its source may
leave empty: books for ``data=kalshi``, since history has none). A 0-byte file, an empty gzip
stream the source did not allow, or a count other than the manifest's is one ``error:`` line
naming the file, exit code 2, and the last good tables stay as they were.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import orjson
import pytest

from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import KINDS, MANIFEST, RawWriter
from kalshi_lab.data.tables import read_table
from kalshi_lab.errors import DataError
from kalshi_lab.stages import parquet
from kalshi_lab.stages.runner import run_stage
from table_files import files_of
from test_parse import BOOK, EVENT, SERIES, T0, TICKER, current_candle, current_market, trade

RAW = Path("data/raw")


def write_raw(raw: Path, *, books: bool = True, may_be_empty: tuple[str, ...] = ()) -> None:
    """One market with a record of every kind (two trade pages), as the fetch writes it."""
    with RawWriter(raw, may_be_empty=may_be_empty) as w:
        w.write("series", "/series/KXS", {}, T0, SERIES)
        w.write("events", "/events/KXS-25MAR", {}, T0, EVENT)
        w.write("markets", "/markets", {"limit": 100}, T0, {"markets": [current_market()]})
        candles = {"ticker": TICKER, "candlesticks": [current_candle()]}
        path = f"/series/KXS/markets/{TICKER}/candlesticks"
        w.write("candlesticks", path, {"period_interval": 1440}, T0, candles)
        for trade_id in ("a", "b"):
            page = {"trades": [trade(trade_id)], "cursor": ""}
            w.write("trades", "/markets/trades", {"ticker": TICKER}, T0, page)
        if books:
            w.write("orderbooks", f"/markets/{TICKER}/orderbook", {"depth": 3}, T0, BOOK)


def run_parquet(workdir: Path, monkeypatch, capsys) -> tuple[int, str]:
    if not (workdir / "params.yaml").exists():  # the stage reads data.book_interval
        shutil.copy(Path(__file__).parents[1] / "params.yaml", workdir / "params.yaml")
    monkeypatch.chdir(workdir)
    try:
        run_stage("parquet", parquet.main, [])
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().err
    return 0, capsys.readouterr().err


def tables_of(workdir: Path) -> dict[str, bytes]:
    return files_of(workdir / "data/parquet")


@pytest.fixture
def workdir(tmp_path, monkeypatch, capsys) -> Path:
    """Good raw data and the tables the parquet stage made of it."""
    write_raw(tmp_path / RAW)
    assert run_parquet(tmp_path, monkeypatch, capsys)[0] == 0
    return tmp_path


def assert_refused(workdir: Path, monkeypatch, capsys, before: dict, pattern: str) -> str:
    code, err = run_parquet(workdir, monkeypatch, capsys)
    assert code == 2, err
    assert re.match(pattern, err), err
    assert err.count("error:") == 1 and len(err.strip().splitlines()) == 1, err
    assert tables_of(workdir) == before  # the last good tables, untouched
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["parquet", "raw"]
    return err


@pytest.mark.parametrize("kind", ["trades", "orderbooks", "candlesticks", "markets"])
@pytest.mark.parametrize("how", ["0 bytes", "empty gzip"])
def test_an_empty_raw_file_is_one_error_naming_it(workdir, monkeypatch, capsys, kind, how):
    before = tables_of(workdir)
    path = workdir / RAW / KINDS[kind]
    path.write_bytes(b"" if how == "0 bytes" else gzip.compress(b"", mtime=0))
    what = r"empty file \(0 bytes" if how == "0 bytes" else "no records"
    written = 2 if kind == "trades" else 1
    assert_refused(
        workdir,
        monkeypatch,
        capsys,
        before,
        rf"error: parquet: data/raw/{re.escape(KINDS[kind])}: {what}.*, but the fetch wrote "
        rf"{written} \(data/raw/manifest\.json\)",
    )


def test_kalshi_style_raw_data_without_books_parses_when_its_source_allows_it(
    workdir, monkeypatch, capsys
):
    """data=kalshi on a range that is over: no market open, no book, and that is fine."""
    raw = workdir / RAW
    write_raw(raw, books=False, may_be_empty=("orderbooks",))
    code, err = run_parquet(workdir, monkeypatch, capsys)
    assert code == 0, err
    assert len(read_table("orderbook", workdir / "data/parquet")) == 0
    assert len(read_table("trades", workdir / "data/parquet")) == 2

    # the same files from a source that always writes books (the simulator): refused
    before = tables_of(workdir)
    write_raw(raw, books=False)
    assert_refused(
        workdir,
        monkeypatch,
        capsys,
        before,
        r"error: parquet: data/raw/orderbooks\.jsonl\.gz: no records: the fetch wrote none "
        r"\(data/raw/manifest\.json\), and without orderbooks there is nothing to build on",
    )


def drop_last_line(path: Path) -> None:
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[:-1]), mtime=0))


@pytest.mark.parametrize("fast", [True, False], ids=["columnar", "by-record"])
def test_a_count_other_than_the_fetch_s_is_an_error_naming_the_file(tmp_path, fast):
    write_raw(tmp_path)
    drop_last_line(tmp_path / KINDS["trades"])  # still a good file: one trade page left
    with pytest.raises(DataError, match=r"trades\.jsonl\.gz: 1 record, but the fetch wrote 2 "):
        parse_raw(tmp_path, fast=fast)

    write_raw(tmp_path, may_be_empty=("orderbooks",))
    path = tmp_path / KINDS["orderbooks"]
    path.write_bytes(path.read_bytes() * 2)  # a second gzip member: the same book twice
    with pytest.raises(DataError, match=r"orderbooks\.jsonl\.gz: 2 records, but the fetch wrote 1"):
        parse_raw(tmp_path, fast=fast)

    write_raw(tmp_path, books=False, may_be_empty=("orderbooks",))
    write_raw(tmp_path / "other")  # books put in where the fetch wrote none
    path.write_bytes((tmp_path / "other" / KINDS["orderbooks"]).read_bytes())
    with pytest.raises(DataError, match=r"orderbooks\.jsonl\.gz: 1 record, but the fetch wrote 0"):
        parse_raw(tmp_path, fast=fast)


def test_the_counts_are_logged_and_the_stage_needs_the_manifest(
    workdir, monkeypatch, capsys, caplog
):
    caplog.set_level("INFO", logger="kalshi_lab")
    assert run_parquet(workdir, monkeypatch, capsys)[0] == 0
    manifest = orjson.loads((workdir / RAW / MANIFEST).read_bytes())
    assert manifest == {
        "records": {k: 2 if k == "trades" else 1 for k in KINDS},
        "may_be_empty": [],
    }
    logged = caplog.text
    assert f"records per file, each checked as it is read: {manifest['records']}" in logged
    assert "'trades': 2" in logged.split("tables: ")[1]  # rows per table

    before = tables_of(workdir)
    (workdir / RAW / MANIFEST).unlink()
    assert_refused(
        workdir,
        monkeypatch,
        capsys,
        before,
        r"error: parquet: data/raw: neither manifest\.json nor partitions\.json: not a complete "
        r"raw directory \(run the fetch stage\)",
    )
    (workdir / RAW / MANIFEST).write_text('{"records": {"trades": 2}}')
    assert_refused(
        workdir, monkeypatch, capsys, before, r"error: parquet: data/raw/manifest\.json: expected"
    )
