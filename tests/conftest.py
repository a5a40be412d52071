"""Shared test fixtures: the real public files in ../shared/data, read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tests are hermetic: each one that needs a persistent Dagster instance makes its own home. The one
# `make test` exports (DAGSTER_HOME=.dagster_home, for `make run`) may not exist on a fresh clone.
os.environ.pop("DAGSTER_HOME", None)

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


@pytest.fixture()
def http_server():
    """A scripted HTTP server on 127.0.0.1 (see tests/support/http.py)."""
    from tests.support.http import ScriptedServer

    with ScriptedServer() as server:
        yield server


@pytest.fixture()
def warehouse_env(tmp_path, monkeypatch):
    """A private warehouse, raw store and output folder for one test."""
    monkeypatch.setenv("CONTEXT_LENS_DB", str(tmp_path / "context.duckdb"))
    monkeypatch.setenv("CONTEXT_LENS_RAW_DIR", str(tmp_path / "raw"))
    monkeypatch.setenv("CONTEXT_LENS_OUTPUT", str(tmp_path / "output"))
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE", raising=False)
    return tmp_path
