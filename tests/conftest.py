"""Tests run from the repository root, as DVC runs the stages."""

import os
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _repo_root_cwd():
    previous = Path.cwd()
    os.chdir(ROOT)
    yield
    os.chdir(previous)


#: slow, but started after the other slow files: it copies the reproduced repository that
#: test_pipeline_dvc_experiments.py builds first (tests/dvc_copy.py), and beside it on the
#: other xdist worker it would start by waiting half a minute for that build
REUSES_A_BUILD = "test_pipeline_dvc.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end files first: with a file per xdist worker, the longest file then
    starts at once while the other worker takes the rest, instead of starting last and making
    the whole run wait for it. The others by their number of tests, most first, as xdist's own
    order (which pyproject.toml's --no-loadscope-reorder turns off, as it put the slow files,
    with few tests, last)."""
    per_file = Counter(item.path for item in items)
    items.sort(  # stable: a file's tests, and files of as many tests, stay as found
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            item.path.name == REUSES_A_BUILD,
            -per_file[item.path],
        )
    )
