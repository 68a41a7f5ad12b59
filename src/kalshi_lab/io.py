"""Atomic writes: an output is either complete or absent, never half-written.

A stage collects all of its outputs in one :class:`StagedOutputs`; each file is written to a
temporary sibling and only renamed into place when the whole stage has succeeded.

Temporary siblings are named ``.<target>.<16 hex digits>.tmp`` and created with the ordinary
modes (0666 for files, 0777 for directories, less the umask), not ``tempfile``'s private 0600
and 0700: they become the outputs, which others in the team read. A process killed before it
published leaves its siblings behind; the next writer of the same target removes them (one
writer per target at a time: DVC locks the repository while a stage runs).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # not imported at run time: a stage that writes no frame (the simulated
    # fetch, its worker processes) need not pay pandas' import, half a second each
    import pandas as pd


class StagedOutputs:
    """Outputs of one stage, published together on success and discarded on failure.

    Use as ``with StagedOutputs() as out: out.write_json(path, obj)``. Every write goes to a
    temporary path beside its target; on a clean exit all of them are renamed into place
    (``os.replace`` is atomic within a filesystem), on an exception they are deleted and the
    targets are left absent (DVC removes a stage's outputs before it runs).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for tmp, target in self._pending:
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(tmp, target)
        else:
            for tmp, _ in self._pending:
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(
                    missing_ok=True
                )
        self._pending.clear()

    def path(self, target: Path | str, *, directory: bool = False) -> Path:
        """A temporary path that becomes ``target`` on success; the caller writes to it.

        Leftovers of an earlier writer of ``target`` that was killed are removed first.
        """
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        if directory:
            tmp.mkdir()
        else:
            tmp.touch(exist_ok=False)
        self._pending.append((tmp, target))
        return tmp

    def write_with(self, target: Path | str, writer: Callable[[Path], None]) -> None:
        writer(self.path(target))

    def write_text(self, target: Path | str, text: str) -> None:
        self.path(target).write_text(text, encoding="utf-8")

    def write_json(self, target: Path | str, obj: Any) -> None:
        self.write_text(target, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")

    def write_csv(self, target: Path | str, frame: pd.DataFrame) -> None:
        frame.to_csv(self.path(target), index=False, float_format="%.6g")

    def write_parquet(
        self, target: Path | str, table: pa.Table | pd.DataFrame, schema: pa.Schema | None = None
    ) -> None:
        write_parquet(self.path(target), table, schema)


def write_parquet(
    path: Path, table: pa.Table | pd.DataFrame, schema: pa.Schema | None = None
) -> None:
    """``table`` (a frame without its index) at ``path``, in ``schema`` if given: what
    :meth:`StagedOutputs.write_parquet` writes, for work that writes to a path the stage staged
    (:meth:`StagedOutputs.path`) in another process."""
    if not isinstance(table, pa.Table):  # a pandas DataFrame
        table = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    elif schema is not None:
        table = table.cast(schema)
    pq.write_table(table, path, compression="zstd")


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporary siblings of ``target`` (:class:`StagedOutputs` naming only).

    Returns what was removed. Only ``.<target>.<token>.tmp`` matches, the token in lower-case
    letters, digits and ``_`` (``tempfile``'s alphabet, which earlier versions used): another
    target's temporaries (``.<target>.more.<token>.tmp``) and user files stay.
    """
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]+\.tmp")
    stale = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale
