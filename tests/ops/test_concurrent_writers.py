"""Parallel writers on DuckLake: a commit conflict is retried, logged, and never lost.

Two writers change the same table at once; DuckLake settles what does not clash itself and
raises a logical clash (both deleting the same rows) to the one that committed second.
`warehouse.db.retrying` reruns that unit of work: both writes end up in the table, and each
retry is a WARNING naming the table and the attempt. Writers of different processes take turns
on the lake's writer lock (`warehouse.lake.one_writer`). Needs PostgreSQL (as
tests/ops/test_ducklake.py). About 10 s.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import duckdb
import pytest

from tests.conftest import REPO_ROOT
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


HOLDER = """
import sys, time
from warehouse import db
with db.writer():
    print("holding", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_writers_of_one_lake_take_turns_and_a_long_wait_names_the_holder(catalog, monkeypatch, caplog):  # noqa: F811
    """Another process's writer holds the lake's writer lock: a writer waits its turn, or gives up
    after CONTEXT_LENS_LOCK_WAIT naming the holder's PID; readers never wait for it."""
    settings, _ = catalog
    _use_lake(monkeypatch, settings)
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe AS SELECT 1 AS n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "10"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setenv("CONTEXT_LENS_LOCK_WAIT", "1")
        with pytest.raises(lake.WriterLockTimeout, match=f"held by PID {holder.pid}: gave up after 1s"):
            with db.writer():
                pass
        with db.reader() as conn:  # a reader meanwhile: no lock, no wait
            assert conn.execute("SELECT n FROM core.probe").fetchall() == [(1,)]
        monkeypatch.setenv("CONTEXT_LENS_LOCK_WAIT", "120")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="warehouse.db"), db.writer() as conn:
            conn.execute("INSERT INTO core.probe VALUES (2)")
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0 and waited > 1, "the writer waited for the holder's turn to end"
    notices = [r.getMessage() for r in caplog.records if "writer lock" in r.getMessage()]
    assert notices and all(f"PID {holder.pid}" in n for n in notices), "a wait over 5 s is reported"
    with db.reader() as conn:
        assert conn.execute("SELECT n FROM core.probe ORDER BY n").fetchall() == [(1,), (2,)]
