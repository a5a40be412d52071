"""The local PostgreSQL the tests use (`.ci/run` starts one): its settings and a connection.

Settings come from the DAGSTER_PG_* variables, with `.ci/run`'s defaults. Without a reachable
server a test is skipped, saying why, except in CI (`CI=true`), where that is a failure.
"""

from __future__ import annotations

import os

import pytest

SETTINGS = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "context_lens",
    "DAGSTER_PG_PASSWORD": "context_lens",
    "DAGSTER_PG_DB": "context_lens_dagster",
}


def unavailable(reason: str):
    """Skip the test for `reason`, or fail it under CI=true (where the server must be there)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def settings() -> dict[str, str]:
    return {name: os.environ.get(name, default) for name, default in SETTINGS.items()}


def connect(pg: dict[str, str]):
    """An autocommit psycopg2 connection to the settings' database, or skip/fail saying why."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install -e '.[postgres]'")
    try:
        connection = psycopg2.connect(
            host=pg["DAGSTER_PG_HOST"],
            port=int(pg["DAGSTER_PG_PORT"]),
            user=pg["DAGSTER_PG_USERNAME"],
            password=pg["DAGSTER_PG_PASSWORD"],
            dbname=pg["DAGSTER_PG_DB"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError as exc:
        unavailable(
            f"no PostgreSQL reachable at {pg['DAGSTER_PG_HOST']}:{pg['DAGSTER_PG_PORT']} "
            f"as {pg['DAGSTER_PG_USERNAME']}/{pg['DAGSTER_PG_DB']} "
            f"({str(exc).strip().splitlines()[0]}); `.ci/run --setup-only` starts one"
        )
    connection.autocommit = True
    return connection
