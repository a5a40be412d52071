"""Publication: the core and lens tables as Parquet in output/export/, replaced atomically.

Other tools read the export, never the live DuckDB file (a refresh may hold it locked, and
a half-finished refresh must never be visible). Layout under the output folder
(`CONTEXT_LENS_OUTPUT`, default output/):

    export -> .exports/<stamp>-<hash>/      a symlink, swapped in one rename
        core/<table>.parquet, lens/<table>.parquet
        datapackage.json                     Frictionless descriptor: fields, types, units, sources
        manifest.json                        snapshot ids per source and a content hash

A new export is written into a temporary folder first; only when every file is written is
the `export` link replaced (`os.replace` of a symlink is atomic). A failed or blocked
refresh therefore never reaches this asset, or fails before the swap, and readers keep
the previous export, whole. The previous version folder is kept too, for readers that
opened it just before the swap.
"""

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, asset

from pipelines import ops
from pipelines.paths import export_dir, output_dir
from pipelines.resources import WarehouseResource
from warehouse import comments
from warehouse.datapackage import write_package, write_table
from warehouse.db import table_name, transaction

EXPORT_KEY = AssetKey("export")
EXPORT_SCHEMAS = ("core", "lens", "marts")
# Operational state that changes on every check; left out of the content hash.
VOLATILE_TABLES = {"core.source_status", "core.raw_schemas"}
VALUE_COLUMNS = ("value", "lower", "upper", "comparison_value", "difference")
log = logging.getLogger(__name__)


