"""Territories family: the places every observation belongs to, with their polygons.

- `ine_comuna_boundaries`: the INE Censo 2024 comuna layer, paged through ArcGIS as one unit
  (live, else the earlier live walk, else the SAMPLE layer) -> raw.ine_comunas (attributes
  as published) and staging.ine_comunas (validated comuna frame, polygons as WKB).
- `bna_basin_boundaries`: the DGA BNA basin zip(s) -> staging.bna_basins.
- `territories`: core.territories (country, regions with their OECD codes, provinces,
  comunas, basins and any sub-basins, the OECD area, unknown residence), their aliases,
  core.territory_overlap_areas (comuna x basin) and the views of 10_territories.sql.

Without staged boundaries `territories` still writes the reference places, so a family that
only needs regions works on its own. `load_resolver` is for other families; points are placed by `warehouse.places.locate_point`.
"""

import hashlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import geopandas as gpd
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

from pipelines import gates
from pipelines.crosswalk_report import crosswalk_summary
from pipelines.ingest import (
    derived_writer,
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
from pipelines.territory_tables import (
    BASIN_COLUMNS,
    BASIN_SCHEMA,
    COMUNA_COLUMNS,
    COMUNA_SCHEMA,
    OWNED_KINDS,
    SHARE_TOLERANCE,
    TERRITORY_COLUMNS,
    TerritoryTables,
    build_territories,
)
from sources import arcgis, dga_basins, ine_territories
from sources.acquire import SAMPLES_DIR, Acquired
from sources.base import FetchError, is_missing, normalize_cut
from sources.endpoints import EndpointError, endpoint, endpoints
from sources.geometry import WGS84
from sources.territory_resolver import (
    TerritoryResolver,
)
from warehouse.db import SQL_DIR, run_script, table_name

FAMILY = "territories"
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = SAMPLES_DIR / "boundaries"
INE_SAMPLE = SAMPLE_DIR / "SAMPLE_ine_censo2024_comunas.geojson"
BASIN_SAMPLES = {"cuenca": SAMPLE_DIR / dga_basins.SAMPLE_ARCHIVE_NAME}
VIEWS_SQL = SQL_DIR / "views" / "10_territories.sql"

INE_PAGE_SIZE = 100  # comunas per ArcGIS page: full-resolution polygons make large pages
INE_WALK_NAME = "ine-censo2024-comunas"  # the request name sources.ine_territories gives the pages
LEGACY_ALIAS_SCHEMES = ("name",)  # region names were filed under 'name' before kinds had schemes

AREA_TOLERANCE = 0.01  # comuna areas must add up to their region's area within 1 %
# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas".
EXPECTED_COMUNAS = {"region:02": 9}


# --- staging: the validated frames of each source (declared in pipelines.territory_tables) ------


def _text(value) -> str | None:
    """Text or None; pandas' NA and NaN count as missing too."""
    if value is pd.NA or is_missing(value):
        return None
    return str(value)


def to_staging(frame: gpd.GeoDataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A parsed GeoDataFrame as a plain frame for DuckDB: text as str/None, polygons as WKB bytes."""
    plain = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    for column in plain.columns:
        if plain[column].dtype == object or isinstance(plain[column].dtype, pd.StringDtype):
            plain[column] = plain[column].map(_text).astype(object)
    plain["geometry_wkb"] = list(shapely.to_wkb(frame.geometry.to_numpy()))
    return plain[[c for c in columns if c in plain.columns]]


def from_staging(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """The inverse of `to_staging`: polygons back from WKB, EPSG:4326."""
    plain = frame.drop(columns="geometry_wkb")
    shapes = shapely.from_wkb([bytes(v) for v in frame["geometry_wkb"]])
    return gpd.GeoDataFrame(plain, geometry=gpd.GeoSeries(shapes, index=frame.index, crs=WGS84), crs=WGS84)


def parse_ine_pages(pages: Sequence[tuple[bytes, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw attributes, staging comunas) from the (content, snapshot id) of every page of one walk.

    Each comuna is tagged with the snapshot of the page that held it.
    """
    source = ine_territories.SOURCE.id
    documents = [arcgis.parse_page(source, content, snapshot) for content, snapshot in pages]
    comunas = ine_territories.parse_comuna_pages(documents, pages[-1][1])
    raw_frames, page_of = [], {}
    for document, (_, snapshot) in zip(documents, pages, strict=True):
        attributes = pd.DataFrame([feature.get("properties") or {} for feature in document["features"]])
        attributes["snapshot_id"] = snapshot
        raw_frames.append(attributes)
        page_of.update({normalize_cut(code): snapshot for code in attributes.get("CUT", [])})
    raw = pd.concat(raw_frames, ignore_index=True)
    for column in raw.select_dtypes(include="object").columns:
        raw[column] = raw[column].map(_text).astype(object)
    staging = to_staging(comunas, COMUNA_COLUMNS)
    staging["snapshot_id"] = staging["comuna_code"].map(page_of)
    return raw, staging[list(COMUNA_COLUMNS)]


def parse_basin_archives(archives: dict[str, tuple[bytes, str]]) -> pd.DataFrame:
    """Staging basins from {level: (zip content, snapshot id)}."""
    frames = []
    for level, (content, snapshot) in archives.items():
        basins = dga_basins.parse_basins(content, level, snapshot)
        basins["snapshot_id"] = snapshot
        frames.append(to_staging(basins, BASIN_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(BASIN_COLUMNS)]


def basin_endpoints() -> dict[str, str]:
    """The cuencas zip, plus the subcuencas/subsubcuencas zips when configured (no verified default URL)."""
    urls = endpoints(dga_basins.SOURCE.id, dga_basins.ENDPOINTS)
    for level in dga_basins.LEVELS.values():
        if level.endpoint in urls:
            continue
        try:
            urls[level.endpoint] = endpoint(dga_basins.SOURCE.id, level.endpoint, {})
        except EndpointError as exc:
            if "has no endpoint named" not in str(exc):  # configured, but not allowed: say so
                raise
    return urls


def staged(conn: duckdb.DuckDBPyConnection, table: str) -> gpd.GeoDataFrame | None:
    """A staging table of this family as a GeoDataFrame, or None before its first load."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging' AND table_name = ?",
        [table],
    ).fetchone()[0]
    if not exists:
        return None
    return from_staging(conn.execute(f"SELECT * FROM {table_name('staging', table)}").df())  # noqa: S608


# What the value gates judge (pipelines.gates): how many places of each kind, their areas, the
# aliases of each scheme and the comuna x basin shares, against the last accepted ones. The
# tables keep their DDL (schema.sql, 10_territories.sql): refilled, not replaced.
gates.declare(
    "core.territories",
    gates.TableGates(
        keys=("territory_id",),
        values=("area_km2",),
        group="kind",
        refill=True,
        aggregates=(gates.Aggregate("places per kind", by={"kind": "kind"}, value="1", group="kind"),),
    ),
)
gates.declare(
    "core.territory_aliases",
    gates.TableGates(
        keys=("scheme", "alias"),
        refill=True,
        aggregates=(
            gates.Aggregate("aliases per scheme", by={"scheme": "scheme"}, value="1", group="scheme"),
        ),
    ),
)
gates.declare(
    "core.territory_overlap_areas",
    gates.TableGates(
        keys=("comuna_id", "basin_id"), values=("share_of_comuna", "share_of_basin"), refill=True
    ),
)
TERRITORIES_SQL = """
SELECT territory_id, kind, code, name, parent_id, area_km2, ST_GeomFromWKB(geometry_wkb::BLOB) AS geometry,
       snapshot_id
FROM _territories
"""


def write_territories(conn: duckdb.DuckDBPyConnection, tables: TerritoryTables) -> None:
    """Replace this family's places, aliases and overlaps (inside the caller's transaction).

    Places of other kinds (added by other families) stay; aliases of this family's schemes are
    rewritten, and aliases left pointing at no territory are removed. Everything goes through
    the gated write path as whole tables: the kept rows and the new ones.
    """
    run_script(conn, VIEWS_SQL)  # declares core.territory_overlap_areas and the views over it
    places = pd.DataFrame(tables.places.drop(columns="geometry"))
    places["geometry_wkb"] = [None if g is None else shapely.to_wkb(g) for g in tables.places.geometry]
    kept = conn.execute(
        "SELECT territory_id, kind, code, name, parent_id, area_km2, ST_AsWKB(geometry) AS geometry_wkb, "
        "snapshot_id FROM core.territories "
        "WHERE kind NOT IN (SELECT unnest(?)) AND territory_id NOT IN (SELECT unnest(?))",
        [list(OWNED_KINDS), places["territory_id"].tolist()],
    ).df()
    places = pd.concat([kept, places[kept.columns]], ignore_index=True) if len(kept) else places
    schemes = sorted({*tables.aliases["scheme"], *LEGACY_ALIAS_SCHEMES})
    other_aliases = conn.execute(
        "SELECT territory_id, scheme, alias FROM core.territory_aliases WHERE scheme NOT IN (SELECT unnest(?)) "
        "AND territory_id IN (SELECT unnest(?))",
        [schemes, places["territory_id"].tolist()],
    ).df()
    aliases = pd.concat(
        [other_aliases, tables.aliases[["territory_id", "scheme", "alias"]]], ignore_index=True
    )
    overlaps = tables.overlaps[
        ["comuna_id", "basin_id", "basin_kind", "overlap_km2", "share_of_comuna", "share_of_basin"]
    ]
    conn.register("_territories", places)
    try:
        write_tables(
            conn,
            FAMILY,
            {
                ("core", "territories"): TERRITORIES_SQL,
                ("core", "territory_aliases"): aliases,
                ("core", "territory_overlap_areas"): overlaps,
            },
            snapshot_ids=sorted(places["snapshot_id"].dropna().unique()),
        )
    finally:
        conn.unregister("_territories")


# --- for other families --------------------------------------------------------------------------


def load_resolver(conn: duckdb.DuckDBPyConnection, source: str = "territories") -> TerritoryResolver:
    """The territory resolver over core.territories and core.territory_aliases, for mapping a source's codes."""
    places = conn.execute(
        "SELECT territory_id AS id, kind, code, name, parent_id FROM core.territories ORDER BY territory_id"
    ).df()
    aliases = conn.execute("SELECT territory_id, scheme, alias FROM core.territory_aliases ORDER BY ALL").df()
    return TerritoryResolver(places, aliases, source=source)


# --- the committed crosswalk of the SAMPLE boundaries ---------------------------------------------

CROSSWALK_SUMMARY = REPO_ROOT / "docs" / "crosswalk_summary.md"


def sample_inputs() -> list[Path]:
    return [INE_SAMPLE, BASIN_SAMPLES["cuenca"]]


def sample_tables() -> TerritoryTables:
    """The territory tables the offline run builds, from the shipped SAMPLE inputs alone (no warehouse)."""
    _, comunas = parse_ine_pages([(INE_SAMPLE.read_bytes(), INE_SAMPLE.name)])
    basins = parse_basin_archives(
        {"cuenca": (BASIN_SAMPLES["cuenca"].read_bytes(), BASIN_SAMPLES["cuenca"].name)}
    )
    return build_territories(from_staging(comunas), from_staging(basins))


def sample_crosswalk_summary() -> str:
    inputs = [
        f"`{path.relative_to(REPO_ROOT)}` (sha256 `{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}`)"
        for path in sample_inputs()
    ]
    heading = "Comuna × basin crosswalk of the SAMPLE boundaries"
    body = crosswalk_summary(sample_tables(), heading, inputs)
    note = (
        "Generated by `.venv/bin/python -m pipelines.territories` from the SAMPLE inputs below: "
        "invented rough polygons, not INE or DGA boundaries. Do not edit by hand; "
        "`tests/pipelines/test_territories.py` regenerates it and fails on any difference.\n\n"
    )
    title, rest = body.split("\n", 1)
    return f"{title}\n\n{note}{rest.lstrip()}"


# --- assets ---------------------------------------------------------------------------------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="INE Censo 2024 comuna polygons (FeatureServer layer 0, paged): raw.ine_comunas (attributes "
    "as published) and staging.ine_comunas (validated comunas, WKB polygons).",
    metadata={
        **table_declaration(COMUNA_COLUMNS, "staging.ine_comunas"),
        "source": ine_territories.SOURCE.landing_url,
    },
)
def ine_comuna_boundaries(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    source = ine_territories.SOURCE
    featureserver = endpoints(source.id, ine_territories.ENDPOINTS)["censo2024_featureserver"]
    first_page = arcgis.query_request(
        ine_territories.layer_url(featureserver), 0, INE_PAGE_SIZE, INE_WALK_NAME
    )
    acquirer = sources.acquirer()

    def walk(fetcher):
        return [
            p for p, _ in ine_territories.fetch_comuna_pages(fetcher, featureserver, page_size=INE_PAGE_SIZE)
        ]

    with refusing(warehouse, acquirer, {source: []}):  # an ArcGIS error answered with HTTP 200
        acquired = acquirer.acquire_walk(source, walk, INE_SAMPLE, first_page)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {source: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {source: acquired}):
        raw, staging = parse_ine_pages([(a.payload.content, a.payload.snapshot_id) for a in acquired])
        staging = validate_frame(COMUNA_SCHEMA, staging, source.id)
    repaired = staging.loc[staging["geometry_repaired"], "comuna_code"].tolist()
    if repaired:
        context.log.warning(f"{source.id}: repaired invalid polygons of comunas {repaired}")
    counts = publish(
        warehouse,
        acquirer,
        source,
        acquired,
        {("raw", "ine_comunas"): raw, ("staging", "ine_comunas"): staging},
    )
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "pages": len(acquired), "repaired": MetadataValue.json(repaired)},
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="DGA BNA basin polygons (cuencas; subcuencas/subsubcuencas when their zips are configured): "
    "staging.bna_basins.",
    metadata={
        **table_declaration(BASIN_COLUMNS, "staging.bna_basins"),
        "source": dga_basins.SOURCE.landing_url,
    },
)
def bna_basin_boundaries(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    source = dga_basins.SOURCE
    levels = {f"bna-{spec.endpoint}": level for level, spec in dga_basins.LEVELS.items()}
    acquirer = sources.acquirer()
    acquired: dict[str, Acquired] = {}
    for request in dga_basins.basin_requests(basin_endpoints()):
        level = levels[request.name]
        try:
            acquired[level] = acquirer.acquire(source, request, BASIN_SAMPLES.get(level))
        except FetchError as exc:
            if level == "cuenca":
                raise
            context.log.warning(f"{source.id} {request.name}: {exc}; the {level} level is left out")
    items = list(acquired.values())
    metadata = log_acquisitions(context, items)
    if (same := unchanged(context, warehouse, acquirer, {source: items}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {source: items}):
        archives = {level: (a.payload.content, a.payload.snapshot_id) for level, a in acquired.items()}
        staging = validate_frame(BASIN_SCHEMA, parse_basin_archives(archives), source.id)
    counts = publish(warehouse, acquirer, source, items, {("staging", "bna_basins"): staging})
    return MaterializeResult(
        data_version=source_version(context, items),
        metadata={**metadata, **counts, "levels": MetadataValue.json(sorted(acquired))},
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[ine_comuna_boundaries, bna_basin_boundaries],
    description="core.territories (reference places, provinces, comunas, basins with polygons), "
    "core.territory_aliases, core.territory_overlap_areas and the views of 10_territories.sql.",
    metadata={**table_declaration(TERRITORY_COLUMNS, "core.territories")},
)
def territories(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, FAMILY) as conn:
        comunas, basins = staged(conn, "ine_comunas"), staged(conn, "bna_basins")
        if comunas is None:
            context.log.warning("no staged comuna polygons: writing the reference places only")
        tables = build_territories(comunas, basins)
        write_territories(conn, tables)
    if tables.ambiguous_aliases:
        context.log.warning(f"aliases naming several territories, left out: {tables.ambiguous_aliases}")
    snapshots = sorted(tables.places["snapshot_id"].dropna().unique())
    summary = crosswalk_summary(tables, "Comuna × basin crosswalk", [f"snapshot `{s}`" for s in snapshots])
    return MaterializeResult(
        metadata={
            "territories": MetadataValue.json(tables.places["kind"].value_counts().sort_index().to_dict()),
            "aliases": len(tables.aliases),
            "overlaps": len(tables.overlaps),
            "ambiguous_aliases": MetadataValue.json([list(a) for a in tables.ambiguous_aliases]),
            "crosswalk_summary": MetadataValue.md(summary),
        }
    )


# --- checks ---------------------------------------------------------------------------------------


@asset_check(
    asset=territories,
    description="Every polygon is valid; the official comunas without a polygon yet are listed (a comuna "
    "without a polygon is still a comuna, and the lens says which lack geometry).",
)
def territory_geometries_valid(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        bad = conn.execute(
            "SELECT territory_id FROM core.territories WHERE geometry IS NOT NULL AND NOT ST_IsValid(geometry) "
            "ORDER BY 1"
        ).fetchall()
        missing = conn.execute(
            "SELECT territory_id FROM core.territories WHERE kind = 'comuna' AND geometry IS NULL ORDER BY 1"
        ).fetchall()
    return AssetCheckResult(
        passed=not bad,
        metadata={
            "invalid": [r[0] for r in bad],
            "comunas_without_polygon": len(missing),
            "examples_without_polygon": [r[0] for r in missing[:20]],
        },
    )


@asset_check(asset=territories, description="Region 02 (Antofagasta) has exactly its 9 comunas.")
def territory_region_comuna_counts(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        found = dict(
            conn.execute(
                "SELECT region_id, count(*) FROM marts.territory_lineage WHERE kind = 'comuna' GROUP BY 1"
            ).fetchall()
        )
    wrong = {
        region: found.get(region, 0) for region, n in EXPECTED_COMUNAS.items() if found.get(region, 0) != n
    }
    return AssetCheckResult(passed=not wrong, metadata={"expected": EXPECTED_COMUNAS, "wrong_counts": wrong})


@asset_check(
    asset=territories,
    description="Comuna areas add up to their region's area within 1 % (no overlapping comunas).",
)
def territory_region_areas_add_up(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        rows = conn.execute(
            """
            SELECT r.territory_id, r.area_km2, sum(c.area_km2) AS comunas_km2
            FROM core.territories r
            JOIN marts.territory_lineage l ON l.region_id = r.territory_id AND l.kind = 'comuna'
            JOIN core.territories c ON c.territory_id = l.territory_id
            WHERE r.kind = 'region' AND r.area_km2 IS NOT NULL
            GROUP BY ALL ORDER BY 1
            """
        ).fetchall()
    off = {
        tid: round(total / area - 1, 5) for tid, area, total in rows if abs(total / area - 1) > AREA_TOLERANCE
    }
    return AssetCheckResult(
        passed=not off,
        severity=AssetCheckSeverity.ERROR,
        metadata={"regions_checked": len(rows), "relative_gap": off},
    )


@asset_check(asset=territories, description="Every comuna has a parent province, and that province a region.")
def territory_comunas_have_parents(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        orphans = conn.execute(
            """
            SELECT territory_id FROM marts.territory_lineage
            WHERE kind = 'comuna' AND (province_id IS NULL OR region_id IS NULL OR parent_id <> province_id)
            ORDER BY 1
            """
        ).fetchall()
    return AssetCheckResult(
        passed=not orphans, metadata={"without_province_or_region": [r[0] for r in orphans]}
    )


@asset_check(
    asset=territories, description="A comuna's shares over the basins of one level sum to at most 1."
)
def territory_overlap_shares_bounded(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        over = conn.execute(
            """
            SELECT comuna_id, basin_kind, round(sum(share_of_comuna), 6) AS total
            FROM core.territory_overlap_areas GROUP BY ALL HAVING sum(share_of_comuna) > 1 + ? ORDER BY 1, 2
            """,
            [SHARE_TOLERANCE],
        ).fetchall()
    return AssetCheckResult(passed=not over, metadata={"over_one": [list(r) for r in over]})


territories_job = refresh_job(
    "territories_refresh",
    [ine_comuna_boundaries, bna_basin_boundaries, territories],
    "INE's comuna layer and DGA's basin polygons",
)
# The layers change about once a year; a monthly look is cheap (unchanged zips answer 304).
territories_schedule = refresh_schedule(
    territories_job,
    "0 5 1 * *",
    "territories_monthly",
    "the layers change about once a year; unchanged zips answer 304",
)

ASSETS = [ine_comuna_boundaries, bna_basin_boundaries, territories]
CHECKS = [
    territory_geometries_valid,
    territory_region_comuna_counts,
    territory_region_areas_add_up,
    territory_comunas_have_parents,
    territory_overlap_shares_bounded,
]
JOBS = [territories_job]
SCHEDULES = [territories_schedule]


if __name__ == "__main__":  # .venv/bin/python -m pipelines.territories [output.md]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CROSSWALK_SUMMARY
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(sample_crosswalk_summary(), encoding="utf-8")
    print(target)
