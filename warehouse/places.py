"""The one site locator: which comuna, province, region and basins hold a WGS84 point.

Study sites, the study check and the territories family all place a point here, through the
`marts.locate` macro, so they cannot disagree. A point on a border shared by two polygons of
the same kind goes to the smaller id, the rule `sources.geometry.locate_points` applies to
bulk points (settlements, stations, conflicts) before they reach the warehouse.
"""

from __future__ import annotations

import duckdb

# Kinds a point is placed in; basins at every level the boundary sources provide.
POINT_KINDS = ("comuna", "province", "region", "basin", "subbasin", "subsubbasin")


def locate_point(conn: duckdb.DuckDBPyConnection, lon: float, lat: float) -> dict[str, str | None]:
    """{kind: territory id or None} for the polygons holding (lon, lat); ValueError if not degrees.

    The province and region come from the comuna's lineage when it has one (a comuna polygon is
    finer than a region polygon), else from their own polygons, else (region) from the CUT code.
    """
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"({lon}, {lat}) is not a longitude/latitude pair in degrees")
    found = dict(
        conn.execute(
            "SELECT kind, min(territory_id) FROM marts.locate(?, ?) GROUP BY kind", [lon, lat]
        ).fetchall()
    )
    placed = {kind: found.get(kind) for kind in POINT_KINDS}
    if placed["comuna"]:
        province, region = conn.execute(
            "SELECT province_id, region_id FROM marts.territory_lineage WHERE territory_id = ?",
            [placed["comuna"]],
        ).fetchone()
        placed.update(province=province or placed["province"], region=region or placed["region"])
        # A comuna without lineage or region polygon: CUT codes begin with the region's two digits.
        placed["region"] = placed["region"] or f"region:{placed['comuna'].split(':', 1)[1][:2]}"
    return placed


def polygon_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Territories with a polygon, per kind: whether a point could be placed in that kind at all."""
    return dict(
        conn.execute(
            "SELECT kind, count(*) FROM core.territories WHERE geometry IS NOT NULL GROUP BY kind"
        ).fetchall()
    )
