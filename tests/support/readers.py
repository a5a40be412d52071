"""Reader processes for the concurrency test, and a build that records what it publishes.

`python -m tests.support.readers read OUT DONE` is one reader as docs/operations.md tells
readers to connect: the published copy of the embedded file (reopened only when a run
replaced it), or the DuckLake attached read-only; the connection opened once, without the
spatial extension (the query needs none), at low priority, one read every `INTERVAL` seconds
until the file DONE exists, then one last read. It writes what each read saw to OUT (JSON).

`python -m tests.support.readers build STATES -- ARGS...` runs `context-lens ARGS...` and
appends the state of the mart at every publication of the embedded file to STATES (JSON
lines): the states readers of the published copy can see, recorded on the writer's own
connection right after the copy is made.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import duckdb

from warehouse import db

# What one read returns: rows, distinct basins, basins with flow figures, and a checksum of
# every row (order-independent, so equal contents give equal sums). Nothing spatial.
STATE_SQL = (
    "SELECT count(*), count(DISTINCT basin_id), count(reference_mean_m3s), "
    "coalesce(sum(hash(b)), 0)::VARCHAR FROM marts.basin_comparison b"
)
ABSENT = "absent"  # the mart does not exist yet (before the first run that creates it)
INTERVAL = 0.2
NICENESS = 10


def state(conn: duckdb.DuckDBPyConnection) -> list | str:
    """The mart's state on `conn`, or ABSENT before the view is created."""
    try:
        return list(conn.execute(STATE_SQL).fetchone())
    except duckdb.CatalogException as exc:
        if "basin_comparison" in str(exc) and "does not exist" in str(exc):  # or its schema does not
            return ABSENT
        raise


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _open(target: Path | None) -> tuple[duckdb.DuckDBPyConnection, int | None]:
    opened = _inode(target) if target is not None else None
    return db.connect(target, read_only=True, spatial=False), opened


def read(out: Path, done: Path) -> None:
    os.nice(NICENESS)
    target = db.reader_target()  # the published file, or None: the DuckLake
    states: list = []  # distinct states seen, in order of first sight
    reads: list[list] = []  # [time, index in states, connection number]
    errors: list[str] = []
    conn, opened = _open(target)
    connections = 1
    print("ready", flush=True)
    while True:
        finished = done.exists()
        try:
            if target is not None and _inode(target) != opened:  # a run published a new copy
                conn.close()
                conn, opened = _open(target)
                connections += 1
            seen = state(conn)
            if seen not in states:
                states.append(seen)
            reads.append([time.time(), states.index(seen), connections])
        except duckdb.Error as exc:
            errors.append(f"{time.time():.3f} {type(exc).__name__}: {exc}")
        if finished:  # this last read came after the writer finished
            break
        time.sleep(INTERVAL)
    conn.close()
    report = {"states": states, "reads": reads, "errors": errors, "connections": connections}
    out.write_text(json.dumps(report), encoding="utf-8")


def build(states: Path, args: list[str]) -> int:
    """`context-lens ARGS`, recording the mart's state at each publication of the embedded file."""
    from pipelines import cli

    original = db.publish

    def publish(conn: duckdb.DuckDBPyConnection, working: Path | str | None = None) -> Path | None:
        target = original(conn, working)
        if target is not None:
            with states.open("a", encoding="utf-8") as file:
                file.write(json.dumps({"time": time.time(), "state": state(conn)}) + "\n")
        return target

    db.publish = publish  # db.writer calls it by name at the end of every published unit of work
    return cli.main(args)


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "build" and sys.argv[3] == "--":
        sys.exit(build(Path(sys.argv[2]), sys.argv[4:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} read OUT DONE | build STATES -- ARGS...")
