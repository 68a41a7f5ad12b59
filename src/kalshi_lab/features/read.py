"""The features table as train and evaluate read it: only the columns they use, and for one
evaluation period's work, only its rows.

The table holds every lag, context and target column, which train and evaluate mostly do not
read, and every copy of a frame of them (a fold's training rows, a period's scored rows) costs
memory in proportion. A period's rows are picked by a boolean mask over the table (its split:
:mod:`kalshi_lab.split`), not by a filter on ``as_of``: the table is sorted by ticker, then
as_of (:mod:`kalshi_lab.features.sorted_parts`), so a window's rows lie in every row group and
no row group could be skipped, and which of them a period scores depends on when their events
resolve, which only the whole table tells.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_lab import paths
from kalshi_lab.errors import DataError


def read_features(
    columns: Iterable[str], rows: np.ndarray | None = None, path: Path = paths.FEATURES
) -> pd.DataFrame:
    """The features table's ``columns`` (each once, in the order first named), of every row or
    of the rows where the boolean mask ``rows`` (one entry per row of the table) holds, in the
    table's order: the frame ``pd.read_parquet`` gives, or its rows ``rows`` (with a new
    index)."""
    wanted = _checked(path, columns)
    if rows is None:
        table = pq.read_table(path, columns=wanted, use_pandas_metadata=True)
    else:
        table = _some_rows(path, wanted, rows)
    # into pandas' consolidated blocks, as pd.read_parquet makes them: a frame of one block per
    # column (Arrow's split_blocks) would be held once instead of twice while converted, but
    # copied whole by every np.asarray of its columns (a model's predict, 120 of them for a
    # permutation importance)
    frame = table.to_pandas()
    # pd.read_parquet's own steps (the same frame), then the Arrow table's memory handed back:
    # Arrow's allocator keeps what it freed for its next table, which a stage may never read,
    # and holds as much again as the frame (half a gigabyte at 30k markets) until the end
    del table
    pa.default_memory_pool().release_unused()
    return frame


def read_inputs(
    columns: Iterable[str], rows: np.ndarray, path: Path = paths.FEATURES
) -> pd.DataFrame:
    """The features table's float ``columns`` (the model's inputs) at ``rows`` (a mask over
    the table's rows), as one column-major float64 matrix in a frame that does not copy it.

    Read one column at a time: besides the matrix, never more than one column of the table
    is held (not the Arrow table of them all, nor a pandas frame and its copy). Column-major,
    as pandas holds a frame of one dtype: the layout in which the models' sums over rows (the
    anchored logit's means, LightGBM's bins) were computed, so they keep their bits. Float64:
    the table's dtype; float32 would round the inputs and change every model.
    """
    wanted = _checked(path, columns)
    table = pq.ParquetFile(path)
    matrix = np.empty((int(rows.sum()), len(wanted)), order="F")
    for j, name in enumerate(wanted):
        matrix[:, j] = table.read(columns=[name]).column(0).to_numpy()[rows]
    pa.default_memory_pool().release_unused()
    return pd.DataFrame(matrix, columns=wanted, copy=False)


def _checked(path: Path, columns: Iterable[str]) -> list[str]:
    """``columns``, each once in the order first named; a DataError unless the table at
    ``path`` exists and holds them all."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run the features stage first")
    wanted = list(dict.fromkeys(columns))
    names = pq.read_schema(path).names
    missing = [name for name in wanted if name not in names]
    if missing:
        raise DataError(f"{path} lacks the columns {missing}: run the features stage again")
    return wanted


def _some_rows(path: Path, columns: list[str], rows: np.ndarray) -> pa.Table:
    """``columns`` of the rows where ``rows`` holds, decoded a column at a time: the reader
    decodes a whole row group (a million rows) at once, so that a few rows of every column at
    once would hold every row of them for a while."""
    file = pq.ParquetFile(path)
    if len(rows) != file.metadata.num_rows:
        raise DataError(
            f"{path} has {file.metadata.num_rows} rows, the split was made on {len(rows)}: "
            "it changed while the stage ran"
        )
    whole = file.schema_arrow
    schema = pa.schema([whole.field(name) for name in columns], metadata=whole.metadata)
    keep = pa.array(rows)
    kept = [file.read(columns=[name]).column(0).filter(keep) for name in columns]
    return pa.Table.from_arrays(kept, schema=schema)
