"""One way to place a point: the warehouse locator and the bulk locator agree, borders included."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from sources.geometry import WGS84, locate_points
from warehouse import db, places

# Two comunas of region 02 sharing the edge lon = -69; a basin overlapping both.
SQUARES = {
    "02002": box(-69.0, -23.0, -68.0, -22.0),  # inserted first: the rule must not depend on order
    "02001": box(-70.0, -23.0, -69.0, -22.0),
}
BASIN = box(-69.5, -22.8, -68.5, -22.2)


@pytest.fixture()
def conn(warehouse_env):
    with db.writer(publish_after=False) as conn:
        rows = [
            (f"comuna:{code}", "comuna", code, f"Comuna {code}", None, shape.wkt)
            for code, shape in SQUARES.items()
        ]
        rows.append(("basin:021", "basin", "021", "Rio Loa", None, BASIN.wkt))
        conn.executemany(
            "INSERT INTO core.territories (territory_id, kind, code, name, parent_id, geometry) "
            "VALUES (?, ?, ?, ?, ?, ST_GeomFromText(?::VARCHAR))",
            rows,
        )
        db.run_script(conn, db.SQL_DIR / "views" / "10_territories.sql")  # as the territories family does
        yield conn


@pytest.mark.parametrize(
    ("lon", "lat", "comuna"),
    [(-69.0, -22.5, "02001"), (-69.0, -22.0, "02001"), (-68.5, -22.5, "02002"), (-69.5, -22.9, "02001")],
)
def test_sites_and_bulk_points_are_placed_alike(conn, lon, lat, comuna):
    placed = places.locate_point(conn, lon, lat)
    polygons = gpd.GeoDataFrame({"code": list(SQUARES)}, geometry=list(SQUARES.values()), crs=WGS84)
    bulk = locate_points(pd.DataFrame({"lon": [lon], "lat": [lat]}), polygons, "code")
    assert placed["comuna"] == f"comuna:{comuna}" == f"comuna:{bulk.iloc[0]}"
    assert placed["region"] == "region:02"  # no lineage loaded: the region from the CUT code
    assert placed["basin"] == ("basin:021" if BASIN.intersects(box(lon, lat, lon, lat)) else None)


def test_a_point_outside_every_polygon_and_a_swapped_pair(conn):
    assert set(places.locate_point(conn, -72.5, -22.5).values()) == {None}
    assert places.polygon_counts(conn) == {"comuna": 2, "basin": 1}
    with pytest.raises(ValueError, match="not a longitude/latitude"):
        places.locate_point(conn, -22.456, -168.926)
