"""Water family: DGA gauge records (via CAMELS-CL and CR2) to basin flow change and trend.

streamflow_daily: both daily matrices streamed by DuckDB into long rows
    (staging.streamflow_daily_camels_cl, staging.streamflow_daily_cr2 → core.daily_flows,
    one row per gauge, day and source) plus the gauge attributes each release carries
    (staging.streamflow_gauge_catalogue).
water_gauges: core.gauges, each gauge placed in a basin by its coordinates
    (ST_Contains on the basin polygons of core.territories), never by code prefix.
water_indicators: per-gauge statistics (core.gauge_indicators, core.gauge_annual_means) and
    the representative gauge of each basin as core.observations for `basin:<code>`.

When CAMELS-CL and CR2 both have a value for the same gauge-day, both rows stay in
core.daily_flows; the statistics use the CAMELS-CL one (SOURCE_PRIORITY, see docs/water.md).
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from methods import hydrology
from pipelines import gates
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
    validate_frame,
    write_tables,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from sources import camels_cl, cr2_streamflow
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import Fetcher, FetchError, FetchRequest, Payload, SourceInfo, ValidationError
from sources.endpoints import endpoints
from sources.fetch import payload_from_sidecar
from warehouse import long_rows, store
from warehouse.db import SQL_DIR, run_script

FAMILY = "water"
SAMPLE_DIR = SAMPLES_DIR / "streamflow"
CAMELS_SAMPLE = SAMPLE_DIR / "camelscl_q_m3s_day_SAMPLE.csv"
CR2_SAMPLE = SAMPLE_DIR / "cr2_qflxDaily_2018_SAMPLE.csv"
VIEWS_SQL = SQL_DIR / "views" / "20_water.sql"

# Lower number wins a gauge-day both sources cover: CAMELS-CL v202201 is the later,
# quality-controlled cut of the same DGA records and runs to 2020; CR2 2018 fills the rest.
SOURCE_PRIORITY = {camels_cl.SOURCE.id: 1, cr2_streamflow.SOURCE.id: 2}
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

# Documented choice of the gauge that stands for a basin (docs/water.md). Basins not listed
# get the gauge inside them with the most complete years in the two periods.
REPRESENTATIVE_GAUGES = {"021": "02104002"}  # Loa: Río Loa en Salida Embalse Conchi
LOA_GAUGES = ("02104002", "02120001", "02105001")  # main stem at Conchi, mouth; Salado tributary

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

PREFERRED_SERIES_SQL = """
SELECT "date", flow_m3s, source_id FROM core.daily_flows WHERE gauge_code = ?
QUALIFY row_number() OVER (PARTITION BY "date" ORDER BY CASE source_id {cases} END) = 1
ORDER BY "date"
"""


def _priority_cases() -> str:
    # Constant source ids from this module, not user input.
    return " ".join(f"WHEN '{source}' THEN {rank}" for source, rank in SOURCE_PRIORITY.items())


class WaterConfig(Config):
    """Periods and completeness rule of the flow statistics (defaults from methods.hydrology)."""

    reference_start: int = hydrology.DEFAULT_REFERENCE[0]
    reference_end: int = hydrology.DEFAULT_REFERENCE[1]
    recent_start: int = hydrology.DEFAULT_RECENT[0]
    recent_end: int = hydrology.DEFAULT_RECENT[1]
    min_coverage: float = hydrology.DEFAULT_MIN_COVERAGE
    representative_gauges: dict[str, str] = REPRESENTATIVE_GAUGES


# --- acquisition ---------------------------------------------------------------------------


def acquire_walk(
    acquirer: Acquirer,
    source: SourceInfo,
    anchor: FetchRequest,
    walk: Callable[[Fetcher], Payload],
    sample: Path | None,
) -> Acquired:
    """A multi-request protocol as one unit: the live walk, else the newest live payload of
    the same name (stale), else the sample, the same policy as `Acquirer.acquire`.

    The final URL of a walk (a tokenised download link) changes, so the stale lookup goes by
    the payload name rather than the request key.
    """
    error = "offline run: live fetch skipped"
    if not acquirer.offline:
        try:
            payload = walk(acquirer.fetcher)
            return Acquired(payload, "unchanged" if payload.not_modified else "live")
        except FetchError as exc:
            error = str(exc)
    store = acquirer.fetcher.store
    earlier = [s for s in store.sidecars(source.id) if s.name == anchor.name and s.mode == "live"]
    if earlier:
        sidecar = earlier[-1]
        return Acquired(payload_from_sidecar(sidecar, store.read(sidecar.sha256)), "stale", error)
    fallback = Acquirer(acquirer.fetcher, offline=True).acquire(source, anchor, sample)
    return Acquired(
        fallback.payload, fallback.status, f"{error}; {fallback.error}" if fallback.error else error
    )


def acquire_streamflow(sources: SourcesResource) -> tuple[Acquirer, dict[str, list[Acquired]]]:
    camels_urls = endpoints(camels_cl.SOURCE.id, camels_cl.ENDPOINTS)
    camels_request = next(
        r for r in camels_cl.build_requests(camels_urls) if r.name == "camels_cl_v202201_zip"
    )
    acquirer, camels = acquire_all(sources, camels_cl.SOURCE, [(camels_request, CAMELS_SAMPLE)])
    cr2_urls = endpoints(cr2_streamflow.SOURCE.id, cr2_streamflow.ENDPOINTS)
    anchor = FetchRequest(name="cr2_qflxdaily_2018_zip", url=cr2_urls["qflx_daily_2018_page"], expect="zip")
    cr2 = acquire_walk(
        acquirer,
        cr2_streamflow.SOURCE,
        anchor,
        lambda fetcher: cr2_streamflow.fetch_daily_zip(fetcher, cr2_urls),
        CR2_SAMPLE,
    )
    return acquirer, {camels_cl.SOURCE.id: camels, cr2_streamflow.SOURCE.id: [cr2]}


# --- parsing -------------------------------------------------------------------------------


def gauge_catalogue(camels: Payload, cr2: Payload, cr2_daily: Path, workdir: Path) -> pd.DataFrame:
    """One row per gauge from the attribute tables the payloads carry.

    Live release zips carry CAMELS-CL `catchment_attributes.csv` and the CR2 stations file;
    a SAMPLE (bare CSV) payload carries neither, so the CR2 daily file's metadata rows are
    used instead and CAMELS-only gauges have no coordinates.
    """
    frames = []
    if cr2_streamflow.is_zip(cr2.content):
        path = cr2_streamflow.member_to_file(
            cr2.content, cr2_streamflow.STATIONS_MEMBER, workdir, "stations.txt", cr2_streamflow.SOURCE.id
        )
        stations, origin = cr2_streamflow.parse_cr2_stations(path, cr2.snapshot_id), "cr2 stations file"
    else:
        stations = cr2_streamflow.parse_cr2_daily_metadata(cr2_daily, cr2.snapshot_id)
        origin = "cr2 daily file metadata rows"
    stations = stations.rename(columns={"name": "cr2_name", "lat": "cr2_lat", "lon": "cr2_lon"})
    stations["cr2_origin"] = f"{origin} ({cr2.mode})"
    frames.append(stations[["gauge_code", "cr2_name", "cr2_lat", "cr2_lon", "altitude_m", "cr2_origin"]])
    if cr2_streamflow.is_zip(camels.content):
        path = cr2_streamflow.member_to_file(
            camels.content,
            camels_cl.V202201_ATTRIBUTES_MEMBER,
            workdir,
            "attributes.csv",
            camels_cl.SOURCE.id,
        )
        attributes = camels_cl.parse_camels_attributes(path, camels.snapshot_id)
        attributes["camels_origin"] = f"camels_cl catchment_attributes.csv ({camels.mode})"
    else:
        attributes = pd.DataFrame(columns=camels_cl.ATTRIBUTE_COLUMNS + ["camels_origin"])
    merged = attributes.merge(frames[0], on="gauge_code", how="outer")
    merged["name"] = merged["name"].where(merged["name"].notna(), merged["cr2_name"])
    merged["lat"] = pd.to_numeric(merged["lat"]).where(merged["lat"].notna(), merged["cr2_lat"])
    merged["lon"] = pd.to_numeric(merged["lon"]).where(merged["lon"].notna(), merged["cr2_lon"])
    merged["altitude_m"] = pd.to_numeric(merged["altitude_m"]).where(
        merged["altitude_m"].notna(), pd.to_numeric(merged["elev_gauge_m"])
    )
    merged["catalogue_source"] = merged[["camels_origin", "cr2_origin"]].apply(
        lambda row: "; ".join(v for v in row if isinstance(v, str)), axis=1
    )
    columns = [
        "gauge_code",
        "name",
        "lat",
        "lon",
        "altitude_m",
        "area_km2",
        "interv_degree",
        "big_dam",
        "sur_rights_n",
        "sur_rights_flow_m3s",
        "gw_rights_n",
        "gw_rights_flow_m3s",
        "catalogue_source",
    ]
    out = merged[columns].copy()
    numeric = [c for c in columns if c not in ("gauge_code", "name", "catalogue_source")]
    out[numeric] = out[numeric].apply(pd.to_numeric).astype(float)
    return out.astype({"gauge_code": str, "name": "string", "catalogue_source": str}).reset_index(drop=True)


INCOMING = "ops"  # scratch tables of a publication live here, inside its transaction


def load_daily(conn, files: dict[str, tuple[Path, Payload]]) -> dict[tuple[str, str], str]:
    """Stream each wide file into a scratch table and union them: {table: SQL of its new rows}.

    Nothing is published here: the caller passes the SQL to `write_tables`, which judges and
    writes the staging tables and core.daily_flows, then drops the scratch (`drop_scratch`).
    """
    selects = {
        camels_cl.SOURCE.id: camels_cl.load_camels_daily_sql,
        cr2_streamflow.SOURCE.id: cr2_streamflow.load_cr2_daily_sql,
    }
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {INCOMING}")
    conn.execute(
        f"CREATE OR REPLACE TABLE {INCOMING}.incoming_daily_flows (gauge_code VARCHAR NOT NULL, "
        "date DATE NOT NULL, flow_m3s DOUBLE NOT NULL, source_id VARCHAR NOT NULL, snapshot_id VARCHAR NOT NULL)"
    )
    loaded = {}
    for source_id, (path, payload) in files.items():
        scratch = f"incoming_{STAGING_DAILY[source_id]}"
        sql = selects[source_id](path, payload.snapshot_id)
        long_rows.load(conn, sql, (INCOMING, scratch), source_id, snapshot=payload.snapshot_id)
        conn.execute(
            f"INSERT INTO {INCOMING}.incoming_daily_flows SELECT gauge_code, date, flow_m3s, ?, ? "  # noqa: S608
            f"FROM {INCOMING}.{scratch}",
            [source_id, payload.snapshot_id],
        )
        loaded[("staging", STAGING_DAILY[source_id])] = f"SELECT * FROM {INCOMING}.{scratch}"  # noqa: S608
    loaded[("core", "daily_flows")] = f"SELECT * FROM {INCOMING}.incoming_daily_flows"  # noqa: S608
    return loaded


def drop_scratch(conn) -> None:
    for table in ("incoming_daily_flows", *(f"incoming_{t}" for t in STAGING_DAILY.values())):
        conn.execute(f"DROP TABLE IF EXISTS {INCOMING}.{table}")


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
                counts |= write_tables(conn, source.id, {table: loaded.pop(table)}, **_inputs(items))
            everything = [item for items in by_source.values() for item in items]
            tables = {**loaded, ("staging", "streamflow_gauge_catalogue"): catalogue}
            counts |= write_tables(conn, FAMILY, tables, **_inputs(everything))
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


def _inputs(items: list[Acquired]) -> dict:
    """write_tables' `mode` and `snapshot_ids` of tables built from these payloads."""
    modes = {item.payload.mode for item in items}
    mode = "sample" if "sample" in modes else ("curated" if "curated" in modes else "live")
    return {"mode": mode, "snapshot_ids": [item.payload.snapshot_id for item in items]}


