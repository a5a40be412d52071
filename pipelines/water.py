"""Water family: DGA gauge records (via CAMELS-CL and CR2) to basin flow change and trend.

streamflow_daily: both daily matrices streamed by DuckDB into long rows
    (staging.streamflow_daily_camels_cl, staging.streamflow_daily_cr2 → core.daily_flows,
    one row per gauge, day and source) plus the gauge attributes each release carries
    (staging.streamflow_gauge_catalogue).
water_gauges: core.gauges, each gauge placed in a basin by its coordinates
    (ST_Contains on the basin polygons of core.territories), never by code prefix.
water_indicators: per-gauge statistics (core.gauge_indicators, core.gauge_annual_means) and
    the representative gauge of each basin as core.observations for `basin:<code>`.
macrobasin_annual_flows: CAMELS-CL macro-basin outlet flows as observations of their basins.

When CAMELS-CL and CR2 both have a value for the same gauge-day, both rows stay in
core.daily_flows; the statistics use the CAMELS-CL one (SOURCE_PRIORITY, see docs/water.md).
This module holds the assets and their checks; the tables are declared in water_tables,
acquisition and loading are in water_streamflow, the statistics in water_statistics and the
macro-basin source in water_macrobasins.
"""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from pipelines import territories as territory_family
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    publishing,
    refusing,
    source_version,
    table_declaration,
    unchanged,
    write_tables,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.water_macrobasins import (
    MACROBASIN_PLACEMENT_SQL,
    MACROBASIN_SAMPLE,
    MACROBASIN_SOURCE,
    macrobasin_frame,
    macrobasin_observations,
)
from pipelines.water_statistics import (
    SOURCE_PRIORITY,
    WaterConfig,
    basin_observations,
    choose_representatives,
    gauge_statistics,
)
from pipelines.water_streamflow import (
    acquire_streamflow,
    drop_scratch,
    gauge_catalogue,
    inputs_of,
    load_daily,
)
from pipelines.water_tables import (
    ANNUAL_MEAN_COLUMNS,
    DAILY_COLUMNS,
    GAUGE_COLUMNS,
    INDICATOR_COLUMNS,
    MACROBASIN_COLUMNS,
    MACROBASIN_TABLE,
    STAGING_DAILY,
)
from sources import camels_cl, cr2_streamflow
from sources.endpoints import endpoints
from warehouse import store
from warehouse.db import SQL_DIR, run_script

FAMILY = "water"
VIEWS_SQL = SQL_DIR / "views" / "20_water.sql"
LOA_GAUGES = ("02104002", "02120001", "02105001")  # main stem at Conchi, mouth; Salado tributary


