-- marts.territory_profile: one row per territory × indicator with its latest value.
--
-- "Latest" is the period that ends last ('2016-2020' ends in 2020; '2022-03' comes after
-- '2022'). Each row carries the unit, the source (title, landing page, licence), the
-- snapshot and its retrieval time, and the mode (live | curated | sample: sample values are
-- stand-ins for offline runs and must not be cited). periods_available and first_period
-- say how long a series sits behind the latest value. Built on core tables only, so it
-- exists whichever families are loaded. Documented in docs/lens.md.
CREATE OR REPLACE VIEW marts.territory_profile AS
WITH observed AS (
    -- A period that starts after its snapshot was retrieved is a projection (INE population
    -- to 2035): "latest" means the latest observed period. Projections stay in core.observations.
    SELECT o.* FROM core.observations o LEFT JOIN core.snapshots s USING (snapshot_id)
    WHERE s.retrieved_at IS NULL OR try_cast(left(o.period, 4) AS INTEGER) IS NULL
       OR try_cast(left(o.period, 4) AS INTEGER) <= year(s.retrieved_at)
),
ranked AS (
    SELECT o.*,
           row_number() OVER (
               PARTITION BY o.indicator_id, o.territory_id
               ORDER BY CASE WHEN regexp_matches(o.period, '^\d{4}-\d{4}$') THEN right(o.period, 4)
                             ELSE o.period END DESC,
                        o.period DESC) AS recency,
           count(*) OVER (PARTITION BY o.indicator_id, o.territory_id) AS periods_available,
           min(o.period) OVER (PARTITION BY o.indicator_id, o.territory_id) AS first_period
    FROM observed o
)
SELECT r.territory_id,
       t.name AS territory_name,
       coalesce(t.kind, split_part(r.territory_id, ':', 1)) AS territory_kind,
       t.parent_id,
       r.indicator_id,
       i.label,
       i.unit,
       i.theme,
       i.lens_section,
       i.claim_level,
       r.period,
       r.value,
       r.lower,
       r.upper,
       r.flag,
       r.periods_available,
       r.first_period,
       r.source_id,
       src.title AS source_title,
       src.landing_url AS source_url,
       coalesce(sn.licence, src.licence) AS licence,
       r.snapshot_id,
       sn.retrieved_at,
       sn.mode
FROM ranked r
LEFT JOIN core.territories t USING (territory_id)
LEFT JOIN core.indicators i USING (indicator_id)
LEFT JOIN core.sources src ON src.source_id = r.source_id
LEFT JOIN core.snapshots sn ON sn.snapshot_id = r.snapshot_id
WHERE r.recency = 1;
