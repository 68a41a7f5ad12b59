"""Tests run from the repository root, as DVC runs the stages."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _repo_root_cwd():
    previous = Path.cwd()
    os.chdir(ROOT)
    yield
    os.chdir(previous)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end files first: with a file per xdist worker, the longest file then
    starts at once while the other worker takes the rest, instead of starting last and making
    the whole run wait for it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: else as found
