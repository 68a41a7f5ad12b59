"""The fetch stage with data=kalshi, as DVC runs it: a process reading params.yaml.

A process killed with SIGKILL mid-fetch resumes when run again and ends with the served data;
bad input stops with one `error:` line and exit code 2, leaving the last good data/raw as it was.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kalshi_lab.compose_params import compose_text
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.server import LocalKalshiServer, ServerConfig
from server_support import write_simulated_raw
from stage_support import run_stage

ROOT = Path(__file__).resolve().parents[1]
CUTOFF = dt.datetime(2025, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    return write_simulated_raw(tmp_path_factory.mktemp("served") / "raw")


@pytest.fixture
def server(served):
    with LocalKalshiServer(served, ServerConfig(rate_limit=False, cutoff=CUTOFF)) as srv:
        yield srv


def project(tmp_path: Path, base_url: str, *overrides: str) -> Path:
    """A directory a stage can run in: params.yaml composed from the repository's conf/."""
    text = compose_text(
        [
            "data=kalshi",
            f"data.base_url={base_url}",
            "data.series=[KXSIMA,KXSIMB,KXSIMC,KXSIMD,KXSIME]",
            "data.start=2025-01-01",
            "data.end=2025-01-20",
            "data.hourly_candles=true",
            "data.rate_limit.tiers.basic.reads_per_s=100",
            "data.timeout_s=2",
            *overrides,
        ],
        ROOT / "conf",
    )
    (tmp_path / "params.yaml").write_text(text)
    return tmp_path


def fetch_process(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "kalshi_lab.stages.fetch"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tables(raw: Path) -> dict[str, pd.DataFrame]:
    keys = {"markets": ["ticker"], "candles": ["ticker", "period_minutes", "end_period_ts"],
            "trades": ["trade_id"]}  # fmt: skip
    parsed = parse_raw(raw)
    return {
        name: parsed[name].to_pandas().sort_values(k).reset_index(drop=True)
        for name, k in keys.items()
    }


def test_a_fetch_killed_with_sigkill_resumes_and_ends_with_the_served_data(
    server, served, tmp_path
):
    cwd = project(tmp_path, server.base_url)
    proc = fetch_process(cwd)
    deadline = time.monotonic() + 60
    while server.stats.total_requests < 60 and proc.poll() is None:
        assert time.monotonic() < deadline, "the fetch made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the fetch ended before it could be killed"
    assert not (cwd / "data" / "raw").exists()
    assert len(list((cwd / "data").glob(".raw.*.tmp"))) == 1, "the killed fetch's partial raw"
    first = server.stats.total_requests

    proc = fetch_process(cwd)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "units from the cache" in err
    second = server.stats.total_requests - first
    # a whole fetch of this data takes about 180 requests: the second run did not start over
    assert second < 180 - 40, (first, second)
    expected, got = tables(served), tables(cwd / "data" / "raw")
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name], obj=name)
    assert sorted(p.name for p in (cwd / "data").iterdir()) == ["cache", "raw"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.series=[KXNOPE]", "series KXNOPE does not exist"),
        ("data.tickers=[KXSIMA-NOPE]", "data.tickers: ['KXSIMA-NOPE']"),
        ("data.end=2024-12-01", "data.end: must be on or after data.start"),
        ("data.base_url=ftp://example.com", "data.base_url: String should match pattern"),
    ],
)
def test_bad_input_is_one_error_line_and_keeps_the_last_good_data(
    server, served, tmp_path, override, message
):
    cwd = project(tmp_path, server.base_url, override)
    good = cwd / "data" / "raw"
    shutil.copytree(served, good)
    proc = run_stage(cwd, "fetch")
    err = proc.stderr
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    files = sorted(p.relative_to(served) for p in served.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(good) for p in good.rglob("*") if p.is_file())
    for name in files:
        assert filecmp.cmp(served / name, good / name, shallow=False), name
    left = sorted(p.name for p in good.parent.iterdir() if p.name != "cache")
    assert left == ["raw"], "a partial output was left behind"
