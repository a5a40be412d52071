"""The mechanics every source family shares: acquire payloads, then publish or refuse.

`write_tables` is the one way a source's data reaches the warehouse. Inside the caller's
transaction it judges every incoming table before anything is written: raw tables against
the last accepted ones (schema drift, volume; `pipelines.rules`), declared tables by their
values (`pipelines.gates`), and refuses the whole publication when a blocking rule fails.
`publish` wraps it for payloads: tables, source row, snapshot rows and status in one
transaction, and only then are the payloads marked as the last good ones. `derived_writer`
wraps it for tables computed from accepted data. A family parses and transforms its payloads
inside `refusing`: any failure there, or a parse, validation or gate failure in `publishing`,
goes through `refuse`: the payloads are quarantined, the status records the error, and no
data table is touched. An exception nobody foresaw (a KeyError in a parser) is refused the
same way, as an `UnexpectedError` whose `__cause__` is the original. A failure to write at
all (a lock held elsewhere, a full disk, a failed commit) is recorded as `failed` too, in the
warehouse if it can be, else beside it (`warehouse.journal`).
"""

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
)
from dagster._core.definitions.data_version import extract_data_version_from_entry

from pipelines import gates, rules
from pipelines.resources import SourcesResource, WarehouseResource
from sources.acquire import Acquired, Acquirer
from sources.base import FetchError, FetchRequest, ParseError, SourceError, SourceInfo, ValidationError
from warehouse import journal, registry, store
from warehouse.db import LockTimeout, db_path, publishes, transaction

log = logging.getLogger(__name__)
# Rows this process has written per source (a run executes in the CLI's process): the build's
# summary reports them. Counted when written inside the transaction; the summary shows none for
# a source whose run failed, since its transaction was rolled back.
ROWS_WRITTEN: Counter[str] = Counter()


def load_indicators(family: str) -> list[dict]:
    """The family's entries of the indicator registry (warehouse/indicators/<family>.yaml)."""
    return registry.family_indicators(family)


def validate_frame(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, source_id: str, snapshot: str | None = None
) -> pd.DataFrame:
    """The frame if it passes the pandera schema; else a ValidationError naming the failing checks."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case"]].head(10).astype(str)
        raise ValidationError(source_id, f"schema failed: {cases.to_dict('records')}", snapshot) from exc


class PublishError(SourceError):
    """The warehouse could not be written (lock, disk, commit); nothing of the publication is kept."""

    stage = "publish"


class UnexpectedError(ParseError):
    """An exception a family's parse or transform code did not foresee (a KeyError, a TypeError).

    The payloads are refused like any bad payload; the original exception is `__cause__`, so
    its traceback stays in the run log: a payload the code cannot handle, or a bug.
    """


class DeriveError(SourceError):
    """An unforeseen exception while computing tables from accepted data; the original is `__cause__`."""

    stage = "derive"


def unexpected(source: SourceInfo, acquired: list[Acquired], exc: Exception) -> UnexpectedError:
    """The error recorded for `exc` raised while parsing or publishing `acquired`."""
    return UnexpectedError(source.id, f"unexpected {_cause(exc)}", _snapshots(acquired))


def _snapshots(acquired: list[Acquired]) -> str | None:
    return ", ".join(sorted({item.payload.snapshot_id for item in acquired})) or None


def acquire_all(
    sources: SourcesResource,
    source: SourceInfo,
    requests: Iterable[tuple[FetchRequest, Path | None]],
    rate_limits: dict[str, int] | None = None,
    warehouse: WarehouseResource | None = None,
) -> tuple[Acquirer, list[Acquired]]:
    """Acquire every request; a fetch with no fallback at all is recorded as `failed`, then raised."""
    acquirer = sources.acquirer(rate_limits)
    try:
        return acquirer, [acquirer.acquire(source, request, sample) for request, sample in requests]
    except FetchError as exc:
        record_failure(warehouse or WarehouseResource(), source, exc)
        raise


def overall_status(acquired: list[Acquired]) -> tuple[str, str, str | None]:
    """(status, mode, error) of a source from its payloads: the weakest one decides."""
    order = ["sample", "stale", "curated", "live", "unchanged"]
    status = min((a.status for a in acquired), key=order.index)
    modes = {a.payload.mode for a in acquired}
    mode = "sample" if "sample" in modes else ("curated" if "curated" in modes else "live")
    errors = sorted({a.error for a in acquired if a.error})
    return status, mode, "; ".join(errors) or None


def payload_file(acquirer: Acquirer, item: Acquired) -> Path | bytes:
    """The raw-store copy of a payload when there is one, so a large archive is not copied again."""
    path = acquirer.fetcher.store.object_path(item.payload.sha256)
    return path if path.is_file() else item.payload.content


def record_acquisitions(conn, acquirer: Acquirer, source: SourceInfo, acquired: list[Acquired]) -> None:
    """Source row, snapshot rows and status of accepted payloads, inside the caller's transaction."""
    status, mode, error = overall_status(acquired)
    store.record_source(conn, source)
    store.record_snapshots(
        conn, [acquirer.fetcher.store.sidecar(a.payload.source, a.payload.snapshot_id) for a in acquired]
    )
    store.record_status(conn, source.id, status, mode, acquired[-1].payload.snapshot_id, error)


