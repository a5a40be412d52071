"""Comuna boundaries and CUT code tables from the curated public mirrors (chilemapas, fcortes, bastianolea).

Every boundary parser returns the same comuna frame, so the report never cares which
publisher drew the lines:

    comuna_code (str, 5 digits)  province_code (str, 3)  region_code (str, 2)
    name (str, as published; <NA> when the file carries no names)
    geometry_repaired (bool)     area_km2 (float, equal-area CRS, see sources.geometry)
    geometry (Polygon/MultiPolygon, EPSG:4326, valid)

plus publisher-specific extra columns named below. The files differ in every detail that
matters: chilemapas pads the region to five digits ('00002') and ships no names; fcortes
writes unpadded integers (2201), adds a 'Zona sin demarcar' feature with code 0, and has
invalid rings; the bastianolea table is `;`-separated and lacks 12202.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyproj
from shapely.geometry import MultiPolygon, Polygon, shape

from sources import specs
from sources.base import (
    FetchRequest,
    ParseError,
    SourceInfo,
    decode_text,
    fold_name,
    is_missing,
    normalize_cut,
)
from sources.geometry import WGS84, area_km2, dissolve, repair_polygons, to_wgs84

CHILEMAPAS_SOURCE = specs.source("chilemapas")
FCORTES_SOURCE = specs.source("fcortes_chile_geojson")
BASTIANOLEA_CUT_SOURCE = specs.source("bastianolea_comunas_cut")
SOURCE = CHILEMAPAS_SOURCE
SOURCES = (CHILEMAPAS_SOURCE, FCORTES_SOURCE, BASTIANOLEA_CUT_SOURCE)

# The three publishers' endpoints (pinned commits, see their specs), served by one dict.
ENDPOINTS: dict[str, str] = {k: v for info in SOURCES for k, v in specs.endpoints(info.id).items()}

COMUNA_COLUMNS = ["comuna_code", "province_code", "region_code", "name", "geometry_repaired", "area_km2"]
UNDEMARCATED_NAME = "zona sin demarcar"

Data = bytes | str | Path


def boundary_requests(
    endpoints: Mapping[str, str] = ENDPOINTS, regions: Sequence[str] = ("02",)
) -> list[tuple[SourceInfo, FetchRequest]]:
    """Requests for every configured endpoint, paired with the source they cite."""
    requests: list[tuple[SourceInfo, FetchRequest]] = []
    for region in regions:
        code = normalize_cut(region, "region")
        for key, expect in (
            ("chilemapas_comunas_geojson", "geojson"),
            ("chilemapas_comunas_topojson", "json"),
        ):
            if key in endpoints:
                url = endpoints[key].format(region=code)
                requests.append(
                    (CHILEMAPAS_SOURCE, FetchRequest(name=f"{key}-r{code}", url=url, expect=expect))
                )
    singles = (
        ("chilemapas_codes", CHILEMAPAS_SOURCE, "csv"),
        ("fcortes_comunas", FCORTES_SOURCE, "geojson"),
        ("fcortes_regions", FCORTES_SOURCE, "geojson"),
        ("bastianolea_cut", BASTIANOLEA_CUT_SOURCE, "csv"),
    )
    for key, source, expect in singles:
        if key in endpoints:
            requests.append((source, FetchRequest(name=key, url=endpoints[key], expect=expect)))
    return requests


# --- reading --------------------------------------------------------------------------------


def _read_bytes(data: Data) -> bytes:
    if isinstance(data, bytes):
        return data
    return Path(data).read_bytes()


def load_json(source: str, data: Data, snapshot: str | None = None) -> dict:
    """Decode a JSON object, as a ParseError when it is not one."""
    try:
        document = json.loads(decode_text(_read_bytes(data), source))
    except ValueError as exc:
        raise ParseError(source, f"payload is not JSON ({exc})", snapshot) from exc
    if not isinstance(document, dict):
        raise ParseError(source, "payload is not a JSON object", snapshot)
    return document


def _geojson_crs(source: str, document: dict, snapshot: str | None) -> pyproj.CRS:
    """The CRS a GeoJSON document declares (old-style `crs` member), WGS84 lon/lat when absent."""
    member = document.get("crs")
    if not member:
        return pyproj.CRS(WGS84)
    name = (member.get("properties") or {}).get("name")
    try:
        crs = pyproj.CRS.from_user_input(name)
    except (pyproj.exceptions.CRSError, TypeError) as exc:
        raise ParseError(source, f"GeoJSON declares an unknown crs {name!r}", snapshot) from exc
    # GeoJSON files write lon/lat whatever the axis order of an EPSG:4326 urn says.
    return pyproj.CRS(WGS84) if crs.equals(pyproj.CRS("OGC:CRS84")) or crs.equals(WGS84) else crs


def features_frame(
    source: str, features: Iterable[dict], crs: Any = WGS84, snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """GeoJSON feature dicts -> GeoDataFrame of their properties and shapely geometries."""
    rows = []
    geometries = []
    for number, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ParseError(source, f"item {number} of the FeatureCollection is not a Feature", snapshot)
        rows.append(feature.get("properties") or {})
        raw = feature.get("geometry")
        try:
            geometries.append(shape(raw) if raw else None)
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ParseError(source, f"feature {number} has a malformed geometry ({exc})", snapshot) from exc
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs)


def read_geojson(source: str, data: Data, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """A GeoJSON FeatureCollection as a GeoDataFrame in the CRS the document declares."""
    document = load_json(source, data, snapshot)
    if document.get("type") != "FeatureCollection" or not isinstance(document.get("features"), list):
        raise ParseError(source, "payload is not a GeoJSON FeatureCollection", snapshot)
    return features_frame(source, document["features"], _geojson_crs(source, document, snapshot), snapshot)


# --- TopoJSON -----------------------------------------------------------------------------------


def _decode_arcs(source: str, topology: dict, snapshot: str | None) -> list[list[tuple[float, float]]]:
    """Absolute coordinates of every arc; quantised arcs (with `transform`) are delta-decoded first."""
    arcs = topology.get("arcs")
    if not isinstance(arcs, list):
        raise ParseError(source, "TopoJSON has no `arcs` array", snapshot)
    transform = topology.get("transform")
    if not transform:
        return [[(float(p[0]), float(p[1])) for p in arc] for arc in arcs]
    (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
    decoded = []
    for arc in arcs:
        x = y = 0
        points = []
        for position in arc:
            x += position[0]
            y += position[1]
            points.append((x * sx + tx, y * sy + ty))
        decoded.append(points)
    return decoded


def _ring(source: str, arcs: list[list[tuple[float, float]]], refs: list[int], snapshot: str | None) -> list:
    """Stitch arc references into one ring: a negative ref ~i is arc i reversed; shared ends appear once."""
    points: list[tuple[float, float]] = []
    for ref in refs:
        index = ref if ref >= 0 else ~ref
        if not 0 <= index < len(arcs):
            raise ParseError(
                source, f"TopoJSON refers to arc {ref}, but there are {len(arcs)} arcs", snapshot
            )
        arc = arcs[index] if ref >= 0 else arcs[index][::-1]
        points.extend(arc if not points else arc[1:])
    if len(points) < 4 or points[0] != points[-1]:
        raise ParseError(source, f"TopoJSON ring from arcs {refs} is not closed", snapshot)
    return points


def _topo_geometry(source: str, arcs: list, geometry: dict, snapshot: str | None) -> Polygon | MultiPolygon:
    kind = geometry.get("type")
    if kind == "Polygon":
        rings = [_ring(source, arcs, refs, snapshot) for refs in geometry["arcs"]]
        return Polygon(rings[0], rings[1:])
    if kind == "MultiPolygon":
        polygons = []
        for polygon in geometry["arcs"]:
            rings = [_ring(source, arcs, refs, snapshot) for refs in polygon]
            polygons.append(Polygon(rings[0], rings[1:]))
        return MultiPolygon(polygons)
    raise ParseError(source, f"TopoJSON geometry type {kind!r} is not a polygon", snapshot)


def read_topojson(
    source: str, data: Data, object_name: str | None = None, snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """Decode one TopoJSON object (polygons only) into a GeoDataFrame in WGS84, without a topojson package."""
    topology = load_json(source, data, snapshot)
    if topology.get("type") != "Topology" or not isinstance(topology.get("objects"), dict):
        raise ParseError(source, "payload is not a TopoJSON Topology", snapshot)
    objects = topology["objects"]
    if object_name is None:
        if len(objects) != 1:
            raise ParseError(
                source, f"TopoJSON has objects {sorted(objects)}; say which one to read", snapshot
            )
        object_name = next(iter(objects))
    if object_name not in objects:
        raise ParseError(source, f"TopoJSON has no object {object_name!r} (has {sorted(objects)})", snapshot)
    collection = objects[object_name]
    geometries = (
        collection.get("geometries") if collection.get("type") == "GeometryCollection" else [collection]
    )
    arcs = _decode_arcs(source, topology, snapshot)
    rows = []
    shapes = []
    for geometry in geometries:
        rows.append(geometry.get("properties") or {})
        shapes.append(_topo_geometry(source, arcs, geometry, snapshot))
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(shapes, crs=WGS84), crs=WGS84)


# --- the common comuna frame -------------------------------------------------------------------------


def _require_columns(source: str, frame: pd.DataFrame, columns: Iterable[str | None], snapshot: str | None):
    missing = [column for column in columns if column is not None and column not in frame.columns]
    if missing:
        raise ParseError(
            source, f"required column(s) {missing} missing (columns are {list(frame.columns)})", snapshot
        )


def _codes(source: str, values: pd.Series, kind: str, column: str, snapshot: str | None) -> list[str]:
    codes = []
    for value in values:
        try:
            code = normalize_cut(value, kind)
        except ValueError as exc:
            raise ParseError(source, f"column {column!r}: {exc}", snapshot) from exc
        if code is None or int(code) == 0:
            raise ParseError(
                source, f"column {column!r} holds a missing or zero {kind} code {value!r}", snapshot
            )
        codes.append(code)
    return codes


def _check_prefix(source, derived: list[str], column: str, published: list[str], snapshot) -> None:
    for mine, theirs in zip(derived, published, strict=True):
        if mine != theirs:
            raise ParseError(
                source, f"column {column!r} says {theirs!r} but the comuna code implies {mine!r}", snapshot
            )


def code_table_frame(
    source: str,
    frame: pd.DataFrame,
    *,
    comuna: str,
    province: str | None = None,
    region: str | None = None,
    snapshot: str | None = None,
) -> pd.DataFrame:
    """Normalised comuna_code/province_code/region_code for a table with CUT columns.

    Province and region codes are implied by the comuna code (RRPCC); when a file publishes
    them too they must agree, otherwise the file is misread or wrong.
    """
    _require_columns(source, frame, (comuna, province, region), snapshot)
    comuna_codes = _codes(source, frame[comuna], "comuna", comuna, snapshot)
    provinces = [code[:3] for code in comuna_codes]
    regions = [code[:2] for code in comuna_codes]
    if province is not None:
        _check_prefix(
            source,
            provinces,
            province,
            _codes(source, frame[province], "province", province, snapshot),
            snapshot,
        )
    if region is not None:
        _check_prefix(
            source, regions, region, _codes(source, frame[region], "region", region, snapshot), snapshot
        )
    duplicated = sorted(code for code, count in Counter(comuna_codes).items() if count > 1)
    if duplicated:
        raise ParseError(source, f"comuna code(s) {duplicated} appear more than once", snapshot)
    return pd.DataFrame(
        {"comuna_code": comuna_codes, "province_code": provinces, "region_code": regions}, index=frame.index
    )


def comuna_frame(
    source: str,
    raw: gpd.GeoDataFrame,
    *,
    comuna: str,
    name: str | None,
    province: str | None = None,
    region: str | None = None,
    extra: Mapping[str, str] | None = None,
    snapshot: str | None = None,
) -> gpd.GeoDataFrame:
    """The common comuna GeoDataFrame (see the module docstring) from a raw feature frame.

    `extra` maps output column -> raw column for publisher-specific columns to keep.
    """
    extra = dict(extra or {})
    _require_columns(source, raw, [name, *extra.values()], snapshot)
    codes = code_table_frame(source, raw, comuna=comuna, province=province, region=region, snapshot=snapshot)
    frame = gpd.GeoDataFrame(codes, geometry=raw.geometry, crs=raw.crs)
    frame["name"] = (
        raw[name].astype("string") if name is not None else pd.Series(pd.NA, index=raw.index, dtype="string")
    )
    for output, column in extra.items():
        frame[output] = raw[column]
    frame = repair_polygons(source, to_wgs84(source, frame, snapshot), "comuna_code", snapshot)
    frame["area_km2"] = area_km2(frame.geometry)
    ordered = COMUNA_COLUMNS[:4] + list(extra) + COMUNA_COLUMNS[4:] + ["geometry"]
    result = frame[ordered].sort_values("comuna_code", ignore_index=True)
    result.attrs = dict(frame.attrs)
    return result


def _drop_undemarcated(
    source: str, raw: gpd.GeoDataFrame, code: str, name: str, snapshot: str | None
) -> gpd.GeoDataFrame:
    """Set aside the 'Zona sin demarcar' feature (Campo de Hielo Sur, code 0): it belongs to no territory.

    Only a feature with code 0 *and* that name is set aside; any other code-0 feature stays and
    fails the code check loudly. What was set aside is listed in attrs['excluded_features'].
    """
    _require_columns(source, raw, (code, name), snapshot)
    numeric = pd.to_numeric(raw[code], errors="coerce")
    undemarcated = (numeric == 0) & (
        raw[name].map(lambda v: not is_missing(v) and fold_name(v) == UNDEMARCATED_NAME)
    )
    excluded = [
        {"feature": row[name], code: row[code], "area_km2": round(float(area), 1)}
        for (_, row), area in zip(
            raw[undemarcated].iterrows(), area_km2(raw[undemarcated].geometry), strict=True
        )
    ]
    kept = raw[~undemarcated].copy()
    kept.attrs["excluded_features"] = excluded
    return kept


# --- chilemapas ------------------------------------------------------------------------------------


def parse_chilemapas_code_table(data: Data, snapshot: str | None = None) -> pd.DataFrame:
    """chilemapas `codigos_territoriales.csv` -> comuna_code, comuna_name, province_code,
    province_name, region_code, region_name (names as published: without accents)."""
    source = CHILEMAPAS_SOURCE.id
    raw = _read_table(source, data, ",", snapshot)
    _require_columns(
        source, raw, ("commune_id", "commune_name", "province_id", "province_name", "region_name"), snapshot
    )
    codes = code_table_frame(
        source, raw, comuna="commune_id", province="province_id", region="region_id", snapshot=snapshot
    )
    return pd.DataFrame(
        {
            "comuna_code": codes["comuna_code"],
            "comuna_name": raw["commune_name"],
            "province_code": codes["province_code"],
            "province_name": raw["province_name"],
            "region_code": codes["region_code"],
            "region_name": raw["region_name"],
        }
    ).sort_values("comuna_code", ignore_index=True)


def _with_names(
    comunas: gpd.GeoDataFrame, code_table: pd.DataFrame | None, source: str, snapshot
) -> gpd.GeoDataFrame:
    if code_table is None:
        return comunas
    names = code_table.set_index("comuna_code")["comuna_name"]
    unknown = sorted(set(comunas["comuna_code"]) - set(names.index))
    if unknown:
        raise ParseError(source, f"comuna code(s) {unknown} are not in the code table", snapshot)
    comunas = comunas.copy()
    comunas["name"] = comunas["comuna_code"].map(names).astype("string")
    return comunas


def parse_chilemapas_geojson(
    data: Data, code_table: pd.DataFrame | None = None, snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """A chilemapas `comunas/rNN.geojson` as the comuna frame; names come from `code_table` when given."""
    source = CHILEMAPAS_SOURCE.id
    raw = read_geojson(source, data, snapshot)
    comunas = comuna_frame(
        source,
        raw,
        comuna="codigo_comuna",
        name=None,
        province="codigo_provincia",
        region="codigo_region",
        snapshot=snapshot,
    )
    return _with_names(comunas, code_table, source, snapshot)


def parse_chilemapas_topojson(
    data: Data,
    object_name: str | None = None,
    code_table: pd.DataFrame | None = None,
    snapshot: str | None = None,
) -> gpd.GeoDataFrame:
    """A chilemapas `comunas/rNN.topojson` (object `rNN`) as the comuna frame."""
    source = CHILEMAPAS_SOURCE.id
    raw = read_topojson(source, data, object_name, snapshot)
    comunas = comuna_frame(
        source,
        raw,
        comuna="codigo_comuna",
        name=None,
        province="codigo_provincia",
        region="codigo_region",
        snapshot=snapshot,
    )
    return _with_names(comunas, code_table, source, snapshot)


# --- fcortes (BCN) ---------------------------------------------------------------------------------


def parse_fcortes_comunas(data: Data, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """fcortes `comunas.geojson` (national) as the comuna frame, plus province_name and region_name.

    The 'Zona sin demarcar' feature is set aside (attrs['excluded_features']). Note the
    published `Provincia` is wrong for some comunas (e.g. the Tamarugal comunas say
    'Iquique'); province_code is derived from the CUT and is right.
    """
    source = FCORTES_SOURCE.id
    raw = _drop_undemarcated(source, read_geojson(source, data, snapshot), "cod_comuna", "Comuna", snapshot)
    comunas = comuna_frame(
        source,
        raw,
        comuna="cod_comuna",
        name="Comuna",
        region="codregion",
        extra={"province_name": "Provincia", "region_name": "Region"},
        snapshot=snapshot,
    )
    comunas.attrs["excluded_features"] = raw.attrs["excluded_features"]
    return comunas


def parse_fcortes_regions(data: Data, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """fcortes `Regional.geojson` -> region_code, name, published_area_km2, geometry_repaired, area_km2, geometry.

    `published_area_km2` is the file's own `area_km` attribute; `area_km2` is ours.
    """
    source = FCORTES_SOURCE.id
    raw = _drop_undemarcated(source, read_geojson(source, data, snapshot), "codregion", "Region", snapshot)
    _require_columns(source, raw, ("codregion", "Region", "area_km"), snapshot)
    codes = _codes(source, raw["codregion"], "region", "codregion", snapshot)
    if len(set(codes)) != len(codes):
        raise ParseError(source, f"region codes repeat: {sorted(codes)}", snapshot)
    frame = gpd.GeoDataFrame(
        {
            "region_code": codes,
            "name": raw["Region"].astype("string").to_numpy(),
            "published_area_km2": pd.to_numeric(raw["area_km"], errors="coerce").to_numpy(),
        },
        geometry=raw.geometry.to_numpy(),
        crs=raw.crs,
    )
    frame = repair_polygons(source, to_wgs84(source, frame, snapshot), "region_code", snapshot)
    frame["area_km2"] = area_km2(frame.geometry)
    result = frame[["region_code", "name", "published_area_km2", "geometry_repaired", "area_km2", "geometry"]]
    result = result.sort_values("region_code", ignore_index=True)
    result.attrs = {**frame.attrs, "excluded_features": raw.attrs["excluded_features"]}
    return result


# --- bastianolea CUT table ---------------------------------------------------------------------------


def _read_table(source: str, data: Data, separator: str, snapshot: str | None) -> pd.DataFrame:
    text = decode_text(_read_bytes(data), source)
    try:
        return pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ParseError(
            source, f"table cannot be read with separator {separator!r} ({exc})", snapshot
        ) from exc


def parse_bastianolea_cut_table(data: Data, snapshot: str | None = None) -> pd.DataFrame:
    """bastianolea `comunas_chile_cut.csv` (`;`, unpadded ints) -> comuna_code, comuna_name,
    province_code (derived), region_code, region_name."""
    source = BASTIANOLEA_CUT_SOURCE.id
    raw = _read_table(source, data, ";", snapshot)
    _require_columns(source, raw, ("cut_comuna", "comuna", "cut_region", "region"), snapshot)
    codes = code_table_frame(source, raw, comuna="cut_comuna", region="cut_region", snapshot=snapshot)
    return pd.DataFrame(
        {
            "comuna_code": codes["comuna_code"],
            "comuna_name": raw["comuna"],
            "province_code": codes["province_code"],
            "region_code": codes["region_code"],
            "region_name": raw["region"],
        }
    ).sort_values("comuna_code", ignore_index=True)


# --- provinces, regions, country -------------------------------------------------------------------------

_LEVEL_COLUMN = {"province": "province_code", "region": "region_code", "country": None}


def dissolve_comunas(comunas: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """Provinces, regions or the country as unions of comunas.

    Columns: `<level>_code` (province_code / region_code / country_code = 'CL'), comuna_count,
    area_km2 (equal-area CRS), geometry (EPSG:4326).
    """
    if level not in _LEVEL_COLUMN:
        raise ValueError(f"level must be one of {sorted(_LEVEL_COLUMN)}, not {level!r}")
    merged = dissolve(comunas, _LEVEL_COLUMN[level], count_name="comuna_count")
    code_column = f"{level}_code"
    merged[code_column] = "CL" if level == "country" else merged["key"]
    return merged[[code_column, "comuna_count", "area_km2", "geometry"]]
