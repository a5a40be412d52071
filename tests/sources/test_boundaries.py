"""Boundary parsers against the real chilemapas / fcortes / bastianolea files, read in place.

Expected figures are computed here straight from the raw files (json/csv + shapely/pyproj
geodesic areas) or taken from PROVENANCE.md section 2, never from the parser under test.
"""

from __future__ import annotations

import csv
import json

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import box, shape

from sources import boundaries
from sources.base import ParseError
from sources.dga_basins import SAMPLE_ARCHIVE_NAME, SAMPLE_DIR, parse_basins
from sources.geometry import locate_points, overlap_shares

# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas"
ANTOFAGASTA_COMUNAS = {"02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"}
GEOD = pyproj.Geod(ellps="WGS84")


def geodesic_km2(geometry) -> float:
    """Area on the WGS84 ellipsoid, independent of any projection."""
    return abs(GEOD.geometry_area_perimeter(geometry)[0]) / 1e6


@pytest.fixture(scope="module")
def files(shared_data):
    return shared_data / "boundaries"


@pytest.fixture(scope="module")
def code_table(files):
    return boundaries.parse_chilemapas_code_table(files / "chilemapas_codigos_territoriales.csv")


@pytest.fixture(scope="module")
def chilemapas_r02(files, code_table):
    return boundaries.parse_chilemapas_geojson(files / "chilemapas_comunas_r02.geojson", code_table)


@pytest.fixture(scope="module")
def fcortes_comunas(files):
    return boundaries.parse_fcortes_comunas(files / "fcortes_comunas.geojson")


@pytest.fixture(scope="module")
def fcortes_regions(files):
    return boundaries.parse_fcortes_regions(files / "fcortes_Regional.geojson")


def raw_features(path):
    return json.loads(path.read_text(encoding="utf-8"))["features"]


# --- chilemapas -------------------------------------------------------------------------------


def test_chilemapas_r02_gives_the_nine_antofagasta_comunas(files, chilemapas_r02):
    raw = raw_features(files / "chilemapas_comunas_r02.geojson")
    assert (
        set(chilemapas_r02["comuna_code"])
        == ANTOFAGASTA_COMUNAS
        == {f["properties"]["codigo_comuna"] for f in raw}
    )
    assert list(chilemapas_r02.columns[:4]) == ["comuna_code", "province_code", "region_code", "name"]
    assert set(chilemapas_r02["region_code"]) == {"02"}  # published as "00002"
    assert set(chilemapas_r02["province_code"]) == {f["properties"]["codigo_provincia"] for f in raw}
    assert chilemapas_r02.crs.to_epsg() == 4326


def test_chilemapas_names_come_from_the_code_table(files, chilemapas_r02):
    with (files / "chilemapas_codigos_territoriales.csv").open(encoding="utf-8") as handle:
        published = {row["commune_id"]: row["commune_name"] for row in csv.DictReader(handle)}
    assert dict(zip(chilemapas_r02["comuna_code"], chilemapas_r02["name"], strict=True)) == {
        code: published[code] for code in ANTOFAGASTA_COMUNAS
    }
    assert published["02302"] == "Maria Elena"  # without accents, as documented


def test_chilemapas_areas_match_geodesic_areas(files, chilemapas_r02):
    raw = {
        f["properties"]["codigo_comuna"]: shape(f["geometry"])
        for f in raw_features(files / "chilemapas_comunas_r02.geojson")
    }
    for code, area in zip(chilemapas_r02["comuna_code"], chilemapas_r02["area_km2"], strict=True):
        assert area == pytest.approx(geodesic_km2(raw[code]), rel=1e-3), code


