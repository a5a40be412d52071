"""Lens family: one asset per study file, rebuilding its lens tables and report."""

import os
from dataclasses import replace
from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipelines.families import observation_asset_keys
from pipelines.report import render, write_report
from pipelines.resources import WarehouseResource
from pipelines.studies import Study, all_studies
from warehouse.db import transaction
from warehouse.lens import build_lens_tables, content_hash

SOURCES_SQL = """
SELECT src.source_id, src.publisher, src.title, src.licence, src.landing_url,
       st.status, st.mode, st.last_snapshot_id, st.error, sn.retrieved_at
FROM core.sources src
LEFT JOIN core.source_status st USING (source_id)
LEFT JOIN core.snapshots sn ON sn.snapshot_id = st.last_snapshot_id
ORDER BY src.source_id
"""


def build_lens(warehouse: WarehouseResource, study: Study) -> tuple[pd.DataFrame, str, str]:
    """Rebuild the study's lens tables and report; return (lens rows, content hash, markdown).

    The as-of date comes from the study file, or from `context-lens build --as-of`.
    """
    if os.environ.get("CONTEXT_LENS_AS_OF"):
        study = replace(study, as_of=date.fromisoformat(os.environ["CONTEXT_LENS_AS_OF"]))
    with warehouse.writer() as conn, transaction(conn):
        lens = build_lens_tables(
            conn, study.table_prefix, study.focus_territories, study.comparison, study.as_of
        )
        sources = conn.execute(SOURCES_SQL).df()
    digest = content_hash(lens)
    as_of = study.as_of.isoformat() if study.as_of else "latest snapshots"
    markdown, page = render(study, lens, sources, as_of, digest)
    write_report(study, markdown, page)
    return lens, digest, markdown


def lens_asset(study: Study):
    @asset(
        name=f"lens_{study.table_prefix}",
        group_name="lens",
        pool="duckdb_writer",
        deps=observation_asset_keys(),
        description=f"Context lens for study '{study.id}': lens.{study.table_prefix}_indicators and "
        f"output/lens/{study.id}/lens.md|html.",
    )
    def _lens(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        lens, digest, markdown = build_lens(warehouse, study)
        modes = lens.groupby("source_id")["mode"].first().to_dict() if not lens.empty else {}
        for source_id, mode in modes.items():
            if mode == "sample":
                context.log.warning(f"lens {study.id}: source {source_id} is SAMPLE data")
        return MaterializeResult(
            metadata={
                "rows": len(lens),
                "content_hash": digest,
                "sources": MetadataValue.json(modes),
                "preview": MetadataValue.md(markdown[:20000]),
                "path": MetadataValue.path(f"output/lens/{study.id}/lens.html"),
            }
        )

    return _lens


ASSETS = [lens_asset(study) for study in all_studies()]
