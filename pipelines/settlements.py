"""Settlements family: MINVU's catastro of campamentos (2024 update and 2022 CNC).

settlement_catastros: both catastros acquired (each year its own snapshots), parsed by
  `sources.minvu_campamentos`, validated → raw.minvu_campamentos_2024, raw.minvu_cnc_2022,
  staging.settlements.
settlements: each polygon located against the comuna and basin polygons of core.territories
  → core.settlements (+ the marts views of warehouse/sql/views/40_settlements.sql).
settlement_observations: counts, households, areas, change between catastros and households
  per 1,000 inhabitants (only where population is loaded) → core.observations.

Areas: MINVU's HECTAREAS/SUP_M2 are planar Web Mercator areas, inflated by 1/cos²(latitude)
(about 1.2 times in Antofagasta, 1.4 times nationally). core.settlements keeps both; the
indicators say which one they use (`settlement_area_ha_geodesic`, `settlement_area_ha_published`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from pipelines import territories
from pipelines.ingest import (
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    refusing,
    source_version,
    table_declaration,
    unchanged,
    validate_frame,
    write_tables,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.settlement_tables import (
    AREA_RATIO_TOLERANCE,
    CORE_COLUMNS,
    STAGING_COLUMNS,
    STAGING_SCHEMA,
)
from pipelines.settlements_measures import (
    complete_totals,
    observation_lineage,
    observation_rows,
)
from sources import minvu_campamentos as mc
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.arcgis import parse_page, query_request
from sources.base import (
    Fetcher,
    FetchRequest,
    Payload,
    ValidationError,
)
from sources.endpoints import endpoints
from sources.geometry import WGS84
from sources.settlements import locate_settlements
from warehouse import store
from warehouse.db import SQL_DIR, run_script

FAMILY = "settlements"
SOURCE = mc.SOURCE
SAMPLE_DIR = SAMPLES_DIR / "campamentos"
VIEWS_SQL = SQL_DIR / "views" / "40_settlements.sql"
PAGE_SIZE = 1000
POPULATION_INDICATOR = "population"  # loaded by the health family, by comuna and year


# --- acquisition ------------------------------------------------------------------------------


def _walk_2024(fetcher: Fetcher, url: str) -> list[Payload]:
    return mc.fetch_catastro_2024(fetcher, url, page_size=PAGE_SIZE)


def _sample_request_2024(url: str) -> FetchRequest:
    return query_request(url, 0, PAGE_SIZE, "catastro-2024")


def _parse_2024(payloads: list[Payload]) -> gpd.GeoDataFrame:
    """All pages as one frame; rows come out in page order, each keeps its page's snapshot."""
    frame = mc.parse_catastro_2024_pages(payloads)
    counts = [len(parse_page(SOURCE.id, p.content, p.snapshot_id)["features"]) for p in payloads]
    frame["snapshot_id"] = np.repeat([p.snapshot_id for p in payloads], counts)
    return frame


def _sample_request_2022(url: str) -> FetchRequest:
    # The 2022 sample is a zip: filed as one, whatever shape the configured endpoint has.
    return FetchRequest(name="cnc2022.zip", url=url, expect="zip")


def _parse_2022(payloads: list[Payload]) -> gpd.GeoDataFrame:
    """The zip, or the shapefile parts; rows carry the snapshot of the .dbf (their attributes)."""
    frame = mc.parse_cnc_2022(payloads)
    attributes = next((p for p in payloads if p.name.lower().endswith(".dbf")), payloads[0])
    frame["snapshot_id"] = attributes.snapshot_id
    return frame


@dataclass(frozen=True)
class Catastro:
    """One catastro year: its endpoint, how it is walked, what sample stands in for it, its parser."""

    year: int
    endpoint: str
    raw_table: str
    walk: Callable[[Fetcher, str], list[Payload]]
    sample: Path
    sample_request: Callable[[str], FetchRequest]
    parse: Callable[[list[Payload]], gpd.GeoDataFrame]


