"""Lens tables: a study's indicators with comparisons, trend and provenance, rebuilt from the warehouse.

`lens.<study>_indicators` has one row per indicator × territory × period, holding the
value, the comparison territory's value for the same period, their ratio and difference,
a least-squares trend over the territory's series, and the provenance and freshness of the
snapshot the value came from. With an as-of date, only snapshots retrieved by then count.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import duckdb
import pandas as pd

from warehouse.db import table_name

LENS_SQL = """
WITH focus AS (
    SELECT unnest(?::VARCHAR[]) AS territory_id, 'focus' AS role
    UNION ALL SELECT unnest(?::VARCHAR[]), 'comparison'
),
versions AS (
    SELECT h.*, row_number() OVER (
        PARTITION BY h.indicator_id, h.territory_id, h.period
        ORDER BY h.retrieved_at DESC, h.snapshot_id DESC) AS newest
    FROM core.observation_history h
    WHERE h.retrieved_at <= ?::TIMESTAMP
),
current AS (
    SELECT * EXCLUDE (newest) FROM versions WHERE newest = 1
),
trend AS (
    SELECT indicator_id, territory_id,
           regr_slope(value, TRY_CAST(period AS INTEGER)) AS trend_per_year,
           count(*) AS series_points
    FROM current WHERE TRY_CAST(period AS INTEGER) IS NOT NULL
    GROUP BY ALL HAVING count(*) >= 3
),
freshness AS (
    SELECT s.snapshot_id, s.retrieved_at, s.mode, s.licence,
           CASE WHEN s.mode = 'sample' THEN 'sample'
                WHEN s.mode = 'curated' THEN 'curated'
                WHEN date_diff('day', s.retrieved_at, ?::TIMESTAMP) <= src.cadence_days THEN 'fresh'
                ELSE 'stale' END AS freshness
    FROM core.snapshots s JOIN core.sources src USING (source_id)
)
SELECT i.lens_section AS section, c.indicator_id, i.label, i.unit, i.claim_level,
       c.territory_id, t.name AS territory_name, t.kind AS territory_kind, f.role,
       c.period, c.value, c.lower, c.upper, c.flag,
       cmp.territory_id AS compared_with, cmp.value AS comparison_value,
       CASE WHEN cmp.value IS NOT NULL AND cmp.value <> 0 THEN c.value / cmp.value END AS ratio,
       c.value - cmp.value AS difference,
       tr.trend_per_year, tr.series_points,
       c.source_id, src.title AS source_title, src.landing_url AS source_url,
       c.snapshot_id, fr.retrieved_at, fr.licence, fr.mode, fr.freshness
FROM current c
JOIN focus f USING (territory_id)
JOIN core.indicators i USING (indicator_id)
JOIN core.sources src ON src.source_id = c.source_id
LEFT JOIN core.territories t USING (territory_id)
LEFT JOIN current cmp
       ON cmp.indicator_id = c.indicator_id AND cmp.period = c.period
      AND cmp.territory_id = ? AND f.role = 'focus'
LEFT JOIN trend tr ON tr.indicator_id = c.indicator_id AND tr.territory_id = c.territory_id
LEFT JOIN freshness fr ON fr.snapshot_id = c.snapshot_id
ORDER BY section, c.indicator_id, f.role DESC, c.territory_id, c.period
"""


def build_lens_tables(
    conn: duckdb.DuckDBPyConnection,
    prefix: str,
    focus: list[str],
    comparison: list[str],
    as_of: date | None,
) -> pd.DataFrame:
    """Replace `lens.<prefix>_indicators` and return it; deterministic for a given warehouse."""
    cutoff = datetime.combine(as_of, datetime.max.time()) if as_of else datetime(9999, 1, 1)
    reference = comparison[0] if comparison else "country:CL"
    frame = conn.execute(LENS_SQL, [focus, comparison, cutoff, cutoff, reference]).df()
    conn.register("_lens_frame", frame)
    try:
        conn.execute(
            f"CREATE OR REPLACE TABLE {table_name('lens', prefix + '_indicators')} AS SELECT * FROM _lens_frame"  # noqa: S608 (identifier quoted by table_name)
        )
    finally:
        conn.unregister("_lens_frame")
    return frame


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the lens rows that ignores row order and float noise below 1e-9."""
    canonical = frame.copy()
    for column in canonical.select_dtypes("float").columns:
        canonical[column] = canonical[column].round(9)
    text = canonical.astype(str).sort_values(list(canonical.columns)).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()
