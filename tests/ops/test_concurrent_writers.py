"""Parallel writers on DuckLake: a commit conflict is retried, logged, and never lost.

Two writers change the same table at once; DuckLake settles what does not clash itself and
raises a logical clash (both deleting the same rows) to the one that committed second.
`warehouse.db.retrying` reruns that unit of work: both writes end up in the table, and each
retry is a WARNING naming the table and the attempt. Needs PostgreSQL (as tests/ops/test_ducklake.py).
About 3 s.
"""

from __future__ import annotations

import logging

import duckdb
import pytest

from tests.ops.test_ducklake import catalog  # noqa: F401  (the fixture)
from warehouse import db, lake


def _use_lake(monkeypatch, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def test_a_commit_conflict_is_retried_logged_and_never_lost(catalog, monkeypatch, caplog):  # noqa: F811
    settings, _ = catalog
    _use_lake(monkeypatch, settings)
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe (writer VARCHAR, n INTEGER)")
        conn.execute("INSERT INTO core.probe VALUES ('seed', 0)")
    attempts = []

    def replace_rows(writer: str) -> None:
        """The delete-then-insert of a family's publish; the first attempt meets a rival commit."""
        with db.writer() as conn, db.transaction(conn):
            attempts.append(writer)
            conn.execute("DELETE FROM core.probe WHERE writer = 'seed'")
            conn.execute("INSERT INTO core.probe VALUES (?, ?)", [writer, len(attempts)])
            if len(attempts) == 1:  # another writer commits a clashing delete meanwhile
                with db.writer() as rival, db.transaction(rival):
                    rival.execute("DELETE FROM core.probe WHERE writer = 'seed'")
                    rival.execute("INSERT INTO core.probe VALUES ('rival', 0)")

    with caplog.at_level(logging.WARNING, logger="warehouse.db"):
        db.retrying(lambda: replace_rows("family"), "the probe family")
    assert attempts == ["family", "family"], "the unit of work ran again after the conflict"
    with db.reader() as conn:
        rows = conn.execute("SELECT writer FROM core.probe ORDER BY writer").fetchall()
    assert rows == [("family",), ("rival",)], "both writes are there, the seed row replaced once"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "probe" in warnings[0] and "attempt 1 of 11" in warnings[0], warnings


def test_retries_are_bounded_and_the_last_conflict_is_raised(catalog, monkeypatch, caplog):  # noqa: F811
    settings, _ = catalog
    _use_lake(monkeypatch, settings)
    monkeypatch.setenv(lake.RETRY_SETTING, "2")
    calls = []

    def always_conflicting() -> None:
        calls.append(1)
        raise duckdb.TransactionException('Transaction conflict - table "core"."probe" was changed')

    with caplog.at_level(logging.WARNING, logger="warehouse.db"), pytest.raises(duckdb.TransactionException):
        db.retrying(always_conflicting, "a unit that never wins")
    assert len(calls) == 3
    assert [r.getMessage().split(" (")[1][:12] for r in caplog.records] == ["attempt 1 of", "attempt 2 of"]


def test_the_embedded_file_runs_the_work_once(warehouse_env, monkeypatch):
    monkeypatch.delenv(lake.SETTING, raising=False)
    calls = []

    def conflicting() -> None:
        calls.append(1)
        raise duckdb.TransactionException("Transaction conflict")

    with pytest.raises(duckdb.TransactionException):
        db.retrying(conflicting, "anything")
    assert calls == [1], "one writer at a time: nothing to retry"
