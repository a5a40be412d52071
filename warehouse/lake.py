"""The DuckLake backend: the warehouse as Parquet files with its catalog in PostgreSQL.

Chosen by one setting, `CONTEXT_LENS_WAREHOUSE=ducklake:postgres:<libpq connection string>`,
with `CONTEXT_LENS_LAKE_DATA` naming the folder of the data files. Credentials come from the
environment only (the connection string, or libpq's PGPASSWORD / ~/.pgpass) and are redacted
from every message this module raises. The extensions are loaded from the pinned pip packages
`duckdb-extension-ducklake` and `duckdb-extension-postgres` (extra `lake`), never downloaded.

DuckLake has no PRIMARY KEY, UNIQUE or CHECK constraints: `adapt_ddl` drops them from the
warehouse's DDL, so one declaration per table serves both backends; the writes that relied on a
key (replace a row, keep the first) are written key-explicitly in `warehouse.store`.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import duckdb

SETTING = "CONTEXT_LENS_WAREHOUSE"
DATA_SETTING = "CONTEXT_LENS_LAKE_DATA"
SCHEMA_SETTING = "CONTEXT_LENS_LAKE_SCHEMA"  # PostgreSQL schema of the catalog tables (default public)
RETRY_SETTING = "CONTEXT_LENS_LAKE_RETRIES"  # commit-conflict retries per transaction (default 10)
RETRY_DEFAULT = 10
WRITER_LOCK = ".writer.lock"  # in the data folder: the lock writers of one lake take turns on
NOTICE_SECONDS = 5.0  # a writer waiting this long for its turn says so (shorter turns are the norm)...
REPORT_SECONDS = 30.0  # ... and again this often while it waits
CATALOG_NAME = "warehouse"  # the attached DuckLake's name; `USE` makes it the default catalog
_EXTENSIONS = {  # name DuckDB loads it under -> (pip package module, file in that package)
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "postgres_scanner": ("duckdb_extension_postgres", "postgres"),  # entry point postgres_scanner_init
}
_SECRET = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_SECRET = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)([^@\s]+)(@)", re.IGNORECASE)


class LakeConfigError(RuntimeError):
    """The DuckLake setting is wrong or its catalog or data path cannot be used; names the setting."""


class LakeNotCreated(LakeConfigError, FileNotFoundError):
    """A reader met a catalog no writer has created yet: like the embedded file before its first
    build (FileNotFoundError), there is nothing to read. Steps that read before they write (a
    source's unchanged check) take it as an empty warehouse, as they do the missing file."""


_VERSION_MISMATCH = re.compile(
    r"catalog version is (\S+), but the extension requires version (\S+?)\.?(?:\s|$)"
)
_NOT_CREATED = re.compile(r"does not exist - and creating a new DuckLake is explicitly disabled")
_CONFLICT = re.compile(r"conflict", re.IGNORECASE)
_CONFLICT_TABLE = (
    re.compile(  # 'table "observations" in schema "core"', '"core"."probe"', 'table with index "6"'
        r'table "(?P<table>[^"]+)" in schema "(?P<schema>[^"]+)"|"(?P<s>[^"]+)"\."(?P<t>[^"]+)"'
        r'|table with index "(?P<index>\d+)"|schema with name "(?P<name>[^"]+)"',
        re.IGNORECASE,
    )
)


def retries() -> int:
    """How many times one transaction's commit is retried after a conflict (`CONTEXT_LENS_LAKE_RETRIES`)."""
    text = os.environ.get(RETRY_SETTING, "").strip()
    try:
        count = int(text) if text else RETRY_DEFAULT
    except ValueError:
        count = -1
    if not 0 <= count <= 100:
        raise LakeConfigError(f"{RETRY_SETTING}={text!r} is not a whole number from 0 to 100")
    return count


def is_conflict(exc: BaseException) -> bool:
    """Whether `exc` is a DuckLake commit conflict (another writer committed a clashing change first)."""
    return isinstance(exc, duckdb.Error) and bool(_CONFLICT.search(str(exc)))


def conflict_table(exc: BaseException) -> str:
    """The table a commit conflict names, as DuckLake says it, or 'unknown table'."""
    found = _CONFLICT_TABLE.search(str(exc))
    if found is None:
        return "an unnamed table"
    if found["table"] or found["t"]:
        return f"{found['schema'] or found['s']}.{found['table'] or found['t']}"
    return f"DuckLake table id {found['index']}" if found["index"] else f"schema {found['name']}"


def redact(text: str) -> str:
    """`text` without passwords (libpq `password=...` and `postgresql://user:secret@`)."""
    return _URI_SECRET.sub(r"\1***\3", _SECRET.sub(r"\1***", text))


@dataclass(frozen=True)
class Lake:
    catalog: str  # 'postgres:dbname=... host=...' (what follows 'ducklake:')
    data_path: str
    metadata_schema: str | None = None

    def describe(self) -> str:
        return f"DuckLake ducklake:{redact(self.catalog)} (data {self.data_path})"


def configured() -> Lake | None:
    """The DuckLake the settings name, or None for the embedded default (setting unset or 'embedded')."""
    setting = os.environ.get(SETTING, "").strip()
    if setting in ("", "embedded"):
        return None
    if not setting.startswith("ducklake:postgres:") or not setting.removeprefix("ducklake:postgres:").strip():
        raise LakeConfigError(
            f"{SETTING}={redact(setting)!r} is not understood: use 'embedded' or "
            "'ducklake:postgres:dbname=... host=... user=...' (password from PGPASSWORD)"
        )
    data = os.environ.get(DATA_SETTING, "").strip()
    if not data:
        raise LakeConfigError(f"{SETTING} names a DuckLake but {DATA_SETTING} (its data folder) is not set")
    schema = os.environ.get(SCHEMA_SETTING, "").strip() or None
    if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise LakeConfigError(f"{SCHEMA_SETTING}={schema!r} is not a plain lower-case schema name")
    return Lake(setting.removeprefix("ducklake:"), data, schema)


def _extension_cache() -> Path:
    configured_dir = os.environ.get("CONTEXT_LENS_EXTENSION_CACHE")
    base = Path(configured_dir) if configured_dir else Path.home() / ".cache" / "context-lens" / "extensions"
    return base / f"v{duckdb.__version__}"


def extension_path(name: str) -> Path:
    """The extension file under the name DuckDB expects, copied once from its pip package."""
    module_name, file_stem = _EXTENSIONS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LakeConfigError(
            f"{SETTING} names a DuckLake but {module_name.replace('_', '-')} is not installed: "
            "pip install 'context-lens[lake]'"
        ) from exc
    source = (
        Path(module.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / f"{file_stem}.duckdb_extension"
    )
    if not source.exists():
        raise LakeConfigError(f"the {name} extension for DuckDB {duckdb.__version__} is not at {source}")
    target = _extension_cache() / f"{name}.duckdb_extension"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    return target


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def writable_data(lake: Lake) -> Path:
    """The data folder, created if absent; a folder that cannot be written ends the command."""
    data = Path(lake.data_path)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LakeConfigError(
            f"{DATA_SETTING}={data}: cannot create the data folder ({exc.strerror})"
        ) from None
    if not os.access(data, os.W_OK | os.X_OK):
        raise LakeConfigError(f"{DATA_SETTING}={data}: the data folder is not writable")
    return data


class WriterLockTimeout(duckdb.IOException):
    """Another process kept the DuckLake's writer lock for longer than this writer may wait."""


_writer_guard = threading.RLock()  # the threads of one process share its writer lock, one at a time
_writer_lock: dict = {"depth": 0, "file": None}


def _holder(file: IO[str]) -> str:
    file.seek(0)
    pid = file.read().strip()
    return f"PID {pid}" if pid.isdigit() else "another process"


@contextmanager
def one_writer(lake: Lake, wait_seconds: float, notify: Callable[[str], object]) -> Iterator[None]:
    """Hold the lake's writer lock (an exclusive `flock` on `.writer.lock` in its data folder).

    DuckLake refuses to commit a transaction that inserts into a table another transaction
    deleted from since it began, even when the two touch different rows (two sources replacing
    their own rows of `core.observations`), and the writers' units of work cannot be replayed
    from here. So writers of one lake take turns, as on the embedded file: readers never take
    the lock. Reentrant within a process (a unit of work may open a second writer); released
    when the last one closes, or by the kernel when the process dies. A wait over 5 s is
    reported, then every 30 s; after `wait_seconds` WriterLockTimeout is raised, naming the holder.
    """
    if not _writer_guard.acquire(timeout=wait_seconds):
        raise WriterLockTimeout(
            f"another thread of this process kept the DuckLake writer lock over {wait_seconds:.0f}s"
        )
    try:
        if _writer_lock["depth"] == 0:
            _writer_lock["file"] = _take_writer_lock(lake, wait_seconds, notify)
        _writer_lock["depth"] += 1
        try:
            yield
        finally:
            _writer_lock["depth"] -= 1
            if _writer_lock["depth"] == 0:
                _writer_lock["file"].close()  # closing the file releases the flock
                _writer_lock["file"] = None
    finally:
        _writer_guard.release()


def _take_writer_lock(lake: Lake, wait_seconds: float, notify: Callable[[str], object]) -> IO[str]:
    path = writable_data(lake) / WRITER_LOCK
    file = open(path, "a+", encoding="ascii")  # noqa: SIM115  (held until the last writer closes)
    started, delay, next_report = time.monotonic(), 0.05, NOTICE_SECONDS
    try:
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    raise WriterLockTimeout(
                        f"the DuckLake writer lock {path} is held by {_holder(file)}: gave up after "
                        f"{waited:.0f}s (CONTEXT_LENS_LOCK_WAIT)"
                    ) from None
                if waited >= next_report:
                    notify(
                        f"waiting for the DuckLake writer lock {path} held by {_holder(file)} "
                        f"(waited {waited:.0f}s, at most {wait_seconds:.0f}s)"
                    )
                    next_report = waited + REPORT_SECONDS
                time.sleep(min(delay, max(0.0, wait_seconds - waited)))
                delay = min(delay * 2, 0.5)
        file.truncate(0)
        file.write(str(os.getpid()))
        file.flush()
    except BaseException:
        file.close()
        raise
    return file


def attach(conn: duckdb.DuckDBPyConnection, lake: Lake, read_only: bool) -> None:
    """Attach the DuckLake to an in-memory connection and make it the default catalog."""
    for name in _EXTENSIONS:
        conn.execute(f"LOAD {_literal(str(extension_path(name)))}")
    data = writable_data(lake) if not read_only else Path(lake.data_path)
    options = [f"DATA_PATH {_literal(str(data) + os.sep)}"]
    if lake.metadata_schema:
        options.append(f"METADATA_SCHEMA {_literal(lake.metadata_schema)}")
    if read_only:
        options.append("READ_ONLY")
    try:
        conn.execute(
            f"ATTACH {_literal('ducklake:' + lake.catalog)} AS {CATALOG_NAME} ({', '.join(options)})"
        )
    except duckdb.Error as exc:  # the message quotes the connection string: redacted, not chained
        if found := _VERSION_MISMATCH.search(str(exc)):
            raise LakeConfigError(_version_message(lake, *found.groups())) from None
        if read_only and _NOT_CREATED.search(str(exc)):
            raise LakeNotCreated(
                f"{SETTING}: the DuckLake catalog {redact(lake.catalog)!r} holds no warehouse yet: "
                "run `context-lens build` first"
            ) from None
        raise LakeConfigError(
            f"{SETTING}: cannot open the DuckLake catalog {redact(lake.catalog)!r}: {redact(str(exc))}"
        ) from None
    conn.execute(f"USE {CATALOG_NAME}")
    # Conflicts that do not clash logically are retried by DuckLake itself (bounded, with backoff);
    # a logical clash reaches `warehouse.db.retrying`, which reruns the unit of work.
    conn.execute("SET ducklake_max_retry_count = ?", [retries()])
    conn.execute("SET ducklake_retry_wait_ms = 100")
    conn.execute("SET ducklake_retry_backoff = 1.5")


def _version_message(lake: Lake, found: str, supported: str) -> str:
    """A catalog of another DuckLake version: never migrated silently, and which way to go."""
    newer = tuple(int(p) for p in re.findall(r"\d+", found)) > tuple(
        int(p) for p in re.findall(r"\d+", supported)
    )
    why = (
        "it was written by a newer DuckLake extension: upgrade duckdb and duckdb-extension-ducklake "
        "(context-lens[lake]) or point the setting at another catalog"
        if newer
        else "it was written by an older DuckLake extension: migrate it once with DuckLake's "
        "AUTOMATIC_MIGRATION from a backed-up catalog"
    )
    return (
        f"{SETTING}: the DuckLake catalog {redact(lake.catalog)!r} has version {found}, this "
        f"extension supports {supported}; {why}. Nothing was read or written"
    )


def is_lake(conn: duckdb.DuckDBPyConnection) -> bool:
    row = conn.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return row is not None and row[0] == "ducklake"


_TABLE_KEY = re.compile(r",(?P<between>(?:\s|--[^\n]*)*)(?:PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"[ \t]+PRIMARY\s+KEY\b(?!\s*\()", re.IGNORECASE)
_CHECK = re.compile(r"[ \t]*\bCHECK\s*\(", re.IGNORECASE)


def _without_checks(sql: str) -> str:
    out, position = [], 0
    while found := _CHECK.search(sql, position):
        out.append(sql[position : found.start()])
        depth, index = 1, found.end()
        while depth and index < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[index], 0)
            index += 1
        position = index
    return "".join(out) + sql[position:]


def adapt_ddl(sql: str) -> str:
    """The warehouse DDL without the constraints DuckLake cannot hold (keys, UNIQUE, CHECK)."""
    without_keys = _TABLE_KEY.sub(lambda m: m.group("between"), sql)
    return _without_checks(_COLUMN_KEY.sub(" NOT NULL", without_keys))  # a key column is NOT NULL