def write_tables(
    conn: duckdb.DuckDBPyConnection,
    source_id: str,
    tables: dict[tuple[str, str], pd.DataFrame | str],
    *,
    mode: str | None = None,
    snapshot_ids: Sequence[str] | None = None,
    config: rules.OpsConfig | None = None,
) -> dict[str, int]:
    """Judge, then write, a source's tables inside the caller's transaction: {table: rows}.

    Content is a frame, or SQL we wrote (for tables built in DuckDB). `core.observations`
    replaces the source's rows only. Without `snapshot_ids` and `mode`, they are read from
    the rows' snapshot columns. Raises GateRefusal (a ValidationError) before any write.
    """
    config = config or rules.load_config()
    staged: list[gates.Staged] = []
    try:
        for (schema, table), content in tables.items():
            staged.append(gates.stage(conn, source_id, f"{schema}.{table}", content, snapshot_ids, mode))
        raw = {
            (s.table.split(".")[0], s.table.split(".")[1]): s.content
            for s in staged
            if s.table.startswith("raw.")
        }
        if raw:
            first = next(s for s in staged if s.table.startswith("raw."))
            rules.check_raw_tables(conn, source_id, first.mode, list(first.snapshot_ids), raw, config)
        gates.judge(conn, source_id, staged, config)
        counts = {item.table: gates.write(conn, item) for item in staged}
        ROWS_WRITTEN[source_id] += sum(counts.values())
        return counts
    finally:
        for item in staged:
            gates.release(conn, item)


def publish(
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    source: SourceInfo,
    acquired: list[Acquired],
    tables: dict[tuple[str, str], pd.DataFrame | str],
) -> dict[str, int]:
    """Publish one source's tables from its payloads (see `publishing`): {table: rows}."""
    _, mode, _ = overall_status(acquired)
    with publishing(warehouse, acquirer, {source: acquired}) as conn:
        return write_tables(
            conn, source.id, tables, mode=mode, snapshot_ids=[a.payload.snapshot_id for a in acquired]
        )


@contextmanager
def refusing(
    warehouse: WarehouseResource, acquirer: Acquirer, acquired: dict[SourceInfo, list[Acquired]]
) -> Iterator[None]:
    """Parse and transform payloads inside this: whatever fails there refuses them.

    A parse or validation error, or any exception nobody foresaw (raised as an
    `UnexpectedError` naming source, snapshot and cause), quarantines every payload and
    records the sources as failed; the served tables are untouched. A fetch error met on the
    way is recorded as failed, its payloads kept. Only that source's asset fails.
    """
    try:
        yield
    except Exception as exc:
        error = _refused(warehouse, acquirer, acquired, exc)
        if error is exc:
            raise
        raise error from exc


