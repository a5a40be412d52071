"""Crash safety (SIGKILL mid-write) and concurrency (two writers and a reader), in child processes.

Children are forked from the test process (so they start without re-importing Dagster) and
run `tests.faults.child` against a copy of the baseline, while the server offers a new
version of every OECD payload (values x1.05, ETag "v2"). The four crash children start
together; each crash case then waits for its own child and checks what it left.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import uuid
from pathlib import Path

import duckdb

from tests.faults import child
from tests.faults.harness import (
    INDICATORS,
    OECD,
    CaseFailed,
    baseline,
    capture,
    copy_baseline,
    environment,
    live_bytes,
    oecd_path,
    require,
    run_oecd,
    server,
    short,
    tables_intact,
    unchanged_reply,
    workspace_variables,
)
from tests.faults.matrix import case
from warehouse import db

CHILD_TIMEOUT = 240


@functools.cache
def new_bytes(indicator: str) -> bytes:
    return live_bytes(indicator, 1.05)


def shas(contents) -> frozenset[str]:
    return frozenset(hashlib.sha256(c).hexdigest() for c in contents)


OLD = functools.cache(lambda: shas(live_bytes(i) for i in INDICATORS))
NEW = functools.cache(lambda: shas(new_bytes(i) for i in INDICATORS))


def serve_new() -> None:
    for indicator in INDICATORS:
        server().script(oecd_path(indicator), unchanged_reply(new_bytes(indicator), '"v2"'))


_FORK = multiprocessing.get_context("fork")


def _child_main(root: Path, mode: str, out: Path, stop: Path | None, crash_at: str | None) -> None:
    log = os.open(out.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for name, value in workspace_variables(root).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if crash_at:
        os.environ["CONTEXT_LENS_CRASH_AT"] = crash_at
    code = child.materialize(str(out)) if mode == "materialize" else child.read(str(out), str(stop))
    os._exit(code)


class Child:
    """One forked child process running `tests.faults.child`; its result and log sit in `root`."""

    def __init__(self, root: Path, mode: str, stop: Path | None = None, crash_at: str | None = None):
        self.out = root / f"child-{mode}-{uuid.uuid4().hex[:6]}.json"
        self.process = _FORK.Process(target=_child_main, args=(root, mode, self.out, stop, crash_at))
        self.process.start()

    def wait(self) -> int:
        self.process.join(CHILD_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            raise CaseFailed(f"a child process did not finish in {CHILD_TIMEOUT}s: {self.log_tail()}")
        return self.process.exitcode

    def result(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def log_tail(self) -> str:
        log = self.out.with_suffix(".log")
        return short(log.read_text()[-600:], 400) if log.exists() else ""


# --- what a warehouse and raw store must satisfy after any crash -------------------------------


def _query(root: Path, sql: str) -> list[tuple]:
    conn = duckdb.connect(str(root / "context.duckdb"), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def shas_of(root: Path, table: str) -> frozenset[str]:
    """The payload hashes a table's rows come from (through core.snapshots)."""
    rows = _query(root, f"SELECT DISTINCT s.sha256 FROM {table} t JOIN core.snapshots s USING (snapshot_id)")  # noqa: S608 (constant table names)
    return frozenset(r[0] for r in rows)


def latest_shas(root: Path) -> frozenset[str]:
    folder = root / "raw" / "latest" / OECD
    return frozenset(json.loads(p.read_text())["sha256"] for p in folder.glob("*.json"))


def integrity(root: Path) -> str:
    """Open like any reader, read every table, check references and every raw-store file against its hash."""
    with db.reader(root / "context.duckdb") as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        rows = sum(
            conn.execute(f"SELECT count(*) FROM {db.table_name(schema, table)}").fetchone()[0]  # noqa: S608
            for schema, table in tables
        )
        dangling = conn.execute(
            """
            SELECT 'core.observations', count(*) FROM core.observations
             WHERE snapshot_id NOT IN (SELECT snapshot_id FROM core.snapshots)
            UNION ALL SELECT 'staging.oecd_regional', count(*) FROM staging.oecd_regional
             WHERE snapshot_id NOT IN (SELECT snapshot_id FROM core.snapshots)
            UNION ALL SELECT 'core.source_status', count(*) FROM core.source_status
             WHERE last_snapshot_id NOT IN (SELECT snapshot_id FROM core.snapshots)
            """
        ).fetchall()
        recorded = conn.execute(
            "SELECT source_id, snapshot_id, sha256, bytes, retrieved_at FROM core.snapshots"
        ).fetchall()
    require(all(count == 0 for _, count in dangling), f"rows citing unknown snapshots: {dangling}")
    raw = root / "raw"
    objects = list((raw / "objects").glob("*/*"))
    for path in objects:
        require(
            hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"raw object {path.name} is corrupt"
        )
    sidecars = list((raw / "snapshots").glob("*/*.json")) + list((raw / "latest").glob("*/*.json"))
    for path in sidecars:
        meta = json.loads(path.read_text())
        target = raw / "objects" / meta["sha256"][:2] / meta["sha256"]
        require(target.exists() and target.stat().st_size == meta["bytes"], f"{path} names a missing object")
    for source, snapshot_id, sha256, size, retrieved_at in recorded:
        sidecar = json.loads((raw / "snapshots" / source / f"{snapshot_id}.json").read_text())
        require(
            (sidecar["sha256"], sidecar["bytes"]) == (sha256, size)
            and sidecar["retrieved_at"].rstrip("Z").replace("T", " ")[:23] == str(retrieved_at)[:23],
            f"core.snapshots row {snapshot_id} disagrees with its sidecar {sidecar}",
        )
    leftovers = [p.name for p in raw.rglob(".tmp-*")]
    return (
        f"{len(tables)} tables / {rows} rows readable, no dangling snapshot ids, {len(objects)} objects "
        f"match their hashes, {len(sidecars)} sidecars resolve"
        + (f", {len(leftovers)} temp files" if leftovers else "")
    )


