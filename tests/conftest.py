"""Shared test fixtures: the real public files in ../shared/data, read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CONTEXT_LENS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The directory of real public files; tests that need it skip with the reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real public test files not found at {SHARED_DATA} "
            "(CI places ../shared beside the checkout; set CONTEXT_LENS_SHARED_DATA to point elsewhere)"
        )
    return SHARED_DATA
