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
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import geopandas as gpd
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
from shapely.geometry.base import BaseGeometry

from pipelines import gates
from pipelines.ingest import (
    derived_writer,
    log_acquisitions,
    publish,
    refusing,
    table_declaration,
    validate_frame,
    write_tables,
)
from pipelines.resources import SourcesResource, WarehouseResource
from sources import arcgis, dga_basins, ine_territories
from sources.acquire import SAMPLES_DIR, Acquired
from sources.base import FetchError, ValidationError, fold_name, is_missing, normalize_cut
from sources.boundaries import dissolve_comunas
from sources.division import all_comunas, comunas_of, load_division, region_codes
from sources.endpoints import EndpointError, endpoint, endpoints
from sources.geometry import WGS84, dissolve, overlap_shares
from sources.territory_resolver import (
    COUNTRY_ID,
    UNKNOWN_ID,
    UNKNOWN_NAMES,
    TerritoryResolver,
    load_regions,
)
from warehouse.db import SQL_DIR, run_script, table_name

FAMILY = "territories"
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = SAMPLES_DIR / "boundaries"
INE_SAMPLE = SAMPLE_DIR / "SAMPLE_ine_censo2024_comunas.geojson"
BASIN_SAMPLES = {"cuenca": SAMPLE_DIR / dga_basins.SAMPLE_ARCHIVE_NAME}
VIEWS_SQL = SQL_DIR / "views" / "10_territories.sql"
CROSSWALK_SUMMARY = REPO_ROOT / "docs" / "crosswalk_summary.md"

INE_PAGE_SIZE = 100  # comunas per ArcGIS page: full-resolution polygons make large pages
INE_WALK_NAME = "ine-censo2024-comunas"  # the request name sources.ine_territories gives the pages
BASIN_KINDS = {"cuenca": "basin", "subcuenca": "subbasin", "subsubcuenca": "subsubbasin"}
OWNED_KINDS = (
    "country",
    "oecd",
    "oecd_area",
    "unknown",
    "region",
    "province",
    "comuna",
    *BASIN_KINDS.values(),
)
LEGACY_ALIAS_SCHEMES = ("name",)  # region names were filed under 'name' before kinds had schemes

SHARE_TOLERANCE = 0.01  # shares of a comuna (or basin) summing within 1 +- this count as complete
SLIVER_SHARE = 0.005  # an overlap under 0.5 % of the comuna is reported as a sliver
AREA_TOLERANCE = 0.01  # comuna areas must add up to their region's area within 1 %
# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas".
EXPECTED_COMUNAS = {"region:02": 9}
# Chile in lon/lat, with Rapa Nui (-109.4) and the Antarctic claim (53-90 W, to the pole).
CHILE_BOUNDS = (-110.0, -90.0, -53.0, -17.0)


# --- staging: the validated frames of each source --------------------------------------------

COMUNA_COLUMNS = {
    "comuna_code": "VARCHAR: 5-digit CUT",
    "province_code": "VARCHAR: 3-digit province code (the first three digits of the CUT)",
    "region_code": "VARCHAR: 2-digit region code",
    "name": "VARCHAR: comuna name as INE publishes it",
    "region_label": "VARCHAR: REGION as published (name or code)",
    "province_label": "VARCHAR: PROVINCIA as published (name or code)",
    "geometry_repaired": "BOOLEAN: the published polygon was invalid and was repaired",
    "area_km2": "DOUBLE: area in km2, equal-area projection of sources.geometry",
    "geometry_wkb": "BLOB: polygon as WKB, EPSG:4326",
    "snapshot_id": "VARCHAR: core.snapshots id of the page holding the comuna",
}
BASIN_COLUMNS = {
    "basin_code": "VARCHAR: COD_CUEN (3 digits), COD_SUBC (4) or COD_SSUBC (5)",
    "basin_name": "VARCHAR: NOM_CUEN / NOM_SUBC / NOM_SSUBC",
    "level": "VARCHAR: cuenca, subcuenca or subsubcuenca",
    "cuenca_code": "VARCHAR: the enclosing cuenca (3 digits)",
    "subcuenca_code": "VARCHAR: the enclosing subcuenca (4 digits), NULL above that level",
    "geometry_repaired": "BOOLEAN: the published polygon was invalid and was repaired",
    "area_km2": "DOUBLE: area in km2, equal-area projection of sources.geometry",
    "geometry_wkb": "BLOB: polygon as WKB, EPSG:4326",
    "snapshot_id": "VARCHAR: core.snapshots id of the zip",
}
TERRITORY_COLUMNS = {
    "territory_id": "VARCHAR: '<kind>:<code>'",
    "kind": "VARCHAR: country, region, province, comuna, basin, subbasin, subsubbasin, oecd, unknown",
    "code": "VARCHAR: official code (CUT, BNA COD_CUEN, ...)",
    "name": "VARCHAR: official name",
    "parent_id": "VARCHAR: enclosing territory (a basin's is the country)",
    "area_km2": "DOUBLE: area in km2, equal-area projection; NULL without polygon",
    "geometry": "GEOMETRY: EPSG:4326; NULL without polygon",
    "snapshot_id": "VARCHAR: snapshot the polygon came from",
}