def _refused(
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    acquired: dict[SourceInfo, list[Acquired]],
    exc: Exception,
) -> SourceError:
    """Record the failure of every source in `acquired`; the error to raise (`exc` when it is one)."""
    if isinstance(exc, (ParseError, ValidationError)):
        for source, items in acquired.items():
            refuse(warehouse, acquirer, source, items, exc)
        return exc
    if isinstance(exc, PublishError):  # recorded where it was raised
        return exc
    if isinstance(exc, SourceError):  # a fetch error on the way: the payloads are not at fault
        for source in acquired:
            record_failure(warehouse, source, exc)
        return exc
    if isinstance(exc, LockTimeout):  # nor are they when the warehouse could not be opened
        errors = [
            PublishError(source.id, f"could not open the warehouse: {_cause(exc)}", _snapshots(items))
            for source, items in acquired.items()
        ]
        for source, error in zip(acquired, errors, strict=True):
            record_failure(warehouse, source, error)
        return errors[0]
    errors = [unexpected(source, items, exc) for source, items in acquired.items()]
    for (source, items), error in zip(acquired.items(), errors, strict=True):
        refuse(warehouse, acquirer, source, items, error)
    return errors[0]


@contextmanager
def publishing(
    warehouse: WarehouseResource, acquirer: Acquirer, acquired: dict[SourceInfo, list[Acquired]]
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction that publishes payloads of one or more sources; write through `write_tables`.

    The sources' rows, snapshot rows and statuses are recorded first (observations cite the
    snapshots). A parse, validation or gate failure, or any unforeseen exception, refuses
    every payload as `refusing` does (quarantined, status failed, tables as they were); a
    failure to write is recorded as failed. Only after the commit are the payloads marked
    as their requests' last good ones.
    """
    with refusing(warehouse, acquirer, acquired):
        try:
            with warehouse.writer() as conn, transaction(conn):
                for source, items in acquired.items():
                    record_acquisitions(conn, acquirer, source, items)
                yield conn
        except (duckdb.Error, OSError) as exc:
            for source, items in acquired.items():
                snapshot = items[-1].payload.snapshot_id if items else None
                error = PublishError(source.id, f"could not write the warehouse: {_cause(exc)}", snapshot)
                record_failure(warehouse, source, error)
            raise error from exc
    for source, items in acquired.items():
        journal.clear(source.id, warehouse.db_path)
        for item in items:
            acquirer.accept(item)


@contextmanager
def derived_writer(
    warehouse: WarehouseResource, source: SourceInfo | str
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writer connection in one transaction, for tables computed from accepted data.

    Write through `write_tables` inside it. A gate refusal, a failure to write or any
    unforeseen exception (a `DeriveError`, the original as its cause) rolls everything back
    and records the source as failed (its stored mode kept), then raises.
    """
    source_id = source if isinstance(source, str) else source.id
    try:
        with warehouse.writer() as conn, transaction(conn):
            yield conn
    except SourceError as exc:
        record_failure(warehouse, source, exc)
        raise
    except (duckdb.Error, OSError) as exc:
        error = PublishError(source_id, f"could not write the warehouse: {_cause(exc)}")
        record_failure(warehouse, source, error)
        raise error from exc
    except Exception as exc:
        error = DeriveError(source_id, f"unexpected {_cause(exc)}")
        record_failure(warehouse, source, error)
        raise error from exc


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def record_failure(warehouse: WarehouseResource, source: SourceInfo | str, error: Exception) -> None:
    """Record `failed` with the reason; beside the warehouse when the warehouse cannot take it.

    A source id that names no source (a family-level step) is not recorded.
    """
    source_id = source if isinstance(source, str) else source.id
    try:
        with warehouse.writer() as conn, transaction(conn):
            if isinstance(source, SourceInfo):
                store.record_source(conn, source)
            known = conn.execute(
                "SELECT mode FROM core.sources LEFT JOIN core.source_status USING (source_id) "
                "WHERE source_id = ?",
                [source_id],
            ).fetchone()
            if known is None:
                return
            store.record_status(conn, source_id, "failed", known[0], None, str(error))
    except (duckdb.Error, OSError) as exc:
        log.warning(
            "%s: the failure could not be recorded in the warehouse (%s); noted beside it", source_id, exc
        )
        journal.note_failure(source_id, str(error), warehouse.db_path)
        return
    journal.clear(source_id, warehouse.db_path)