# --- daily flows ---------------------------------------------------------------------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="Daily streamflow of DGA gauges from CAMELS-CL v202201 and CR2 cr2_qflxDaily_2018, streamed "
    "into long rows (core.daily_flows, both sources kept) plus the gauge attributes the releases carry "
    "(staging.streamflow_gauge_catalogue).",
    metadata={
        **table_declaration(
            DAILY_COLUMNS,
            "core.daily_flows",
            "staging.streamflow_daily_camels_cl",
            "staging.streamflow_daily_cr2",
            extra={"staging.streamflow_gauge_catalogue": GAUGE_COLUMNS},
        ),
        "source": camels_cl.SOURCE.landing_url,
    },
)
def streamflow_daily(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer, acquired = acquire_streamflow(sources)
    metadata = {sid: log_acquisitions(context, items)["status"] for sid, items in acquired.items()}
    camels, cr2 = acquired[camels_cl.SOURCE.id][0].payload, acquired[cr2_streamflow.SOURCE.id][0].payload
    by_source = {source: acquired[source.id] for source in (camels_cl.SOURCE, cr2_streamflow.SOURCE)}
    if (same := unchanged(context, warehouse, acquirer, by_source, metadata)) is not None:
        return same
    with tempfile.TemporaryDirectory(prefix="streamflow-") as tmp:
        workdir = Path(tmp)
        with refusing(warehouse, acquirer, by_source):
            files = {
                camels_cl.SOURCE.id: (
                    camels_cl.daily_csv_file(camels.content, workdir, camels.snapshot_id),
                    camels,
                ),
                cr2_streamflow.SOURCE.id: (
                    cr2_streamflow.daily_csv_file(cr2.content, workdir, cr2.snapshot_id),
                    cr2,
                ),
            }
            catalogue = gauge_catalogue(camels, cr2, files[cr2_streamflow.SOURCE.id][0], workdir)
        with publishing(warehouse, acquirer, by_source) as conn:  # a ParseError rolls the whole load back
            loaded, counts = load_daily(conn, files), {}
            for source, items in by_source.items():
                table = ("staging", STAGING_DAILY[source.id])
                counts |= write_tables(conn, source.id, {table: loaded.pop(table)}, **inputs_of(items))
            everything = [item for items in by_source.values() for item in items]
            tables = {**loaded, ("staging", "streamflow_gauge_catalogue"): catalogue}
            counts |= write_tables(conn, FAMILY, tables, **inputs_of(everything))
            drop_scratch(conn)
    return MaterializeResult(
        data_version=source_version(context, [i for items in by_source.values() for i in items]),
        metadata={**{f"status_{k}": v for k, v in metadata.items()}, **counts},
    )


# --- gauges --------------------------------------------------------------------------------

GAUGES_SQL = """
WITH spans AS (
    SELECT gauge_code, min("date") AS record_start, max("date") AS record_end,
           count(DISTINCT "date") AS days_with_data
    FROM core.daily_flows GROUP BY gauge_code
),
codes AS (
    SELECT gauge_code FROM spans UNION SELECT gauge_code FROM staging.streamflow_gauge_catalogue
),
basins AS (
    SELECT territory_id, geometry FROM core.territories WHERE kind = 'basin' AND geometry IS NOT NULL
)
SELECT c.gauge_code, cat.name, cat.lat, cat.lon, cat.altitude_m, s.record_start, s.record_end,
       coalesce(s.days_with_data, 0) AS days_with_data, cat.area_km2, cat.interv_degree, cat.big_dam,
       cat.sur_rights_n, cat.sur_rights_flow_m3s, cat.gw_rights_n, cat.gw_rights_flow_m3s,
       coalesce(cat.catalogue_source, 'none: no attributes in the payloads') AS catalogue_source,
       b.territory_id AS basin_id
FROM codes c
LEFT JOIN staging.streamflow_gauge_catalogue cat USING (gauge_code)
LEFT JOIN spans s USING (gauge_code)
LEFT JOIN basins b ON cat.lat IS NOT NULL AND ST_Contains(b.geometry, ST_Point(cat.lon, cat.lat))
QUALIFY row_number() OVER (PARTITION BY c.gauge_code ORDER BY ST_Area(b.geometry) NULLS LAST) = 1
ORDER BY c.gauge_code
"""


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[streamflow_daily, *territory_family.ASSETS],
    description="Gauge catalogue (core.gauges): code, name, location, record span, CAMELS-CL catchment and "
    "water-rights attributes, and the basin whose polygon contains the gauge.",
    metadata={**table_declaration(GAUGE_COLUMNS, "core.gauges")},
)
def water_gauges(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, FAMILY) as conn:
        basins = conn.execute(
            "SELECT count(*) FROM core.territories WHERE kind = 'basin' AND geometry IS NOT NULL"
        ).fetchone()[0]
        write_tables(conn, FAMILY, {("core", "gauges"): GAUGES_SQL}, snapshot_ids=_flow_snapshots(conn))
        located, total, placed = conn.execute(
            "SELECT count(lat), count(*), count(basin_id) FROM core.gauges"
        ).fetchone()
    if not basins:
        context.log.warning("no basin polygons in core.territories: every gauge's basin_id is NULL")
    if located < total:
        context.log.warning(f"{total - located} of {total} gauges have no coordinates in the payloads")
    return MaterializeResult(
        metadata={
            "gauges": total,
            "with_coordinates": located,
            "in_a_basin": placed,
            "basin_polygons": basins,
        }
    )


def _flow_snapshots(conn) -> list[str]:
    """The payloads every gauge table is computed from (the catalogue comes from the same ones)."""
    rows = conn.execute("SELECT DISTINCT snapshot_id FROM core.daily_flows").fetchall()
    return sorted(r[0] for r in rows)