def _wkb_within_chile(values: pd.Series) -> pd.Series:
    """True where the value is a WKB polygon lying inside CHILE_BOUNDS (a swapped lat/lon is not)."""
    west, south, east, north = CHILE_BOUNDS

    def ok(value) -> bool:
        if not isinstance(value, bytes | bytearray) or not value:
            return False
        minx, miny, maxx, maxy = shapely.from_wkb(bytes(value)).bounds
        return west <= minx <= maxx <= east and south <= miny <= maxy <= north

    return values.map(ok)


def _wkb_column() -> pa.Column:
    return pa.Column(object, pa.Check(_wkb_within_chile, error="a WKB polygon inside Chile"))


COMUNA_SCHEMA = pa.DataFrameSchema(
    {
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$"), unique=True),
        "province_code": pa.Column(str, pa.Check.str_matches(r"^\d{3}$")),
        "region_code": pa.Column(str, pa.Check.isin(load_regions()["region_code"].tolist())),
        "name": pa.Column(str, pa.Check.str_length(min_value=1)),
        "region_label": pa.Column(str, nullable=True),
        "province_label": pa.Column(str, nullable=True),
        # the smallest comuna has a few km2; the largest (Antártica) over a million with the claim
        "geometry_repaired": pa.Column(bool),
        "area_km2": pa.Column(float, pa.Check.in_range(0.5, 2_000_000)),
        "geometry_wkb": _wkb_column(),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda f: f["comuna_code"].str[:3] == f["province_code"], error="province is the CUT prefix"
        ),
        pa.Check(lambda f: f["comuna_code"].str[:2] == f["region_code"], error="region is the CUT prefix"),
    ],
    strict=True,
    ordered=True,
)

BASIN_SCHEMA = pa.DataFrameSchema(
    {
        "basin_code": pa.Column(str, pa.Check.str_matches(r"^\d{3,5}$"), unique=True),
        "basin_name": pa.Column(str, nullable=True),
        "level": pa.Column(str, pa.Check.isin(list(BASIN_KINDS))),
        "cuenca_code": pa.Column(str, pa.Check.str_matches(r"^\d{3}$")),
        "subcuenca_code": pa.Column(str, pa.Check.str_matches(r"^\d{4}$"), nullable=True),
        "geometry_repaired": pa.Column(bool),
        "area_km2": pa.Column(float, pa.Check.in_range(0.01, 500_000)),
        "geometry_wkb": _wkb_column(),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda f: (
                f["basin_code"].str.len() == f["level"].map({"cuenca": 3, "subcuenca": 4, "subsubcuenca": 5})
            ),
            error="code width matches the level",
        ),
        pa.Check(lambda f: f["basin_code"].str[:3] == f["cuenca_code"], error="cuenca is the code prefix"),
    ],
    strict=True,
    ordered=True,
)


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


# --- core: territories, aliases, overlaps --------------------------------------------------------


