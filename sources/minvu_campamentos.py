"""MINVU catastro of informal settlements (campamentos): the 2024 update and the 2022 CNC.

The same settlements reach us in four shapes, and every parser here returns the one
normalized frame of `sources.settlements.SETTLEMENT_COLUMNS` (GeoDataFrame, EPSG:4326):
- the 2024 GeoIDE FeatureServer layer, paged GeoJSON (`CUT` an integer, `Shape__Area`);
- the 2024 ArcGIS Hub CSV export (UTF-8 BOM, `CUT` unpadded, `AN_CAT` a single space, no geometry);
- a processed 2024 CSV (semicolons, decimal commas, empty first header cell, no FOLIO/FUENTE);
- the 2022 CNC shapefile, in Web Mercator (EPSG:3857), `SUP_M2` text with a decimal comma.

Published areas (HECTAREAS, SUP_M2) are Web Mercator planar areas, inflated by 1/cos²(latitude);
they are kept as published in `hectares` (they are what MINVU reports) and the true area is
added as `hectares_geodesic`.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import shape

from sources import specs
from sources.arcgis import fetch_layer, parse_page
from sources.archives import extract_archive
from sources.base import (
    Fetcher,
    FetchRequest,
    ParseError,
    Payload,
    decode_text,
    is_missing,
    normalize_cut,
    parse_number,
)
from sources.geometry import WGS84, repair_polygons
from sources.settlements import SETTLEMENT_COLUMNS, geodesic_hectares

SOURCE = specs.source("minvu_campamentos")

ENDPOINTS = specs.endpoints("minvu_campamentos")

SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".CPG")

# Chile including Rapa Nui, with a margin: a layer outside this was read in the wrong CRS.
CHILE_ENVELOPE = (-110.0, -57.0, -66.0, -17.0)


@dataclass(frozen=True)
class Layout:
    """Where one file shape keeps each normalized field (None: the file does not carry it)."""

    label: str
    catastro_year: int
    name: str
    comuna: str
    region: str
    households: str
    hectares: str
    folio: str | None = None
    origin: str | None = None
    source_flag: str | None = None
    observations: str | None = None
    hectares_per_unit: float = 1.0
    decimal_comma: bool = False

    def required(self) -> list[str]:
        names = [self.name, self.comuna, self.region, self.households, self.hectares]
        optional = [self.folio, self.origin, self.source_flag, self.observations]
        return names + [name for name in optional if name is not None]


FEATURESERVER_2024 = Layout(
    label="2024 FeatureServer GeoJSON",
    catastro_year=2024,
    folio="FOLIO",
    name="NOMBRE",
    comuna="CUT",
    region="CUT_R",
    households="N_HOG",
    hectares="HECTAREAS",
    origin="AN_CAT",
    source_flag="FUENTE",
    observations="OBS",
)
HUB_CSV_2024 = replace(FEATURESERVER_2024, label="2024 Hub CSV export")
SEMICOLON_CSV_2024 = Layout(
    label="2024 processed semicolon CSV",
    catastro_year=2024,
    name="nombre",
    comuna="cut",
    region="cut_r",
    households="hogares",
    hectares="hectareas",
    origin="año",
    observations="observaciones",
    decimal_comma=True,
)
CNC_2022 = Layout(
    label="2022 CNC shapefile",
    catastro_year=2022,
    folio="FOLIO_NUM",
    name="NOMBRE",
    comuna="CUT_C",
    region="CUT_R",
    households="N_HOG",
    hectares="SUP_M2",
    origin="AN_CAT",
    hectares_per_unit=1 / 10_000,
    decimal_comma=True,
)


# --- fetching ------------------------------------------------------------------------------


def fetch_catastro_2024(fetcher: Fetcher, layer_url: str, page_size: int = 1000) -> list[Payload]:
    """All pages of the 2024 layer; an ArcGIS error answered with HTTP 200 raises ParseError."""
    return [payload for payload, _page in fetch_layer(fetcher, SOURCE, layer_url, "catastro-2024", page_size)]


def cnc_2022_requests(endpoint: str) -> list[FetchRequest]:
    """One request for a zip archive, or one per shapefile part for an extension-less URL."""
    if endpoint.lower().endswith(".zip"):
        return [FetchRequest(name="cnc2022.zip", url=endpoint, expect="zip")]
    return [
        FetchRequest(name=f"cnc2022{part.lower()}", url=endpoint + part, expect="any")
        for part in SHAPEFILE_PARTS
    ]


def fetch_cnc_2022(fetcher: Fetcher, endpoint: str) -> list[Payload]:
    return [fetcher.fetch(SOURCE, request) for request in cnc_2022_requests(endpoint)]


# --- parsing: 2024 -------------------------------------------------------------------------


def parse_catastro_2024_pages(pages: Iterable[bytes | Payload]) -> gpd.GeoDataFrame:
    """Normalize the FeatureServer pages (bytes or payloads) of the 2024 layer into one frame."""
    return _parse_pages(
        (page.content, page.snapshot_id) if isinstance(page, Payload) else (page, None) for page in pages
    )


def parse_catastro_2024_geojson(data: bytes | Path | str, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """The whole 2024 layer saved as one GeoJSON FeatureCollection (a single, final page)."""
    content = _content(data)
    return _parse_pages([(content, snapshot)])


def _parse_pages(pages: Iterable[tuple[bytes, str | None]]) -> gpd.GeoDataFrame:
    records: list[dict] = []
    geometries: list = []
    seen_ids: set = set()
    snapshot = None
    for content, snapshot in pages:
        document = parse_page(SOURCE.id, content, snapshot)
        _check_geojson_crs(document, snapshot)
        for feature in document["features"]:
            properties = feature.get("properties") or {}
            object_id = properties.get("OBJECTID", feature.get("id"))
            if object_id is not None:
                if object_id in seen_ids:
                    raise ParseError(
                        SOURCE.id, f"feature OBJECTID {object_id} appears twice (pages overlap)", snapshot
                    )
                seen_ids.add(object_id)
            records.append(properties)
            geometries.append(_feature_geometry(feature, snapshot))
    properties_frame = pd.DataFrame.from_records(records)
    return _normalize(properties_frame, geometries, FEATURESERVER_2024, snapshot)


def parse_catastro_2024_csv(data: bytes | Path | str, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """The ArcGIS Hub CSV export of the 2024 layer (no geometry: `geometry` is null)."""
    frame = _read_text_table(data, ",", snapshot)
    return _normalize(frame, [None] * len(frame), HUB_CSV_2024, snapshot)


def parse_catastro_2024_semicolon_csv(
    data: bytes | Path | str, snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """The processed 2024 CSV (`;`, decimal comma). It dropped FOLIO and FUENTE, so
    `settlement_id`, `folio` and `source_flag` are null: use it to cross-check, not as the record."""
    frame = _read_text_table(data, ";", snapshot)
    return _normalize(frame, [None] * len(frame), SEMICOLON_CSV_2024, snapshot)


# --- parsing: 2022 -------------------------------------------------------------------------


def parse_cnc_2022(
    data: Path | str | bytes | Sequence[Payload], snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """The 2022 CNC shapefile from a directory, a .shp, a zip (path or bytes) or fetched payloads.

    The layer is reprojected explicitly from the CRS its .prj declares (EPSG:3857 in the
    published file) to EPSG:4326; a layer without a CRS is refused, since its metres would
    otherwise be read as degrees.
    """
    if isinstance(data, bytes):
        return _with_extracted_zip(data, snapshot)
    if isinstance(data, str):
        data = Path(data)
    if isinstance(data, Path):
        if data.suffix.lower() == ".zip":
            return _with_extracted_zip(data, snapshot)
        return _read_cnc_path(data, snapshot)
    payloads = list(data)
    snapshot = snapshot or (payloads[0].snapshot_id if payloads else None)
    if len(payloads) == 1 and payloads[0].name.endswith(".zip"):
        return _with_extracted_zip(payloads[0].content, snapshot)
    known_parts = {part.lower().lstrip(".") for part in SHAPEFILE_PARTS}
    by_part = {
        part: payload.content
        for payload in payloads
        if (part := payload.name.rsplit(".", 1)[-1].lower()) in known_parts
    }
    missing = [part for part in (".shp", ".shx", ".dbf", ".prj") if part[1:] not in by_part]
    if missing:
        raise ParseError(SOURCE.id, f"CNC 2022 shapefile parts missing: {missing}", snapshot)
    with tempfile.TemporaryDirectory(prefix="cnc2022-") as directory:
        for part, content in by_part.items():
            (Path(directory) / f"CNC2022.{part}").write_bytes(content)
        return _read_cnc_path(Path(directory), snapshot)


def _with_extracted_zip(archive: bytes | Path, snapshot: str | None) -> gpd.GeoDataFrame:
    """Unpack through `sources.archives` (refuses zip-slip, symlinks, bombs), then read."""
    with tempfile.TemporaryDirectory(prefix="cnc2022-") as directory:
        extract_archive(SOURCE.id, archive, Path(directory), snapshot=snapshot)
        return _read_cnc_path(Path(directory), snapshot)


def _read_cnc_path(path: Path, snapshot: str | None) -> gpd.GeoDataFrame:
    if path.is_dir():
        candidates = sorted(path.rglob("*.shp"))
        if len(candidates) != 1:
            raise ParseError(
                SOURCE.id, f"expected one .shp in {path.name}, found {[c.name for c in candidates]}", snapshot
            )
        path = candidates[0]
    try:
        layer = pyogrio.read_dataframe(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as exc:
        raise ParseError(SOURCE.id, f"cannot read CNC 2022 layer {path.name}: {exc}", snapshot) from exc
    if layer.crs is None:
        raise ParseError(
            SOURCE.id, f"CNC 2022 layer {path.name} has no CRS (.prj missing); refusing to guess", snapshot
        )
    layer = layer.to_crs(WGS84)
    attributes = pd.DataFrame(layer.drop(columns=layer.geometry.name))
    return _normalize(attributes, list(layer.geometry), CNC_2022, snapshot)


# --- shared normalization ------------------------------------------------------------------


def _content(data: bytes | Path | str) -> bytes:
    """Payload bytes as given, or the bytes of a file named by a path."""
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def _read_text_table(data: bytes | Path | str, separator: str, snapshot: str | None) -> pd.DataFrame:
    """Read a small CSV keeping every cell as text, so ' ' and '0' survive for the converters."""
    content = _content(data)
    text = decode_text(content, SOURCE.id)
    try:
        return pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ParseError(SOURCE.id, f"cannot read CSV: {exc}", snapshot) from exc


def _check_geojson_crs(document: dict, snapshot: str | None) -> None:
    crs = document.get("crs")
    if crs is None:
        return  # RFC 7946: WGS84 longitude/latitude
    name = str(((crs or {}).get("properties") or {}).get("name", ""))
    if not any(tag in name for tag in ("4326", "CRS84")):
        raise ParseError(
            SOURCE.id, f"GeoJSON declares CRS {name!r}; the layer must be requested with outSR=4326", snapshot
        )


def _feature_geometry(feature: dict, snapshot: str | None):
    geometry = feature.get("geometry")
    if not geometry:
        return None
    try:
        return shape(geometry)
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
        raise ParseError(
            SOURCE.id, f"feature {feature.get('id')} has an unreadable geometry ({exc})", snapshot
        ) from exc


def _normalize(raw: pd.DataFrame, geometries: list, layout: Layout, snapshot: str | None) -> gpd.GeoDataFrame:
    if raw.empty:
        # A national catastro is never empty: an empty answer is a failed query, not a fact.
        raise ParseError(SOURCE.id, f"{layout.label}: no settlements in the payload", snapshot)
    missing = [column for column in layout.required() if column not in raw.columns]
    if missing:
        raise ParseError(SOURCE.id, f"{layout.label}: required column(s) missing: {missing}", snapshot)

    def convert(column: str, converter: Callable, row: int, value):
        try:
            return converter(value)
        except (ValueError, TypeError) as exc:
            raise ParseError(
                SOURCE.id,
                f"{layout.label}: row {row + 1}, column {column}: cannot read {value!r} ({exc})",
                snapshot,
            ) from exc

    def column_values(column: str | None, converter: Callable) -> list:
        if column is None:
            return [None] * len(raw)
        return [convert(column, converter, row, value) for row, value in enumerate(raw[column])]

    def hectares(value) -> float | None:
        return _scaled(parse_number(value, decimal_comma=layout.decimal_comma), layout)

    comunas = column_values(layout.comuna, _comuna_code)
    regions = column_values(layout.region, lambda value: normalize_cut(value, "region"))
    for row, (comuna, region) in enumerate(zip(comunas, regions, strict=True)):
        if region is not None and comuna[:2] != region:
            raise ParseError(
                SOURCE.id,
                f"{layout.label}: row {row + 1}: region {region} disagrees with comuna {comuna}",
                snapshot,
            )
    frame = pd.DataFrame(
        {
            "catastro_year": layout.catastro_year,
            "folio": column_values(layout.folio, _folio),
            "name": column_values(layout.name, _text),
            "comuna_code": comunas,
            "region_code": [comuna[:2] for comuna in comunas],
            "households": pd.array(
                column_values(layout.households, lambda v: _households(v, layout.decimal_comma)),
                dtype="Int64",
            ),
            "hectares": pd.array(column_values(layout.hectares, hectares), dtype="float64"),
            "catastro_origin": column_values(layout.origin, _text),
            "source_flag": column_values(layout.source_flag, _text),
            "observations": column_values(layout.observations, _text),
        }
    )
    flags: list[list[str]] = [[] for _ in range(len(frame))]
    cleaned = _clean_geometries(geometries, flags, frame, layout, snapshot)
    result = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(cleaned, crs=WGS84, index=frame.index))
    _check_envelope(result, layout, snapshot)
    result["hectares_geodesic"] = geodesic_hectares(result.geometry)
    result["settlement_id"] = _settlement_ids(result, layout, flags)
    result["quality_flags"] = [";".join(row_flags) or None for row_flags in flags]
    return result[SETTLEMENT_COLUMNS]


def _scaled(value: float | None, layout: Layout) -> float | None:
    if value is None:
        return None
    if value < 0:
        raise ValueError("negative area")
    return value * layout.hectares_per_unit


def _comuna_code(value) -> str:
    code = normalize_cut(value, "comuna")
    if code is None:
        raise ValueError("comuna code is missing")
    return code


def _folio(value) -> str | None:
    if is_missing(value):
        return None
    number = float(str(value).strip())
    if not number.is_integer():
        raise ValueError("folio is not a whole number")
    return str(int(number))


def _text(value) -> str | None:
    return None if is_missing(value) else str(value).strip()


def _households(value, decimal_comma: bool) -> int | None:
    number = parse_number(value, decimal_comma=decimal_comma)
    if number is None:
        return None
    if not float(number).is_integer() or number < 0:
        raise ValueError("household count is not a whole non-negative number")
    return int(number)


def _clean_geometries(
    geometries: list, flags: list[list[str]], frame: pd.DataFrame, layout: Layout, snapshot: str | None
) -> list:
    """Missing or empty → null and flagged (the settlement still counts); invalid → repaired by
    `sources.geometry.repair_polygons` and flagged; non-polygons and unrepairable ones → ParseError."""
    if all(geom is None for geom in geometries):
        return geometries  # a table without geometry (CSV): nothing to flag
    present = [row for row, geom in enumerate(geometries) if geom is not None and not geom.is_empty]
    for row in sorted(set(range(len(geometries))) - set(present)):
        flags[row].append("geometry_missing")
    cleaned: list = [None] * len(geometries)
    if present:
        subset = gpd.GeoDataFrame(
            {"label": [f"{layout.label} row {row + 1} ({frame['name'][row]!r})" for row in present]},
            geometry=[geometries[row] for row in present],
            crs=WGS84,
        )
        repaired = repair_polygons(SOURCE.id, subset, "label", snapshot)
        for row, geom, was_repaired in zip(
            present, repaired.geometry, repaired["geometry_repaired"], strict=True
        ):
            cleaned[row] = geom
            if was_repaired:
                flags[row].append("geometry_repaired")
    return cleaned


def _check_envelope(frame: gpd.GeoDataFrame, layout: Layout, snapshot: str | None) -> None:
    present = frame.geometry.dropna()
    if present.empty:
        return
    west, south, east, north = CHILE_ENVELOPE
    bounds = present.bounds
    outside = (bounds.minx < west) | (bounds.maxx > east) | (bounds.miny < south) | (bounds.maxy > north)
    if outside.any():
        first = outside[outside].index[0]
        raise ParseError(
            SOURCE.id,
            f"{layout.label}: {int(outside.sum())} polygon(s) lie outside Chile in EPSG:4326 "
            f"(first: {frame.at[first, 'name']!r}); wrong or missing CRS?",
            snapshot,
        )


def _settlement_ids(frame: pd.DataFrame, layout: Layout, flags: list[list[str]]) -> list[str | None]:
    """`<year>-<folio>`; a folio repeated within one file gets `-2`, `-3` … in file order."""
    counts = frame["folio"].value_counts()
    seen: dict[str, int] = {}
    ids: list[str | None] = []
    for row, folio in enumerate(frame["folio"]):
        if folio is None:
            if layout.folio is not None:
                flags[row].append("folio_missing")
            ids.append(None)
            continue
        seen[folio] = seen.get(folio, 0) + 1
        if counts[folio] > 1:
            flags[row].append("folio_repeated")
        suffix = "" if seen[folio] == 1 else f"-{seen[folio]}"
        ids.append(f"{layout.catastro_year}-{folio}{suffix}")
    return ids
