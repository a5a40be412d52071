-- marts.observation_lineage: every current observation with the mode of each of its inputs and
-- its own mode, the weakest of them (sample < stale < curated-unverified < curated < live), so
-- a value computed on SAMPLE population is sample whatever its own source is. A curated input
-- whose rows are not checked against the primary document is curated-unverified. own_mode is the
-- weakest snapshot mode among the inputs of the observation's own source (what the source itself
-- is: a curated source stays curated when some of its rows are unverified; the value says so).
-- inputs lists them: 'role: source snapshot (mode)'. marts.observation_lineage_history does the
-- same for core.observation_history, keyed by the value's snapshot (what `--as-of` reads).
CREATE OR REPLACE MACRO marts.mode_rank(m) AS
    list_position(['sample', 'stale', 'curated-unverified', 'curated', 'live'], m);
CREATE OR REPLACE MACRO marts.rank_mode(r) AS
    (['sample', 'stale', 'curated-unverified', 'curated', 'live'])[r];

CREATE OR REPLACE MACRO marts.input_mode(snapshot_mode, verification) AS
    CASE WHEN snapshot_mode = 'curated' AND verification = 'unverified' THEN 'curated-unverified'
         ELSE snapshot_mode END;

-- marts.observation_input_modes: Every input of every value in core.observation_history with its mode.
-- columns:
--   input_mode: mode of the input (curated-unverified for an unverified curated input)
--   snapshot_mode: mode of the input's snapshot (core.snapshots)
CREATE OR REPLACE VIEW marts.observation_input_modes AS
SELECT i.*, marts.input_mode(sn.mode, i.verification) AS input_mode, sn.mode AS snapshot_mode
FROM core.observation_input_history i LEFT JOIN core.snapshots sn ON sn.snapshot_id = i.input_snapshot_id;

-- marts.observation_lineage_history: Every value of core.observation_history with its mode (the weakest of its inputs) and its inputs listed (what --as-of reads).
-- columns:
--   mode: the observation's mode, the weakest of its inputs' (sample < stale < curated-unverified < curated < live)
--   own_mode: the weakest snapshot mode among the inputs of the observation's own source
--   inputs: every input as 'role: source snapshot (mode)'
CREATE OR REPLACE VIEW marts.observation_lineage_history AS
SELECT indicator_id, territory_id, period, snapshot_id,
       marts.rank_mode(min(marts.mode_rank(input_mode))) AS mode,
       marts.rank_mode(min(marts.mode_rank(snapshot_mode)) FILTER (WHERE input_source_id = source_id)) AS own_mode,
       string_agg(role || ': ' || coalesce(input_source_id, '?') || ' ' || input_snapshot_id
                  || ' (' || coalesce(input_mode, 'unknown') || ')', '; '
                  ORDER BY role, input_source_id, input_snapshot_id) AS inputs
FROM marts.observation_input_modes
GROUP BY ALL;

-- marts.observation_lineage: Every current observation with its mode (the weakest of its inputs) and its inputs listed.
-- columns:
--   mode: the observation's mode, the weakest of its inputs' (sample < stale < curated-unverified < curated < live)
--   own_mode: the weakest snapshot mode among the inputs of the observation's own source
--   inputs: every input as 'role: source snapshot (mode)'
CREATE OR REPLACE VIEW marts.observation_lineage AS
WITH current_inputs AS (
    SELECT i.*, marts.input_mode(sn.mode, i.verification) AS input_mode, sn.mode AS snapshot_mode
    FROM core.observation_inputs i LEFT JOIN core.snapshots sn ON sn.snapshot_id = i.input_snapshot_id
)
SELECT indicator_id, territory_id, period,
       marts.rank_mode(min(marts.mode_rank(input_mode))) AS mode,
       marts.rank_mode(min(marts.mode_rank(snapshot_mode)) FILTER (WHERE input_source_id = source_id)) AS own_mode,
       string_agg(role || ': ' || coalesce(input_source_id, '?') || ' ' || input_snapshot_id
                  || ' (' || coalesce(input_mode, 'unknown') || ')', '; '
                  ORDER BY role, input_source_id, input_snapshot_id) AS inputs
FROM current_inputs
GROUP BY ALL;

-- marts.territory_profile: one row per territory × indicator with its latest value.
--
-- "Latest" is the period that ends last ('2016-2020' ends in 2020; '2022-03' comes after
-- '2022'). Each row carries the unit, the source (title, landing page, licence), the
-- snapshot and its retrieval time, the mode (the weakest of its inputs, listed in `inputs`;
-- live | curated | sample: sample values are stand-ins for offline runs and must not be cited). periods_available and first_period
-- say how long a series sits behind the latest value. Built on core tables only, so it
-- exists whichever families are loaded. Documented in docs/lens.md.
-- columns:
--   mode: the weakest mode among the value's inputs
--   inputs: every input of the value as 'role: source snapshot (mode)'
--   periods_available: periods of the indicator observed for the territory
--   first_period: the earliest of them
--   territory_name: official name of the territory
--   territory_kind: kind of the territory (comuna, region, basin, ...)
--   source_title: title of the source
--   source_url: landing page of the source
--   licence: licence of the snapshot, else of the source
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
       coalesce(li.mode, sn.mode) AS mode,
       li.inputs
FROM ranked r
LEFT JOIN core.territories t USING (territory_id)
LEFT JOIN core.indicators i USING (indicator_id)
LEFT JOIN core.sources src ON src.source_id = r.source_id
LEFT JOIN core.snapshots sn ON sn.snapshot_id = r.snapshot_id
LEFT JOIN marts.observation_lineage li USING (indicator_id, territory_id, period)
WHERE r.recency = 1;
