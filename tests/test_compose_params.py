"""`python -m kalshi_lab.compose_params`: what `dvc exp run` would write, validated first; any
refused override is one `error:` line and exit code 2, and params.yaml is left as it was."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kalshi_lab.compose_params import compose_text, main

ROOT = Path(__file__).resolve().parents[1]
OLD = "the last good params.yaml\n"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A directory with the repository's conf/ and a params.yaml to protect."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "params.yaml").write_text(OLD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bad.override=1", "Could not override 'bad.override'; To append to your config use"),
        (
            "model=nope",
            "Could not find 'model/nope'; Available options in 'model': anchored_logit, hist_gb, ",
        ),
        ("x=[1", "no viable alternative at input '[1'"),
        ("~nothere", "Could not delete from config. 'nothere' does not exist"),
        ("model.target=${nope}", "Interpolation key 'nope' not found"),
        ("split.train_size=2.0", "split.train_size: Input should be less than 1, got 2.0"),
        # found only by building the strategy, as the validate stage does
        ("strategy.kelly_fraction=1.5", "strategy.kelly_fraction must be in (0, 1], got 1.5"),
    ],
)
def test_a_refused_override_is_one_error_line_and_keeps_params_yaml(
    repo, capsys, override, message
):
    assert main([override]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert out == ""
    assert (repo / "params.yaml").read_text() == OLD
    assert sorted(p.name for p in repo.iterdir()) == ["conf", "params.yaml"]


def test_a_good_override_writes_what_dvc_would_with_ordinary_permissions(repo, capsys):
    assert main(["model=logreg"]) == 0
    assert (repo / "params.yaml").read_text() == compose_text(["model=logreg"], repo / "conf")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((repo / "params.yaml").stat().st_mode) == 0o666 & ~umask


def test_the_command_line_gives_no_traceback(repo):
    proc = subprocess.run(
        [sys.executable, "-m", "kalshi_lab.compose_params", "model=nope"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: In 'config': Could not find 'model/nope'; "
        "Available options in 'model': anchored_logit, hist_gb, lightgbm, lightgbm_offset, logreg"
    ]
