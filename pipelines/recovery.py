"""Runs that died (SIGKILL, out of memory, a restart) must never block later runs.

A run killed while one of its steps held the `duckdb_writer` pool slot leaves the run
`STARTED` and the slot claimed in the Dagster instance: every later run would wait for that
slot forever. `recover` finds such runs and ends them: a run is dead when the process that
executes it no longer exists (or its pid now belongs to a process started after the run).
Dead runs are marked failed, with the reason, and their pool slots and pending claims
freed; slots still claimed by runs that have finished (or were deleted) are freed too.

The process of a run is its `context-lens/pid` tag (set by the CLI, with the host) or, for
runs launched by the UI or the daemon, the pid Dagster stamps on the run's events, trusted
only when the instance's storage is local (SQLite under DAGSTER_HOME): with a shared
PostgreSQL instance another machine's pid means nothing here. The CLI calls `recover`
before every run; the `dead_run_recovery` sensor does it under the daemon.

A step blocked on a pool says so at WARNING (`report_waits`), naming the pool and the run and
step that hold it: in the CLI's output every 10 s, and in the run's own event log (the UI) from
the CLI and from the sensor's every tick.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

log = logging.getLogger(__name__)

PID_TAG = "context-lens/pid"
HOST_TAG = "context-lens/host"
UNFINISHED = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# A process that started this long after its run was created cannot be the run's process.
PID_REUSE_SLACK_SECONDS = 5.0


INVOCATION_TAG = "context-lens/invocation"


def run_tags() -> dict[str, str]:
    """Tags naming the process that executes a run started here (in-process executor), and the run."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), INVOCATION_TAG: uuid.uuid4().hex}


@dataclass(frozen=True)
class Recovered:
    run_id: str
    status: str  # what the run said it was: STARTED, NOT_STARTED, ... or FINISHED for a leftover slot
    pid: int | None
    slots: list[str]  # pools whose slots (or pending claims) it held

    def describe(self) -> str:
        held = f"; freed its slot(s) in {', '.join(self.slots)}" if self.slots else ""
        if self.status == "FINISHED":
            return f"run {self.run_id[:8]} had finished but still held a slot{held}"
        who = f"process {self.pid} no longer exists" if self.pid else "no process of it can be found"
        return f"run {self.run_id[:8]} was left {self.status} ({who}): marked failed{held}"


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, not_started_after: float | None = None) -> bool:
    """Whether `pid` is a live process (not a zombie) that could have started by `not_started_after`."""
    if pid <= 0:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if not stat.parent.parent.joinpath("self").exists():  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its exit status remains
        return False
    boot = _boot_time()
    if not_started_after is not None and boot is not None:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        if started > not_started_after + PID_REUSE_SLACK_SECONDS:
            return False  # the pid was reused by a younger process
    return True


def _local_storage(instance: DagsterInstance) -> bool:
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _event_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid Dagster stamped on the run's newest event that has one."""
    records = instance.get_records_for_run(run_id, limit=50, ascending=False).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.pid:
            return int(event.pid)
    return None


def run_process(instance: DagsterInstance, run) -> int | None:
    """The pid executing `run` on this host, None when it cannot be known here."""
    if run.tags.get(PID_TAG):
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return None
        return int(run.tags[PID_TAG])
    return _event_pid(instance, run.run_id) if _local_storage(instance) else None


def _held_pools(instance: DagsterInstance, run_id: str) -> list[str]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    pools = []
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        if run_id in info.active_run_ids or any(step.run_id == run_id for step in info.pending_steps):
            pools.append(key)
    return pools


def _dead_pid(instance: DagsterInstance, record) -> int | None:
    """The pid of the run's process when that process is gone; None when it lives or is unknown here."""
    pid = run_process(instance, record.dagster_run)
    if pid is None:
        return None
    created = record.create_timestamp
    if created is not None and created.tzinfo is None:  # SQLite storage keeps naive UTC
        created = created.replace(tzinfo=UTC)
    created = created.timestamp() if created else None
    return None if process_alive(pid, created) else pid