def test_chilemapas_code_table(files, code_table):
    with (files / "chilemapas_codigos_territoriales.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(code_table) == len(rows) == 346
    assert set(code_table["comuna_code"]) == {row["commune_id"] for row in rows}
    assert (code_table["comuna_code"].str[:3] == code_table["province_code"]).all()


@pytest.mark.parametrize("region", ["01", "03", "04", "13"])
def test_other_chilemapas_regions_parse_valid(files, code_table, region):
    path = files / f"chilemapas_comunas_r{region}.geojson"
    raw = raw_features(path)
    invalid = {f["properties"]["codigo_comuna"] for f in raw if not shape(f["geometry"]).is_valid}
    comunas = boundaries.parse_chilemapas_geojson(path, code_table)
    assert set(comunas["comuna_code"]) == {f["properties"]["codigo_comuna"] for f in raw}
    assert set(comunas["region_code"]) == {region}
    assert comunas.geometry.is_valid.all() and comunas["name"].notna().all()
    assert {repair["feature"] for repair in comunas.attrs["geometry_repairs"]} == invalid


def test_topojson_decodes_to_the_same_comunas_and_areas(files, code_table, chilemapas_r02):
    topo = boundaries.parse_chilemapas_topojson(files / "chilemapas_comunas_r02.topojson", "r02", code_table)
    assert list(topo["comuna_code"]) == list(chilemapas_r02["comuna_code"])
    assert list(topo["name"]) == list(chilemapas_r02["name"])
    for mine, reference in zip(topo["area_km2"], chilemapas_r02["area_km2"], strict=True):
        assert mine == pytest.approx(reference, rel=0.01)
    assert topo.geometry.is_valid.all()


def test_topojson_quantised_arcs_and_reversed_references():
    """Two unit squares sharing one arc; quantised, delta-encoded, the second uses the arc reversed (~0)."""
    topology = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.25], "translate": [-70.0, -23.0]},
        "objects": {
            "two": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[0, 1]], "properties": {"codigo_comuna": "02201"}},
                    {"type": "Polygon", "arcs": [[~0, 2]], "properties": {"codigo_comuna": "02202"}},
                ],
            }
        },
        "arcs": [
            [[2, 0], [0, 4]],  # shared edge x=2: (2,0)->(2,4)
            [[2, 4], [-2, 0], [0, -4], [2, 0]],  # (2,4)->(0,4)->(0,0)->(2,0)
            [[2, 0], [2, 0], [0, 4], [-2, 0]],  # (2,0)->(4,0)->(4,4)->(2,4)
        ],
    }
    frame = boundaries.read_topojson("test", json.dumps(topology).encode())
    # quantised (x, y) -> (x*0.5 - 70, y*0.25 - 23)
    assert frame.geometry.iloc[0].equals(box(-70.0, -23.0, -69.0, -22.0))
    assert frame.geometry.iloc[1].equals(box(-69.0, -23.0, -68.0, -22.0))


# --- fcortes (BCN) ----------------------------------------------------------------------------


def test_fcortes_region_02_has_the_nine_comunas_with_padded_codes(files, fcortes_comunas):
    raw = [f["properties"] for f in raw_features(files / "fcortes_comunas.geojson")]
    raw_02 = {p["cod_comuna"]: p["Comuna"] for p in raw if p["codregion"] == 2}
    ours = fcortes_comunas[fcortes_comunas["region_code"] == "02"]
    assert set(ours["comuna_code"]) == ANTOFAGASTA_COMUNAS == {f"{code:05d}" for code in raw_02}
    assert dict(zip(ours["comuna_code"], ours["name"], strict=True)) == {
        f"{c:05d}": n for c, n in raw_02.items()
    }
    assert set(ours["region_name"]) == {"Región de Antofagasta"}


def test_fcortes_zona_sin_demarcar_is_set_aside_explicitly(files, fcortes_comunas, fcortes_regions):
    raw_comunas = raw_features(files / "fcortes_comunas.geojson")
    raw_regions = raw_features(files / "fcortes_Regional.geojson")
    assert len(fcortes_comunas) == len(raw_comunas) - 1 == 345
    assert len(fcortes_regions) == len(raw_regions) - 1 == 16
    for frame in (fcortes_comunas, fcortes_regions):
        (excluded,) = frame.attrs["excluded_features"]
        assert excluded["feature"] == "Zona sin demarcar"
    assert set(fcortes_regions["region_code"]) == {f"{i:02d}" for i in range(1, 17)}


def test_fcortes_invalid_geometries_are_repaired_and_reported(files, fcortes_comunas):
    raw = raw_features(files / "fcortes_comunas.geojson")
    invalid = {
        f"{f['properties']['cod_comuna']:05d}"
        for f in raw
        if f["properties"]["cod_comuna"] != 0 and not shape(f["geometry"]).is_valid
    }
    assert invalid, "the fcortes national file is known to carry invalid rings"
    reported = {repair["feature"] for repair in fcortes_comunas.attrs["geometry_repairs"]}
    assert (
        reported == invalid == set(fcortes_comunas.loc[fcortes_comunas["geometry_repaired"], "comuna_code"])
    )
    assert fcortes_comunas.geometry.is_valid.all()
    assert fcortes_comunas.geom_type.isin(["Polygon", "MultiPolygon"]).all()