def _export_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Core and lens tables and the marts views (table macros such as marts.locate are not relations)."""
    return conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN (SELECT unnest(?)) ORDER BY 1, 2",
        [list(EXPORT_SCHEMAS)],
    ).fetchall()


def _indicator_units(conn: duckdb.DuckDBPyConnection, qualified: str, units: dict) -> dict:
    """For tables with indicator_id: the unit of every indicator present in them."""
    columns = {r[0] for r in conn.execute(f"DESCRIBE {qualified}").fetchall()}
    if "indicator_id" not in columns:
        return {}
    distinct = f"SELECT DISTINCT indicator_id FROM {qualified} ORDER BY 1"  # noqa: S608 (quoted identifiers)
    present = [r[0] for r in conn.execute(distinct).fetchall()]
    return {"indicatorUnits": {i: units[i] for i in present if i in units}}


def _value_descriptions(conn: duckdb.DuckDBPyConnection, qualified: str) -> dict[str, str]:
    note = "in the unit of the row's indicator (see indicatorUnits, core.indicators)"
    columns = {r[0] for r in conn.execute(f"DESCRIBE {qualified}").fetchall()}
    return {c: note for c in VALUE_COLUMNS if c in columns and "indicator_id" in columns}


def _write_tables(conn: duckdb.DuckDBPyConnection, folder: Path) -> tuple[list, dict, dict]:
    """(written files, manifest entries, marts not exported) for every core, lens and marts relation."""
    units = dict(conn.execute("SELECT indicator_id, unit FROM core.indicators").fetchall())
    files, tables, skipped = [], {}, {}
    for schema, table in _export_tables(conn):
        qualified = table_name(schema, table)
        try:
            written = write_table(
                conn,
                qualified,
                folder,
                f"{schema}/{table}.parquet",
                name=f"{schema}.{table}".lower(),
                descriptions=_value_descriptions(conn, qualified),
                sort=True,  # the same tables give the same files
                properties=_indicator_units(conn, qualified, units),
            )
        except duckdb.Error as exc:
            if schema != "marts":
                raise
            # A view of a family that is not built (its tables are missing): said, not exported.
            skipped[f"{schema}.{table}"] = " ".join(str(exc).split())[:300]
            log.warning("export: %s.%s not exported: %s", schema, table, skipped[f"{schema}.{table}"])
            continue
        files.append(written)
        tables[f"{schema}.{table}"] = {
            "path": written.path,
            "rows": written.rows,
            "bytes": written.bytes,
            "sha256": written.sha256,
            **({"json_columns": written.json_columns} if written.json_columns else {}),
        }
    return files, tables, skipped


def _package(sources: list[tuple], generated: str) -> dict:
    """The datapackage descriptor: what the export is, and every source with its licence and citation."""
    return {
        "name": "context-lens-export",
        "title": "context-lens warehouse export: core, lens and marts tables",
        "created": generated,
        "description": "Published by context-lens after a successful refresh. Values whose source mode "
        "is 'sample' are stand-ins written by the maintainers and must not be cited. Byte counts of the "
        "Parquet files are in manifest.json.",
        "sources": [
            {
                "title": title,
                "path": url,
                "publisher": publisher,
                "licence": licence,
                "citation": citation,
                "id": sid,
            }
            for sid, publisher, title, url, licence, citation, *_ in sources
        ],
    }


def write_export(conn: duckdb.DuckDBPyConnection, folder: Path) -> dict:
    """Write every core, lens and marts relation, the datapackage and the manifest into `folder`."""
    files, tables, skipped = _write_tables(conn, folder)
    stable = "".join(
        f"{name} {info['sha256']}\n" for name, info in sorted(tables.items()) if name not in VOLATILE_TABLES
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sources = conn.execute(
        """
        SELECT src.source_id, src.publisher, src.title, src.landing_url, src.licence, src.citation,
               st.status, st.mode, st.last_snapshot_id, sn.retrieved_at, st.checked_at
        FROM core.sources src LEFT JOIN core.source_status st USING (source_id)
        LEFT JOIN core.snapshots sn ON sn.snapshot_id = st.last_snapshot_id ORDER BY 1
        """
    ).fetchall()
    observation_snapshots = [
        r[0] for r in conn.execute("SELECT DISTINCT snapshot_id FROM core.observations ORDER BY 1").fetchall()
    ]
    manifest = {
        "name": "context-lens-export",
        "generated_at": generated,
        "content_hash": hashlib.sha256(stable.encode()).hexdigest(),
        "content_hash_covers": "sha256 of every table file except " + ", ".join(sorted(VOLATILE_TABLES)),
        "sources": {
            sid: {
                "status": status,
                "mode": mode,
                "last_snapshot_id": snapshot,
                "retrieved_at": retrieved.isoformat() if retrieved else None,
                "checked_at": checked.isoformat() if checked else None,
            }
            for sid, *_, status, mode, snapshot, retrieved, checked in sources
        },
        "observation_snapshot_ids": observation_snapshots,
        "tables": tables,
        **({"not_exported": skipped} if skipped else {}),
    }
    write_package(folder, _package(sources, generated), files)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return manifest


def _swap_link(link: Path, target: Path) -> Path | None:
    """Point `link` at `target` in one atomic rename; return the folder it pointed at before."""
    previous = link.resolve() if link.is_symlink() else None
    if link.exists() and not link.is_symlink():  # a plain folder from before the link scheme
        os.rename(link, target.parent / f"legacy-{uuid.uuid4().hex[:8]}")
    temporary = link.parent / f".export-link-{uuid.uuid4().hex}"
    os.symlink(os.path.relpath(target, link.parent), temporary, target_is_directory=True)
    os.replace(temporary, link)
    return previous


def publish_export(conn: duckdb.DuckDBPyConnection, root: Path | None = None) -> dict:
    """Write a new export beside the current one, then swap it in; the old one stays until then."""
    root = root or output_dir()
    versions = root / ".exports"
    versions.mkdir(parents=True, exist_ok=True)
    staging = versions / f".tmp-{uuid.uuid4().hex}"
    try:
        manifest = write_export(conn, staging)
        stamp = manifest["generated_at"].replace(":", "").replace("-", "")
        final = versions / f"{stamp}-{manifest['content_hash'][:12]}-{uuid.uuid4().hex[:6]}"
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = _swap_link(root / "export", final)
    keep = {final.resolve(), *([previous] if previous else [])}
    for folder in versions.iterdir():
        if folder.is_dir() and not folder.name.startswith(".tmp-") and folder.resolve() not in keep:
            shutil.rmtree(folder, ignore_errors=True)
    return manifest


def table_declarations(assets: Sequence) -> dict[str, comments.Declaration]:
    """Every table's one declaration: the DDL comments of warehouse/sql, then the column schemas
    and descriptions of the assets that declare the tables they write (`table_declaration`)."""
    from pipelines.rules import RAW_SCHEMAS_DDL
    from warehouse.gates import PUBLICATIONS_DDL

    found = comments.sql_declarations([RAW_SCHEMAS_DDL, PUBLICATIONS_DDL])
    for assets_def in assets:
        for spec in getattr(assets_def, "specs", []):
            tables = getattr(spec.metadata.get("tables"), "value", spec.metadata.get("tables")) or []
            schema = spec.metadata.get("dagster/column_schema")
            columns = (
                {c.name: c.description for c in schema.schema.columns if c.description} if schema else {}
            )
            extra = getattr(spec.metadata.get("declares"), "value", spec.metadata.get("declares")) or {}
            for table, described in [*((t, columns) for t in tables), *extra.items()]:
                declared = found.setdefault(table, comments.Declaration())
                declared.description = declared.description or (spec.description or "")
                for name, text in described.items():
                    declared.columns.setdefault(name, text)
    return found


def export_asset(upstream: Sequence = ()):
    """The publication asset; it waits for every lens and for the given family assets."""
    from pipelines import lens

    @asset(
        key=EXPORT_KEY,
        group_name="publication",
        pool="duckdb_writer",
        deps=[*lens.ASSETS, *upstream],
        description="Core and lens tables as Parquet with a Frictionless datapackage.json and a "
        "manifest.json in output/export/, swapped in atomically. Not replaced while a source "
        "whose freshness rule has severity error is stale (ops.yaml).",
    )
    def _export(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.writer() as conn, transaction(conn):  # the export carries them too
            declared = table_declarations(upstream)
            comments.apply_comments(conn, declared | comments.raw_declarations(conn, declared))
        with warehouse.reader() as conn:
            blocked = ops.blocking_staleness(conn)
            if blocked:
                raise Failure(
                    description="export not replaced (the previous one stays): stale data under a "
                    "blocking freshness rule: " + "; ".join(blocked)
                )
            manifest = publish_export(conn)
        context.log.info(f"export {manifest['content_hash'][:12]} written to {export_dir()}")
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(export_dir())),
                "content_hash": manifest["content_hash"],
                "tables": MetadataValue.json({n: t["rows"] for n, t in manifest["tables"].items()}),
                "sources": MetadataValue.json({s: v["mode"] for s, v in manifest["sources"].items()}),
            }
        )

    return _export
