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
import pandera.pandas as pa
import shapely
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)

from pipelines import gates, territories
from pipelines.ingest import (
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    refusing,
    table_declaration,
    validate_frame,
    write_tables,
)
from pipelines.resources import SourcesResource, WarehouseResource
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
from sources.settlements import (
    TOTAL_COLUMNS,
    catastro_change,
    households_per_1000,
    locate_settlements,
    settlement_totals,
)
from warehouse import store
from warehouse.db import SQL_DIR, run_script

FAMILY = "settlements"
SOURCE = mc.SOURCE
SAMPLE_DIR = SAMPLES_DIR / "campamentos"
VIEWS_SQL = SQL_DIR / "views" / "40_settlements.sql"
PAGE_SIZE = 1000
CATASTRO_YEARS = (2022, 2024)
POPULATION_INDICATOR = "population"  # loaded by the health family, by comuna and year
KNOWN_FLAGS = frozenset({"geometry_missing", "geometry_repaired", "folio_repeated", "folio_missing"})
# Largest campamentos hold a few thousand households on tens of hectares: beyond these
# bounds a value is more likely a unit change or a typo than a settlement.
MAX_HOUSEHOLDS = 20_000
MAX_HECTARES = 2_000.0
# Geodesic / (published × cos² latitude) should be 1 when HECTAREAS is Web Mercator area.
AREA_RATIO_TOLERANCE = 0.1


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


def _flags_known(flags: pd.Series) -> pd.Series:
    return flags.str.split(";").map(lambda parts: set(parts) <= KNOWN_FLAGS)


STAGING_COLUMNS = {
    "settlement_id": "VARCHAR: '<catastro_year>-<folio>' ('-2' … for a folio repeated in one file)",
    "catastro_year": "BIGINT: 2024 (GeoIDE update) or 2022 (CNC)",
    "folio": "VARCHAR: MINVU folio",
    "name": "VARCHAR: settlement name",
    "comuna_code": "VARCHAR: 5-digit CUT as the catastro attributes it",
    "region_code": "VARCHAR: 2-digit region CUT",
    "households": "BIGINT: N_HOG (0 is a count, NULL unknown)",
    "hectares": "DOUBLE: area as published (planar Web Mercator, inflated by 1/cos² latitude)",
    "hectares_geodesic": "DOUBLE: true ground area of the polygon (equal-area CRS)",
    "catastro_origin": "VARCHAR: AN_CAT, the catastro that first listed it",
    "source_flag": "VARCHAR: FUENTE, who reported it",
    "observations": "VARCHAR: OBS",
    "quality_flags": "VARCHAR: ';'-joined geometry_missing, geometry_repaired, folio_repeated, folio_missing",
    "geometry_wkb": "BLOB: polygon as WKB, EPSG:4326 (NULL when missing or empty)",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload the row came from",
}

STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "settlement_id": pa.Column(str, unique=True),
        "catastro_year": pa.Column("int64", pa.Check.isin(CATASTRO_YEARS)),
        "folio": pa.Column(str, pa.Check.str_matches(r"^\d+$"), nullable=True),
        "name": pa.Column(str, nullable=True),
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "region_code": pa.Column(str, pa.Check.str_matches(r"^\d{2}$")),
        "households": pa.Column("Int64", pa.Check.in_range(0, MAX_HOUSEHOLDS), nullable=True),
        "hectares": pa.Column(float, pa.Check.in_range(0, MAX_HECTARES), nullable=True),
        "hectares_geodesic": pa.Column(float, pa.Check.in_range(0, MAX_HECTARES), nullable=True),
        "quality_flags": pa.Column(str, pa.Check(_flags_known, error="unknown quality flag"), nullable=True),
        "geometry_wkb": pa.Column(object, nullable=True),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda frame: frame["comuna_code"].str[:2] == frame["region_code"],
            error="region_code is not the comuna code's first two digits",
        )
    ],
    strict=False,
    coerce=False,
)


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
    with refusing(warehouse, acquirer, {SOURCE: acquired_all}):
        staging = pd.concat(staging_parts, ignore_index=True)[list(STAGING_COLUMNS)]
        staging = validate_frame(STAGING_SCHEMA, staging, SOURCE.id)
    tables[("staging", "settlements")] = staging
    counts = publish(warehouse, acquirer, SOURCE, acquired_all, tables)
    per_year = staging.groupby("catastro_year").size()
    return MaterializeResult(
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
        }
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


