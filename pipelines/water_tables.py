"""The water family's tables, declared once: column descriptions, the macro-basin schema and the value gates.

The daily flows are written per source (STAGING_DAILY) and together (core.daily_flows); the
gauge tables and statistics are derived from them (pipelines.water).
"""

import pandera.pandas as pa

from pipelines import gates
from sources import camels_cl, cr2_streamflow

STAGING_DAILY = {
    camels_cl.SOURCE.id: "streamflow_daily_camels_cl",
    cr2_streamflow.SOURCE.id: "streamflow_daily_cr2",
}

# What the value gates judge in this family's tables (pipelines.gates): a gauge's daily flows,
# its location and catchment, its statistics and annual means, against the last accepted ones.
for _source_id, _table in STAGING_DAILY.items():
    gates.declare(f"staging.{_table}", gates.TableGates(keys=("gauge_code", "date"), values=("flow_m3s",)))
gates.declare(
    "core.daily_flows",
    gates.TableGates(keys=("gauge_code", "date", "source_id"), values=("flow_m3s",), group="source_id"),
)
gates.declare(
    "staging.streamflow_gauge_catalogue",
    gates.TableGates(keys=("gauge_code",), values=("lat", "lon", "area_km2")),
)
gates.declare("core.gauges", gates.TableGates(keys=("gauge_code",), values=("lat", "lon", "area_km2")))
gates.declare(
    "core.gauge_indicators",
    gates.TableGates(keys=("gauge_code",), values=("reference_mean_m3s", "recent_mean_m3s")),
)
gates.declare("core.gauge_annual_means", gates.TableGates(keys=("gauge_code", "year"), values=("mean_m3s",)))

DAILY_COLUMNS = {
    "gauge_code": "VARCHAR: 8-digit DGA/BNA gauge code",
    "date": "DATE: day of the observation",
    "flow_m3s": "DOUBLE: mean daily flow, m3/s (missing days are absent rows)",
    "source_id": "VARCHAR: camels_cl or cr2_streamflow (both kept when both cover the day)",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
GAUGE_COLUMNS = {
    "gauge_code": "VARCHAR: 8-digit DGA/BNA gauge code",
    "name": "VARCHAR: gauge name as published",
    "lat": "DOUBLE: latitude, EPSG:4326",
    "lon": "DOUBLE: longitude, EPSG:4326",
    "altitude_m": "DOUBLE: gauge altitude, m",
    "record_start": "DATE: first day with data in core.daily_flows",
    "record_end": "DATE: last day with data in core.daily_flows",
    "days_with_data": "BIGINT: distinct days with data",
    "area_km2": "DOUBLE: catchment area (CAMELS-CL)",
    "interv_degree": "DOUBLE: CAMELS-CL degree of human intervention",
    "big_dam": "DOUBLE: CAMELS-CL large-dam flag",
    "sur_rights_n": "DOUBLE: surface water rights, count",
    "sur_rights_flow_m3s": "DOUBLE: surface water rights, m3/s granted",
    "gw_rights_n": "DOUBLE: groundwater rights, count",
    "gw_rights_flow_m3s": "DOUBLE: groundwater rights, m3/s granted",
    "catalogue_source": "VARCHAR: where the attributes come from",
    "basin_id": "VARCHAR: basin:<COD_CUEN> containing the gauge point; NULL without basin polygons",
}
ANNUAL_MEAN_COLUMNS = {
    "gauge_code": "VARCHAR: 8-digit DGA/BNA gauge code",
    "year": "INTEGER: calendar year",
    "mean_m3s": "DOUBLE: mean of the year's daily flows, m3/s",
    "days_with_data": "BIGINT: days of the year with a flow",
    "coverage": "DOUBLE: days_with_data / days in the year",
    "complete": "BOOLEAN: coverage >= the minimum coverage (ops config), so the year enters the statistics",
}
INDICATOR_COLUMNS = {
    "gauge_code": "VARCHAR: 8-digit gauge code",
    "basin_id": "VARCHAR: basin containing the gauge",
    "is_representative": "BOOLEAN: the gauge standing for its basin in core.observations",
    "reference_start": "INTEGER: first year of the reference period",
    "reference_end": "INTEGER: last year of the reference period",
    "recent_start": "INTEGER: first year of the recent period",
    "recent_end": "INTEGER: last year of the recent period",
    "reference_mean_m3s": "DOUBLE: mean of the complete years' annual means, reference period",
    "recent_mean_m3s": "DOUBLE: same, recent period",
    "reference_complete_years": "INTEGER: complete years (coverage >= min_coverage) in the reference period",
    "recent_complete_years": "INTEGER: complete years in the recent period",
    "change_m3s": "DOUBLE: recent - reference mean",
    "change_pct": "DOUBLE: 100 * (recent - reference) / reference",
    "trend_years": "INTEGER: complete years in the trend window",
    "sen_slope_m3s_per_year": "DOUBLE: Sen's slope of complete-year annual means",
    "mk_s": "BIGINT: Mann-Kendall S",
    "mk_z": "DOUBLE: Mann-Kendall Z (continuity corrected)",
    "mk_p_value": "DOUBLE: two-sided Mann-Kendall p-value",
    "coverage_reference": "DOUBLE: share of reference-period days with data",
    "coverage_recent": "DOUBLE: share of recent-period days with data",
    "min_coverage": "DOUBLE: completeness rule for a year",
    "source_id": "VARCHAR: source that supplied most of the gauge's days",
    "snapshot_id": "VARCHAR: that source's snapshot",
}

# --- macro-basin annual outlet flows (CAMELS-CL author's FSEQ210001 basin simulator) ---------------

MACROBASIN_TABLE = "camelscl_macrobasins_yr"
MACROBASIN_COLUMNS = {
    "gauge_code": "VARCHAR: 8-digit DGA/BNA code of the basin outlet gauge",
    "gauge_name": "VARCHAR: gauge name as published",
    "area_km2": "DOUBLE: macro-basin area, km2",
    "year": "BIGINT: calendar year (the file's YYYY-01-01)",
    "qobs_m3s": "DOUBLE: observed annual mean outlet flow, m3/s; NULL where the file has NA",
    "qsim_m3s": "DOUBLE: mHM-simulated annual flow, m3/s (kept, not used for observations)",
    "experiment": "VARCHAR: sim_short_name of the row's simulation experiment",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
MACROBASIN_SCHEMA = pa.DataFrameSchema(
    {
        "gauge_code": pa.Column(str, pa.Check.str_matches(r"^[0-9]{8}$")),
        "gauge_name": pa.Column(str),
        "area_km2": pa.Column(float, pa.Check.gt(0), nullable=True),
        "year": pa.Column(int, pa.Check.in_range(1900, 2100)),
        "qobs_m3s": pa.Column(float, pa.Check.ge(0), nullable=True),
        "qsim_m3s": pa.Column(float, nullable=True),
        "experiment": pa.Column(str, nullable=True),
        "snapshot_id": pa.Column(str),
    },
    unique=["gauge_code", "year", "experiment"],
    strict=True,
)

gates.declare(
    f"staging.{MACROBASIN_TABLE}",
    gates.TableGates(keys=("gauge_code", "year", "experiment"), values=("qobs_m3s", "area_km2")),
)