CATASTROS = (
    Catastro(
        year=2024,
        endpoint="catastro_2024_layer",
        raw_table="minvu_campamentos_2024",
        walk=_walk_2024,
        sample=SAMPLE_DIR / "sample_minvu_catastro_campamentos_2024_featureserver.geojson",
        sample_request=_sample_request_2024,
        parse=_parse_2024,
    ),
    Catastro(
        year=2022,
        endpoint="cnc_2022_shapefile",
        raw_table="minvu_cnc_2022",
        walk=mc.fetch_cnc_2022,
        sample=SAMPLE_DIR / "sample_CNC2022_shp.zip",
        sample_request=_sample_request_2022,
        parse=_parse_2022,
    ),
)


def _walk_at(catastro: Catastro, url: str, fetcher: Fetcher) -> list[Payload]:
    return catastro.walk(fetcher, url)


def settlement_records(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """A parsed catastro as a plain table: geometry as WKB bytes, ids for rows without a folio.

    A settlement without folio (flagged `folio_missing`) gets `<year>-row<n>`, its 1-based
    position in the file, so that every row has a key; no real file so far lacks a folio.
    """
    records = pd.DataFrame(frame.drop(columns="geometry"))
    positions = pd.Series(np.arange(1, len(records) + 1), index=records.index)
    fallback = records["catastro_year"].astype(str) + "-row" + positions.astype(str)
    records["settlement_id"] = records["settlement_id"].where(records["settlement_id"].notna(), fallback)
    records["geometry_wkb"] = [None if g is None or g.is_empty else shapely.to_wkb(g) for g in frame.geometry]
    records["catastro_year"] = records["catastro_year"].astype("int64")
    return records.reset_index(drop=True)


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="MINVU catastro of campamentos: the 2024 GeoIDE FeatureServer layer (ArcGIS paging) and "
    "the 2022 CNC shapefile, each year its own snapshots; raw.minvu_campamentos_2024, raw.minvu_cnc_2022 "
    "and the validated staging.settlements.",
    metadata={
        **table_declaration(
            STAGING_COLUMNS, "raw.minvu_campamentos_2024", "raw.minvu_cnc_2022", "staging.settlements"
        ),
        "source": SOURCE.landing_url,
    },
)
def settlement_catastros(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(SOURCE.id, mc.ENDPOINTS)
    acquirer: Acquirer = sources.acquirer()
    acquired_all: list[Acquired] = []
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    staging_parts = []
    for catastro in CATASTROS:
        url = urls[catastro.endpoint]
        acquired: list[Acquired] = []
        with refusing(warehouse, acquirer, {SOURCE: acquired}):
            acquired += acquirer.acquire_walk(
                SOURCE, partial(_walk_at, catastro, url), catastro.sample, catastro.sample_request(url)
            )
            records = settlement_records(catastro.parse([item.payload for item in acquired]))
        acquired_all += acquired
        tables[("raw", catastro.raw_table)] = records
        staging_parts.append(records)
    metadata = log_acquisitions(context, acquired_all)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired_all}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {SOURCE: acquired_all}):
        staging = pd.concat(staging_parts, ignore_index=True)[list(STAGING_COLUMNS)]
        staging = validate_frame(STAGING_SCHEMA, staging, SOURCE.id)
    tables[("staging", "settlements")] = staging
    counts = publish(warehouse, acquirer, SOURCE, acquired_all, tables)
    per_year = staging.groupby("catastro_year").size()
    return MaterializeResult(
        data_version=source_version(context, acquired_all),
        metadata={
            **metadata,
            **counts,
            **{f"settlements_{year}": int(n) for year, n in per_year.items()},
            "snapshots_by_year": MetadataValue.json(
                {
                    str(year): sorted(set(staging.loc[staging["catastro_year"] == year, "snapshot_id"]))
                    for year in per_year.index
                }
            ),
        },
    )


# --- location against core.territories ----------------------------------------------------------


