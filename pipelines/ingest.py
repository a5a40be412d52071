"""The mechanics every source family shares: acquire payloads, then publish or refuse.

`publish` writes a family's raw and staging tables, its source row, snapshot rows and
status in one transaction, and only then marks the payloads as the last good ones. A
parse or validation failure goes through `refuse`: the payloads are quarantined, the
status records the error, and no data table is touched. Before writing, `publish` also
judges the raw tables against the last accepted ones (schema drift, volume; see
`pipelines.ops`) and refuses the payloads when a blocking rule fails.
"""

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import yaml
from dagster import AssetExecutionContext, MetadataValue, TableColumn, TableSchema

from pipelines import ops
from pipelines.resources import SourcesResource, WarehouseResource
from sources.acquire import Acquired, Acquirer
from sources.base import FetchRequest, SourceError, SourceInfo, ValidationError
from warehouse import store
from warehouse.db import transaction

INDICATORS_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "indicators"


def load_indicators(family: str) -> list[dict]:
    """The family's entries of the indicator registry (warehouse/indicators/<family>.yaml)."""
    with open(INDICATORS_DIR / f"{family}.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle) or []


def validate_frame(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, source_id: str, snapshot: str | None = None
) -> pd.DataFrame:
    """The frame if it passes the pandera schema; else a ValidationError naming the failing checks."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case"]].head(10).astype(str)
        raise ValidationError(source_id, f"schema failed: {cases.to_dict('records')}", snapshot) from exc


def acquire_all(
    sources: SourcesResource,
    source: SourceInfo,
    requests: Iterable[tuple[FetchRequest, Path | None]],
    rate_limits: dict[str, int] | None = None,
) -> tuple[Acquirer, list[Acquired]]:
    acquirer = sources.acquirer(rate_limits)
    return acquirer, [acquirer.acquire(source, request, sample) for request, sample in requests]


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


def publish(
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    source: SourceInfo,
    acquired: list[Acquired],
    tables: dict[tuple[str, str], pd.DataFrame],
) -> dict[str, int]:
    _, mode, _ = overall_status(acquired)
    counts = {}
    try:
        with warehouse.writer() as conn, transaction(conn):
            # Drift and volume rules (ops.yaml) against the last accepted raw tables, before any write.
            ops.check_raw_tables(conn, source.id, mode, [a.payload.snapshot_id for a in acquired], tables)
            for (schema, table), frame in tables.items():
                counts[f"{schema}.{table}"] = store.replace_table(conn, schema, table, frame)
            record_acquisitions(conn, acquirer, source, acquired)
    except ValidationError as exc:
        refuse(warehouse, acquirer, source, acquired, exc)
        raise
    for item in acquired:
        acquirer.accept(item)
    return counts


def refuse(
    warehouse: WarehouseResource,
    acquirer: Acquirer,
    source: SourceInfo,
    acquired: list[Acquired],
    error: SourceError,
) -> None:
    """Quarantine the payloads and record the failure; the served tables stay as they were."""
    for item in acquired:
        acquirer.reject(item, str(error))
    with warehouse.writer() as conn, transaction(conn):
        store.record_source(conn, source)
        previous = conn.execute(
            "SELECT mode FROM core.source_status WHERE source_id = ?", [source.id]
        ).fetchone()
        store.record_status(conn, source.id, "failed", previous[0] if previous else None, None, str(error))


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
