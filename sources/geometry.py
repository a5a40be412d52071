"""Pure geometry helpers shared by the boundary and basin sources: validity, areas, joins.

Areas are computed in `EQUAL_AREA_CRS`, a Lambert azimuthal equal-area projection centred
on mainland Chile. An equal-area projection gives exact areas everywhere by construction,
whereas UTM 19S (EPSG:32719) is conformal: its scale error grows away from the central
meridian, and Chile spans UTM zones 18 and 19 (and 12 for Rapa Nui). The centre only
affects shape distortion, which areas do not care about.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from sources.base import ParseError

log = logging.getLogger(__name__)

WGS84 = "EPSG:4326"
EQUAL_AREA_CRS = "+proj=laea +lat_0=-37.5 +lon_0=-71 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs +type=crs"


DENSIFY_DEGREES = 0.01


def to_equal_area(geometries: gpd.GeoSeries) -> gpd.GeoSeries:
    """Project to the equal-area CRS, densifying long edges first.

    Edges are read as straight lines in lon/lat (as the files draw them); a long edge along
    a parallel would otherwise become a chord after projection and shift the area slightly.
    """
    if geometries.crs is None:
        raise ValueError("geometries have no CRS; cannot compute areas")
    return geometries.to_crs(WGS84).segmentize(DENSIFY_DEGREES).to_crs(EQUAL_AREA_CRS)


def area_km2(geometries: gpd.GeoSeries) -> pd.Series:
    """Area of each geometry in km², computed in the equal-area CRS."""
    return to_equal_area(geometries).area / 1e6


def to_wgs84(source: str, frame: gpd.GeoDataFrame, snapshot: str | None = None) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; a frame without CRS is taken as GeoJSON's WGS84 only if it looks like degrees."""
    if frame.crs is None:
        frame = frame.set_crs(WGS84)
    elif not frame.crs.equals(WGS84):
        frame = frame.to_crs(WGS84)
    if len(frame):
        minx, miny, maxx, maxy = frame.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ParseError(
                source,
                f"coordinates {frame.total_bounds.round(1).tolist()} are not longitude/latitude degrees "
                "(a projected file without a CRS?)",
                snapshot,
            )
    return frame


def _polygonal_part(geometry: BaseGeometry) -> BaseGeometry | None:
    """Only the polygons of a repaired geometry (make_valid may return lines or points alongside)."""
    if isinstance(geometry, Polygon | MultiPolygon):
        return geometry
    polygons = [part for part in shapely.get_parts(geometry) if isinstance(part, Polygon | MultiPolygon)]
    if not polygons:
        return None
    merged = shapely.union_all(polygons)
    return merged if isinstance(merged, Polygon | MultiPolygon) else None


def repair_polygons(
    source: str, frame: gpd.GeoDataFrame, label_column: str, snapshot: str | None = None
) -> gpd.GeoDataFrame:
    """Check every geometry; repair invalid ones with `shapely.make_valid` and report each repair.

    The 'structure' method keeps nested shells as area (the 'linework' default turns a
    shell nested in another into a hole). A repair is logged, flagged in the
    `geometry_repaired` column and listed in `frame.attrs['geometry_repairs']`. A missing or
    empty geometry, a non-polygonal one, or a repair that leaves no polygonal area is a
    `ParseError` naming the feature.
    """
    repaired: list[BaseGeometry] = []
    flags: list[bool] = []
    repairs: list[dict] = []
    for label, geometry in zip(frame[label_column], frame.geometry, strict=True):
        if geometry is None or geometry.is_empty:
            raise ParseError(source, f"feature {label!r} has no geometry", snapshot)
        if not isinstance(geometry, Polygon | MultiPolygon):
            raise ParseError(source, f"feature {label!r} is a {geometry.geom_type}, not a polygon", snapshot)
        if geometry.is_valid:
            repaired.append(geometry)
            flags.append(False)
            continue
        reason = shapely.is_valid_reason(geometry)
        fixed = _polygonal_part(shapely.make_valid(geometry, method="structure", keep_collapsed=False))
        if fixed is None or fixed.is_empty or fixed.area == 0 or not fixed.is_valid:
            raise ParseError(
                source,
                f"feature {label!r} has an invalid geometry ({reason}) that cannot be repaired",
                snapshot,
            )
        log.warning("%s: repaired invalid geometry of %r (%s)", source, label, reason)
        repairs.append({"feature": label, "problem": reason, "result": fixed.geom_type})
        repaired.append(fixed)
        flags.append(True)
    result = frame.copy()
    result["geometry"] = gpd.GeoSeries(repaired, index=frame.index, crs=frame.crs)
    result["geometry_repaired"] = flags
    result.attrs["geometry_repairs"] = repairs
    return result