CORE_COLUMNS = {
    "settlement_id": "VARCHAR: '<catastro_year>-<folio>'",
    "catastro_year": "INTEGER: 2024 or 2022",
    "name": "VARCHAR: settlement name",
    "comuna_code": "VARCHAR: 5-digit CUT as the catastro attributes it",
    "households": "BIGINT: households (N_HOG)",
    "hectares": "DOUBLE: area as MINVU publishes it (planar Web Mercator, inflated)",
    "hectares_geodesic": "DOUBLE: true ground area of the polygon",
    "catastro_origin": "VARCHAR: AN_CAT",
    "source_flag": "VARCHAR: FUENTE",
    "located_comuna_code": "VARCHAR: comuna polygon holding the settlement's representative point",
    "located_basin_code": "VARCHAR: basin polygon (coarsest level) holding it",
    "cut_mismatch": "BOOLEAN: attributed CUT differs from the location; NULL when not checkable",
    "quality_flags": "VARCHAR: geometry_missing, geometry_repaired, folio_repeated, folio_missing",
    "geometry": "GEOMETRY: polygon, EPSG:4326",
    "snapshot_id": "VARCHAR: snapshot the row came from",
}


# core.settlements keeps its DDL (40_settlements.sql): refilled, not replaced. Single settlements are
# edited upstream all the time; the counts of settlements and households per catastro year and region
# are judged against the last accepted catastro instead.
_PER_REGION = {"year": "catastro_year", "region": "left(comuna_code, 2)"}
SETTLEMENT_TOTALS = (
    gates.Aggregate("settlements per catastro year and region", by=_PER_REGION, value="1"),
    gates.Aggregate(
        "households per catastro year and region", by=_PER_REGION, value="coalesce(households, 0)"
    ),
)
gates.declare(
    "core.settlements", gates.TableGates(keys=("settlement_id",), aggregates=SETTLEMENT_TOTALS, refill=True)
)
gates.declare("staging.settlements", gates.TableGates(keys=("settlement_id",), aggregates=SETTLEMENT_TOTALS))
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


def complete_totals(
    settlements_frame: pd.DataFrame, level: str, known_codes: list[str], years: list[int]
) -> pd.DataFrame:
    """`settlement_totals` plus zero rows for known territories with no settlement in a year.

    A catastro is national: a comuna, region or basin it does not list had none counted.
    Also adds `without_polygon`, the settlements whose area the geodesic sum lacks.
    """
    totals = settlement_totals(settlements_frame, level)
    key = {"comuna": "comuna_code", "region": "region_code", "basin": "located_basin_code"}[level]
    missing_polygon = (
        settlements_frame.assign(without_polygon=settlements_frame["hectares_geodesic"].isna())
        .groupby([key, "catastro_year"])["without_polygon"]
        .sum()
        .rename_axis(["territory_code", "catastro_year"])
        .reset_index()
    )
    totals = totals.merge(missing_polygon, on=["territory_code", "catastro_year"], how="left")
    present = set(zip(totals["territory_code"], totals["catastro_year"], strict=True))
    zeros = [
        {
            "territory_level": level,
            "territory_code": code,
            "catastro_year": year,
            "settlements": 0,
            "households": 0,
            "settlements_without_households": 0,
            "area_ha": 0.0,
            "area_ha_geodesic": 0.0,
            "without_polygon": 0,
        }
        for code in known_codes
        for year in years
        if (code, year) not in present
    ]
    if zeros:
        totals = pd.concat([totals, pd.DataFrame(zeros)], ignore_index=True)
    totals["households"] = totals["households"].astype("Int64")
    totals["without_polygon"] = totals["without_polygon"].fillna(0).astype("int64")
    return totals.sort_values(["territory_code", "catastro_year"], ignore_index=True)


def _flag(parts: list[str]) -> str | None:
    return "; ".join(part for part in parts if part) or None