def territory_polygons(conn, kind: str) -> gpd.GeoDataFrame:
    """Polygons of one kind of territory from core.territories (code, geometry; EPSG:4326)."""
    rows = conn.execute(
        "SELECT code, ST_AsWKB(geometry) FROM core.territories "
        "WHERE kind = ? AND geometry IS NOT NULL ORDER BY code",
        [kind],
    ).fetchall()
    return gpd.GeoDataFrame(
        {"code": [code for code, _ in rows]},
        geometry=gpd.GeoSeries(shapely.from_wkb([_wkb(wkb) for _, wkb in rows]), crs=WGS84),
        crs=WGS84,
    )


def coarsest_level(basins: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Only the coarsest basin level present (DGA codes: 3 digits cuenca, 4 subcuenca, 5 …).

    Nested levels overlap, and a settlement gets a single basin: the cuenca is the one the
    lens compares comunas with.
    """
    if basins.empty:
        return basins
    widths = basins["code"].str.len()
    return basins[widths == widths.min()]


def _wkb(value) -> bytes | None:
    """WKB bytes from a DuckDB BLOB cell (bytes, bytearray or memoryview); None for NULL (NA)."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def locate(staging: pd.DataFrame, comunas: gpd.GeoDataFrame, basins: gpd.GeoDataFrame) -> pd.DataFrame:
    """Staging rows with located_comuna_code, located_basin_code and cut_mismatch.

    Without comuna polygons every location is NULL and cut_mismatch NA (not checkable);
    basins are located whenever basin polygons exist.
    """
    geometries = gpd.GeoSeries(shapely.from_wkb([_wkb(w) for w in staging["geometry_wkb"]]), crs=WGS84)
    settlements = gpd.GeoDataFrame(staging.drop(columns="geometry_wkb"), geometry=geometries, crs=WGS84)
    result = locate_settlements(
        settlements,
        comunas.rename(columns={"code": "comuna_code"}),
        None if basins.empty else basins.rename(columns={"code": "basin_code"}),
    )
    located = pd.DataFrame(result.drop(columns="geometry"))
    for column in ("located_comuna_code", "located_basin_code"):
        located[column] = located[column].astype(object).where(located[column].notna(), None)
    located["geometry_wkb"] = staging["geometry_wkb"]
    return located


LOCATED_SQL = """
SELECT settlement_id, catastro_year, name, comuna_code, households, hectares, hectares_geodesic,
       catastro_origin, source_flag, located_comuna_code, located_basin_code, cut_mismatch, quality_flags,
       ST_GeomFromWKB(geometry_wkb) AS geometry, snapshot_id
FROM _located ORDER BY catastro_year DESC, settlement_id
"""


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[settlement_catastros, *territories.ASSETS],
    description="core.settlements: every settlement of both catastros, located by its polygon against the "
    "comuna and basin polygons of core.territories (cut_mismatch where the attributed CUT disagrees); "
    "also (re)creates marts.settlements_by_comuna and marts.settlement_map.",
    metadata={**table_declaration(CORE_COLUMNS, "core.settlements")},
)
def settlements(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        staging = conn.execute("SELECT * FROM staging.settlements ORDER BY catastro_year, settlement_id").df()
        comunas = territory_polygons(conn, "comuna")
        basins = coarsest_level(territory_polygons(conn, "basin"))
        located = locate(staging, comunas, basins)
        run_script(conn, VIEWS_SQL)
        conn.register("_located", located)
        try:
            write_tables(conn, SOURCE.id, {("core", "settlements"): LOCATED_SQL})
        finally:
            conn.unregister("_located")
    mismatches = int(located["cut_mismatch"].fillna(False).sum())
    metadata = {
        "settlements": len(located),
        "comuna_polygons": len(comunas),
        "basin_polygons": len(basins),
        "cut_mismatches": mismatches,
        "not_located": int(located["cut_mismatch"].isna().sum()),
    }
    if comunas.empty:
        metadata["location_checks"] = "not run: no comuna polygons in core.territories yet"
        context.log.warning("settlements: no comuna polygons in core.territories; location checks not run")
    if basins.empty:
        metadata["basin_location"] = "not run: no basin polygons in core.territories yet"
    return MaterializeResult(metadata=metadata)


# --- indicators -------------------------------------------------------------------------------


def _territory_codes(conn, kind: str) -> list[str]:
    return [
        row[0] for row in conn.execute("SELECT code FROM core.territories WHERE kind = ?", [kind]).fetchall()
    ]


def _population(conn) -> pd.DataFrame:
    """Population by comuna and region and year, as loaded by the health family (may be empty)."""
    return conn.execute(
        """
        SELECT split_part(territory_id, ':', 2) AS territory, TRY_CAST(period AS INTEGER) AS year,
               value AS population, snapshot_id
        FROM core.observations
        WHERE indicator_id = ? AND value IS NOT NULL AND TRY_CAST(period AS INTEGER) IS NOT NULL
          AND (territory_id LIKE 'comuna:%' OR territory_id LIKE 'region:%')
        """,
        [POPULATION_INDICATOR],
    ).df()


def boundary_snapshots(conn) -> dict[str, str]:
    """Basin territory id -> snapshot of its polygon: what a count located by polygon rests on."""
    return dict(
        conn.execute(
            "SELECT territory_id, snapshot_id FROM core.territories "
            "WHERE kind = 'basin' AND geometry IS NOT NULL AND snapshot_id IS NOT NULL"
        ).fetchall()
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[settlements],
    description="Settlement indicators by comuna, region and basin for each catastro year, the change "
    "2022→2024, and households per 1,000 inhabitants where core.observations holds population.",
)
def settlement_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        frame = conn.execute(
            """
            SELECT settlement_id, catastro_year, comuna_code, left(comuna_code, 2) AS region_code,
                   located_basin_code, households, hectares, hectares_geodesic, snapshot_id
            FROM core.settlements
            """
        ).df()
        if frame.empty:
            raise ValidationError(SOURCE.id, "core.settlements is empty: materialize `settlements` first")
        frame["households"] = frame["households"].astype("Int64")
        years = sorted(int(y) for y in frame["catastro_year"].unique())
        snapshots = {int(y): max(group) for y, group in frame.groupby("catastro_year")["snapshot_id"]}
        population = _population(conn)
        levels = {
            "comuna": _territory_codes(conn, "comuna"),
            "region": _territory_codes(conn, "region"),
            "basin": list(coarsest_level(territory_polygons(conn, "basin"))["code"]),
        }
        parts, per_1000 = [], 0
        for level, codes in levels.items():
            if level == "basin" and frame["located_basin_code"].isna().all() and not codes:
                continue
            totals = complete_totals(frame, level, codes, years)
            if totals.empty:
                continue
            rows, rates = observation_rows(totals, snapshots, population)
            parts.append(rows)
            per_1000 += rates
        observations = pd.concat(parts, ignore_index=True)
        observations["inputs"] = observation_lineage(
            observations, frame, population, boundary_snapshots(conn)
        )
        observations["lower"] = np.nan
        observations["upper"] = np.nan
        observations["source_id"] = SOURCE.id
        store.record_indicators(conn, load_indicators(FAMILY))
        written = write_tables(conn, SOURCE.id, {("core", "observations"): observations})["core.observations"]
    metadata = {"observations": written, "catastro_years": MetadataValue.json(years)}
    if population.empty:
        metadata["households_per_1000"] = (
            f"waits for population: no '{POPULATION_INDICATOR}' observations by comuna and year in core.observations"
        )
        context.log.info("settlement_households_per_1000 waits for population")
    else:
        metadata["households_per_1000"] = f"{per_1000} territory-years with population for the catastro year"
    return MaterializeResult(metadata=metadata)


# --- checks -----------------------------------------------------------------------------------


@asset_check(
    asset=settlements,
    description="Every settlement's polygon lies in the comuna its CUT attributes it to (WARN: lists the ones "
    "that do not, and says when no comuna polygons were there to check against).",
)
def settlements_cut_matches_location(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        mismatched = conn.execute(
            """
            SELECT settlement_id, name, comuna_code, located_comuna_code FROM core.settlements
            WHERE cut_mismatch ORDER BY settlement_id
            """
        ).df()
        unchecked = conn.execute(
            "SELECT count(*) FROM core.settlements WHERE cut_mismatch IS NULL"
        ).fetchone()[0]
        polygons = conn.execute(
            "SELECT count(*) FROM core.territories WHERE kind = 'comuna' AND geometry IS NOT NULL"
        ).fetchone()[0]
    metadata = {
        "mismatches": len(mismatched),
        "not_checkable": unchecked,
        "mismatched_settlements": MetadataValue.json(mismatched.to_dict("records")),
    }
    if polygons == 0:
        metadata["note"] = "no comuna polygons in core.territories: nothing was checked"
    return AssetCheckResult(
        passed=mismatched.empty and polygons > 0, severity=AssetCheckSeverity.WARN, metadata=metadata
    )


@asset_check(
    asset=settlements,
    description="Settlements whose geometry was repaired or is missing, or whose folio repeats or is missing "
    "(WARN: they are kept and counted; the list says which).",
)
def settlements_quality_flags(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        flagged = conn.execute(
            """
            SELECT settlement_id, name, comuna_code, quality_flags FROM core.settlements
            WHERE quality_flags IS NOT NULL ORDER BY settlement_id
            """
        ).df()
    counts = (
        flagged["quality_flags"].str.split(";").explode().value_counts().to_dict() if len(flagged) else {}
    )
    return AssetCheckResult(
        passed=flagged.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "flagged": len(flagged),
            "by_flag": MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "flagged_settlements": MetadataValue.json(flagged.to_dict("records")),
        },
    )


@asset_check(
    asset=settlements,
    description="Published hectares behave as Web Mercator areas: geodesic ≈ published × cos²(latitude) "
    f"within {AREA_RATIO_TOLERANCE:.0%} (WARN: lists the settlements where the two areas disagree).",
)
def settlement_areas_consistent(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            SELECT settlement_id, name, hectares, hectares_geodesic,
                   hectares_geodesic / (hectares * cos(radians(ST_Y(ST_PointOnSurface(geometry)))) ^ 2) AS ratio
            FROM core.settlements
            WHERE geometry IS NOT NULL AND hectares > 0
            """
        ).df()
    outliers = frame[(frame["ratio"] - 1).abs() > AREA_RATIO_TOLERANCE].sort_values("settlement_id")
    return AssetCheckResult(
        passed=outliers.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "compared": len(frame),
            "outliers": len(outliers),
            "median_ratio": float(frame["ratio"].median()) if len(frame) else None,
            "outlier_settlements": MetadataValue.json(outliers.round(4).to_dict("records")),
        },
    )


@asset_check(
    asset=settlement_observations,
    description="Every territory the settlement indicators name exists in core.territories.",
)
def settlement_territories_known(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        unknown = conn.execute(
            """
            SELECT DISTINCT o.territory_id FROM core.observations o
            LEFT JOIN core.territories t USING (territory_id)
            WHERE o.source_id = ? AND t.territory_id IS NULL ORDER BY 1
            """,
            [SOURCE.id],
        ).fetchall()
    return AssetCheckResult(
        passed=not unknown,
        severity=AssetCheckSeverity.WARN,
        metadata={"unknown_territories": len(unknown), "examples": [r[0] for r in unknown[:20]]},
    )


# --- job, schedule and change check -------------------------------------------------------------

settlements_job = refresh_job(
    "settlements_refresh",
    [settlement_catastros, settlements, settlement_observations],
    "MINVU's two catastros",
)
# Catastros come at most yearly (2011, 2019, 2022, 2024): one refresh a year. An update in
# between is caught by the cheap change check ops own (`settlements_upstream_changes` in
# pipelines/ops.py: the layer's editingInfo.lastEditDate, conditional GETs for the CNC files).
settlements_schedule = refresh_schedule(
    settlements_job, "0 6 1 7 *", "settlements_yearly", "catastros come at most yearly"
)


ASSETS = [settlement_catastros, settlements, settlement_observations]
CHECKS = [
    settlements_cut_matches_location,
    settlements_quality_flags,
    settlement_areas_consistent,
    settlement_territories_known,
]
JOBS = [settlements_job]
SCHEDULES = [settlements_schedule]
OBSERVATION_ASSETS = [settlement_observations]