# Chile's territory as two boxes (lon_min, lat_min, lon_max, lat_max): the mainland with its Pacific
# islands (Rapa Nui at 109.4 W, Juan Fernández, San Félix) and the Chilean Antarctic Territory.
CHILE_BOXES = ((-109.6, -56.6, -66.0, -17.4), (-90.0, -90.0, -53.0, -60.0))


def outside_chile(lon: float, lat: float) -> bool:
    """True when a WGS84 point lies outside every box of Chile (a swapped or sign-flipped pair, a typo)."""
    return not any(x0 <= lon <= x1 and y0 <= lat <= y1 for x0, y0, x1, y1 in CHILE_BOXES)


def locate_points(
    points: pd.DataFrame,
    polygons: gpd.GeoDataFrame,
    id_column: str,
    lon: str = "lon",
    lat: str = "lat",
) -> pd.Series:
    """The id of the polygon holding each point (None outside all polygons), aligned on `points.index`.

    Uses a shapely STRtree. A point on a boundary shared by several polygons goes to the
    smallest id, so the answer does not depend on row order.
    """
    missing = [column for column in (lon, lat) if column not in points.columns]
    if missing:
        raise ValueError(f"points lack the coordinate column(s) {missing}")
    polygons = (
        polygons.to_crs(WGS84) if polygons.crs is not None and not polygons.crs.equals(WGS84) else polygons
    )
    xs = pd.to_numeric(points[lon], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(points[lat], errors="coerce").to_numpy(dtype=float)
    outside = np.isfinite(xs) & np.isfinite(ys) & ((np.abs(xs) > 180) | (np.abs(ys) > 90))
    if outside.any():
        raise ValueError(f"{int(outside.sum())} point(s) are not longitude/latitude degrees")
    ids = polygons[id_column].to_numpy()
    tree = shapely.STRtree(polygons.geometry.to_numpy())
    point_index, polygon_index = tree.query(shapely.points(xs, ys), predicate="intersects")
    found: dict[int, object] = {}
    for i, j in zip(point_index, polygon_index, strict=True):
        candidate = ids[j]
        if i not in found or str(candidate) < str(found[i]):
            found[i] = candidate
    return pd.Series([found.get(i) for i in range(len(points))], index=points.index, dtype=object)


def _unique_ids(frame: gpd.GeoDataFrame, column: str) -> None:
    duplicated = frame[column][frame[column].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"{column} is not unique: {list(duplicated)}")


def overlap_shares(
    comunas: gpd.GeoDataFrame,
    basins: gpd.GeoDataFrame,
    comuna_id: str = "comuna_code",
    basin_id: str = "basin_code",
) -> pd.DataFrame:
    """Area of every comuna × basin intersection, in km² of the equal-area CRS, and its two shares.

    Columns: comuna_id, basin_id (values of the given id columns), overlap_km2,
    share_of_comuna (overlap / comuna area), share_of_basin (overlap / basin area). Pairs
    that do not overlap are absent.
    """
    _unique_ids(comunas, comuna_id)
    _unique_ids(basins, basin_id)
    comuna_shapes = to_equal_area(comunas.geometry).to_numpy()
    basin_shapes = to_equal_area(basins.geometry).to_numpy()
    comuna_index, basin_index = shapely.STRtree(basin_shapes).query(comuna_shapes, predicate="intersects")
    overlap = shapely.area(shapely.intersection(comuna_shapes[comuna_index], basin_shapes[basin_index])) / 1e6
    result = pd.DataFrame(
        {
            "comuna_id": comunas[comuna_id].to_numpy()[comuna_index],
            "basin_id": basins[basin_id].to_numpy()[basin_index],
            "overlap_km2": overlap,
            "share_of_comuna": overlap / (shapely.area(comuna_shapes[comuna_index]) / 1e6),
            "share_of_basin": overlap / (shapely.area(basin_shapes[basin_index]) / 1e6),
        }
    )
    result = result[result["overlap_km2"] > 0]
    return result.sort_values(["comuna_id", "basin_id"], ignore_index=True)


def dissolve(frame: gpd.GeoDataFrame, by: str | None, count_name: str = "part_count") -> gpd.GeoDataFrame:
    """Union geometries per value of `by` (everything when None), keeping a count of parts and the area."""
    keys: Iterable = frame[by] if by is not None else pd.Series("all", index=frame.index)
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        rows.append(
            {"key": key, count_name: len(group), "geometry": shapely.union_all(group.geometry.to_numpy())}
        )
    result = gpd.GeoDataFrame(rows, geometry="geometry", crs=frame.crs)
    result["area_km2"] = area_km2(result.geometry)
    return result
