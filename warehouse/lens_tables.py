"""The lens tables' declarations: what each table is and what each column holds.

One declaration per table, read by the warehouse (COMMENT ON TABLE/COLUMN), the export
(datapackage.json field descriptions) and the asset column schemas (pipelines/contract.py).
"""

from __future__ import annotations

import duckdb

from warehouse.comments import Declaration, apply_comments
from warehouse.gaps import GAP_COLUMNS

INDICATOR_COLUMNS = {
    "section": "lens_section of the indicator (governance, state_presence, structural_constraints)",
    "theme": "indicator theme (economy, health, water, ...)",
    "indicator_id": "indicator id in core.indicators",
    "label": "indicator label",
    "unit": "unit of value, lower, upper, comparison_value and difference",
    "definition": "what the indicator measures",
    "claim_level": "contribution (territorial condition) or attribution (site output)",
    "higher_is": "better, worse or empty",
    "territory_id": "territory '<kind>:<code>'",
    "territory_name": "territory name",
    "territory_kind": "country, region, comuna, basin, oecd_area, ...",
    "role": "focus, comparison or peer",
    "origin": "why the territory is in the study (configured, a site, the region of a comuna)",
    "period": "period of the value ('2022', '2016-2020', '2022-03')",
    "in_study_period": "true when the period lies in the study's period of interest for the theme",
    "value": "value in unit",
    "lower": "lower bound of the interval (where the method gives one)",
    "upper": "upper bound of the interval",
    "flag": "observation flag (provisional, estimated, few events, ...)",
    "compared_with": "reference comparison: a territory id, or 'peers:basin' for the median of peer basins",
    "compared_with_name": "name of the reference comparison",
    "comparison_value": "the reference's value for the same indicator and period",
    "comparison_count": "how many territories the reference value summarizes",
    "ratio": "value / comparison_value",
    "difference": "value - comparison_value, in unit",
    "trend_per_year": "least-squares slope over the territory's yearly values in the study period, unit per year",
    "trend_intercept": "intercept of that line (unit at year 0), to draw it",
    "trend_points": "number of yearly values in the trend",
    "trend_first_year": "first year of the trend",
    "trend_last_year": "last year of the trend",
    "source_id": "source id in core.sources",
    "source_title": "source title",
    "source_url": "landing page of the source",
    "licence": "licence of the snapshot (or of the source)",
    "snapshot_id": "core.snapshots id the value came from",
    "retrieved_at": "when that snapshot was retrieved (UTC)",
    "mode": "the weakest mode among the value's inputs: sample, stale, curated-unverified, curated or live",
    "source_mode": "the weakest mode among the inputs from the value's own source",
    "inputs": "every snapshot the value was computed from: 'role: source snapshot (mode)'",
    "cadence_days": "expected days between source updates",
    "age_days": "days between retrieval and the lens reference date",
    "freshness": "fresh, stale (older than the cadence), sample or curated",
}

COMPARISON_COLUMNS = {
    "indicator_id": "indicator id",
    "territory_id": "focus territory",
    "period": "period",
    "value": "focus value in the indicator's unit",
    "compared_with": "comparison territory id, or 'peers:basin'",
    "compared_with_name": "name of the comparison",
    "comparison_value": "comparison value, same unit and period",
    "comparison_count": "territories summarized by the comparison value",
    "ratio": "value / comparison_value",
    "difference": "value - comparison_value",
    "is_reference": "true for the comparison shown in lens.<study>_indicators",
}

TERRITORY_COLUMNS = {
    "territory_id": "territory '<kind>:<code>' (core.territories)",
    "role": "focus, comparison or peer",
    "origin": "why the territory is in the study (configured, a site, the region of a comuna)",
    "name": "territory name",
    "kind": "country, region, comuna, basin, oecd_area, ...",
    "has_geometry": "true when the warehouse holds its boundary",
    "in_warehouse": "false for a territory the study names but the warehouse does not know",
}

