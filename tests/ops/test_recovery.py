"""Crash recovery: a dead run never holds the writer pool against later runs (pipelines.recovery)."""

import logging
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    asset,
    build_sensor_context,
    materialize,
)

from pipelines import recovery

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


@asset(pool="duckdb_writer")
def holds_the_pool() -> None:
    Path(os.environ["HOLDING"]).touch()
    time.sleep(120)


@asset(pool="duckdb_writer")
def needs_the_pool() -> int:
    return 1


@pytest.fixture
def home(tmp_path, monkeypatch):
    shutil.copy(DAGSTER_YAML, tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("HOLDING", str(tmp_path / "holding"))
    return tmp_path


def _fork(assets, tags=None) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        try:
            with DagsterInstance.get() as instance:
                materialize(assets, instance=instance, tags=tags)
        finally:
            os._exit(0)
    return pid


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _says_what_it_waits_for(instance, blocked: str, holder: str, caplog) -> None:
    """At the default level (WARNING): in this process's log, and in the blocked run's own event
    log under the blocked step (what the Dagster UI shows), from the CLI's reporter and the sensor."""
    held = f"waits for pool duckdb_writer (limit 1), held by run {holder[:8]} step holds_the_pool"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        [line] = recovery.report_waits(instance, blocked)
        reason = recovery.dead_run_recovery(build_sensor_context(instance=instance)).skip_message
    said = [r for r in caplog.records if r.levelno == logging.WARNING and held in r.getMessage()]
    assert held in line and len(said) == 2  # once by report_waits, once by the sensor's tick
    assert f"waiting: step needs_the_pool {held}" in reason
    logged = [
        entry
        for entry in instance.all_logs(blocked, of_type=DagsterEventType.ENGINE_EVENT)
        if held in entry.dagster_event.message
    ]
    assert len(logged) == 2
    assert all(e.level == logging.WARNING and e.step_key == "needs_the_pool" for e in logged)


def test_a_killed_run_is_failed_and_its_slot_freed_a_live_one_left_alone(home, caplog):
    holder = _fork([holds_the_pool])  # untagged, as the UI or the daemon would start it
    _wait_for((home / "holding").exists)
    with DagsterInstance.get() as instance:
        assert recovery.recover(instance) == []  # alive: nothing to recover
        waiting = _fork([needs_the_pool], tags=recovery.run_tags())
        _wait_for(lambda: [r.status for r in instance.get_runs()] == [DagsterRunStatus.STARTED] * 2)
        blocked, first = (run.run_id for run in instance.get_runs())
        _wait_for(lambda: recovery.waits(instance, blocked))
        [line] = recovery.waits(instance, blocked)
        assert f"step needs_the_pool waits for pool duckdb_writer (limit 1), held by run {first[:8]}" in line
        _says_what_it_waits_for(instance, blocked, first, caplog)
        os.kill(holder, signal.SIGKILL)  # not reaped yet: a zombie is dead too
        time.sleep(0.2)
        [dead] = recovery.recover(instance)
        assert (dead.run_id, dead.status, dead.pid, dead.slots) == (
            first,
            "STARTED",
            holder,
            ["duckdb_writer"],
        )
        _, status = os.waitpid(waiting, 0)
        assert os.WEXITSTATUS(status) == 0
        os.waitpid(holder, 0)
        runs = {r.run_id: r.status for r in instance.get_runs()}
        assert runs == {first: DagsterRunStatus.FAILURE, blocked: DagsterRunStatus.SUCCESS}
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").claimed_slots == []


def test_a_pid_reused_by_a_younger_process_is_not_the_run(home):
    assert recovery.process_alive(os.getpid(), time.time())
    assert not recovery.process_alive(os.getpid(), time.time() - 10 * 365 * 86400)
    assert not recovery.process_alive(2**22 + 12345)
