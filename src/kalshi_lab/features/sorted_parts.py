"""The built-in features' parts, in the table's order, without holding them all at once.

Each part (one partition's features, written by a worker with :func:`write_part`) is sorted by
ticker and holds its markets' rows whole. A part is an uncompressed Arrow IPC file, read
memory-mapped: reading a column of it copies and decodes nothing, where a parquet part was
encoded and compressed by its worker and decoded here again, a column of a part at a time (at
10,000 markets, gathering the rows took 1.1 s from parquet parts, 0.4 s from IPC parts). The
mapped parts are the page cache's, not the process's memory (though its resident size counts
the pages it touched); on disk they take about 4 times the parquet parts' space (140 MB at
10,000 markets), while the stage runs. The table is the parts concatenated in partition order
and stably sorted by ticker, which is the parts' runs of one ticker sorted by (ticker, part,
start): that order is decided on the runs (a few per market), never on the rows.

:meth:`SortedParts.write` writes the table to parquet a row group at a time, column by column,
so the process holds one row group (at most ``ROW_GROUP_ROWS`` rows), not the table. The file
is byte for byte the one ``pq.write_table(pa.Table.from_pandas(table), compression="zstd")``
writes (what the stage wrote when the table went through pandas): the same schema and pandas
metadata (:func:`_pandas_schema`), the same row groups, each column of a row group one array
(the writer's pages depend on where its arrays start).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: rows per row group of ``pq.write_table``'s default (pyarrow's ``_DEFAULT_ROW_GROUP_SIZE``)
ROW_GROUP_ROWS = 1024 * 1024
#: the output's compression (:meth:`kalshi_lab.io.StagedOutputs.write_parquet`'s)
COMPRESSION = "zstd"


@dataclass(frozen=True)
class Span:
    """What the stage logs of the table: its rows, markets and as_of range."""

    rows: int
    markets: int
    first_as_of: pd.Timestamp | None
    last_as_of: pd.Timestamp | None


def write_part(table: pa.Table, path: Path) -> None:
    """A worker's part, ``table`` (its partition's features), to ``path``, as
    :class:`SortedParts` reads it."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


class SortedParts:
    """The parts ``paths`` (at least one, each written by :func:`write_part`; same columns, a
    column may be null-typed in some, as in a part without rows) as one table sorted by ticker;
    only their keys are read here: a part is memory-mapped, its other columns read when the
    table is."""

    def __init__(self, paths: list[Path]) -> None:
        self._parts = [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in paths]
        schemas = [part.schema.remove_metadata() for part in self._parts]
        # a column of a part without a value (no strike type) was written as nulls
        self._types = pa.unify_schemas(schemas, promote_options="permissive")
        strings = [f.name for f in self._types if f.type in (pa.string(), pa.null())]
        tickers, parts, starts, lengths, filled, as_of = [], [], [], [], set(), []
        for k, part in enumerate(self._parts):
            runs = pc.run_end_encode(part.column("ticker").combine_chunks())
            ends = runs.run_ends.to_numpy()
            tickers.append(runs.values.cast(pa.string()))
            parts.append(np.full(len(ends), k))
            lengths.append(np.diff(ends, prepend=0))
            starts.append(ends - lengths[-1])
            filled |= {c for c in strings if part.column(c).null_count < part.num_rows}
            as_of.append(pc.min_max(part.column("as_of")))
        runs = pa.table(
            {
                "ticker": pa.chunked_array(tickers, pa.string()),
                "part": np.concatenate(parts),
                "start": np.concatenate(starts),
            }
        )
        order = pc.sort_indices(
            runs, [("ticker", "ascending"), ("part", "ascending"), ("start", "ascending")]
        ).to_numpy()
        self._part = runs.column("part").to_numpy()[order]
        self._start = runs.column("start").to_numpy()[order]
        self._length = np.concatenate(lengths)[order]
        #: output row where each run begins
        self._at = np.concatenate([[0], np.cumsum(self._length)])
        bounds = [b for b in as_of if b["min"].is_valid]
        self.span = Span(
            rows=int(self._at[-1]),
            markets=pc.count_distinct(runs.column("ticker")).as_py(),
            first_as_of=min((b["min"].as_py() for b in bounds), default=None),
            last_as_of=max((b["max"].as_py() for b in bounds), default=None),
        )
        self.schema = _pandas_schema(self._types, filled)

    def write(self, path: Path) -> None:
        """The table to ``path``, one row group at a time."""
        with pq.ParquetWriter(path, self.schema, compression=COMPRESSION) as writer:
            for lo in range(0, self.span.rows, ROW_GROUP_ROWS):
                writer.write_table(self.rows(lo, min(lo + ROW_GROUP_ROWS, self.span.rows)))

    def to_pandas(self) -> pd.DataFrame:
        """The whole table as pandas (the user features look across it)."""
        return self.rows(0, self.span.rows).to_pandas(self_destruct=True)

    def rows(self, lo: int, hi: int) -> pa.Table:
        """Rows ``lo`` to ``hi`` of the table, each column one array, in :attr:`schema`.

        The parts interleave (a ticker names its event's opening day, a partition its close
        month): a column of the rows is gathered by index from the column of every part they
        touch.
        """
        part, index = self._rows_in_parts(lo, hi)
        touched = np.unique(part)
        sizes = np.array([self._parts[k].num_rows for k in touched])
        first_row = np.zeros(len(self._parts), dtype=np.int64)
        first_row[touched] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        gather = pa.array(first_row[part] + index)
        columns = []
        for field in self.schema:
            source = self._types.field(field.name).type
            read = [self._parts[k].column(field.name).cast(source) for k in touched]
            column = pa.chunked_array([c for r in read for c in r.chunks], source)
            # a string column without a value is null-typed in the file, as pandas types it
            columns.append(column.take(gather).combine_chunks().cast(field.type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _rows_in_parts(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row ``lo`` to ``hi`` of the table, its part and its row in that part."""
        first = int(np.searchsorted(self._at, lo, side="right")) - 1
        last = int(np.searchsorted(self._at, hi, side="left"))
        at = np.clip(self._at[first : last + 1], lo, hi)
        lengths = np.diff(at)
        starts = self._start[first:last] + (at[:-1] - self._at[first:last])
        # row r of a run: its start + (r - the run's first row in the output)
        index = np.repeat(starts - (at[:-1] - lo), lengths) + np.arange(hi - lo)
        return np.repeat(self._part[first:last], lengths), index


def _pandas_schema(types: pa.Schema, filled: set[str]) -> pa.Schema:
    """The schema ``pa.Table.from_pandas`` gives the table read into pandas: its pandas
    metadata, and a string column without any value typed null, as pandas' inference makes it.

    Only the dtypes and, for an object column, whether it holds any value decide it: it is
    taken from a one-row table of those.
    """
    sample = pa.table(
        {
            f.name: pa.array(["" if f.name in filled else None], f.type)
            if f.type in (pa.string(), pa.null())
            else pa.nulls(1, f.type)
            for f in types
        }
    )
    return pa.Schema.from_pandas(sample.to_pandas(), preserve_index=False)
