"""What the child processes of the crash and concurrency cases run.

The cases fork the test process (everything is imported already, so a child starts at
once) and call one of these; `python -m tests.faults.child materialize|read <out> [<stop>]`
runs the same in a fresh interpreter, to reproduce a case by hand.

`materialize` runs the OECD assets with `dagster.materialize`, as a scheduled run would,
against the warehouse and endpoints named in the environment; with `DAGSTER_HOME` set it
uses that persistent instance (its pools apply) and recovers dead runs first, as the CLI does. With `CONTEXT_LENS_CRASH_AT`
set, the process kills itself with SIGKILL at that point: the points inside the shared
mechanics are hooks (`sources.rawstore.crashpoint`); the point
`replace_observations:after_delete` is installed here, by wrapping the connection that
`warehouse.store.replace_observations` writes through. It writes one JSON document.

`read` queries the warehouse read-only (`warehouse.db.reader`) every half second until the
`stop` file exists, and writes one JSON document per read, a line each.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MID_OBSERVATIONS = "replace_observations:after_delete"


class _CrashAfterDelete:
    """A connection that dies right after replace_observations has deleted the old rows."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        result = self._conn.execute(sql, *args)
        if sql.lstrip().upper().startswith("DELETE FROM CORE.OBSERVATIONS"):
            from sources.rawstore import crashpoint

            crashpoint(MID_OBSERVATIONS)
        return result

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _instance():
    """With DAGSTER_HOME, the persistent instance, recovered first as the CLI does; else ephemeral."""
    if not os.environ.get("DAGSTER_HOME"):
        return None, []
    from dagster import DagsterInstance

    from pipelines import recovery

    instance = DagsterInstance.get()
    return instance, [item.describe() for item in recovery.recover(instance)]


def materialize(out: str) -> int:
    from dagster import materialize as run

    from pipelines import oecd as oecd_assets
    from pipelines import recovery
    from pipelines.resources import SourcesResource, WarehouseResource
    from warehouse import store

    if os.environ.get("CONTEXT_LENS_CRASH_AT") == MID_OBSERVATIONS:
        original = store.replace_observations
        store.replace_observations = lambda conn, source_id, frame: original(
            _CrashAfterDelete(conn), source_id, frame
        )
    started = time.monotonic()
    instance, recovered = _instance()
    result = run(
        oecd_assets.ASSETS,
        instance=instance,
        tags=recovery.run_tags() if instance else None,
        resources={
            "warehouse": WarehouseResource(),
            "sources": SourcesResource(max_attempts=2, backoff_seconds=0.05),
        },
        raise_on_error=False,
    )
    errors = [
        event.event_specific_data.error.message
        for event in result.all_events
        if event.is_step_failure and event.event_specific_data.error
    ]
    outcome = {"success": result.success, "errors": errors, "recovered": recovered}
    outcome["s"] = time.monotonic() - started
    Path(out).write_text(json.dumps(outcome))
    return 0 if result.success else 1


def read(out: str, stop_file: str) -> int:
    from warehouse import db

    lines = []
    while not os.path.exists(stop_file):
        started = time.monotonic()
        with db.reader() as conn:
            observations = conn.execute(
                "SELECT s.sha256, count(*) FROM core.observations o "
                "JOIN core.snapshots s USING (snapshot_id) GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            staging = conn.execute(
                "SELECT s.sha256, count(*) FROM staging.oecd_regional t "
                "JOIN core.snapshots s USING (snapshot_id) GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            orphans = conn.execute(
                "SELECT count(*) FROM core.observations WHERE snapshot_id NOT IN "
                "(SELECT snapshot_id FROM core.snapshots)"
            ).fetchone()[0]
        waited = time.monotonic() - started
        lines.append(
            json.dumps({"observations": observations, "staging": staging, "orphans": orphans, "s": waited})
        )
        Path(out).write_text("\n".join(lines))
        time.sleep(0.5)  # DuckDB's file lock is not fair: leave the writers room between reads
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    sys.exit(materialize(sys.argv[2]) if mode == "materialize" else read(sys.argv[2], sys.argv[3]))