# --- indicators ----------------------------------------------------------------------------


def gauge_statistics(conn, gauge_code: str, config: WaterConfig) -> tuple[dict, list[dict]]:
    """The gauge's preferred daily series → (indicator row, annual-mean rows)."""
    series = conn.execute(PREFERRED_SERIES_SQL.format(cases=_priority_cases()), [gauge_code]).df()
    dates, flows = series["date"].to_numpy(), series["flow_m3s"].to_numpy(dtype=float)
    reference, recent = (
        (config.reference_start, config.reference_end),
        (config.recent_start, config.recent_end),
    )
    years = hydrology.annual_means(dates, flows, config.min_coverage)
    change = hydrology.mean_annual_flow_change(dates, flows, reference, recent, config.min_coverage)
    trend = hydrology.annual_trend(years, config.reference_start, config.recent_end)
    cov_ref = hydrology.coverage(dates, flows, f"{reference[0]}-01-01", f"{reference[1]}-12-31")
    cov_rec = hydrology.coverage(dates, flows, f"{recent[0]}-01-01", f"{recent[1]}-12-31")
    counts = series["source_id"].value_counts()
    main_source = counts.index[0] if len(counts) else None
    row = {
        "gauge_code": gauge_code,
        "reference_start": reference[0],
        "reference_end": reference[1],
        "recent_start": recent[0],
        "recent_end": recent[1],
        "reference_mean_m3s": change.reference_mean,
        "recent_mean_m3s": change.recent_mean,
        "reference_complete_years": change.reference_complete_years,
        "recent_complete_years": change.recent_complete_years,
        "change_m3s": change.absolute_change,
        "change_pct": None if change.relative_change is None else 100 * change.relative_change,
        "trend_years": trend.n,
        "sen_slope_m3s_per_year": trend.slope,
        "mk_s": trend.s,
        "mk_z": trend.z if trend.n >= 3 else None,
        "mk_p_value": trend.p_value if trend.n >= 3 else None,
        "coverage_reference": cov_ref.share,
        "coverage_recent": cov_rec.share,
        "min_coverage": config.min_coverage,
        "source_id": main_source,
    }
    annual = [
        {
            "gauge_code": gauge_code,
            "year": y.year,
            "mean_m3s": y.mean,
            "days_with_data": y.days_with_data,
            "coverage": y.coverage,
            "complete": y.complete,
        }
        for y in years
    ]
    return row, annual