def test_region_areas_dissolve_and_compare_to_the_bcn_region_polygon(
    chilemapas_r02, fcortes_comunas, fcortes_regions
):
    """Sum of comunas = dissolved region within 1%; and both within 1% of fcortes' own region polygon.

    Tolerance: the two publishers simplified the lines differently; measured gaps are about
    0.1% (chilemapas) and 0.03% (fcortes comunas), so 1% leaves room without hiding a lost comuna
    (the smallest, Ollagüe, is about 2.3% of the region).
    """
    bcn_region = fcortes_regions.set_index("region_code").loc["02"]
    assert bcn_region["published_area_km2"] == pytest.approx(126071.4319)  # the file's own area_km attribute
    assert bcn_region["area_km2"] == pytest.approx(bcn_region["published_area_km2"], rel=0.01)
    for comunas in (chilemapas_r02, fcortes_comunas[fcortes_comunas["region_code"] == "02"]):
        region = boundaries.dissolve_comunas(comunas, "region")
        assert list(region["region_code"]) == ["02"] and list(region["comuna_count"]) == [9]
        assert comunas["area_km2"].sum() == pytest.approx(region["area_km2"].iloc[0], rel=0.01)
        assert region["area_km2"].iloc[0] == pytest.approx(bcn_region["area_km2"], rel=0.01)


def test_dissolve_provinces_follow_the_comuna_codes(files, chilemapas_r02):
    raw = [f["properties"] for f in raw_features(files / "chilemapas_comunas_r02.geojson")]
    expected = pd.Series([p["codigo_provincia"] for p in raw]).value_counts().sort_index()
    provinces = boundaries.dissolve_comunas(chilemapas_r02, "province")
    assert dict(zip(provinces["province_code"], provinces["comuna_count"], strict=True)) == expected.to_dict()
    assert provinces.geometry.is_valid.all()
    country = boundaries.dissolve_comunas(chilemapas_r02, "country")
    assert list(country["country_code"]) == ["CL"]


# --- bastianolea ---------------------------------------------------------------------------------