SITE_COLUMNS = {
    "site": "site name in the study file",
    "field": "the study file's field that declares it",
    "lat": "latitude, WGS84",
    "lon": "longitude, WGS84",
    "comuna_id": "comuna the point falls in",
    "region_id": "region the point falls in",
    "basin_id": "basin the point falls in",
    "method": "how the point was placed in territories",
    "status": "located, or why it was not",
    "message": "what went wrong locating it, if anything",
}

MANIFEST_COLUMNS = {
    "key": "prefix, as_of, reference_date, content_hash or hashed_tables",
    "value": "its value for this lens",
}

# One declaration per lens table: what the table is, and its columns (COMMENTs and datapackage).
LENS_TABLES = {
    "indicators": (
        "One row per indicator, territory and period of the study, with its reference comparison, trend, source and freshness.",
        "INDICATOR_COLUMNS",
    ),
    "comparisons": (
        "Every comparison of each focus value: the reference and the others (Chile, region, peer basins).",
        "COMPARISON_COLUMNS",
    ),
    "territories": ("The territories of the study and why each is there.", "TERRITORY_COLUMNS"),
    "sites": ("The study's sites and the territories each falls in.", "SITE_COLUMNS"),
    "sources": (
        "Each source behind the lens: publisher, licence, citation, snapshots, mode and freshness.",
        "SOURCE_COLUMNS",
    ),
    "gaps": ("What the lens cannot show, and why.", "GAP_COLUMNS"),
    "manifest": (
        "How the lens was built: prefix, as-of date, reference date and content hash.",
        "MANIFEST_COLUMNS",
    ),
    "claims": (
        "Each quantitative claim of the study checked against the warehouse, with its verdict and badge.",
        None,
    ),
}

SOURCE_COLUMNS = {
    "source_id": "source id",
    "family": "source family",
    "publisher": "publisher",
    "title": "title",
    "landing_url": "landing page",
    "licence": "licence as stated by the publisher",
    "citation": "how to cite it",
    "cadence_days": "expected days between updates",
    "indicators": "indicators of this source in the lens",
    "lens_rows": "rows of lens.<study>_indicators from this source",
    "vintage": "first to last period of its values in the lens",
    "snapshots": "snapshot ids the lens values come from (or the newest snapshot by the as-of date)",
    "retrieved_first": "oldest retrieval among them",
    "retrieved_last": "newest retrieval among them",
    "mode": "weakest mode of the source's own snapshots used: sample, stale, curated-unverified, curated or live",
    "freshness": "fresh, stale, sample, curated or not loaded",
    "status": "outcome of the newest refresh (only without an as-of date)",
    "error": "last error recorded for the source (only without an as-of date)",
}


def lens_declaration(name: str) -> Declaration:
    """The declaration of lens table `name` (`claims`' columns live in warehouse/claims.py)."""
    description, columns = LENS_TABLES[name]
    if columns is None:
        from warehouse.claims import CLAIM_COLUMNS

        return Declaration(description, dict(CLAIM_COLUMNS))
    return Declaration(description, dict(COLUMNS[columns]))


def comment_lens_table(conn: duckdb.DuckDBPyConnection, prefix: str, name: str) -> None:
    apply_comments(conn, {f"lens.{prefix}_{name}": lens_declaration(name)})


COLUMNS = {
    "INDICATOR_COLUMNS": INDICATOR_COLUMNS,
    "COMPARISON_COLUMNS": COMPARISON_COLUMNS,
    "TERRITORY_COLUMNS": TERRITORY_COLUMNS,
    "SITE_COLUMNS": SITE_COLUMNS,
    "SOURCE_COLUMNS": SOURCE_COLUMNS,
    "GAP_COLUMNS": GAP_COLUMNS,
    "MANIFEST_COLUMNS": MANIFEST_COLUMNS,
}
