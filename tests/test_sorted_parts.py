"""The features stage writes the built-in features from the workers' parts, a row group at a
time: the file must be byte for byte the one it wrote when the parts were concatenated, sorted
by ticker and written from pandas (downstream stages and DVC hash it), and the parts' order
the same stable sort by ticker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow._parquet
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kalshi_lab.features import sorted_parts
from kalshi_lab.features.sorted_parts import SortedParts

ROW_GROUP = 1000


def _part(rng: np.random.Generator, k: int, tickers: list[str], strikes: bool) -> pd.DataFrame:
    """A worker's part: its markets' rows, sorted by ticker then as_of, typed as build's."""
    days = rng.integers(1, 12, len(tickers))
    ticker = np.repeat(sorted(tickers), days)
    n = len(ticker)
    start = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 200), "D")
    as_of = start + pd.to_timedelta(np.concatenate([np.arange(d) for d in days]), "D")
    values = rng.normal(size=(n, 6))
    values[rng.random((n, 6)) < 0.2] = np.nan
    close = pd.Series(as_of + pd.Timedelta(days=30)).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "ticker": ticker,
            "series_ticker": [t.split("-")[0] for t in ticker],
            "as_of": pd.DatetimeIndex(as_of).as_unit("ns"),
            "close_time": close.to_numpy(),
            "strike_type": (
                rng.choice(["greater", None], n) if strikes else np.full(n, None, object)
            ),
            **{f"F_{j}": values[:, j] for j in range(6)},
            "part": float(k),
        }
    )


def _parts(tmp_path: Path, strikes: list[bool]) -> tuple[list[Path], pd.DataFrame]:
    """Parts whose ticker ranges interleave, one ticker in two parts, and an empty part (a
    partition without a row: its string columns null-typed), written as the workers write
    them; and the table the stage built from them before (concatenated, stably sorted
    by ticker)."""
    rng = np.random.default_rng(7)
    names = [f"KXS{rng.integers(0, 3)}-{rng.integers(0, 10**6):06d}" for _ in range(800)]
    shares = np.array_split(rng.permutation(names), len(strikes))
    shares[1] = np.append(shares[1], shares[0][0])  # the same ticker in parts 0 and 1
    paths, frames = [], []
    for k, (tickers, has_strikes) in enumerate(zip(shares, strikes, strict=True)):
        frame = _part(rng, k, list(tickers), has_strikes)
        if k == 2:
            frame = frame.iloc[:0].astype({"ticker": object, "series_ticker": object})
        paths.append(tmp_path / f"part-{k}.arrow")
        sorted_parts.write_part(pa.Table.from_pandas(frame, preserve_index=False), paths[-1])
        frames.append(frame)
    table = pa.concat_tables(
        [pa.Table.from_pandas(f, preserve_index=False) for f in frames],
        promote_options="permissive",
    )
    table = table.take(pc.sort_indices(table, [("ticker", "ascending")]))
    return paths, table.to_pandas()


@pytest.mark.parametrize(
    "strikes",
    [[True, True, True, False, True], [False, False, False, False, False]],
    ids=["a-part-without-strikes", "no-strikes-at-all"],
)
def test_the_file_is_the_bytes_pandas_wrote_and_the_order_a_stable_sort(
    tmp_path, monkeypatch, strikes
):
    monkeypatch.setattr(sorted_parts, "ROW_GROUP_ROWS", ROW_GROUP)
    paths, expected = _parts(tmp_path, strikes)
    assert len(expected) > 3 * ROW_GROUP  # several row groups, each from several parts
    reference = tmp_path / "reference.parquet"
    table = pa.Table.from_pandas(expected, preserve_index=False)
    pq.write_table(table, reference, compression="zstd", row_group_size=ROW_GROUP)

    merged = SortedParts(paths)
    merged.write(tmp_path / "out.parquet")

    assert (tmp_path / "out.parquet").read_bytes() == reference.read_bytes()
    pd.testing.assert_frame_equal(merged.to_pandas(), expected)
    assert pq.ParquetFile(reference).metadata.num_row_groups == 4


def test_the_span_counts_rows_markets_and_as_of_as_pandas_does(tmp_path):
    paths, expected = _parts(tmp_path, [True, True, True, True])
    span = SortedParts(paths).span
    assert span.rows == len(expected)
    assert span.markets == expected["ticker"].nunique()
    assert span.first_as_of == expected["as_of"].min()
    assert span.last_as_of == expected["as_of"].max()


def test_a_row_group_is_pyarrow_s_default():
    """The file's row groups are ``pq.write_table``'s: the bytes depend on them."""
    assert sorted_parts.ROW_GROUP_ROWS == pyarrow._parquet._DEFAULT_ROW_GROUP_SIZE
