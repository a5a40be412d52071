"""A lens's tables as files: CSV and Parquet per table and a Frictionless datapackage.json.

The folder is written beside the old one and swapped in, so readers never see half an export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.datapackage import TableFile, write_package, write_table
from warehouse.lens import Lens, storable
from warehouse.lens_tables import LENS_TABLES, lens_declaration

PACKAGE_DESCRIPTION = (
    "Context lens tables: every value with its period, unit and source. Contribution-level "
    "territorial conditions, not site-level outputs. Values whose mode is 'sample' are stand-ins "
    "for offline runs and must not be cited."
)


def _write_frame(
    conn: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    folder: Path,
    name: str,
    described: dict,
    common: dict,
) -> list[TableFile]:
    """One lens table as CSV and as Parquet, each a tabular resource of the lens package."""
    conn.register("_lens_export", storable(frame))
    resource = name.replace("_", "-")
    try:
        return [
            write_table(
                conn,
                "_lens_export",
                folder,
                f"{name}.{suffix}",
                name=resource if suffix == "csv" else f"{resource}-parquet",
                descriptions=described,
                properties=common,
            )
            for suffix in ("csv", "parquet")
        ]
    finally:
        conn.unregister("_lens_export")


def export_lens(
    conn: duckdb.DuckDBPyConnection,
    lens: Lens,
    folder: Path,
    study_id: str,
    title: str,
    extra: dict[str, tuple[pd.DataFrame, dict[str, str]]] | None = None,
) -> Path:
    """Write every lens table (and extra views) as CSV and Parquet with a Frictionless datapackage.json."""
    frames = {
        name: (frame, lens_declaration(name).columns if name in LENS_TABLES else {})
        for name, frame in lens.tables.items()
    }
    frames.update(extra or {})
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    sources = lens.tables["sources"]
    package_sources = [
        {"title": f"{s.publisher}: {s.title}", "path": s.landing_url, "licence": s.licence}
        for s in sources.itertuples()
    ]
    files = []
    for name in sorted(frames):
        frame, described = frames[name]
        common = _resource_properties(lens, name, frame, package_sources)
        files += _write_frame(conn, frame, staging, name, described, common)
    write_package(staging, _package(lens, study_id, title, package_sources), files)
    _swap_in(staging, folder)
    return folder


def _resource_properties(lens: Lens, name: str, frame: pd.DataFrame, package_sources: list[dict]) -> dict:
    """A resource's title, the sources its rows cite and, for indicators, the registry entries."""
    used = set(frame["source_id"].dropna().unique()) if "source_id" in frame.columns else set()
    ids = lens.tables["sources"]["source_id"]
    common = {
        "title": f"lens.{lens.prefix}_{name}" if name in lens.tables else name,
        "sources": [s for s, sid in zip(package_sources, ids, strict=True) if sid in used],
    }
    if name == "indicators":
        columns = ["indicator_id", "label", "unit", "claim_level", "source_id"]
        registry = frame[columns].drop_duplicates("indicator_id").sort_values("indicator_id")
        common["indicators"] = registry.to_dict("records")
    return common


def _package(lens: Lens, study_id: str, title: str, package_sources: list[dict]) -> dict:
    return {
        "name": f"context-lens-{study_id}",
        "title": title,
        "description": PACKAGE_DESCRIPTION,
        "version": lens.content_hash[:16],
        "context_lens": {
            "study": study_id,
            "as_of": lens.as_of.isoformat() if lens.as_of else None,
            "reference_date": lens.reference_date.isoformat(),
            "content_hash": lens.content_hash,
        },
        "licenses": [
            {
                "name": "other-at",
                "title": "Each source keeps its own licence; see 'sources' and the sources resource.",
            }
        ],
        "sources": package_sources,
    }


def _swap_in(staging: Path, folder: Path) -> None:
    """Replace `folder` by `staging` in two renames; the old one is removed last."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