# --- indicators ----------------------------------------------------------------------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[water_gauges],
    description="Per-gauge flow statistics (core.gauge_indicators, core.gauge_annual_means) and each basin's "
    "representative gauge as core.observations: change of mean annual flow between the reference and recent "
    "periods, Sen's slope with Mann-Kendall p, coverage, and the annual mean series.",
    metadata={
        **table_declaration(
            INDICATOR_COLUMNS, "core.gauge_indicators", extra={"core.gauge_annual_means": ANNUAL_MEAN_COLUMNS}
        )
    },
)
def water_indicators(
    context: AssetExecutionContext, warehouse: WarehouseResource, config: WaterConfig
) -> MaterializeResult:
    context.log.info(
        f"reference {config.reference_start}-{config.reference_end}, recent {config.recent_start}-"
        f"{config.recent_end}, year complete at >= {config.min_coverage:.0%} of days"
    )
    with derived_writer(warehouse, FAMILY) as conn:
        gauges = conn.execute("SELECT gauge_code, basin_id, area_km2 FROM core.gauges ORDER BY 1").df()
        snapshots = dict(
            conn.execute("SELECT DISTINCT source_id, snapshot_id FROM core.daily_flows").fetchall()
        )
        rows, annual_rows = [], []
        for code in gauges["gauge_code"]:
            row, annual = gauge_statistics(conn, code, config)
            rows.append(row)
            annual_rows += annual
        indicators = gauges.merge(pd.DataFrame(rows), on="gauge_code")
        indicators["snapshot_id"] = indicators["source_id"].map(snapshots)
        representatives = choose_representatives(indicators, config.representative_gauges)
        indicators["is_representative"] = [
            representatives.get(b) == g
            for b, g in zip(indicators["basin_id"], indicators["gauge_code"], strict=True)
        ]
        indicators = indicators[list(INDICATOR_COLUMNS)]
        annual = pd.DataFrame(
            annual_rows, columns=["gauge_code", "year", "mean_m3s", "days_with_data", "coverage", "complete"]
        )
        inputs = _flow_snapshots(conn)
        write_tables(
            conn,
            FAMILY,
            {("core", "gauge_indicators"): indicators, ("core", "gauge_annual_means"): annual},
            snapshot_ids=inputs,
        )
        run_script(conn, VIEWS_SQL)
        observations = basin_observations(indicators, annual, config)
        store.record_indicators(conn, load_indicators(FAMILY))
        written = 0
        for source_id in SOURCE_PRIORITY:
            mine = observations[observations["source_id"] == source_id]
            written += write_tables(conn, source_id, {("core", "observations"): mine})["core.observations"]
    return MaterializeResult(
        metadata={
            "gauges": len(indicators),
            "observations": written,
            "representatives": MetadataValue.json(representatives),
            "reference_period": f"{config.reference_start}-{config.reference_end}",
            "recent_period": f"{config.recent_start}-{config.recent_end}",
            "min_coverage": config.min_coverage,
        }
    )


# --- macro-basin annual outlet flows (CAMELS-CL author's FSEQ210001 basin simulator) ---------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[water_gauges, *territory_family.ASSETS],
    description="Annual observed outlet flow of the CAMELS-CL macro-basins (data_macrobasin_platform_yr.csv; "
    "raw/staging.camelscl_macrobasins_yr) as core.observations of the basin whose polygon contains the "
    "gauge's catalogued location (core.gauges); gauges without a known location get no observation.",
    metadata={
        **table_declaration(MACROBASIN_COLUMNS, "staging.camelscl_macrobasins_yr"),
        "source": MACROBASIN_SOURCE.landing_url,
    },
)
def macrobasin_annual_flows(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    request = camels_cl.macrobasin_request(endpoints(MACROBASIN_SOURCE.id, camels_cl.MACROBASIN_ENDPOINTS))
    acquirer, acquired = acquire_all(sources, MACROBASIN_SOURCE, [(request, MACROBASIN_SAMPLE)])
    status = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {MACROBASIN_SOURCE: acquired}, status)) is not None:
        return same
    with refusing(warehouse, acquirer, {MACROBASIN_SOURCE: acquired}):
        frame = pd.concat([macrobasin_frame(item.payload) for item in acquired], ignore_index=True)
    counts = publish(
        warehouse,
        acquirer,
        MACROBASIN_SOURCE,
        acquired,
        {("raw", MACROBASIN_TABLE): frame, ("staging", MACROBASIN_TABLE): frame},
    )
    codes = sorted(set(frame["gauge_code"]))
    with derived_writer(warehouse, MACROBASIN_SOURCE) as conn:
        placed = dict(conn.execute(MACROBASIN_PLACEMENT_SQL, [codes]).fetchall())
        observations = macrobasin_observations(frame, placed)
        store.record_indicators(conn, load_indicators(FAMILY))
        tables = {("core", "observations"): observations}
        written = write_tables(conn, MACROBASIN_SOURCE.id, tables)["core.observations"]
    unplaced = [code for code in codes if code not in placed]
    if unplaced:
        context.log.warning(
            f"{len(unplaced)} of {len(codes)} macro-basin gauges have no location in core.gauges inside a "
            f"basin polygon: no observation for {unplaced}"
        )
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **status,
            **counts,
            "observations": written,
            "placed_gauges": MetadataValue.json(placed),
            "gauges_without_location": MetadataValue.json(unplaced),
        },
    )