def test_bastianolea_cut_table_is_padded_and_lacks_12202(files):
    table = boundaries.parse_bastianolea_cut_table(files / "bastianolea_comunas_chile_cut.csv")
    with (files / "bastianolea_comunas_chile_cut.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert len(table) == len(rows) == 345
    assert "12202" not in set(table["comuna_code"])
    assert set(table.loc[table["region_code"] == "02", "comuna_code"]) == ANTOFAGASTA_COMUNAS
    assert table.set_index("comuna_code").loc["02202", "comuna_name"] == "Ollagüe"


# --- points and overlaps ------------------------------------------------------------------------


def test_point_near_calama_is_in_comuna_02201_region_02_and_sample_basin_021(chilemapas_r02):
    points = pd.DataFrame({"lon": [-68.926, -10.0], "lat": [-22.456, 10.0]}, index=["calama", "atlantic"])
    assert locate_points(points, chilemapas_r02, "comuna_code").to_dict() == {
        "calama": "02201",
        "atlantic": None,
    }
    regions = boundaries.dissolve_comunas(chilemapas_r02, "region")
    assert locate_points(points, regions, "region_code")["calama"] == "02"
    sample_basins = parse_basins(SAMPLE_DIR / SAMPLE_ARCHIVE_NAME)  # SAMPLE polygons, approximate
    assert locate_points(points, sample_basins, "basin_code")["calama"] == "021"


def test_overlap_shares_on_known_halves():
    """A basin covering exactly the west half of a comuna: half the comuna, all of the basin."""
    comunas = gpd.GeoDataFrame({"comuna_code": ["A"]}, geometry=[box(-70.0, -23.0, -69.0, -22.0)], crs=4326)
    basins = gpd.GeoDataFrame(
        {"basin_code": ["W", "FAR"]}, geometry=[box(-70.0, -23.0, -69.5, -22.0), box(0, 0, 1, 1)], crs=4326
    )
    shares = overlap_shares(comunas, basins)
    assert list(shares.columns) == [
        "comuna_id",
        "basin_id",
        "overlap_km2",
        "share_of_comuna",
        "share_of_basin",
    ]
    assert shares[["comuna_id", "basin_id"]].values.tolist() == [["A", "W"]]
    assert shares["share_of_comuna"].iloc[0] == pytest.approx(0.5, rel=1e-6)
    assert shares["share_of_basin"].iloc[0] == pytest.approx(1.0, rel=1e-9)
    assert shares["overlap_km2"].iloc[0] == pytest.approx(
        geodesic_km2(box(-70.0, -23.0, -69.5, -22.0)), rel=1e-4
    )


def test_overlap_shares_of_real_comunas_and_sample_basins(chilemapas_r02):
    sample_basins = parse_basins(SAMPLE_DIR / SAMPLE_ARCHIVE_NAME)
    shares = overlap_shares(chilemapas_r02, sample_basins)
    calama = shares[(shares["comuna_id"] == "02201") & (shares["basin_id"] == "021")]
    assert len(calama) == 1 and calama["share_of_comuna"].iloc[0] > 0.3
    comuna_area = chilemapas_r02.set_index("comuna_code")["area_km2"]
    assert (shares.groupby("comuna_id")["share_of_comuna"].sum() <= 1 + 1e-9).all()
    recomputed = shares["overlap_km2"] / shares["comuna_id"].map(comuna_area)
    assert recomputed.to_numpy() == pytest.approx(shares["share_of_comuna"].to_numpy(), rel=1e-3)
    one = chilemapas_r02.set_index("comuna_code").geometry["02201"]
    basin = sample_basins.set_index("basin_code").geometry["021"]
    assert calama["overlap_km2"].iloc[0] == pytest.approx(
        geodesic_km2(shapely.intersection(one, basin)), rel=1e-3
    )


# --- failures are loud ------------------------------------------------------------------------------


def _collection(features, **extra) -> bytes:
    return json.dumps({"type": "FeatureCollection", **extra, "features": features}).encode()


def _feature(properties, geometry=None):
    geometry = geometry or {
        "type": "Polygon",
        "coordinates": [[[-69, -23], [-68, -23], [-68, -22], [-69, -23]]],
    }
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def test_renamed_code_column_names_the_column():
    data = _collection(
        [_feature({"cod_comuna_renamed": "02201", "codigo_provincia": "022", "codigo_region": "00002"})]
    )
    with pytest.raises(ParseError, match="codigo_comuna"):
        boundaries.parse_chilemapas_geojson(data)


def test_province_that_disagrees_with_the_cut_is_refused():
    data = _collection(
        [_feature({"codigo_comuna": "02201", "codigo_provincia": "021", "codigo_region": "00002"})]
    )
    with pytest.raises(ParseError, match="'codigo_provincia' says '021' but the comuna code implies '022'"):
        boundaries.parse_chilemapas_geojson(data)


def test_bowtie_is_repaired_and_a_collapsed_polygon_is_refused():
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[-69, -23], [-68, -22], [-68, -23], [-69, -22], [-69, -23]]],
    }
    props = {"codigo_comuna": "02201", "codigo_provincia": "022", "codigo_region": "00002"}
    repaired = boundaries.parse_chilemapas_geojson(_collection([_feature(props, bowtie)]))
    assert repaired["geometry_repaired"].tolist() == [True]
    assert repaired.attrs["geometry_repairs"][0]["feature"] == "02201"
    assert repaired.geometry.is_valid.all() and repaired["area_km2"].iloc[0] > 0
    flat = {"type": "Polygon", "coordinates": [[[-69, -23], [-68, -23], [-67, -23], [-69, -23]]]}
    with pytest.raises(ParseError, match="'02201' has an invalid geometry .* cannot be repaired"):
        boundaries.parse_chilemapas_geojson(_collection([_feature(props, flat)]))


def test_projected_coordinates_without_crs_are_refused():
    square = {
        "type": "Polygon",
        "coordinates": [[[500000, 7500000], [510000, 7500000], [510000, 7510000], [500000, 7500000]]],
    }
    props = {"codigo_comuna": "02201", "codigo_provincia": "022", "codigo_region": "00002"}
    with pytest.raises(ParseError, match="not longitude/latitude"):
        boundaries.parse_chilemapas_geojson(_collection([_feature(props, square)]))


def test_a_stray_code_zero_is_not_silently_dropped():
    data = _collection(
        [_feature({"cod_comuna": 0, "codregion": 0, "Comuna": "Somewhere", "Provincia": "X", "Region": "Y"})]
    )
    with pytest.raises(ParseError, match="zero comuna code"):
        boundaries.parse_fcortes_comunas(data)


def test_requests_are_built_from_the_endpoints_passed_in():
    endpoints = {
        "chilemapas_comunas_geojson": "file:///mirror/r{region}.geojson",
        "fcortes_regions": "file:///mirror/R.geojson",
    }
    requests = boundaries.boundary_requests(endpoints, regions=[2])
    assert [(source.id, request.url) for source, request in requests] == [
        ("chilemapas", "file:///mirror/r02.geojson"),
        ("fcortes_chile_geojson", "file:///mirror/R.geojson"),
    ]
