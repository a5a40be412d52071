"""What every asset of the code location keeps: a description, a column schema, at least one check.

Families declare their own tables and checks; what they share is declared here once, for all:
- the assets that write `core.observations` (each family's OBSERVATION_ASSETS) get that table's
  column schema from its one declaration in warehouse/sql/schema.sql, and the check that every
  observation of the family knows the snapshots it was computed from (`lineage complete`);
- every asset that declares the tables it writes (`tables` metadata) gets the check that each of
  them exists and that every row naming a snapshot names one in core.snapshots;
- each lens gets the check that its tables were written, the export that its manifest matches
  its files.
`tests/foundation/test_asset_contract.py` holds the code location to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    asset_check,
    map_asset_specs,
)

from pipelines.ingest import column_schema
from pipelines.paths import export_dir
from pipelines.resources import WarehouseResource
from warehouse import comments, registry
from warehouse.db import table_name
from warehouse.lens_tables import INDICATOR_COLUMNS

OBSERVATIONS = "core.observations"
UNUSABLE = "lens_unusable_"  # pipelines.lens.UNUSABLE_PREFIX
RETIRED_COLUMNS = {
    "prefix": "VARCHAR: table prefix of a study whose file was deleted",
    "tables": "VARCHAR[]: its lens tables, dropped",
}
MANIFEST_COLUMNS = {
    "table": "VARCHAR: the exported table ('core.observations', 'lens.<study>_indicators', ...)",
    "path": "VARCHAR: its Parquet file, relative to output/export/",
    "rows": "BIGINT: rows in the file",
    "bytes": "BIGINT: size of the file",
    "sha256": "VARCHAR: sha256 of the file; the content hash covers all but the volatile tables",
}


def _with_schema(spec, columns: dict[str, str], table: str | None):
    if "dagster/column_schema" in spec.metadata:
        return spec
    extra = {"dagster/column_schema": column_schema(columns)}
    return spec.merge_attributes(metadata={**extra, **({"dagster/table_name": table} if table else {})})


def lens_prefixes(lens_assets: Sequence[AssetsDefinition]) -> dict[AssetKey, str]:
    """Each lens asset's table prefix: its name without `lens_` (or `lens_unusable_`)."""
    names = {a.key: a.key.path[-1] for a in lens_assets}
    return {key: name.removeprefix(UNUSABLE).removeprefix("lens_") for key, name in names.items()}


def declared(
    assets: Sequence[AssetsDefinition],
    observation_keys: set[AssetKey],
    prefixes: dict[AssetKey, str],
    special: dict[str, AssetKey],
) -> list[AssetsDefinition]:
    """The assets with a column schema where they lack one: observations, lens tables, the export
    manifest, the retired lenses (`special`: {"export": key, "retired": key})."""
    observations = comments.typed_columns(OBSERVATIONS)

    def schema(spec):
        if spec.key in observation_keys:
            return _with_schema(spec, observations, OBSERVATIONS)
        if spec.key in prefixes:
            return _with_schema(spec, INDICATOR_COLUMNS, f"lens.{prefixes[spec.key]}_indicators")
        if spec.key == special["export"]:
            return _with_schema(spec, MANIFEST_COLUMNS, None)
        if spec.key == special["retired"]:
            return _with_schema(spec, RETIRED_COLUMNS, None)
        return spec

    return [map_asset_specs(schema, [a])[0] if isinstance(a, AssetsDefinition) else a for a in assets]


# --- checks --------------------------------------------------------------------------------------


def lineage_check(asset: AssetsDefinition, family: str):
    """Every current observation of the family's indicators has lineage, and each input snapshot exists."""
    indicators = [entry["indicator_id"] for entry in registry.family_indicators(family)]

    @asset_check(
        asset=asset,
        name="lineage_complete",
        description=f"Every observation of the {family} indicators lists the snapshots it was computed "
        "from (core.observation_inputs), and each of them is in core.snapshots.",
    )
    def _lineage(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.reader() as conn:
            without, unknown, total = conn.execute(
                """
                SELECT count(*) FILTER (WHERE NOT EXISTS (
                           SELECT 1 FROM core.observation_inputs i WHERE i.indicator_id = o.indicator_id
                             AND i.territory_id = o.territory_id AND i.period = o.period)),
                       (SELECT count(*) FROM core.observation_inputs i
                        WHERE i.indicator_id IN (SELECT unnest(?::VARCHAR[]))
                          AND i.input_snapshot_id NOT IN (SELECT snapshot_id FROM core.snapshots)),
                       count(*)
                FROM core.observations o WHERE o.indicator_id IN (SELECT unnest(?::VARCHAR[]))
                """,
                [indicators, indicators],
            ).fetchone()
        return AssetCheckResult(
            passed=without == 0 and unknown == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"observations": total, "without_lineage": without, "unknown_input_snapshots": unknown},
        )

    return _lineage


