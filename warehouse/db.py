"""The only code that opens DuckDB connections.

Every connection loads the spatial extension from the pinned `duckdb-extension-spatial`
package (offline, no download). Writers wait for DuckDB's single-writer file lock instead
of failing; readers open read-only. Writes go through `transaction`, so a failure leaves
the previous committed state.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import duckdb_extension_spatial

from sources.rawstore import crashpoint, failpoint

WAREHOUSE_DIR = Path(__file__).resolve().parent
DEFAULT_DB = WAREHOUSE_DIR / "context.duckdb"
SQL_DIR = WAREHOUSE_DIR / "sql"
LOCK_WAIT_SECONDS = 300.0  # default of CONTEXT_LENS_LOCK_WAIT

log = logging.getLogger(__name__)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def db_path() -> Path:
    """The warehouse file: `CONTEXT_LENS_DB` if set, else `warehouse/context.duckdb`."""
    return Path(os.environ.get("CONTEXT_LENS_DB", DEFAULT_DB))


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
    loads it when a statement needs it (`warehouse.query`).
    """
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


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute((SQL_DIR / "schema.sql").read_text())


def apply_views(conn: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the evaluator-facing views from `warehouse/sql/views/*.sql`, in name order."""
    for path in sorted((SQL_DIR / "views").glob("*.sql")):
        conn.execute(path.read_text())


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


@contextmanager
def writer(
    path: Path | str | None = None, budget: LockBudget | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection for one unit of work, closed afterwards so others can take the lock."""
    conn = connect(path, budget=budget)
    try:
        yield conn
    finally:
        conn.close()


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
    conn = connect(path, read_only=True, budget=budget)
    try:
        yield conn
    finally:
        conn.close()
