"""The finance family's core tables, from whatever staging tables are present.

core.finance_amounts (every amount in nominal CLP, pipelines.finance_amounts), core.finance_annual_rates,
the governance indicators in core.observations (pipelines.finance_series) and the marts views of
warehouse/sql/views/30_finance.sql, written by `build_core` inside the caller's transaction.
"""

import pandas as pd
from dagster import MetadataValue

from pipelines.finance_amounts import (
    REAL_BASE_YEAR,
    amount_frame,
    annual_rates,
    budget_amounts,
    royalty_amounts,
    sinim_amounts,
)
from pipelines.finance_series import finance_observations_frames, population_series
from pipelines.finance_sources import unresolved_territories
from pipelines.ingest import load_indicators, write_tables
from sources.base import ValidationError
from warehouse import store
from warehouse.db import SQL_DIR, run_script, table_name

VIEWS_SQL = SQL_DIR / "views" / "30_finance.sql"


def existing_table(conn, schema: str, table: str) -> pd.DataFrame | None:
    """The table's rows, or None before its source first published it."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0]
    if not exists:
        return None
    return conn.execute(f"SELECT * FROM {table_name(schema, table)}").df()  # noqa: S608 (quoted identifier)


def build_core(conn, family: str) -> dict:
    """From the staging tables present, write the core tables, the observations and the marts views.

    Runs inside the caller's transaction. A source whose staging table does not exist yet
    contributes nothing (and keeps no observations). The tables are written in the name of
    `family` (pipelines.finance.FAMILY: a module setting FAMILY would be a family of its own).
    """
    sinim_rows = existing_table(conn, "staging", "sinim_finance")
    royalty_rows = existing_table(conn, "staging", "royalty_allocations")
    pagos_rows = existing_table(conn, "staging", "presupuesto_abierto_pagos")
    rates = annual_rates(existing_table(conn, "staging", "mindicador_series"))

    parts, metadata = [], {}
    if sinim_rows is not None:
        amounts, incomplete = sinim_amounts(sinim_rows)
        parts.append(amounts)
        metadata["sinim_regions_not_summed"] = MetadataValue.json(incomplete[:50])
    if royalty_rows is not None:
        amounts, usd_rows = royalty_amounts(royalty_rows)
        parts.append(amounts)
        if usd_rows:
            metadata["royalty_usd_rows_not_in_clp_amounts"] = usd_rows
    if pagos_rows is not None:
        parts.append(budget_amounts(pagos_rows))
    amounts = amount_frame(pd.concat(parts, ignore_index=True)) if parts else amount_frame(pd.DataFrame())

    unresolved, basis = unresolved_territories(conn, amounts["territory_id"])
    if unresolved:
        raise ValidationError(
            "finance", f"territory codes that resolve to no territory ({basis}): {', '.join(unresolved)}"
        )
    modes = dict(conn.execute("SELECT snapshot_id, mode FROM core.snapshots").fetchall())
    frames, notes = finance_observations_frames(amounts, sinim_rows, population_series(conn), modes)

    write_tables(
        conn, family, {("core", "finance_amounts"): amounts, ("core", "finance_annual_rates"): rates}
    )
    store.record_indicators(conn, load_indicators(family))
    counts = {
        source_id: write_tables(conn, source_id, {("core", "observations"): frame})["core.observations"]
        for source_id, frame in frames.items()
    }
    run_script(conn, VIEWS_SQL)
    return {
        **metadata,
        "amounts": len(amounts),
        "annual_rates": len(rates),
        "observations": MetadataValue.json(counts),
        "derived_indicators": MetadataValue.json(notes),
        "territories_resolved_against": basis,
        "real_clp_base_year": REAL_BASE_YEAR,
    }
