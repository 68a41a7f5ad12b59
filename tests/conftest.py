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
