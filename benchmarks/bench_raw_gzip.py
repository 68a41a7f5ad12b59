"""Benchmark: compressing and reading the raw files with zlib (the standard library's gzip, what
kalshi_lab.data.raw_store writes) and with ISA-L (python-isal, what fast_parse reads with).

Run on demand (not a test)::

    uv run python benchmarks/bench_raw_gzip.py --raw /tmp/raw10k [--markets 10000]
        [--start 2025-01-01] [--end 2025-12-31] [--repeat 3]

Simulates the raw data into ``--raw`` first if it does not exist. Every raw file's JSON lines
are held in memory, then each codec compresses each file in the writer's chunks
(``raw_store.CHUNK_BYTES``) at ``raw_store.GZIP_LEVEL`` and inflates the result in the
parquet reader's reads (``fast_parse.READ_BYTES``); CPU time of this process, best of
``--repeat``. The run fails unless every file inflates back to its lines with both codecs and
each codec's output is a gzip file the other reads.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from isal import igzip, isal_zlib

from common import data_args, prepare_data, python_loop_s
from kalshi_lab.data import fast_parse, raw_store

CODECS: dict[str, tuple[Callable[..., object], Callable[..., object]]] = {
    # (gzip writer class, gzip-mode decompressobj factory)
    "zlib (gzip)": (gzip.GzipFile, lambda: zlib.decompressobj(wbits=31)),
    "ISA-L (isal)": (igzip.IGzipFile, lambda: isal_zlib.decompressobj(wbits=31)),
}


def compress(writer: Callable[..., object], data: bytes) -> bytes:
    out = io.BytesIO()
    with writer(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=raw_store.GZIP_LEVEL
    ) as gz:
        for first in range(0, len(data), raw_store.CHUNK_BYTES):
            gz.write(data[first : first + raw_store.CHUNK_BYTES])
    return out.getvalue()


def inflate(decompressobj: Callable[[], object], data: bytes) -> bytes:
    inflater = decompressobj()
    step = fast_parse.READ_BYTES
    return b"".join(inflater.decompress(data[i : i + step]) for i in range(0, len(data), step))


def best_cpu(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        began = time.process_time()
        result = fn()
        best = min(best, time.process_time() - began)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    data_args(parser)
    args = parser.parse_args()
    prepare_data(args)
    files = sorted(args.raw.rglob("*.jsonl.gz"))
    lines = [gzip.decompress(path.read_bytes()) for path in files]
    total = sum(map(len, lines))
    print(
        f"{len(files)} raw files, {total / 1e6:.0f} MB of JSON lines; loop {python_loop_s():.2f} s"
    )
    written: dict[str, list[bytes]] = {}
    for name, (writer, decompressobj) in CODECS.items():
        cpu_w, out = best_cpu(lambda w=writer: [compress(w, d) for d in lines], args.repeat)
        cpu_r, back = best_cpu(
            lambda o=out, f=decompressobj: [inflate(f, d) for d in o], args.repeat
        )
        if back != lines:
            raise SystemExit(f"{name}: a file did not inflate back to its lines")
        written[name] = out
        size = sum(map(len, out))
        print(
            f"{name:14s} compress {cpu_w:6.2f} s CPU ({total / cpu_w / 1e6:5.0f} MB/s), "
            f"inflate {cpu_r:5.2f} s CPU ({total / cpu_r / 1e6:5.0f} MB/s), "
            f"{size / 1e6:6.1f} MB ({size / total:.1%} of the JSON)"
        )
    (_, zlib_inflate), (_, isal_inflate) = CODECS.values()
    zlib_out, isal_out = written.values()
    if [inflate(zlib_inflate, d) for d in isal_out] != lines or [
        inflate(isal_inflate, d) for d in zlib_out
    ] != lines:
        raise SystemExit("the codecs do not read each other's files")
    print("both codecs read both codecs' files back to the same lines")


if __name__ == "__main__":
    main()
