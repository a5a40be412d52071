"""A writer waiting for DuckDB's file lock says so at the default level (WARNING): who holds it,
how long it has waited and its budget, at once and again while the wait lasts; then it gives up."""

import logging
import subprocess
import sys

import duckdb
import pytest

from warehouse import db

HOLD = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print('held', flush=True); time.sleep(60)"
)


def test_a_writer_blocked_on_the_lock_says_by_whom_for_how_long_and_its_budget(tmp_path, monkeypatch, caplog):
    path = tmp_path / "context.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    monkeypatch.setattr(db, "LOCK_REPORT_SECONDS", 1.0)
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.WARNING), pytest.raises(db.LockTimeout, match="is locked"):
            db.connect(path, budget=db.LockBudget(3.0))
    finally:
        holder.kill()
        holder.wait()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == db.__name__]
    assert len(said) >= 2, said  # at once, then every LOCK_REPORT_SECONDS
    assert all(f"waiting for the warehouse lock on {path} held by " in m for m in said)
    assert all(f"(PID {holder.pid})" in m and "budget 3s)" in m for m in said), said
    assert "(waited 0s, budget 3s)" in said[0]
    assert any(f"(waited {n}s, budget 3s)" in said[1] for n in (1, 2)), said