def observation_rows(
    totals: pd.DataFrame, snapshots: dict[int, str], population: pd.DataFrame | None
) -> tuple[pd.DataFrame, int]:
    """core.observations rows for one territory level; also the number of per-1,000 rows."""
    rows = []
    level = totals["territory_level"].iloc[0]
    located_note = "located by polygon; settlements without polygon not counted" if level == "basin" else ""
    for t in totals.itertuples(index=False):
        territory = f"{level}:{t.territory_code}"
        period, snapshot = str(t.catastro_year), snapshots[t.catastro_year]
        missing_households = (
            f"{t.settlements_without_households} settlements without household count"
            if t.settlements_without_households
            else ""
        )
        no_polygon = (
            f"{t.without_polygon} settlements without polygon (area not counted)" if t.without_polygon else ""
        )
        values = [
            ("settlements_count", t.settlements, located_note or None),
            (
                "settlement_households",
                None if pd.isna(t.households) else t.households,
                _flag([located_note, missing_households]),
            ),
            ("settlement_area_ha_geodesic", t.area_ha_geodesic, _flag([located_note, no_polygon])),
            ("settlement_area_ha_published", t.area_ha, located_note or None),
        ]
        for indicator, value, flag in values:
            rows.append((indicator, territory, period, value, flag or None, snapshot))
    if set(CATASTRO_YEARS) <= set(totals["catastro_year"]):
        change = catastro_change(totals[TOTAL_COLUMNS], *CATASTRO_YEARS)
        period = f"{CATASTRO_YEARS[0]}-{CATASTRO_YEARS[1]}"
        for c in change.itertuples(index=False):
            territory = f"{level}:{c.territory_code}"
            snapshot = snapshots[CATASTRO_YEARS[1]]
            rows.append(
                (
                    "settlements_count_change",
                    territory,
                    period,
                    c.settlements_change,
                    located_note or None,
                    snapshot,
                )
            )
            households = None if pd.isna(c.households_change) else c.households_change
            rows.append(
                (
                    "settlement_households_change",
                    territory,
                    period,
                    households,
                    located_note or None,
                    snapshot,
                )
            )
    rates = households_per_1000(totals[TOTAL_COLUMNS], population) if level != "basin" else None
    per_1000 = 0
    if rates is not None and not rates.empty:
        without_households = totals.set_index(["territory_code", "catastro_year"])[
            "settlements_without_households"
        ]
        for r in rates.itertuples(index=False):
            missing = int(without_households.get((r.territory_code, r.catastro_year), 0))
            rows.append(
                (
                    "settlement_households_per_1000",
                    f"{level}:{r.territory_code}",
                    str(r.catastro_year),
                    r.households_per_1000_inhabitants,
                    f"{missing} settlements without household count (a lower bound)" if missing else None,
                    snapshots[r.catastro_year],
                )
            )
        per_1000 = len(rates)
    frame = pd.DataFrame(
        rows, columns=["indicator_id", "territory_id", "period", "value", "flag", "snapshot_id"]
    )
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype("float64")
    return frame, per_1000


def boundary_snapshots(conn) -> dict[str, str]:
    """Basin territory id -> snapshot of its polygon: what a count located by polygon rests on."""
    return dict(
        conn.execute(
            "SELECT territory_id, snapshot_id FROM core.territories "
            "WHERE kind = 'basin' AND geometry IS NOT NULL AND snapshot_id IS NOT NULL"
        ).fetchall()
    )


def observation_lineage(
    observations: pd.DataFrame,
    settlements_frame: pd.DataFrame,
    population: pd.DataFrame,
    boundaries: dict[str, str] | None = None,
) -> list[list[tuple[str, str]]]:
    """Every snapshot each observation was computed from: the catastro year's payloads (both
    years' for a change), for the per-1,000 rate the population value under it, and for a basin
    (located by polygon, not by the catastro's attribution) the snapshot of its `boundaries`."""
    boundaries = boundaries or {}
    by_year = {
        str(int(y)): sorted(set(group))
        for y, group in settlements_frame.groupby("catastro_year")["snapshot_id"]
    }
    people = (
        {
            (f"{'comuna' if len(str(t)) == 5 else 'region'}:{t}", str(int(y))): snapshot
            for t, y, snapshot in population[["territory", "year", "snapshot_id"]].itertuples(index=False)
        }
        if not population.empty
        else {}
    )
    lineage = []
    for indicator, territory, period in observations[["indicator_id", "territory_id", "period"]].itertuples(
        index=False
    ):
        years = period.split("-") if "-" in period else [period]
        if indicator == "settlement_households_per_1000":
            inputs = [("numerator", s) for s in by_year.get(period, [])]
            inputs += [("denominator", people[(territory, period)])] if (territory, period) in people else []
        else:
            inputs = [("value", s) for year in years for s in by_year.get(year, [])]
        if territory in boundaries:
            inputs.append(("boundary", boundaries[territory]))
        lineage.append(sorted(set(inputs)))
    return lineage


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

settlements_job = define_asset_job(
    "settlements_refresh", selection=[settlement_catastros, settlements, settlement_observations]
)
# Catastros come at most yearly (2011, 2019, 2022, 2024): one refresh a year. An update in
# between is caught by the cheap change check ops own (`settlements_upstream_changes` in
# pipelines/ops.py: the layer's editingInfo.lastEditDate, conditional GETs for the CNC files).
settlements_schedule = ScheduleDefinition(
    job=settlements_job, cron_schedule="0 6 1 7 *", name="settlements_yearly"
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
