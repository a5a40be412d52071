-- Health family views. marts.mortality_rates: core.mortality_rates with the territory's name and
-- kind and whether the deaths/population snapshots are live or SAMPLE data.
-- columns:
--   person_years: population at risk (person-years) the rate divides by
--   deaths_mode: live or sample, of the deaths snapshot
--   population_mode: live or sample, of the population snapshot
--   territory_name: official name of the territory
--   territory_kind: comuna, region or country
CREATE OR REPLACE VIEW marts.mortality_rates AS
SELECT
    r.territory_id,
    t.name AS territory_name,
    split_part(r.territory_id, ':', 1) AS territory_kind,
    r.period,
    r.cause_group,
    r.sex,
    r.deaths,
    r.deaths_unknown_age,
    r.population AS person_years,
    r.crude_rate,
    r.asr,
    r.asr_lower,
    r.asr_upper,
    r.rate_ratio,
    r.rr_lower,
    r.rr_upper,
    r.flag,
    r.min_deaths,
    r.standard,
    r.cause_groups_version,
    r.snapshot_id,
    ds.mode AS deaths_mode,
    r.population_snapshot_id,
    ps.mode AS population_mode
FROM core.mortality_rates r
LEFT JOIN core.territories t ON t.territory_id = r.territory_id
LEFT JOIN core.snapshots ds ON ds.snapshot_id = r.snapshot_id
LEFT JOIN core.snapshots ps ON ps.snapshot_id = r.population_snapshot_id;
