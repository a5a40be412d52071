"""The only code that opens DuckDB connections.

Every connection loads the spatial extension from the pinned `duckdb-extension-spatial`
package (offline, no download). Writers wait for DuckDB's single-writer file lock instead
of failing; readers open read-only. Writes go through `transaction`, so a failure leaves
the previous committed state.

`CONTEXT_LENS_WAREHOUSE=ducklake:postgres:...` puts the whole warehouse on DuckLake instead
(`warehouse.lake`): the same contract, many readers at once and writers of several processes
taking turns on the lake's writer lock (`lake.one_writer`), no published copy (readers see the
catalog's last committed snapshot).

Builds write the working file (`CONTEXT_LENS_DB`); people and tools read the published copy
(`published_path`), which `publish` replaces atomically after each run's writes. A reader
holding the published file open keeps the copy it opened (the old inode) and never takes
or meets the writer's lock.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TypeVar

import duckdb
import duckdb_extension_spatial

from sources.rawstore import crashpoint, failpoint
from warehouse import lake

WAREHOUSE_DIR = Path(__file__).resolve().parent
DEFAULT_DB = WAREHOUSE_DIR / "context.duckdb"
SQL_DIR = WAREHOUSE_DIR / "sql"
LOCK_WAIT_SECONDS = 300.0  # default of CONTEXT_LENS_LOCK_WAIT

log = logging.getLogger(__name__)
T = TypeVar("T")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def db_path() -> Path:
    """The warehouse file: `CONTEXT_LENS_DB` if set, else `warehouse/context.duckdb`."""
    return Path(os.environ.get("CONTEXT_LENS_DB", DEFAULT_DB))


def published_path(working: Path | str | None = None) -> Path:
    """The read-only copy readers open: `CONTEXT_LENS_PUBLISHED_DB` if set (for the configured
    warehouse), else `published/<name>` beside the working file."""
    target = Path(working) if working is not None else db_path()
    configured = os.environ.get("CONTEXT_LENS_PUBLISHED_DB")
    if configured and (working is None or target.resolve() == db_path().resolve()):
        return Path(configured)
    return target.parent / "published" / target.name


def reader_path() -> Path:
    """Where readers connect: the published copy; the working file only before anything was
    published (a warehouse built before publication existed), with its lock waits."""
    published = published_path()
    return published if published.exists() or not db_path().exists() else db_path()


def reader_target() -> Path | None:
    """What readers open: the published file, or None for the configured DuckLake."""
    return None if lake.configured() else reader_path()


def exists() -> bool:
    """Whether there is a warehouse to read (a DuckLake, once configured, always answers)."""
    return lake.configured() is not None or reader_path().exists()


def publishes(path: Path | str | None = None) -> bool:
    """Whether writes to this warehouse are published as a copy (the embedded file; not a DuckLake)."""
    return path is not None or lake.configured() is None


def describe() -> str:
    """Where the warehouse is, for messages (a DuckLake's password redacted)."""
    configured = lake.configured()
    return configured.describe() if configured else str(db_path())


def raw_dir() -> Path:
    """The raw store: `CONTEXT_LENS_RAW_DIR` if set, else `raw/` beside the database file."""
    configured = os.environ.get("CONTEXT_LENS_RAW_DIR")
    return Path(configured) if configured else db_path().parent / "raw"


def spatial_extension_path() -> str:
    folder = Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = folder / "spatial.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"spatial extension for DuckDB {duckdb.__version__} not found at {path}")
    return str(path)


def quote_ident(name: str) -> str:
    """Quote an identifier after checking it is a plain name (no injection through names)."""
    if not _IDENT.match(name):
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def table_name(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def load_spatial(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"LOAD '{spatial_extension_path()}'")


LOCK_REPORT_SECONDS = 30.0  # how often a writer still waiting for the lock says so


def lock_wait_seconds() -> float:
    """How long to wait for another process's lock: `CONTEXT_LENS_LOCK_WAIT` (seconds), default 300."""
    return float(os.environ.get("CONTEXT_LENS_LOCK_WAIT", LOCK_WAIT_SECONDS))


class LockTimeout(duckdb.IOException):
    """The warehouse stayed locked by another process for longer than this run may wait."""


class LockBudget:
    """The time one run may spend waiting for the warehouse lock, over all of its steps.

    Without it every writer step of a run would wait out the whole timeout in turn while
    a reader holds the file; with it the run's first wait spends the budget and the later
    steps fail at once, saying why.
    """

    def __init__(self, seconds: float | None = None, notify: Callable[[str], object] | None = None):
        self.seconds = lock_wait_seconds() if seconds is None else float(seconds)
        self.spent = 0.0
        self.notify = notify  # where a wait is reported (the run's log); else this module's logger

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.spent)


def _holder(exc: Exception) -> str:
    """Who holds the lock, as DuckDB says it ('... is held in /usr/bin/python3 (PID 123)')."""
    found = re.search(r"held in (.+?\(PID \d+\))", str(exc))
    return f"held by {found.group(1)}" if found else "held by another process"


def connect(
    path: Path | str | None = None,
    *,
    read_only: bool = False,
    spatial: bool = True,
    budget: LockBudget | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting (up to CONTEXT_LENS_LOCK_WAIT seconds, or what is left of the
    run's `budget`) for another process that holds its lock, and saying so while it waits.

    `spatial=False` (read-only use only) leaves loading the extension to the caller, who
    loads it when a statement needs it (`warehouse.query`), on either backend: a reader that
    queries no spatial function does not pay for loading it on every connection.
    """
    if path is None and (configured := lake.configured()) is not None:
        return _connect_lake(configured, read_only, spatial=spatial or not read_only)
    target = Path(path) if path is not None else db_path()
    if read_only and not target.exists():
        raise FileNotFoundError(f"no warehouse at {target}: run `make run` (or `context-lens build`) first")
    target.parent.mkdir(parents=True, exist_ok=True)
    allowed = budget.remaining() if budget is not None else lock_wait_seconds()
    started = time.monotonic()
    delay, next_report = 0.05, 0.0
    while True:
        try:
            conn = duckdb.connect(str(target), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            waited = time.monotonic() - started
            if waited >= allowed:
                if budget is not None:
                    budget.spent += waited
                spent = (
                    f"; this run has waited {budget.spent:.0f}s of its {budget.seconds:.0f}s"
                    if budget
                    else ""
                )
                raise LockTimeout(
                    f"the warehouse {target} is locked ({_holder(exc)}): gave up after {waited:.0f}s{spent} "
                    "(CONTEXT_LENS_LOCK_WAIT)"
                ) from exc
            if waited >= next_report:  # at once, then every LOCK_REPORT_SECONDS while it lasts
                message = (
                    f"waiting for the warehouse lock on {target} {_holder(exc)} "
                    f"(waited {waited:.0f}s, budget {allowed:.0f}s)"
                )
                (budget.notify if budget is not None and budget.notify else log.warning)(message)
                next_report = waited + LOCK_REPORT_SECONDS
            time.sleep(min(delay, max(0.0, allowed - waited)))
            delay = min(delay * 2, 1.0)
    if budget is not None:
        budget.spent += time.monotonic() - started
    if spatial or not read_only:
        load_spatial(conn)
    if not read_only:
        ensure_schema(conn)
    return conn


def _connect_lake(configured: lake.Lake, read_only: bool, spatial: bool) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(":memory:")
    try:
        if spatial:  # writers always (they create geometry columns); readers when they ask
            load_spatial(conn)
        lake.attach(conn, configured, read_only)
        if (
            not read_only
        ):  # writers outside `writer` (no turn taken) may create it at once: one wins, the others retry
            retrying(lambda: _in_transaction(conn, ensure_schema), "the warehouse schema")
    except BaseException:
        conn.close()
        raise
    return conn


def run_script(conn: duckdb.DuckDBPyConnection, sql: str | Path) -> None:
    """Run warehouse DDL (text or a file in warehouse/sql), adapted to the connection's backend."""
    text = sql.read_text() if isinstance(sql, Path) else sql
    conn.execute(lake.adapt_ddl(text) if lake.is_lake(conn) else text)


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    run_script(conn, SQL_DIR / "schema.sql")


def apply_views(conn: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the evaluator-facing views from `warehouse/sql/views/*.sql`, in name order."""
    for path in sorted((SQL_DIR / "views").glob("*.sql")):
        run_script(conn, path)


def delete_key(conn: duckdb.DuckDBPyConnection, qualified: str, **key: object) -> None:
    """Delete the row with this key: with a plain INSERT after it, a replace that needs no
    PRIMARY KEY (DuckLake has none; on the embedded file the key still guards)."""
    schema, table = qualified.split(".")
    where = " AND ".join(f"{quote_ident(column)} = ?" for column in key)
    conn.execute(f"DELETE FROM {table_name(schema, table)} WHERE {where}", list(key.values()))  # noqa: S608


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    crashpoint("transaction:before_commit")
    try:
        failpoint("transaction:commit")
        conn.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a commit that failed leaves nothing of the transaction
            conn.execute("ROLLBACK")
        raise
    crashpoint("transaction:after_commit")


def retrying(work: Callable[[], T], what: str) -> T:
    """Run one unit of work (it opens its own writer and transaction); on a DuckLake commit conflict
    that DuckLake could not settle itself (two writers changed the same data), run it again.

    Bounded by `CONTEXT_LENS_LAKE_RETRIES`, each retry logged at WARNING with the table and the
    attempt; the last conflict is raised, so a write is never lost silently. The embedded file has
    one writer at a time and no conflicts: its work runs once.
    """
    attempts = lake.retries() + 1 if lake.configured() is not None else 1
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if attempt == attempts or not lake.is_conflict(exc):
                raise
            log.warning(
                "DuckLake commit conflict on %s while writing %s (attempt %d of %d): retrying in %.1fs",
                lake.conflict_table(exc),
                what,
                attempt,
                attempts,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # the loop returns or raises


def _in_transaction(conn: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    with transaction(conn):
        return work(conn)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(conn: duckdb.DuckDBPyConnection, working: Path | str | None = None) -> Path | None:
    """Replace the published copy with the working file's committed state, atomically.

    Runs on the writer's own connection, so no other writer changes the file meanwhile and
    two publishers cannot replace the copy out of order. CHECKPOINT folds the write-ahead log
    into the file, which is then copied to a temporary file in the published folder, synced,
    and renamed over the published one: a reader sees the old copy or the new one, never a
    partial file, and one holding the old copy open keeps reading it.
    """
    if lake.is_lake(conn):
        return None  # a DuckLake's readers see its committed snapshots; there is no copy to make
    source = Path(working) if working is not None else db_path()
    target = published_path(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    conn.execute("CHECKPOINT")
    wal = source.with_name(source.name + ".wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise RuntimeError(f"cannot publish {source}: its write-ahead log was not folded in by CHECKPOINT")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copyfile(source, temporary)
        _fsync(temporary)
        crashpoint("publish:before_replace")
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync(target.parent)
    return target


@contextmanager
def writer(
    path: Path | str | None = None, budget: LockBudget | None = None, publish_after: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection for one unit of work, closed afterwards so others can take the lock.

    When the unit ends without an error its state is published (`publish_after`); a Dagster
    run writes with `publish_after=False` and publishes once, at its end (WarehouseResource).
    On DuckLake the unit holds the lake's writer lock (`warehouse.lake.one_writer`) meanwhile.
    """
    with _writer_turn(path, budget):
        conn = connect(path, budget=budget)
        try:
            yield conn
            if publish_after:
                publish(conn, path)
        finally:
            conn.close()


def _writer_turn(path: Path | str | None, budget: LockBudget | None) -> AbstractContextManager[None]:
    """On DuckLake, the turn of this writer among the lake's writers (waiting up to CONTEXT_LENS_LOCK_WAIT
    for each turn, not charged to the run's budget: only writers at work hold it); else nothing."""
    configured = lake.configured() if path is None else None
    if configured is None:
        return nullcontext()
    notify = budget.notify if budget is not None and budget.notify else log.warning
    return lake.one_writer(configured, lock_wait_seconds(), notify)


@contextmanager
def scan(
    memory_limit: str | None = None, threads: int | None = None, temp_directory: Path | str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection (spatial loaded) for streaming a large file into aggregates.

    Nothing of the warehouse is attached, so no lock is taken. `memory_limit` (default
    `CONTEXT_LENS_SCAN_MEMORY`, else 1GB) bounds DuckDB's memory; beyond it, operators spill
    to `temp_directory`. Insertion order is not preserved, which lets scans stream.
    """
    conn = duckdb.connect(":memory:")
    try:
        load_spatial(conn)
        conn.execute(
            "SET memory_limit = ?", [memory_limit or os.environ.get("CONTEXT_LENS_SCAN_MEMORY", "1GB")]
        )
        conn.execute("SET preserve_insertion_order = false")
        conn.execute("SET enable_progress_bar = false")
        if threads:
            conn.execute("SET threads = ?", [int(threads)])
        if temp_directory is not None:
            conn.execute("SET temp_directory = ?", [str(temp_directory)])
        yield conn
    finally:
        conn.close()


@contextmanager
def reader(
    path: Path | str | None = None, budget: LockBudget | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to `path` (default: the working file, for the build's own reads)."""
    conn = connect(path, read_only=True, budget=budget)
    try:
        yield conn
    finally:
        conn.close()


def published_reader() -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A read-only connection for people and tools (`sql`, `status`, `studies`): the published copy."""
    return reader(reader_target())
