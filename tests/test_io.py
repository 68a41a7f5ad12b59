"""A stage's outputs appear together on success and not at all on failure, with ordinary
permissions; a killed writer's temporaries do not outlive the next run."""

import os
import stat

import pytest

from kalshi_lab.io import StagedOutputs, remove_stale_temporaries


def test_outputs_are_published_on_success(tmp_path):
    with StagedOutputs() as out:
        out.write_json(tmp_path / "a" / "m.json", {"x": 1})
        d = out.path(tmp_path / "dir", directory=True)
        (d / "f.txt").write_text("hi")
        assert not (tmp_path / "a" / "m.json").exists()
    assert (tmp_path / "a" / "m.json").read_text().strip().endswith("}")
    assert (tmp_path / "dir" / "f.txt").read_text() == "hi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "dir"]


def test_nothing_is_left_on_failure(tmp_path):
    with pytest.raises(RuntimeError), StagedOutputs() as out:
        out.write_text(tmp_path / "first.txt", "done")
        (out.path(tmp_path / "dir", directory=True) / "f").write_text("x")
        raise RuntimeError("second output failed")
    assert list(tmp_path.iterdir()) == []


def test_nan_is_refused_in_json(tmp_path):
    with pytest.raises(ValueError), StagedOutputs() as out:
        out.write_json(tmp_path / "m.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_outputs_get_ordinary_modes_not_tempfiles_private_ones(
    tmp_path, umask, file_mode, dir_mode
):
    old = os.umask(umask)  # process-wide: restored below
    try:
        with StagedOutputs() as out:
            out.write_json(tmp_path / "reports" / "metrics.json", {"x": 1})
            out.write_with(tmp_path / "fig.png", lambda p: p.write_bytes(b"png"))
            raw = out.path(tmp_path / "raw", directory=True)
            (raw / "f.gz").write_bytes(b"")
    finally:
        os.umask(old)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert mode == {
        "reports": dir_mode,
        "metrics.json": file_mode,
        "fig.png": file_mode,
        "raw": dir_mode,
        "f.gz": file_mode,
    }


def test_a_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path):
    killed = tmp_path / ".raw.0123456789abcdef.tmp"  # a fetch killed mid-way
    (killed / "sub").mkdir(parents=True)
    (killed / "sub" / "trades.jsonl.gz").write_bytes(b"partial")
    older = tmp_path / ".raw.k3j_9x2a.tmp"  # tempfile.mkdtemp's naming, before this version
    older.mkdir()
    (tmp_path / ".raw.0123abcd.tmp").write_text("a file left by a file output")
    kept = [
        tmp_path / ".raw.parquet.0123abcd.tmp",  # another target's
        tmp_path / ".raw.0123abcd.tmp.bak",
        tmp_path / "raw.0123abcd.tmp",
        tmp_path / ".rawx.0123abcd.tmp",
    ]
    for path in kept:
        path.mkdir()
    with StagedOutputs() as out:
        (out.path(tmp_path / "raw", directory=True) / "f").write_text("new")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["raw", *(p.name for p in kept)])
    assert (tmp_path / "raw" / "f").read_text() == "new"


def test_remove_stale_temporaries_reports_what_it_removed(tmp_path):
    (tmp_path / ".m.json.abc123.tmp").write_text("{")
    (tmp_path / "m.json").write_text("{}")
    assert remove_stale_temporaries(tmp_path / "m.json") == [tmp_path / ".m.json.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