@dataclass
class TerritoryTables:
    """What the `territories` asset writes, built without a database so it can be tested and summarised."""

    places: gpd.GeoDataFrame  # TERRITORY_COLUMNS
    aliases: pd.DataFrame  # territory_id, scheme, alias
    overlaps: pd.DataFrame  # comuna_id, basin_id, basin_kind, overlap_km2, share_of_comuna, share_of_basin
    ambiguous_aliases: list[tuple[str, str]] = field(default_factory=list)


def _is_code(value) -> bool:
    return not is_missing(value) and str(value).strip().replace(".", "").isdigit()


def name_aliases(territory_id: str, kind: str, names: Iterable) -> list[tuple[str, str, str]]:
    """Each spelling as published and accent/case-folded, under the scheme '<kind>_name'."""
    rows = []
    for name in names:
        if is_missing(name) or _is_code(name):
            continue
        rows += [
            (territory_id, f"{kind}_name", str(name).strip()),
            (territory_id, f"{kind}_name", fold_name(name)),
        ]
    return rows


def code_alias(territory_id: str, kind: str, code: str) -> list[tuple[str, str, str]]:
    """The code without its leading zeros ('2201' for comuna 02201), under the scheme '<kind>_code'."""
    unpadded = code.lstrip("0") or "0"
    return [(territory_id, f"{kind}_code", unpadded)] if unpadded != code else []


