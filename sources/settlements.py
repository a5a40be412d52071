"""Informal-settlement indicators, independent of which catastro file the settlements came from.

Input is the normalized settlement frame that `sources.minvu_campamentos` parsers return
(`SETTLEMENT_COLUMNS`, EPSG:4326). Everything here is pure: no I/O, no fetching.

Why location checks: the catastro attributes each polygon to a comuna by its `CUT`, but the
polygon itself says where it is. Locating the polygon against comuna boundaries catches codes
that were mistyped or lost digits, and locating it against basin polygons is the only way to
get a basin figure at all (basins are not an attribute of the catastro).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from sources.geometry import WGS84, area_km2, locate_points

SETTLEMENT_COLUMNS = [
    "settlement_id",  # str, "<catastro_year>-<folio>" (suffix "-2", "-3" … for a folio repeated in one file)
    "catastro_year",  # int, 2024 or 2022
    "folio",  # str, MINVU folio (digits), null when the file carries none
    "name",  # str
    "comuna_code",  # str, 5-digit CUT as the catastro attributes it
    "region_code",  # str, 2-digit CUT
    "households",  # Int64, nullable; 0 is a real value (a settlement with no households counted)
    "hectares",  # float, area as published (HECTAREAS, or SUP_M2 / 10,000)
    "hectares_geodesic",  # float, true ground area of the polygon; null without geometry
    "catastro_origin",  # str, AN_CAT: the catastro that first listed it (CATASTRO_2011 …); null if blank
    "source_flag",  # str, FUENTE: who reported it (MINVU, MUNICIPALIDAD, TECHO, INE …); null if blank
    "observations",  # str, OBS
    "quality_flags",  # str, ";"-joined: geometry_missing, geometry_repaired, folio_repeated, folio_missing
    "geometry",  # Polygon/MultiPolygon in EPSG:4326, null when the file has none
]

TOTAL_COLUMNS = [
    "territory_level",  # comuna | region | basin
    "territory_code",
    "catastro_year",
    "settlements",  # int
    "households",  # Int64: sum over settlements with a household count
    "settlements_without_households",  # int: settlements whose household count is missing
    "area_ha",  # float: published hectares
    "area_ha_geodesic",  # float: hectares measured on the ellipsoid from the polygons
]

CHANGE_COLUMNS = [
    "territory_level",
    "territory_code",
    "from_year",
    "to_year",
    "settlements_from",
    "settlements_to",
    "settlements_change",
    "households_from",
    "households_to",
    "households_change",
]

RATE_COLUMNS = [
    "territory_level",
    "territory_code",
    "catastro_year",
    "households",
    "population",
    "households_per_1000_inhabitants",
]

_LEVEL_KEYS = {"comuna": "comuna_code", "region": "region_code", "basin": "located_basin_code"}


def geodesic_hectares(geometries: gpd.GeoSeries) -> pd.Series:
    """True ground area in hectares (equal-area CRS of `sources.geometry`); null without geometry.

    The published MINVU hectares are planar areas in Web Mercator, about 1.1–2.8 times the
    true area in Chile (1 / cos² of the latitude); this is the true-area companion.
    """
    present = geometries.notna() & ~geometries.is_empty
    hectares = pd.Series(float("nan"), index=geometries.index, dtype="float64")
    if present.any():
        hectares[present] = area_km2(geometries[present]) * 100
    return hectares


def _as_polygons(frame: gpd.GeoDataFrame, code_column: str) -> gpd.GeoDataFrame:
    missing = {code_column, "geometry"} - set(frame.columns)
    if missing:
        raise ValueError(f"boundary frame lacks column(s) {sorted(missing)}")
    if frame.crs is None:
        raise ValueError(f"boundary frame with {code_column!r} has no CRS; set it before locating")
    frame = frame[[code_column, "geometry"]].copy()
    frame[code_column] = frame[code_column].astype(str)
    return frame.to_crs(WGS84)


def locate_settlements(
    settlements: gpd.GeoDataFrame, comunas: gpd.GeoDataFrame, basins: gpd.GeoDataFrame | None = None
) -> gpd.GeoDataFrame:
    """Add `located_comuna_code`, `located_basin_code` and `cut_mismatch` to a settlement frame.

    Each polygon is placed by its `representative_point()` (always inside the polygon, unlike
    the centroid of a crescent-shaped settlement) with `sources.geometry.locate_points`, which
    gives a point inside several overlapping polygons to the smallest code. `comunas` needs
    `comuna_code` (5-digit strings) and `basins` needs `basin_code`; both need a CRS.
    `cut_mismatch` is True when the polygon lies in another comuna than its attribute says, or
    outside every comuna polygon although its attributed comuna is among them; it is NA
    (unknown) when the settlement has no geometry or its attributed comuna is not covered.
    """
    if not settlements.index.is_unique:
        raise ValueError("settlement frame index must be unique to attach locations")
    result = settlements.copy()
    has_geometry = result.geometry.notna() & ~result.geometry.is_empty
    anchors = result.geometry[has_geometry].to_crs(WGS84).representative_point()
    points = pd.DataFrame({"lon": anchors.x, "lat": anchors.y}, index=anchors.index)
    comuna_polygons = _as_polygons(comunas, "comuna_code")
    located = locate_points(points, comuna_polygons, "comuna_code")
    result["located_comuna_code"] = located.reindex(result.index).astype("object")
    located_basins = pd.Series(None, index=points.index, dtype="object")
    if basins is not None:
        located_basins = locate_points(points, _as_polygons(basins, "basin_code"), "basin_code")
    result["located_basin_code"] = located_basins.reindex(result.index).astype("object")

    covered = set(comuna_polygons["comuna_code"])
    mismatch = []
    for geom_present, attributed, placed in zip(
        has_geometry, result["comuna_code"], result["located_comuna_code"], strict=True
    ):
        if not geom_present:
            mismatch.append(pd.NA)
        elif isinstance(placed, str):
            mismatch.append(placed != attributed)
        else:
            mismatch.append(True if attributed in covered else pd.NA)
    result["cut_mismatch"] = pd.array(mismatch, dtype="boolean")
    return result


def settlement_totals(settlements: pd.DataFrame, level: str) -> pd.DataFrame:
    """Settlements, households and area per territory and catastro year (`TOTAL_COLUMNS`).

    Comunas and regions use the catastro's own attribution (the official one); basins use the
    located basin, so run `locate_settlements` with basins first. Settlements outside every
    basin are left out of the basin totals.
    """
    if level not in _LEVEL_KEYS:
        raise ValueError(f"level must be one of {sorted(_LEVEL_KEYS)}, not {level!r}")
    key = _LEVEL_KEYS[level]
    if key not in settlements.columns:
        raise ValueError(f"{level} totals need column {key!r} (locate the settlements against basins first)")
    frame = pd.DataFrame(
        {
            "territory_code": settlements[key],
            "catastro_year": settlements["catastro_year"].astype("int64"),
            "households": settlements["households"].astype("Int64"),
            "hectares": settlements["hectares"].astype("float64"),
            "hectares_geodesic": settlements["hectares_geodesic"].astype("float64"),
        }
    )
    frame = frame[frame["territory_code"].notna()]
    if frame.empty:
        return pd.DataFrame(columns=TOTAL_COLUMNS)
    grouped = frame.groupby(["territory_code", "catastro_year"], sort=True)
    totals = pd.DataFrame(
        {
            "settlements": grouped.size(),
            "households": grouped["households"].sum(min_count=1).astype("Int64"),
            "settlements_without_households": grouped["households"].agg(lambda s: int(s.isna().sum())),
            "area_ha": grouped["hectares"].sum(min_count=1),
            "area_ha_geodesic": grouped["hectares_geodesic"].sum(min_count=1),
        }
    ).reset_index()
    totals.insert(0, "territory_level", level)
    return totals[TOTAL_COLUMNS]


def catastro_change(totals: pd.DataFrame, from_year: int = 2022, to_year: int = 2024) -> pd.DataFrame:
    """Change in settlements and households between two catastros, per territory (`CHANGE_COLUMNS`).

    A catastro is national, so a territory absent from one year had no settlements then and
    counts 0. That holds only if both years cover the same territory: filter both alike.
    """
    years = set(totals["catastro_year"])
    for year in (from_year, to_year):
        if year not in years:
            raise ValueError(f"totals hold no catastro {year} (years present: {sorted(years)})")
    keys = ["territory_level", "territory_code"]
    before = totals[totals["catastro_year"] == from_year].set_index(keys)
    after = totals[totals["catastro_year"] == to_year].set_index(keys)
    index = before.index.union(after.index)
    before, after = before.reindex(index), after.reindex(index)
    change = pd.DataFrame(index=index)
    change["from_year"] = from_year
    change["to_year"] = to_year
    change["settlements_from"] = before["settlements"].fillna(0).astype("int64")
    change["settlements_to"] = after["settlements"].fillna(0).astype("int64")
    change["settlements_change"] = change["settlements_to"] - change["settlements_from"]
    # Households stay NA where a present settlement count had no household figure at all.
    change["households_from"] = before["households"].astype("Int64").where(before["settlements"].notna(), 0)
    change["households_to"] = after["households"].astype("Int64").where(after["settlements"].notna(), 0)
    change["households_change"] = change["households_to"] - change["households_from"]
    return change.reset_index()[CHANGE_COLUMNS]


def households_per_1000(totals: pd.DataFrame, population: pd.DataFrame | None) -> pd.DataFrame:
    """Households in settlements per 1,000 inhabitants (`RATE_COLUMNS`).

    `population` has `territory`, `year`, `population`, with territory codes spelt as in
    `totals` (5-digit comuna, 2-digit region). It is matched on the catastro year exactly.
    Without population (None or empty) the result is empty: the indicator waits for it.
    """
    if population is None or population.empty:
        return pd.DataFrame(columns=RATE_COLUMNS)
    missing = {"territory", "year", "population"} - set(population.columns)
    if missing:
        raise ValueError(f"population frame lacks column(s) {sorted(missing)}")
    people = pd.DataFrame(
        {
            "territory_code": population["territory"].astype(str),
            "catastro_year": population["year"].astype("int64"),
            "population": pd.to_numeric(population["population"], errors="raise").astype("float64"),
        }
    )
    if people.duplicated(["territory_code", "catastro_year"]).any():
        raise ValueError("population frame has more than one row for a territory and year")
    rates = totals.merge(people, on=["territory_code", "catastro_year"], how="inner")
    rates = rates[(rates["population"] > 0) & rates["households"].notna()].copy()
    rates["households_per_1000_inhabitants"] = (
        rates["households"].astype("float64") / rates["population"] * 1000
    )
    return rates[RATE_COLUMNS].reset_index(drop=True)
