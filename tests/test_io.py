"""A stage's outputs appear together on success and not at all on failure."""

import pytest

from kalshi_lab.io import StagedOutputs


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