def refuse(
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    source: SourceInfo,
    acquired: list[Acquired],
    error: SourceError,
) -> None:
    """Quarantine the payloads and record the failure; the served tables stay as they were.

    A copy that cannot be kept aside (a full disk) is logged: the failure is recorded anyway.
    """
    for item in acquired:
        try:
            acquirer.reject(item, str(error))
        except OSError as exc:
            log.warning("%s: payload %s not quarantined: %s", source.id, item.payload.snapshot_id, exc)
    record_failure(warehouse, source, error)


def column_schema(frame_columns: dict[str, str]) -> MetadataValue:
    """Column schema metadata for the Dagster UI: {column: 'type: description'}."""
    return MetadataValue.table_schema(
        TableSchema(
            columns=[
                TableColumn(name, kind.split(":", 1)[0].strip(), description=kind.split(":", 1)[-1].strip())
                for name, kind in frame_columns.items()
            ]
        )
    )


def table_declaration(
    frame_columns: dict[str, str], *tables: str, extra: dict[str, dict[str, str]] | None = None
) -> dict:
    """Asset metadata declaring the warehouse tables `frame_columns` describes (first: the main one),
    and `extra` tables the asset also writes, each with its own description dict.

    The same declaration gives the Dagster UI its column schema and the warehouse its
    COMMENTs (`warehouse.comments`, applied by the export asset).
    """
    return {
        "dagster/table_name": tables[0],
        "dagster/column_schema": column_schema(frame_columns),
        "tables": list(tables),
        **({"declares": {table: described(columns) for table, columns in extra.items()}} if extra else {}),
    }


def described(columns: dict[str, str]) -> dict[str, str]:
    """{column: description} of a {column: 'TYPE: description'} dict."""
    return {name: kind.split(":", 1)[-1].strip() for name, kind in columns.items()}


def log_acquisitions(context: AssetExecutionContext, acquired: list[Acquired]) -> dict:
    """Say in the run log which payloads are live, unchanged, stale or SAMPLE; return metadata."""
    for item in acquired:
        payload = item.payload
        line = f"{payload.source} {payload.name}: {item.status.upper()} ({payload.mode}) snapshot {payload.snapshot_id}"
        if item.status in ("sample", "stale"):
            context.log.warning(f"{line}; {item.error}")
        else:
            context.log.info(line)
    status, mode, error = overall_status(acquired)
    return {
        "status": status,
        "mode": mode,
        "snapshots": MetadataValue.json({a.payload.name: a.payload.snapshot_id for a in acquired}),
        **({"fallback_reason": error} if error else {}),
    }


# --- skipping what did not change (issue 20) ---------------------------------------------------


def source_version(context: AssetExecutionContext, acquired: Iterable[Acquired]) -> DataVersion:
    """A source asset's data version: the sha256 of every payload it read, and the asset's code version.

    Equal versions mean the same bytes went through the same code: the tables it wrote last
    time are what it would write now. Dagster records it on the materialization, and the
    assets downstream are stale only when it changes (`pipelines.cli` selects by staleness).
    """
    digest = hashlib.sha256(str(context.assets_def.code_versions_by_key.get(context.asset_key)).encode())
    for item in sorted(acquired, key=lambda a: (a.payload.source, a.payload.name, a.payload.sha256)):
        digest.update(
            f"|{item.payload.source}:{item.payload.name}:{item.payload.mode}:{item.payload.sha256}".encode()
        )
    return DataVersion(digest.hexdigest()[:32])


