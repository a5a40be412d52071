"""The territories family's tables: staging declarations, and the core tables built without a database.

Reference places (country, regions with their OECD codes, provinces, comunas of the territorial
division, unknown residence) come first; staged INE comunas and DGA basins add polygons, the
dissolved provinces and regions, and the overlaps. `pipelines.territories` writes the result;
`pipelines.crosswalk_report` summarises it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd
import pandera.pandas as pa
import shapely
from shapely.geometry.base import BaseGeometry

from pipelines.ingest import validate_frame
from sources import ine_territories
from sources.base import ValidationError, fold_name, is_missing
from sources.boundaries import dissolve_comunas
from sources.division import all_comunas, comunas_of, load_division, region_codes
from sources.geometry import WGS84, dissolve, overlap_shares
from sources.territory_resolver import COUNTRY_ID, UNKNOWN_ID, UNKNOWN_NAMES, load_regions

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
SHARE_TOLERANCE = 0.01  # shares of a comuna (or basin) summing within 1 +- this count as complete

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


# --- core: territories, aliases, overlaps ---------------------------------------------------------


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