# --- crash safety ----------------------------------------------------------------------------------

POINTS = {
    "K1": "rawstore.put:after_object",
    "K2": "transaction:before_commit",
    "K3": "transaction:after_commit",
    "K4": "replace_observations:after_delete",
}


@functools.cache
def crash_children() -> dict[str, tuple[Path, Child]]:
    """Start one killed-on-purpose materialization per crash point, all at once."""
    baseline()
    serve_new()
    children = {}
    for point in POINTS.values():
        root = copy_baseline("faults-crash-")
        children[point] = (root, Child(root, "materialize", crash_at=point))
    return children


def _crash_case(point: str, check) -> str:
    root, process = crash_children()[point]
    try:
        code = process.wait()
        require(
            code == -signal.SIGKILL,
            f"the child was not killed at {point} (exit {code}): {process.log_tail()}",
        )
        after_crash = integrity(root)
        observed = check(root)
        serve_new()
        with environment(**workspace_variables(root)):
            error = run_oecd()
        require(error is None, f"the next run failed: {error}")
        require(shas_of(root, "core.observations") == NEW(), "the next run did not serve the new payloads")
        integrity(root)
        return f"killed at {point}: {observed}; after the crash: {after_crash}; the next run completed"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _unchanged(root: Path, what: str) -> str:
    tables_intact(baseline().state, capture(root), keep_status=True)
    return f"every table exactly as committed before ({what})"


@case(
    "K1",
    "crash",
    "SIGKILL after a payload object is written, before its sidecar",
    "warehouse exactly as before; latest/ untouched; at most an orphan object; next run completes",
)
def crash_after_object() -> str:
    def check(root: Path) -> str:
        observed = _unchanged(root, "nothing was committed")
        require(latest_shas(root) == OLD(), "latest/ changed")
        new = set(capture(root).files) - set(baseline().state.files)
        require(all(p.startswith("objects/") for p in new), f"files besides objects appeared: {sorted(new)}")
        return f"{observed}; {len(new)} orphan object(s)"

    return _crash_case(POINTS["K1"], check)


@case(
    "K2",
    "crash",
    "SIGKILL inside the publish transaction, before COMMIT",
    "warehouse exactly as before (rolled back on reopen); latest/ untouched; next run completes",
)
def crash_before_commit() -> str:
    def check(root: Path) -> str:
        observed = _unchanged(root, "the open transaction was discarded")
        require(latest_shas(root) == OLD(), "latest/ changed although nothing was committed")
        return observed

    return _crash_case(POINTS["K2"], check)


@case(
    "K3",
    "crash",
    "SIGKILL right after the publish COMMIT, before the payloads are promoted",
    "raw/staging hold the new payloads whole; observations and latest/ as before; next run completes",
)
def crash_after_commit() -> str:
    def check(root: Path) -> str:
        require(shas_of(root, "staging.oecd_regional") == NEW(), "staging is not wholly the new payloads")
        require(shas_of(root, "core.observations") == OLD(), "observations changed")
        require(latest_shas(root) == OLD(), "latest/ promoted although the process died first")
        return "staging wholly new, observations wholly old, latest/ old (re-fetched next run)"

    return _crash_case(POINTS["K3"], check)


@case(
    "K4",
    "crash",
    "SIGKILL in replace_observations, after the DELETE of the old rows",
    "observations and their history exactly as before; staging and latest/ new; next run completes",
)
def crash_mid_observations() -> str:
    def check(root: Path) -> str:
        before, after = baseline().state.tables, capture(root).tables
        for table in ("core.observations", "core.observation_history"):
            require(after[table] == before[table], f"{table} changed: the DELETE survived the crash")
        require(shas_of(root, "staging.oecd_regional") == NEW(), "staging is not wholly the new payloads")
        require(latest_shas(root) == NEW(), "the published payloads were not promoted")
        return f"{len(after['core.observations'])} observations exactly as before, staging and latest/ new"

    return _crash_case(POINTS["K4"], check)