def unchanged(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    acquired: dict[SourceInfo, list[Acquired]],
    metadata: dict,
) -> MaterializeResult | None:
    """The result to return at once when the payloads are those the last materialization published.

    Same data version (same payload hashes, same code) as the asset's last materialization,
    and the warehouse still holds those snapshots: nothing is parsed, validated or written,
    and the materialization carries the same data version, so nothing downstream is stale.
    Only the acquisition is recorded when it says something new (a 304 confirming live data
    keeps it fresh; a failed fetch serving the earlier snapshot is `stale`). Otherwise None:
    the asset goes on and publishes.
    """
    items = [item for group in acquired.values() for item in group]
    version = source_version(context, items)
    record = context.instance.get_latest_data_version_record(context.asset_key)
    last = extract_data_version_from_entry(record.event_log_entry) if record else None
    if not items or last != version or not _snapshots_held(warehouse, items):
        return None
    news = [
        source
        for source, group in acquired.items()
        if any(item.status in ("live", "unchanged", "stale") for item in group)
        or _recorded_status(warehouse, source.id) != _status_key(overall_status(group))
    ]
    if news:
        with warehouse.writer() as conn, transaction(conn):
            for source in news:
                record_acquisitions(conn, acquirer, source, acquired[source])
    ids = ", ".join(sorted(source.id for source in acquired))
    context.log.info(
        f"{ids}: payloads unchanged (data version {version.value}); nothing re-parsed or written"
    )
    return MaterializeResult(
        data_version=version,
        metadata={**metadata, "unchanged": True, "unchanged_sources": sorted(s.id for s in acquired)},
    )


def _status_key(status: tuple) -> tuple:
    """(status, mode, error) with a 304 and a fresh download counted alike."""
    return ("live" if status[0] == "unchanged" else status[0], *status[1:])


def _recorded_status(warehouse: WarehouseResource, source_id: str) -> tuple | None:
    row = _held(warehouse)[1].get(source_id)
    return _status_key(row) if row else None


def _snapshots_held(warehouse: WarehouseResource, items: list[Acquired]) -> bool:
    """Whether the warehouse holds every snapshot (a warehouse deleted or replaced since must be rebuilt)."""
    return {item.payload.snapshot_id for item in items} <= _held(warehouse)[0]


# What the warehouse holds, read once while its file stays as it was: opening a connection
# (spatial loaded) costs more than deciding that a source is unchanged.
_HELD: dict[tuple, tuple[set[str], dict[str, tuple]]] = {}


def _held(warehouse: WarehouseResource) -> tuple[set[str], dict[str, tuple]]:
    """(snapshot ids, {source: (status, mode, error)}) the warehouse records."""
    path = Path(warehouse.db_path or db_path())
    wal = path.with_name(path.name + ".wal")
    stats = tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in (path, wal))
    key = (str(path), stats) if publishes(warehouse.db_path) and path.exists() else None
    if key is not None and key in _HELD:
        return _HELD[key]
    try:
        with warehouse.reader() as conn:
            snapshots = {row[0] for row in conn.execute("SELECT snapshot_id FROM core.snapshots").fetchall()}
            statuses = {
                row[0]: tuple(row[1:])
                for row in conn.execute(
                    "SELECT source_id, status, mode, error FROM core.source_status"
                ).fetchall()
            }
    except (duckdb.Error, FileNotFoundError):  # no warehouse yet (or a new one): it holds nothing
        return set(), {}
    if key is not None:
        _HELD.clear()
        _HELD[key] = (snapshots, statuses)
    return snapshots, statuses