def reference_territories() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(places, aliases): Chile, the OECD area, unknown residence, and the official division.

    Every region, province and comuna of `sources/reference/` (SUBDERE/INE CUT) is a place
    before any boundary source has given it a polygon.
    """
    division = load_division()
    places = [
        (COUNTRY_ID, "country", "CL", "Chile", None),
        ("oecd:OECD", "oecd", "OECD", "OECD member countries", None),
        (UNKNOWN_ID, "unknown", "99999", "Ignorada (unknown residence)", COUNTRY_ID),
    ]
    places += list(division[["territory_id", "kind", "code", "name", "parent_id"]].itertuples(index=False))
    aliases = [(COUNTRY_ID, "oecd", "CHL"), ("oecd:OECD", "oecd", "OECD"), (COUNTRY_ID, "iso3166", "CL")]
    aliases += name_aliases(UNKNOWN_ID, "unknown", UNKNOWN_NAMES)
    for r in load_regions().itertuples():
        aliases.append((f"region:{r.region_code}", "oecd", r.oecd_tl2))
    for r in division.itertuples(index=False):
        aliases += name_aliases(r.territory_id, r.kind, [r.name, *r.alternative_names])
        aliases += code_alias(r.territory_id, r.kind, r.code)
    return (
        pd.DataFrame(places, columns=["territory_id", "kind", "code", "name", "parent_id"]),
        pd.DataFrame(aliases, columns=["territory_id", "scheme", "alias"]),
    )


def _complete(dissolved: pd.DataFrame, comunas: gpd.GeoDataFrame, level: str) -> pd.DataFrame:
    """The dissolved polygons of the provinces or regions whose every comuna has a polygon.

    A union of some of a region's comunas is not the region's polygon (nor its area).
    """
    present = set(comunas["comuna_code"])
    keep = [all(c in present for c in division_comunas(code, level)) for code in dissolved[f"{level}_code"]]
    return dissolved[keep]


def division_comunas(code: str, level: str) -> frozenset[str]:
    region = comunas_of(code[:2])
    return region if level == "region" else frozenset(c for c in region if c.startswith(code))


def _comuna_places(comunas: gpd.GeoDataFrame) -> tuple[list[tuple[str, str, str]], pd.DataFrame]:
    """Aliases (the layer's spellings) and polygons of the comunas of a boundary layer.

    Comunas attach to the official division: a code the division does not know is refused.
    Province, region and country polygons are unions of comunas, only where complete.
    """
    unknown = sorted(set(comunas["comuna_code"]) - all_comunas())
    if unknown:
        raise ValidationError(
            ine_territories.SOURCE.id,
            f"comuna codes not in the official territorial division (sources/reference): {unknown}",
        )
    aliases = []
    for code, name in comunas[["comuna_code", "name"]].itertuples(index=False):
        aliases += name_aliases(f"comuna:{code}", "comuna", [name])
    for code, label in comunas[["province_code", "province_label"]].drop_duplicates().itertuples(index=False):
        aliases += name_aliases(f"province:{code}", "province", [label])
    for code, label in comunas[["region_code", "region_label"]].drop_duplicates().itertuples(index=False):
        aliases += name_aliases(f"region:{code}", "region", [label])
    geometry_rows = [
        comunas.assign(territory_id="comuna:" + comunas["comuna_code"])[
            ["territory_id", "area_km2", "snapshot_id", "geometry"]
        ]
    ]
    snapshot = comunas["snapshot_id"].max()
    provinces = _complete(dissolve_comunas(comunas, "province"), comunas, "province")
    geometry_rows.append(
        provinces.assign(territory_id="province:" + provinces["province_code"], snapshot_id=snapshot)
    )
    regions = _complete(dissolve_comunas(comunas, "region"), comunas, "region")
    geometry_rows.append(
        regions.assign(territory_id="region:" + regions["region_code"], snapshot_id=snapshot)
    )
    if set(region_codes()) <= set(regions["region_code"]):  # only a whole country is Chile
        country = dissolve(regions, None)
        geometry_rows.append(country.assign(territory_id=COUNTRY_ID, snapshot_id=snapshot))
    shapes = pd.concat(
        [frame[["territory_id", "area_km2", "snapshot_id", "geometry"]] for frame in geometry_rows],
        ignore_index=True,
    )
    return aliases, shapes


def _basin_places(basins: gpd.GeoDataFrame) -> tuple[pd.DataFrame, list, pd.DataFrame]:
    rows, aliases = [], []
    for basin in basins.sort_values("basin_code").itertuples(index=False):
        kind = BASIN_KINDS[basin.level]
        parent = {
            "basin": COUNTRY_ID,
            "subbasin": f"basin:{basin.cuenca_code}",
            "subsubbasin": f"subbasin:{basin.subcuenca_code}",
        }[kind]
        tid = f"{kind}:{basin.basin_code}"
        name = basin.basin_name if not is_missing(basin.basin_name) else basin.basin_code
        rows.append((tid, kind, basin.basin_code, name, parent))
        aliases += name_aliases(tid, kind, [basin.basin_name]) + code_alias(tid, kind, basin.basin_code)
    shapes = basins.assign(
        territory_id=[
            f"{BASIN_KINDS[lv]}:{c}" for lv, c in zip(basins["level"], basins["basin_code"], strict=True)
        ]
    )
    return (
        pd.DataFrame(rows, columns=["territory_id", "kind", "code", "name", "parent_id"]),
        aliases,
        shapes[["territory_id", "area_km2", "snapshot_id", "geometry"]],
    )


PLACES_SCHEMA = pa.DataFrameSchema(
    {
        "territory_id": pa.Column(str, pa.Check.str_matches(r"^[a-z_]+:[A-Za-z0-9]+$"), unique=True),
        "kind": pa.Column(str, pa.Check.isin(list(OWNED_KINDS))),
        "code": pa.Column(str),
        "name": pa.Column(str, pa.Check.str_length(min_value=1)),
        "parent_id": pa.Column(str, nullable=True),
        "area_km2": pa.Column(float, pa.Check.gt(0), nullable=True),
    },
    checks=[
        pa.Check(lambda f: f["territory_id"] == f["kind"] + ":" + f["code"], error="id is '<kind>:<code>'"),
        pa.Check(
            lambda f: f["parent_id"].isna() | f["parent_id"].isin(f["territory_id"]), error="parent exists"
        ),
    ],
    strict=False,
)


def build_territories(comunas: gpd.GeoDataFrame | None, basins: gpd.GeoDataFrame | None) -> TerritoryTables:
    """Reference places plus whatever boundaries are staged, their aliases and the comuna x basin overlaps."""
    places, aliases = reference_territories()
    place_frames, alias_rows = [places], [*aliases.itertuples(index=False, name=None)]
    shape_frames = []
    if comunas is not None and len(comunas):
        extra, shapes = _comuna_places(comunas)
        alias_rows += extra
        shape_frames.append(shapes)
    if basins is not None and len(basins):
        rows, extra, shapes = _basin_places(basins)
        place_frames.append(rows)
        alias_rows += extra
        shape_frames.append(shapes)
    table = pd.concat(place_frames, ignore_index=True)
    if shape_frames:
        table = table.merge(pd.concat(shape_frames, ignore_index=True), on="territory_id", how="left")
    else:
        table = table.assign(area_km2=None, snapshot_id=None, geometry=None)
    table["area_km2"] = table["area_km2"].astype(float)
    table["parent_id"] = table["parent_id"].astype(object).where(table["parent_id"].notna(), None)
    table["snapshot_id"] = table["snapshot_id"].astype(object).where(table["snapshot_id"].notna(), None)
    shapes = [g if isinstance(g, BaseGeometry) else None for g in table.pop("geometry")]
    places = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(shapes, index=table.index, crs=WGS84), crs=WGS84)
    places = validate_frame(PLACES_SCHEMA, places, "territories").sort_values(
        "territory_id", ignore_index=True
    )

    aliases = pd.DataFrame(alias_rows, columns=["territory_id", "scheme", "alias"]).drop_duplicates()
    aliases = aliases[aliases["alias"].str.len() > 0]
    owners = aliases.groupby(["scheme", "alias"])["territory_id"].transform("nunique")
    ambiguous = sorted(set(map(tuple, aliases.loc[owners > 1, ["scheme", "alias"]].to_numpy())))
    aliases = aliases[owners == 1].sort_values(["scheme", "alias"], ignore_index=True)
    return TerritoryTables(places, aliases, comuna_basin_overlaps(places), ambiguous)


def comuna_basin_overlaps(places: gpd.GeoDataFrame) -> pd.DataFrame:
    """Every comuna x basin (and sub-level) overlap with both shares, in the equal-area projection."""
    columns = ["comuna_id", "basin_id", "basin_kind", "overlap_km2", "share_of_comuna", "share_of_basin"]
    with_shape = places[places.geometry.notna()]
    comunas = with_shape[with_shape["kind"] == "comuna"]
    frames = []
    for kind in BASIN_KINDS.values():
        basins = with_shape[with_shape["kind"] == kind]
        if len(comunas) and len(basins):
            frames.append(
                overlap_shares(comunas, basins, "territory_id", "territory_id").assign(basin_kind=kind)
            )
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype=float if "km2" in c or "share" in c else object) for c in columns}
        )
    return pd.concat(frames, ignore_index=True)[columns].sort_values(
        ["comuna_id", "basin_id"], ignore_index=True
    )


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


# --- crosswalk summary -----------------------------------------------------------------------------


def _km2(value: float) -> str:
    return f"{value:,.1f}" if value >= 0.1 else f"{value:.1e}"


def _share(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["None.", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def crosswalk_summary(tables: TerritoryTables, heading: str, inputs: Sequence[str] = ()) -> str:
    """A deterministic Markdown report of the comuna x basin crosswalk: counts, incomplete shares, slivers, pairs."""
    places = tables.places
    names = dict(zip(places["territory_id"], places["name"], strict=True))
    comunas = sorted(places.loc[(places["kind"] == "comuna") & places.geometry.notna(), "territory_id"])
    regions = sorted({tid.split(":")[1][:2] for tid in comunas})
    lines = [f"# {heading}", ""]
    if inputs:
        lines += ["Inputs:", "", *[f"- {item}" for item in inputs], ""]
    lines += [
        f"Shares count as complete within 1 ± {SHARE_TOLERANCE}; an overlap under {SLIVER_SHARE:.1%} of its "
        "comuna is a sliver. Areas are km² in the equal-area projection of `sources/geometry.py`.",
        "",
        "## Counts",
        "",
    ]
    counts = [("comunas with a polygon", len(comunas)), ("regions with comunas", len(regions))]
    for kind in BASIN_KINDS.values():
        polygons = int(((places["kind"] == kind) & places.geometry.notna()).sum())
        if polygons:
            pairs = int((tables.overlaps["basin_kind"] == kind).sum())
            counts += [(f"{kind} polygons", polygons), (f"comuna × {kind} overlaps", pairs)]
    lines += _table(["what", "count"], [(what, str(n)) for what, n in counts])
    for kind in BASIN_KINDS.values():
        pairs = tables.overlaps[tables.overlaps["basin_kind"] == kind]
        if not len(pairs):
            continue
        by_comuna = pairs.groupby("comuna_id").agg(n=("basin_id", "size"), total=("share_of_comuna", "sum"))
        by_basin = pairs.groupby("basin_id").agg(n=("comuna_id", "size"), total=("share_of_basin", "sum"))
        outside = [tid for tid in comunas if tid not in by_comuna.index]
        polygons = places.loc[(places["kind"] == kind) & places.geometry.notna(), "territory_id"]
        untouched = sorted(tid for tid in polygons if tid not in by_basin.index)
        lines += [f"## Comunas × {kind}", ""]
        lines += [
            f"Comunas in no {kind} polygon ({len(outside)}): "
            + (", ".join(f"{tid} {names[tid]}" for tid in outside) or "none")
            + ".",
            "",
            f"{kind.capitalize()} polygons overlapping no comuna ({len(untouched)}): "
            + (", ".join(f"{tid} {names[tid]}" for tid in untouched) or "none")
            + ".",
            "",
            f"Comunas in more than one {kind}: {int((by_comuna['n'] > 1).sum())}.",
            "",
            f"### Comunas whose {kind} shares do not sum to 1 (part of the comuna lies in no {kind} polygon)",
            "",
        ]
        off = by_comuna[(by_comuna["total"] - 1).abs() > SHARE_TOLERANCE]
        lines += _table(
            ["comuna", "name", kind + "s", "sum of share_of_comuna"],
            [(r.Index, names[r.Index], str(r.n), _share(r.total)) for r in off.itertuples()],
        )
        lines += [
            f"### {kind.capitalize()}s whose comuna shares do not sum to 1 (part lies in no loaded comuna)",
            "",
        ]
        off = by_basin[(by_basin["total"] - 1).abs() > SHARE_TOLERANCE]
        lines += _table(
            [kind, "name", "comunas", "sum of share_of_basin"],
            [(r.Index, names[r.Index], str(r.n), _share(r.total)) for r in off.itertuples()],
        )
        lines += [f"### Slivers (overlap under {SLIVER_SHARE:.1%} of the comuna)", ""]
        slivers = pairs[pairs["share_of_comuna"] < SLIVER_SHARE]
        lines += _table(
            ["comuna", kind, "overlap km²", "share_of_comuna"],
            [
                (r.comuna_id, r.basin_id, _km2(r.overlap_km2), _share(r.share_of_comuna))
                for r in slivers.itertuples()
            ],
        )
        lines += ["### Every overlap", ""]
        lines += _table(
            ["comuna", "name", kind, "name", "overlap km²", "share_of_comuna", "share_of_basin"],
            [
                (
                    r.comuna_id,
                    names[r.comuna_id],
                    r.basin_id,
                    names[r.basin_id],
                    _km2(r.overlap_km2),
                    _share(r.share_of_comuna),
                    _share(r.share_of_basin),
                )
                for r in pairs.itertuples()
            ],
        )
    return "\n".join(lines).rstrip() + "\n"


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
        metadata={**metadata, **counts, "pages": len(acquired), "repaired": MetadataValue.json(repaired)}
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
    with refusing(warehouse, acquirer, {source: items}):
        archives = {level: (a.payload.content, a.payload.snapshot_id) for level, a in acquired.items()}
        staging = validate_frame(BASIN_SCHEMA, parse_basin_archives(archives), source.id)
    counts = publish(warehouse, acquirer, source, items, {("staging", "bna_basins"): staging})
    return MaterializeResult(metadata={**metadata, **counts, "levels": MetadataValue.json(sorted(acquired))})


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


territories_job = define_asset_job(
    "territories_refresh", selection=[ine_comuna_boundaries, bna_basin_boundaries, territories]
)
# The layers change about once a year; a monthly look is cheap (unchanged zips answer 304).
territories_schedule = ScheduleDefinition(
    job=territories_job, cron_schedule="0 5 1 * *", name="territories_monthly"
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
