"""The lens map's layers, read from the warehouse: focus polygons, basins in view, point marts, sites.

GeoJSON features in EPSG:4326 within the focus extent; `pipelines.lens_map` draws them. A layer
whose geometry rests on a SAMPLE snapshot says so (`sample`), so the map can mark it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd

from pipelines.reading import accented
from warehouse.db import quote_ident, table_name
from warehouse.lens import LensScope

NAME_COLUMNS = (
    "name",
    "title",
    "settlement_name",
    "nombre",
    "station_name",
    "gauge_name",
    "gauge_code",
    "code",
)


@dataclass
class MapData:
    """GeoJSON features per layer, in EPSG:4326, clipped to the focus extent."""

    extent: tuple[float, float, float, float]
    layers: list[dict]


def _relation_columns(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {c: t for c, t in rows}


def _point_layer(conn, schema: str, name: str, extent, label: str, style: str) -> dict | None:
    """Point features (centroids) of a mart or core relation, when its geometry can be read."""
    columns = _relation_columns(conn, schema, name)
    lower = {c.lower(): c for c in columns}
    geometry = next((c for c, t in columns.items() if t.upper().startswith("GEOMETRY")), None)
    geojson = next((c for c in columns if "geojson" in c.lower()), None)
    lon = next((lower[c] for c in ("lon", "longitude", "lng") if c in lower), None)
    lat = next((lower[c] for c in ("lat", "latitude") if c in lower), None)
    if geometry:
        shape = quote_ident(geometry)
    elif geojson:
        shape = f"ST_GeomFromGeoJSON({quote_ident(geojson)})"
    elif lon and lat:
        shape = f"ST_Point({quote_ident(lon)}::DOUBLE, {quote_ident(lat)}::DOUBLE)"
    else:
        return None
    title = next((lower[c] for c in NAME_COLUMNS if c in lower), None)
    title_sql = f"CAST({quote_ident(title)} AS VARCHAR)" if title else "NULL"
    sql = (
        f"SELECT {title_sql} AS name, ST_X(ST_Centroid(g)) AS x, ST_Y(ST_Centroid(g)) AS y "  # noqa: S608 (identifiers quoted)
        f"FROM (SELECT *, {shape} AS g FROM {table_name(schema, name)}) "
        "WHERE g IS NOT NULL AND ST_Intersects(g, ST_MakeEnvelope(?, ?, ?, ?)) ORDER BY x, y, name LIMIT 5000"
    )
    frame = conn.execute(sql, list(extent)).df()
    features = [
        {
            "name": r.name if isinstance(r.name, str) else "",
            "geometry": {"type": "Point", "coordinates": [r.x, r.y]},
        }
        for r in frame.itertuples()
    ]
    return {"name": label, "style": style, "source": f"{schema}.{name}", "features": features}


def _air_station_layer(conn: duckdb.DuckDBPyConnection, extent) -> dict | None:
    """SINCA air-quality stations in view (staging.sinca_stations), each named with who runs it."""
    if not _relation_columns(conn, "staging", "sinca_stations"):
        return None
    rows = conn.execute(
        """
        SELECT station_code, station_name, operator, operator_kind, longitude, latitude
        FROM staging.sinca_stations
        WHERE NOT outside_chile AND longitude BETWEEN ? AND ? AND latitude BETWEEN ? AND ?
        ORDER BY station_code
        """,
        [extent[0], extent[2], extent[1], extent[3]],
    ).fetchall()
    features = [
        {
            "id": code,
            "name": name,
            "operator": {"code": code, "operator": operator or "", "mining": kind == "mining company"},
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
        }
        for code, name, operator, kind, lon, lat in rows
    ]
    if not features:
        return None
    return {
        "name": "Air-quality stations (SINCA)",
        "style": "air_station",
        "source": "staging.sinca_stations",
        "features": features,
    }


# Point marts of other families drawn as map layers: mart name -> (layer label, style).
POINT_MARTS = {
    "health_facilities": ("Health establishments (DEIS)", "facility"),
    "socioenvironmental_conflicts": ("Socio-environmental conflicts (INDH)", "conflict"),
}


def _extent(conn: duckdb.DuckDBPyConnection, ids: list[str], sites: pd.DataFrame) -> tuple[float, ...]:
    """The focus polygons' and sites' bounding box, padded by 3 %."""
    bounds = conn.execute(
        """
        SELECT min(ST_XMin(geometry)), min(ST_YMin(geometry)), max(ST_XMax(geometry)), max(ST_YMax(geometry))
        FROM core.territories WHERE territory_id IN (SELECT unnest(?::VARCHAR[]))
        """,
        [ids],
    ).fetchone()
    xs = [bounds[0], bounds[2], *sites.get("lon", pd.Series(dtype=float)).tolist()]
    ys = [bounds[1], bounds[3], *sites.get("lat", pd.Series(dtype=float)).tolist()]
    pad = 0.03 * max(max(xs) - min(xs), max(ys) - min(ys), 0.01)
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


# Polygon layers, drawn in this order: (label, kind, focus territories or the others in view, style).
POLYGON_LAYERS = (
    ("Region", "region", True, "region"),
    ("Focus comunas", "comuna", True, "comuna"),
    ("Other basins in view", "basin", False, "basin-other"),
    ("Focus basins", "basin", True, "basin"),
)


def _polygon_layers(conn: duckdb.DuckDBPyConnection, ids: list[str], extent) -> list[dict]:
    """The focus region, comunas and basins, and the other basins in view, simplified for the page."""
    tolerance = max(extent[2] - extent[0], extent[3] - extent[1]) / 700
    polygons = conn.execute(
        """
        SELECT territory_id, kind, name,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(geometry, ?)) AS geojson,
               ST_X(ST_PointOnSurface(geometry)) AS label_x, ST_Y(ST_PointOnSurface(geometry)) AS label_y,
               territory_id IN (SELECT unnest(?::VARCHAR[])) AS is_focus,
               (SELECT sn.mode FROM core.snapshots sn WHERE sn.snapshot_id = core.territories.snapshot_id) AS mode
        FROM core.territories
        WHERE geometry IS NOT NULL AND kind IN ('region', 'comuna', 'basin')
          AND (territory_id IN (SELECT unnest(?::VARCHAR[]))
               OR (kind = 'basin' AND ST_Intersects(geometry, ST_MakeEnvelope(?, ?, ?, ?))))
        ORDER BY kind, territory_id
        """,
        [tolerance, ids, ids, *extent],
    ).df()
    layers = []
    for label, kind, focus_only, style in POLYGON_LAYERS:
        chosen = polygons[(polygons["kind"] == kind) & (polygons["is_focus"] == focus_only)]
        if not len(chosen):
            continue
        features = [
            {
                "id": r.territory_id,
                "name": accented(r.name) if kind == "basin" else r.name,
                "geometry": json.loads(r.geojson),
                "label": [r.label_x, r.label_y],
            }
            for r in chosen.itertuples()
        ]
        sample = bool((chosen["mode"] == "sample").any())
        layers.append(
            {
                "name": label,
                "style": style,
                "source": "core.territories",
                "sample": sample,
                "features": features,
            }
        )
    return layers


def _mart_point_layers(conn: duckdb.DuckDBPyConnection, extent) -> list[dict]:
    """Settlements, gauges, stations and the point marts of POINT_MARTS, one layer per style."""
    relations = conn.execute(
        """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_schema IN ('marts', 'core')
          AND (table_name = 'settlement_map' OR table_name ILIKE '%gauge%' OR table_name ILIKE '%station%'
               OR (table_schema = 'marts' AND table_name IN (SELECT unnest(?::VARCHAR[]))))
        ORDER BY table_schema DESC, table_name
        """,
        [list(POINT_MARTS)],
    ).fetchall()
    layers: list[dict] = []
    for schema, name in relations:
        is_settlement = "settlement" in name
        label, style = POINT_MARTS.get(
            name, ("Informal settlements", "settlement") if is_settlement else ("Streamflow gauges", "gauge")
        )
        try:
            layer = _point_layer(conn, schema, name, extent, label, style)
        except duckdb.Error as exc:  # another family's view that cannot be read now: say so, draw the rest
            layer = {"name": f"{schema}.{name}", "style": "error", "source": str(exc)[:200], "features": []}
        if layer and not any(existing["style"] == layer["style"] for existing in layers):
            layers.append(layer)
    return layers


def map_data(conn: duckdb.DuckDBPyConnection, scope: LensScope) -> MapData | None:
    """Layers for the report's map; None when no focus territory has a polygon yet."""
    focus = scope.territories[(scope.territories["role"] == "focus") & scope.territories["has_geometry"]]
    if focus.empty:
        return None
    ids = focus["territory_id"].tolist()
    extent = _extent(conn, ids, scope.sites)
    layers = _polygon_layers(conn, ids, extent) + _mart_point_layers(conn, extent)
    air = _air_station_layer(conn, extent)
    if air:
        layers.append(air)
    sites = [
        {"name": s.site, "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]}}
        for s in scope.sites.itertuples()
    ]
    if sites:
        layers.append({"name": "Study sites", "style": "site", "source": "study file", "features": sites})
    return MapData(extent, layers)