# --- checks --------------------------------------------------------------------------------


@asset_check(asset=water_gauges, description="Every gauge code in the catalogue and the flows has 8 digits.")
def water_gauge_codes_8_digits(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        bad = conn.execute(
            """
            SELECT DISTINCT gauge_code FROM (SELECT gauge_code FROM core.gauges
                                             UNION ALL SELECT gauge_code FROM core.daily_flows)
            WHERE NOT regexp_full_match(gauge_code, '[0-9]{8}') ORDER BY 1
            """
        ).fetchall()
    return AssetCheckResult(passed=not bad, metadata={"bad_codes": [r[0] for r in bad[:20]]})


@asset_check(
    asset=water_gauges, description="Loa gauges with coordinates fall in basin:021 (needs basin polygons)."
)
def water_loa_gauges_in_basin_021(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        rows = conn.execute(
            "SELECT gauge_code, basin_id FROM core.gauges WHERE gauge_code IN (SELECT unnest(?)) AND lat IS NOT NULL",
            [list(LOA_GAUGES)],
        ).fetchall()
        basins = conn.execute("SELECT count(*) FROM core.territories WHERE kind = 'basin'").fetchone()[0]
    if not basins:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={"reason": "no basin polygons in core.territories; basins left NULL"},
        )
    misplaced = {code: basin for code, basin in rows if basin != "basin:021"}
    return AssetCheckResult(passed=not misplaced, metadata={"checked": len(rows), "misplaced": misplaced})


@asset_check(asset=water_indicators, description="Coverage of both periods is reported for every gauge.")
def water_coverage_reported(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        missing, total = conn.execute(
            "SELECT count(*) FILTER (coverage_reference IS NULL OR coverage_recent IS NULL), count(*) "
            "FROM core.gauge_indicators"
        ).fetchone()
        representatives = conn.execute(
            "SELECT basin_id, gauge_code, coverage_reference, coverage_recent FROM core.gauge_indicators "
            "WHERE is_representative ORDER BY basin_id"
        ).df()
    return AssetCheckResult(
        passed=missing == 0 and total > 0,
        metadata={
            "gauges": total,
            "without_coverage": missing,
            "representatives": MetadataValue.json(representatives.astype(str).to_dict("records")),
        },
    )


@asset_check(asset=streamflow_daily, description="No negative flows in core.daily_flows.")
def water_no_negative_flows(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        negative = conn.execute("SELECT count(*) FROM core.daily_flows WHERE flow_m3s < 0").fetchone()[0]
    return AssetCheckResult(passed=negative == 0, metadata={"negative_flows": negative})


ASSETS = [streamflow_daily, water_gauges, water_indicators, macrobasin_annual_flows]
CHECKS = [
    water_gauge_codes_8_digits,
    water_loa_gauges_in_basin_021,
    water_coverage_reported,
    water_no_negative_flows,
]
OBSERVATION_ASSETS = [water_indicators, macrobasin_annual_flows]

# Built once every water asset exists, so the macro-basin source is refreshed with the others.
water_job = refresh_job(
    "water_refresh", ASSETS, "CAMELS-CL (daily flows and macro-basins) and CR2 streamflow"
)
water_schedule = refresh_schedule(
    water_job, "0 5 1 * *", "water_monthly", "the daily series are extended a few times a year"
)
JOBS = [water_job]
SCHEDULES = [water_schedule]