def tables_check(asset: AssetsDefinition, tables: Sequence[str]):
    """The declared tables exist; a row naming a snapshot names one that core.snapshots holds."""

    @asset_check(
        asset=asset,
        name="declared_tables_written",
        description=f"{', '.join(tables)}: present, and every snapshot_id in them is in core.snapshots.",
    )
    def _tables(warehouse: WarehouseResource) -> AssetCheckResult:
        found: dict[str, dict] = {}
        with warehouse.reader() as conn:
            for qualified in tables:
                schema, table = qualified.split(".", 1)
                columns = {
                    c
                    for (c,) in conn.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                        [schema, table],
                    ).fetchall()
                }
                if not columns:
                    found[qualified] = {"present": False}
                    continue
                relation = table_name(schema, table)
                rows = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]  # noqa: S608 (quoted)
                orphans = 0
                if "snapshot_id" in columns:
                    orphans = conn.execute(
                        f"SELECT count(*) FROM {relation} WHERE snapshot_id IS NOT NULL "  # noqa: S608 (quoted)
                        "AND snapshot_id NOT IN (SELECT snapshot_id FROM core.snapshots)"
                    ).fetchone()[0]
                found[qualified] = {"present": True, "rows": rows, "unknown_snapshots": orphans}
        passed = all(t["present"] and not t.get("unknown_snapshots") for t in found.values())
        return AssetCheckResult(passed=passed, metadata={"tables": MetadataValue.json(found)})

    return _tables


def lens_check(asset: AssetsDefinition, prefix: str):
    """The lens's tables exist, with indicator rows and one claims table."""

    @asset_check(
        asset=asset,
        name="lens_tables_written",
        description=f"lens.{prefix}_* holds the indicators, territories and claims tables of the study.",
    )
    def _lens(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.reader() as conn:
            present = {
                t
                for (t,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lens' "
                    "AND starts_with(table_name, ?)",
                    [f"{prefix}_"],
                ).fetchall()
            }
            wanted = {f"{prefix}_{part}" for part in ("indicators", "territories", "claims")}
            rows = 0
            if f"{prefix}_indicators" in present:
                rows = conn.execute(
                    f"SELECT count(*) FROM {table_name('lens', f'{prefix}_indicators')}"  # noqa: S608 (quoted)
                ).fetchone()[0]
        missing = sorted(wanted - present)
        return AssetCheckResult(passed=not missing, metadata={"missing": missing, "indicator_rows": rows})

    return _lens


def export_check(asset: AssetsDefinition):
    """Every file the export's manifest lists is there with the size and sha256 it states."""

    @asset_check(
        asset=asset,
        name="manifest_matches_files",
        description="Each Parquet file listed in output/export/manifest.json exists with the bytes and "
        "sha256 the manifest states (what other tools read is what was published).",
    )
    def _export() -> AssetCheckResult:
        folder = export_dir()
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        wrong = []
        for name, entry in manifest["tables"].items():
            path = folder / entry["path"]
            if not path.is_file():
                wrong.append(f"{name}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                wrong.append(f"{name}: sha256 differs")
        return AssetCheckResult(
            passed=not wrong, metadata={"tables": len(manifest["tables"]), "wrong": MetadataValue.json(wrong)}
        )

    return _export


def retired_check(asset: AssetsDefinition, current_prefixes):
    """No lens table outlives its study file."""

    @asset_check(
        asset=asset,
        name="no_orphan_lens_tables",
        description="Every table in the lens schema belongs to a study file that exists.",
    )
    def _retired(warehouse: WarehouseResource) -> AssetCheckResult:
        prefixes = current_prefixes()
        with warehouse.reader() as conn:
            tables = [
                t
                for (t,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lens' ORDER BY 1"
                ).fetchall()
            ]
        orphans = [t for t in tables if not any(t.startswith(f"{p}_") for p in prefixes)]
        return AssetCheckResult(passed=not orphans, metadata={"lens_tables": len(tables), "orphans": orphans})

    return _retired


def checks(
    assets: Sequence[AssetsDefinition],
    observation_families: dict[AssetKey, str],
    prefixes: dict[AssetKey, str],
    special: dict[str, AssetKey],
    current_prefixes,
) -> list:
    """The shared checks of every asset (see the module's docstring)."""
    made = []
    for asset in assets:
        key = asset.key
        tables = (asset.specs_by_key[key].metadata or {}).get("tables")
        if key in observation_families:
            made.append(lineage_check(asset, observation_families[key]))
        elif key in prefixes:
            made.append(lens_check(asset, prefixes[key]))
        elif key == special["export"]:
            made.append(export_check(asset))
        elif key == special["retired"]:
            made.append(retired_check(asset, current_prefixes))
        if tables:
            made.append(tables_check(asset, list(tables)))
    return made
