-- Water family views. marts.basin_comparison: one row per basin polygon in core.territories,
-- with its representative gauge's flow statistics (NULLs where the basin has no gauge with data).
-- columns:
--   reference_period: the reference years, 'start-end'
--   recent_period: the recent years, 'start-end'
--   gauge_name: name of the representative gauge, as published
--   basin_code: official code of the basin polygon (COD_CUEN, COD_SUBC or COD_SSUBC)
--   basin_name: official name of the basin polygon
CREATE OR REPLACE VIEW marts.basin_comparison AS
SELECT
    t.territory_id AS basin_id,
    t.code AS basin_code,
    t.name AS basin_name,
    g.gauge_code,
    gg.name AS gauge_name,
    g.reference_start || '-' || g.reference_end AS reference_period,
    g.recent_start || '-' || g.recent_end AS recent_period,
    g.reference_mean_m3s,
    g.recent_mean_m3s,
    g.change_pct,
    g.sen_slope_m3s_per_year,
    g.mk_p_value,
    g.trend_years,
    g.coverage_reference,
    g.coverage_recent,
    g.reference_complete_years,
    g.recent_complete_years,
    g.source_id,
    s.mode
FROM core.territories t
LEFT JOIN core.gauge_indicators g ON g.basin_id = t.territory_id AND g.is_representative
LEFT JOIN core.gauges gg ON gg.gauge_code = g.gauge_code
LEFT JOIN core.snapshots s ON s.snapshot_id = g.snapshot_id
WHERE t.kind = 'basin';

-- The daily series the statistics use: one row per gauge-day, CAMELS-CL over CR2 when both
-- have the day (the same rule as SOURCE_PRIORITY in pipelines/water_statistics.py).
CREATE OR REPLACE VIEW marts.daily_flows_preferred AS
SELECT gauge_code, "date", flow_m3s, source_id, snapshot_id
FROM core.daily_flows
QUALIFY row_number() OVER (
    PARTITION BY gauge_code, "date"
    ORDER BY CASE source_id WHEN 'camels_cl' THEN 1 WHEN 'cr2_streamflow' THEN 2 ELSE 3 END
) = 1;