def choose_representatives(gauges: pd.DataFrame, configured: dict[str, str]) -> dict[str, str]:
    """basin_id → gauge: the configured gauge when it lies in the basin, else the best covered."""
    chosen = {}
    located = gauges[gauges["basin_id"].notna()]
    for basin_id, members in located.groupby("basin_id"):
        wanted = configured.get(basin_id.split(":", 1)[1])
        if wanted in set(members["gauge_code"]):
            chosen[basin_id] = wanted
            continue
        ranked = members.assign(
            years=members["reference_complete_years"] + members["recent_complete_years"],
            area=members["area_km2"].fillna(-1),
        ).sort_values(["years", "area", "gauge_code"], ascending=[False, False, True])
        if ranked.iloc[0]["years"] > 0:
            chosen[basin_id] = ranked.iloc[0]["gauge_code"]
    return chosen


def basin_observations(indicators: pd.DataFrame, annual: pd.DataFrame, config: WaterConfig) -> pd.DataFrame:
    """core.observations rows of the representative gauges, one basin each."""
    ref = f"{config.reference_start}-{config.reference_end}"
    rec = f"{config.recent_start}-{config.recent_end}"
    window = f"{config.reference_start}-{config.recent_end}"
    rows = []
    for r in indicators[indicators["is_representative"]].itertuples():
        flag = f"gauge {r.gauge_code}"
        few = r.reference_complete_years < 10 or r.recent_complete_years < 10
        base = {"territory_id": r.basin_id, "source_id": r.source_id, "snapshot_id": r.snapshot_id}
        values = [
            (
                "water_mean_annual_flow_change_pct",
                f"{ref} to {rec}",
                r.change_pct,
                flag + ("; few complete years" if few else ""),
            ),
            (
                "water_mean_annual_flow_reference",
                ref,
                r.reference_mean_m3s,
                f"{flag}; {r.reference_complete_years} complete years",
            ),
            (
                "water_mean_annual_flow_recent",
                rec,
                r.recent_mean_m3s,
                f"{flag}; {r.recent_complete_years} complete years",
            ),
            (
                "water_annual_flow_trend_sen",
                window,
                r.sen_slope_m3s_per_year,
                f"{flag}; {r.trend_years} complete years",
            ),
            ("water_annual_flow_trend_mk_p", window, r.mk_p_value, flag),
            ("water_flow_coverage", ref, r.coverage_reference, flag),
            ("water_flow_coverage", rec, r.coverage_recent, flag),
        ]
        rows += [{**base, "indicator_id": i, "period": p, "value": v, "flag": f} for i, p, v, f in values]
        series = annual[(annual["gauge_code"] == r.gauge_code) & annual["complete"]]
        rows += [
            {
                **base,
                "indicator_id": "water_annual_mean_flow",
                "period": str(y.year),
                "value": y.mean_m3s,
                "flag": flag,
            }
            for y in series.itertuples()
        ]
    frame = pd.DataFrame(rows, columns=[*store.OBSERVATION_COLUMNS])
    frame["lower"] = np.nan
    frame["upper"] = np.nan
    frame["value"] = pd.to_numeric(frame["value"]).astype(float)
    return frame[frame["value"].notna()].reset_index(drop=True)


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