def recover(instance: DagsterInstance) -> list[Recovered]:
    """Mark dead unfinished runs failed and free every slot no live run holds."""
    recovered = []
    for record in instance.get_run_records(RunsFilter(statuses=UNFINISHED)):
        pid = _dead_pid(instance, record)
        if pid is None:
            continue
        run = record.dagster_run
        pools = _held_pools(instance, run.run_id)
        instance.report_run_failed(
            run,
            message=f"marked failed by context-lens: the process of this run ({pid}) no longer exists "
            f"(killed, out of memory or a restart); found {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(Recovered(run.run_id, run.status.value, pid, pools))
    recovered.extend(_free_finished_slots(instance))
    for item in recovered:
        log.warning("recovered: %s", item.describe())
    return recovered


def _free_finished_slots(instance: DagsterInstance) -> list[Recovered]:
    """Slots claimed by runs that finished or were deleted: nobody will ever release them."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders: dict[str, list[str]] = {}
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        for run_id in info.active_run_ids | {step.run_id for step in info.pending_steps}:
            holders.setdefault(run_id, []).append(key)
    freed = []
    for run_id, pools in sorted(holders.items()):
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in FINISHED:
            storage.free_concurrency_slots_for_run(run_id)
            freed.append(Recovered(run_id, "FINISHED", None, pools))
    return freed


def waits(instance: DagsterInstance, run_id: str) -> list[str]:
    """What the steps of `run_id` wait for in the pools: one line per blocked step."""
    return [line for _, line in _blocked_steps(instance, run_id)]


def _blocked_steps(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step key, what it waits for) of each step of `run_id` blocked on a pool slot held elsewhere."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    blocked = []
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        mine = [s for s in info.pending_steps if s.run_id == run_id and s.assigned_timestamp is None]
        if not mine:
            continue
        holders = [f"run {s.run_id[:8]} step {s.step_key}" for s in info.claimed_slots if s.run_id != run_id]
        if not holders:
            continue  # a slot just freed: the step is about to get it
        waited = time.time() - min(s.enqueued_timestamp.timestamp() for s in mine)
        line = (
            f"step {mine[0].step_key} waits for pool {key} (limit {info.slot_count}), held by "
            f"{', '.join(holders)}; waiting {waited:.0f}s"
        )
        blocked.append((mine[0].step_key, line))
    return blocked


def report_waits(instance: DagsterInstance, run_id: str) -> list[str]:
    """Say what the run's blocked steps wait for: in this process's log and in the run's own
    event log, both at WARNING (Dagster says "Step blocked by limit for pool" only at DEBUG)."""
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.events import EngineEventData

    run = instance.get_run_by_id(run_id)
    lines = []
    for step_key, line in _blocked_steps(instance, run_id) if run is not None else []:
        log.warning("waiting: %s", line)
        event = DagsterEvent(
            event_type_value=DagsterEventType.ENGINE_EVENT.value,
            job_name=run.job_name,
            message=f"waiting: {line}",
            event_specific_data=EngineEventData({}),
            step_key=step_key,
        )
        instance.report_dagster_event(event, run_id=run_id, log_level=logging.WARNING)
        lines.append(line)
    return lines


@contextmanager
def reporting_waits(instance: DagsterInstance, tags: dict[str, str], every: float = 10.0) -> Iterator[None]:
    """While the block runs, report (`report_waits`) every pool wait of the run tagged with `tags`."""
    stop = threading.Event()

    def watch() -> None:
        run_id = None
        while not stop.wait(every):
            try:
                if run_id is None:
                    runs = instance.get_runs(RunsFilter(tags=tags), limit=1)
                    run_id = runs[0].run_id if runs else None
                if run_id:
                    report_waits(instance, run_id)
            except Exception as exc:  # noqa: BLE001 (reporting must never break the run it watches)
                log.debug("could not read the pool state: %s", exc)

    thread = threading.Thread(target=watch, name="context-lens-pool-waits", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)


@sensor(
    name="dead_run_recovery",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died (SIGKILL, out of memory, restart) failed and frees the "
    "duckdb_writer pool slots they held, so queued runs do not wait for them forever; says in the run log "
    "of every started run which of its steps waits for a pool, and for whom.",
)
def dead_run_recovery(context: SensorEvaluationContext) -> SkipReason:
    recovered = recover(context.instance)
    waiting = [
        line
        for run in context.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        for line in report_waits(context.instance, run.run_id)
    ]
    said = [item.describe() for item in recovered] + [f"waiting: {line}" for line in waiting]
    return SkipReason("; ".join(said) or "no dead run holds a run or a pool slot; no step waits for one")


SENSORS = [dead_run_recovery]