REBUILD_BOUND_SECONDS = 120
DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def _pool_holders(home: Path) -> list[str]:
    from dagster import DagsterInstance

    with environment(DAGSTER_HOME=str(home)), DagsterInstance.get() as instance:
        info = instance.event_log_storage.get_concurrency_info("duckdb_writer")
        return [f"{slot.run_id[:8]}:{slot.step_key}" for slot in info.claimed_slots]


def _run_statuses(home: Path) -> list[str]:
    from dagster import DagsterInstance

    with environment(DAGSTER_HOME=str(home)), DagsterInstance.get() as instance:
        return [run.status.value for run in instance.get_runs()]


@case(
    "K5",
    "crash",
    "SIGKILL of a run holding the duckdb_writer pool slot (persistent Dagster instance), then a rebuild",
    f"the dead run is marked failed and its slot freed at start-up; the rebuild completes within "
    f"{REBUILD_BOUND_SECONDS}s and serves the new payloads; warehouse wholly old after the kill",
)
def crash_holding_the_pool() -> str:
    root = copy_baseline("faults-pool-")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    try:
        serve_new()
        with environment(DAGSTER_HOME=str(home)):
            killed = Child(root, "materialize", crash_at=POINTS["K2"])
        code = killed.wait()
        require(code == -signal.SIGKILL, f"the first run was not killed (exit {code}): {killed.log_tail()}")
        held = _pool_holders(home)
        require(held, "the killed run left no pool slot claimed: the case does not reproduce the hang")
        observed = _unchanged(root, "the killed run committed nothing")
        with environment(DAGSTER_HOME=str(home)):
            rebuild = Child(root, "materialize")
        code = rebuild.wait()
        outcome = json.loads(rebuild.result() or "{}")
        require(code == 0 and outcome.get("success"), f"the rebuild failed ({code}): {rebuild.log_tail()}")
        require(outcome["s"] < REBUILD_BOUND_SECONDS, f"the rebuild took {outcome['s']:.0f}s")
        require(outcome["recovered"], "the rebuild did not report the dead run it recovered")
        require(shas_of(root, "core.observations") == NEW(), "the rebuild did not serve the new payloads")
        statuses = sorted(_run_statuses(home))
        require(statuses == ["FAILURE", "SUCCESS"], f"runs in the instance: {statuses}")
        require(not _pool_holders(home), f"slots still claimed after the rebuild: {_pool_holders(home)}")
        return (
            f"killed holding slot {held[0]}; {observed}; rebuild: {outcome['recovered'][0]}; it completed in "
            f"{outcome['s']:.1f}s (bound {REBUILD_BOUND_SECONDS}s); runs {statuses}; {integrity(root)}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- concurrency -----------------------------------------------------------------------------------


@case(
    "Q01",
    "concurrency",
    "two materializations started at once, and a read-only reader querying meanwhile",
    "both succeed, no lock error; every read sees one whole version; final state consistent",
)
def two_writers_and_a_reader() -> str:
    root = copy_baseline("faults-concurrency-")
    try:
        serve_new()
        stop = root / "stop-reading"
        reader = Child(root, "read", stop)
        writers = [Child(root, "materialize") for _ in range(2)]
        codes = [writer.wait() for writer in writers]
        stop.touch()
        for writer, code in zip(writers, codes, strict=True):
            outcome = json.loads(writer.result() or "{}")
            require(
                code == 0 and outcome.get("success"),
                f"a writer failed ({code}, {outcome}): {writer.log_tail()}",
            )
            require("lock" not in " ".join(outcome.get("errors", [])).lower(), f"lock error: {outcome}")
        require(reader.wait() == 0, f"the reader failed: {reader.log_tail()}")
        reads = [json.loads(line) for line in reader.result().splitlines() if line.startswith("{")]
        require(reads, "the reader never got to read")
        count = len(baseline().state.tables["core.observations"])
        versions = []
        for read in reads:
            observed = frozenset(sha for sha, _ in read["observations"])
            require(read["orphans"] == 0, f"a read saw observations citing unknown snapshots: {read}")
            require(sum(n for _, n in read["observations"]) == count, f"a read saw {read['observations']}")
            require(observed in (OLD(), NEW()), f"a read saw a mix of versions: {read}")
            staged = frozenset(sha for sha, _ in read["staging"])
            require(staged in (OLD(), NEW()), f"a read saw staging from a mix of versions: {read}")
            versions.append("old" if observed == OLD() else "new")
        state = integrity(root)
        require(
            shas_of(root, "core.observations") == NEW(), "the final observations are not the new payloads"
        )
        slowest = max(read["s"] for read in reads)
        return (
            f"both runs succeeded; {len(reads)} reads ({versions.count('old')} saw the old version whole, "
            f"{versions.count('new')} the new; slowest waited {slowest:.1f}s for the lock); final: {state}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