ASSETS = [streamflow_daily, water_gauges, water_indicators]
CHECKS = [
    water_gauge_codes_8_digits,
    water_loa_gauges_in_basin_021,
    water_coverage_reported,
    water_no_negative_flows,
]
OBSERVATION_ASSETS = [water_indicators]


# --- macro-basin annual outlet flows (CAMELS-CL author's FSEQ210001 basin simulator) ---------------

MACROBASIN_SOURCE = camels_cl.MACROBASIN_SOURCE
MACROBASIN_SAMPLE = SAMPLE_DIR / "camelscl_macrobasins_yr_SAMPLE.csv"
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

# The basin polygon containing each gauge's catalogued location (smallest wins, as in GAUGES_SQL).
MACROBASIN_PLACEMENT_SQL = """
SELECT g.gauge_code, b.territory_id AS basin_id
FROM core.gauges g
JOIN core.territories b
  ON b.kind = 'basin' AND b.geometry IS NOT NULL AND ST_Contains(b.geometry, ST_Point(g.lon, g.lat))
WHERE g.gauge_code IN (SELECT unnest(?)) AND g.lat IS NOT NULL AND g.lon IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY g.gauge_code ORDER BY ST_Area(b.geometry)) = 1
"""


def macrobasin_frame(payload: Payload) -> pd.DataFrame:
    """Parsed and pandera-validated rows of one payload (a ParseError/ValidationError refuses it)."""
    frame = camels_cl.parse_macrobasin_annual(payload.content, payload.snapshot_id)
    frame = frame.astype({"area_km2": float, "qobs_m3s": float, "qsim_m3s": float, "year": int})
    frame["snapshot_id"] = payload.snapshot_id
    frame = validate_frame(MACROBASIN_SCHEMA, frame, MACROBASIN_SOURCE.id, payload.snapshot_id)
    observed = frame[frame["qobs_m3s"].notna()]
    disagree = observed.groupby(["gauge_code", "year"])["qobs_m3s"].nunique()
    if (disagree > 1).any():
        raise ValidationError(
            MACROBASIN_SOURCE.id,
            f"observed flow differs between experiments for {disagree[disagree > 1].index.tolist()[:10]}",
            payload.snapshot_id,
        )
    return frame


def macrobasin_observations(frame: pd.DataFrame, placed: dict[str, str]) -> pd.DataFrame:
    """One observation per placed gauge and year with an observed flow; NA years are left out."""
    observed = frame[frame["qobs_m3s"].notna() & frame["gauge_code"].isin(placed)]
    observed = observed.drop_duplicates(["gauge_code", "year"])
    out = pd.DataFrame(
        {
            "indicator_id": "water_outlet_annual_flow_observed",
            "territory_id": observed["gauge_code"].map(placed),
            "period": observed["year"].astype(str),
            "value": observed["qobs_m3s"].astype(float),
            "lower": np.nan,
            "upper": np.nan,
            "flag": "gauge " + observed["gauge_code"] + " " + observed["gauge_name"],
            "source_id": MACROBASIN_SOURCE.id,
            "snapshot_id": observed["snapshot_id"],
        }
    )
    return out[list(store.OBSERVATION_COLUMNS)].reset_index(drop=True)


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


ASSETS.append(macrobasin_annual_flows)
OBSERVATION_ASSETS.append(macrobasin_annual_flows)

# Built once every water asset exists, so the macro-basin source is refreshed with the others.
water_job = refresh_job(
    "water_refresh", ASSETS, "CAMELS-CL (daily flows and macro-basins) and CR2 streamflow"
)
water_schedule = refresh_schedule(
    water_job, "0 5 1 * *", "water_monthly", "the daily series are extended a few times a year"
)
JOBS = [water_job]
SCHEDULES = [water_schedule]
