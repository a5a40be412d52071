"""Territories end to end: offline from the SAMPLE boundaries, live through two ArcGIS pages served locally.

Expected figures are computed here independently of the pipeline: areas as geodesic areas on
the WGS84 ellipsoid (pyproj.Geod) of the sample rings, read with json and pyogrio, instead of
the equal-area projection the pipeline uses.
"""

import importlib.util
import json
from urllib.parse import parse_qs, urlparse

import pyogrio
import pytest
import shapely
from dagster import materialize
from pyproj import Geod
from shapely.geometry import shape

from pipelines import territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources import dga_basins, ine_territories
from sources.territory_resolver import UnresolvedTerritoriesError
from tests.support.http import Reply
from warehouse import db, places

# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas"
ANTOFAGASTA_COMUNAS = {"02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"}
CALAMA = (-68.926, -22.456)  # lon, lat
GEOD = Geod(ellps="WGS84")
LAYER_PATH = "/arcgis/rest/services/CENSO2024_V2_gdb/FeatureServer"


def geodesic_km2(geometry) -> float:
    """Area on the ellipsoid, edges drawn straight in lon/lat as the files draw them (densified)."""
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(geometry, 0.01))[0]) / 1e6


def sample_features() -> list[dict]:
    return json.loads(territories.INE_SAMPLE.read_text(encoding="utf-8"))["features"]


def sample_shapes() -> dict[str, object]:
    return {f["properties"]["CUT"]: shape(f["geometry"]) for f in sample_features()}


def sample_basin_shapes() -> dict[str, object]:
    basins = pyogrio.read_dataframe(f"/vsizip/{territories.BASIN_SAMPLES['cuenca']}/SAMPLE_Cuencas_BNA.shp")
    basins = basins.to_crs("EPSG:4326")
    return dict(zip(basins["COD_CUEN"], basins.geometry, strict=True))


def run(assets):
    return materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """One offline build of the family (assets and checks) from the SAMPLE payloads."""
    root = tmp_path_factory.mktemp("territories-offline")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CONTEXT_LENS_DB", str(root / "context.duckdb"))
        env.setenv("CONTEXT_LENS_RAW_DIR", str(root / "raw"))
        env.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = run([*territories.ASSETS, *territories.CHECKS])
    return result, root / "context.duckdb"


@pytest.fixture(scope="module")
def conn(offline):
    """One connection for the module (opening one loads the spatial extension, about a second)."""
    with db.writer(offline[1]) as connection:
        yield connection


def test_offline_build_uses_the_samples_says_so_and_passes_its_checks(offline, conn):
    result, _ = offline
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {spec.name: True for check in territories.CHECKS for spec in check.check_specs}
    status = conn.execute("SELECT source_id, status, mode FROM core.source_status ORDER BY 1").fetchall()
    assert status == [
        (dga_basins.SOURCE.id, "sample", "sample"),
        (ine_territories.SOURCE.id, "sample", "sample"),
    ]
    urls = conn.execute("SELECT DISTINCT request_url FROM core.snapshots").fetchall()
    assert urls and all("SAMPLE" in url for (url,) in urls)
    # polygons carry the snapshot they came from, and that snapshot is a recorded sample
    modes = conn.execute(
        "SELECT DISTINCT s.mode FROM core.territories t JOIN core.snapshots s USING (snapshot_id)"
    ).fetchall()
    assert modes == [("sample",)]


def test_antofagasta_region_has_exactly_its_nine_comunas(conn):
    rows = conn.execute(
        """
        SELECT l.code, l.name, l.parent_id, l.region_id FROM marts.territory_lineage l
        WHERE l.kind = 'comuna' AND l.region_id = 'region:02' ORDER BY 1
        """
    ).fetchall()
    assert {code for code, *_ in rows} == ANTOFAGASTA_COMUNAS
    published = {f["properties"]["CUT"]: f["properties"]["COMUNA"] for f in sample_features()}
    assert {code: name for code, name, *_ in rows} == {c: published[c] for c in ANTOFAGASTA_COMUNAS}
    assert all(parent == f"province:{code[:3]}" for code, _, parent, _ in rows)
    provinces = conn.execute(
        "SELECT territory_id, name, parent_id FROM core.territories WHERE kind = 'province' AND parent_id = 'region:02'"
    ).fetchall()
    assert sorted(provinces) == [
        ("province:021", "Antofagasta", "region:02"),
        ("province:022", "El Loa", "region:02"),
        ("province:023", "Tocopilla", "region:02"),
    ]


def test_geometries_are_valid_and_areas_match_geodesic_areas(conn):
    rows = conn.execute(
        """
        SELECT code, area_km2, ST_IsValid(geometry), ST_AsWKB(geometry) FROM core.territories
        WHERE kind = 'comuna' AND geometry IS NOT NULL ORDER BY code
        """
    ).fetchall()
    shapes = sample_shapes()
    assert [code for code, *_ in rows] == sorted(shapes)
    # every comuna of the official division is a territory, polygon or not
    assert conn.execute("SELECT count(*) FROM core.territories WHERE kind = 'comuna'").fetchone() == (346,)
    for code, area, valid, wkb in rows:
        assert valid
        assert shapely.from_wkb(bytes(wkb)).equals(shapes[code])  # stored in EPSG:4326 lon/lat as published
        assert area == pytest.approx(geodesic_km2(shapes[code]), rel=0.002), code
    region_area = conn.execute(
        "SELECT area_km2 FROM core.territories WHERE territory_id = 'region:02'"
    ).fetchone()[0]
    expected = sum(geodesic_km2(shapes[c]) for c in ANTOFAGASTA_COMUNAS)
    assert region_area == pytest.approx(expected, rel=0.002)
    # the sample is not the whole country: Chile gets no polygon rather than a partial one, and a
    # region with some of its comunas (Pica of region 01) no union of those as its polygon
    for partial in ("country:CL", "region:01", "province:014"):
        assert conn.execute(
            "SELECT geometry, area_km2 FROM core.territories WHERE territory_id = ?", [partial]
        ).fetchone() == (None, None), partial


def test_basins_and_overlaps(conn):
    basins = conn.execute(
        "SELECT code, name, parent_id FROM core.territories WHERE kind = 'basin' ORDER BY 1"
    ).fetchall()
    assert [code for code, *_ in basins] == [code for code, _, _ in dga_basins.SAMPLE_BASINS]
    assert {parent for *_, parent in basins} == {"country:CL"}
    overlaps = {
        (c, b): (km2, of_comuna, of_basin)
        for c, b, km2, of_comuna, of_basin in conn.execute(
            "SELECT comuna_id, basin_id, overlap_km2, share_of_comuna, share_of_basin FROM core.territory_overlaps"
        ).fetchall()
    }
    comunas, basin_shapes = sample_shapes(), sample_basin_shapes()
    # Calama x Loa, from a lon/lat intersection measured on the ellipsoid
    calama_loa = geodesic_km2(comunas["02201"].intersection(basin_shapes["021"]))
    km2, of_comuna, of_basin = overlaps[("comuna:02201", "basin:021")]
    assert km2 == pytest.approx(calama_loa, rel=0.005)
    assert of_comuna == pytest.approx(calama_loa / geodesic_km2(comunas["02201"]), rel=0.005)
    assert of_basin == pytest.approx(calama_loa / geodesic_km2(basin_shapes["021"]), rel=0.005)
    # the Santiago block lies wholly inside the Maipo sample polygon
    assert comunas["13101"].within(basin_shapes["057"])
    _, of_comuna, of_basin = overlaps[("comuna:13101", "basin:057")]
    assert of_comuna == pytest.approx(1.0)
    assert of_basin == pytest.approx(
        geodesic_km2(comunas["13101"]) / geodesic_km2(basin_shapes["057"]), rel=0.005
    )
    # every pair that intersects with area is present, and no other
    intersecting = {
        (f"comuna:{c}", f"basin:{b}")
        for c, cs in comunas.items()
        for b, bs in basin_shapes.items()
        if cs.intersection(bs).area > 0
    }
    assert set(overlaps) == intersecting
    view = conn.execute(
        "SELECT DISTINCT comuna_id FROM marts.basin_comunas WHERE basin_id = 'basin:021'"
    ).fetchall()
    assert {c for (c,) in view} == {c for c, b in intersecting if b == "basin:021"}


def test_calama_point_resolves_to_comuna_region_and_basin(conn):
    site = places.locate_point(conn, *CALAMA)
    assert (site["comuna"], site["province"], site["region"], site["basin"]) == (
        "comuna:02201",
        "province:022",
        "region:02",
        "basin:021",
    )
    located = {
        kind for _, kind, *_ in conn.execute("SELECT * FROM marts.locate(?, ?)", list(CALAMA)).fetchall()
    }
    assert located == {"basin", "comuna", "province", "region"}
    at_sea = places.locate_point(conn, -72.5, -22.5)
    assert set(at_sea.values()) == {None}
    with pytest.raises(ValueError, match="not a longitude/latitude"):
        places.locate_point(conn, -22.456, -168.926)


def test_resolver_from_the_warehouse_reads_codes_names_and_aliases(conn):
    resolver = territories.load_resolver(conn)
    comunas = resolver.resolve(
        [2201, "2201", "CALAMA", "Ollague", "MARIA ELENA", "San Pedro De Atacama"], "comuna"
    )
    assert comunas == ["comuna:02201"] * 3 + ["comuna:02202", "comuna:02302", "comuna:02203"]
    assert (
        resolver.resolve(["De Antofagasta", "oecd:CL02", 2, "Región de Antofagasta"], "region")
        == ["region:02"] * 4
    )
    assert resolver.resolve([99999, "Ignorada"], "comuna") == ["unknown:99999"] * 2
    assert resolver.resolve(["21", "Rio Loa"], "basin") == ["basin:021"] * 2
    with pytest.raises(UnresolvedTerritoriesError) as caught:
        resolver.resolve(["Calama", "Atlantis", 9999], "comuna")
    assert caught.value.values == ["Atlantis", 9999]
    aliases = dict(
        conn.execute(
            "SELECT scheme || '/' || alias, territory_id FROM core.territory_aliases "
            "WHERE scheme IN ('comuna_name', 'comuna_code')"
        ).fetchall()
    )
    assert aliases["comuna_name/Ollagüe"] == aliases["comuna_name/ollague"] == "comuna:02202"
    assert aliases["comuna_code/2201"] == "comuna:02201"


def test_population_share_weights_each_comuna_part_by_its_population(conn):
    # invented populations, inserted and rolled back: the view must pick the latest past year
    population = {
        "02201": 190_000,
        "02202": 300,
        "02203": 11_000,
        "02301": 25_000,
        "02302": 6_000,
        "01405": 5_000,
    }
    rows = [(f"comuna:{c}", "2020", float(v)) for c, v in population.items()]
    rows += [(f"comuna:{c}", "2099", 1.0) for c in population]  # a projection year: ignored
    rows += [("comuna:02201", "2017", 1.0)]
    conn.execute("BEGIN TRANSACTION")
    try:
        for tid, period, value in rows:
            conn.execute(
                "INSERT INTO core.observations VALUES ('population', ?, ?, ?, NULL, NULL, NULL, 'test', 'test')",
                [tid, period, value],
            )
        loa = conn.execute(
            "SELECT comuna_id, share_of_comuna, population_share, population_period "
            "FROM core.territory_overlaps WHERE basin_id = 'basin:021'"
        ).fetchall()
        salar = conn.execute(
            "SELECT population_share FROM core.territory_overlaps WHERE basin_id = 'basin:025'"
        ).fetchall()
    finally:
        conn.execute("ROLLBACK")
    weights = {c: population[c.split(":")[1]] * share for c, share, _, _ in loa}
    total = sum(weights.values())
    assert {c: s for c, _, s, _ in loa} == pytest.approx({c: w / total for c, w in weights.items()})
    assert {p for *_, p in loa} == {"2020"}
    assert salar and all(share is None for (share,) in salar)  # 02101 and 02103 have no population
    assert conn.execute("SELECT count(*) FROM core.observations").fetchone() == (0,)


def test_crosswalk_summary_is_regenerated_identically():
    committed = territories.CROSSWALK_SUMMARY.read_text(encoding="utf-8")
    assert territories.sample_crosswalk_summary() == committed, (
        "docs/crosswalk_summary.md is out of date: run .venv/bin/python -m pipelines.territories"
    )


def test_crosswalk_summary_reports_slivers_and_incomplete_shares():
    summary = territories.sample_crosswalk_summary()
    slivers = summary.split("### Slivers")[1].split("###")[0]
    # the Valparaíso block only touches the Maipo box, which UTM rounding to whole metres nudges
    comunas, basins = sample_shapes(), sample_basin_shapes()
    assert 0 < comunas["05101"].intersection(basins["057"]).area < 1e-6
    assert "| comuna:05101 | basin:057 |" in slivers
    assert slivers.count("| comuna:") == 1
    # Mejillones lies outside every sample basin polygon
    assert all(not comunas["02102"].intersects(b) or comunas["02102"].touches(b) for b in basins.values())
    assert "comuna:02102 Mejillones" in summary.split("Comunas in no basin polygon")[1].split("\n")[0]


def test_reference_places_alone_without_staged_boundaries():
    tables = territories.build_territories(None, None)
    kinds = tables.places["kind"].value_counts().to_dict()
    # the official division exists before any polygon: 16 regions, 56 provinces, 346 comunas
    assert kinds == {"region": 16, "province": 56, "comuna": 346, "country": 1, "oecd": 1, "unknown": 1}
    assert tables.places.geometry.isna().all() and tables.places["area_km2"].isna().all()
    calama = tables.places.set_index("territory_id").loc["comuna:02201"]
    assert (calama["name"], calama["parent_id"]) == ("Calama", "province:022")
    assert tables.overlaps.empty
    oecd = tables.aliases[tables.aliases["scheme"] == "oecd"]
    assert dict(zip(oecd["alias"], oecd["territory_id"], strict=True))["CL02"] == "region:02"


def test_sample_layer_is_labelled_and_regenerates_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_sample_comunas", territories.SAMPLE_DIR / "make_sample_comunas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.write(tmp_path / "layer.geojson").read_bytes() == territories.INE_SAMPLE.read_bytes()
    assert all(f["properties"]["NOTA"].startswith("SAMPLE") for f in sample_features())
    assert "SAMPLE_ine_censo2024_comunas.geojson" in (territories.SAMPLE_DIR / "README.md").read_text("utf-8")


def _serve_layer(server, pages: list[bytes]):
    """Answer the layer's /query by resultOffset: page k starts where page k-1 ended."""
    starts, offset = {}, 0
    for page in pages:
        starts[offset] = page
        offset += len(json.loads(page)["features"])

    def reply(handler):
        query = parse_qs(urlparse(handler.path).query)
        assert query["f"] == ["geojson"] and query["outSR"] == ["4326"]
        return Reply(200, starts[int(query["resultOffset"][0])], {"Content-Type": "application/geo+json"})

    server.script(LAYER_PATH + "/0/query", reply)


def test_live_two_pages_then_an_error_answered_with_http_200(warehouse_env, http_server, monkeypatch):
    features = sample_features()
    first = {
        "type": "FeatureCollection",
        "features": features[:8],
        "properties": {"exceededTransferLimit": True},
    }
    second = {"type": "FeatureCollection", "features": features[8:]}
    _serve_layer(http_server, [json.dumps(first).encode(), json.dumps(second).encode()])
    zip_bytes = territories.BASIN_SAMPLES["cuenca"].read_bytes()
    http_server.script("/Cuencas_BNA.zip", Reply(200, zip_bytes, {"Content-Type": "application/zip"}))
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__INE_CENSO2024_TERRITORIES__CENSO2024_FEATURESERVER",
        http_server.url(LAYER_PATH),
    )
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DGA_BNA_BASINS__CUENCAS", http_server.url("/Cuencas_BNA.zip"))

    assert run(territories.ASSETS).success
    offsets = [
        parse_qs(urlparse(r["path"]).query)["resultOffset"][0]
        for r in http_server.requests
        if r["path"].startswith(LAYER_PATH)
    ]
    assert offsets == ["0", "8"]
    with db.reader() as conn:
        status = dict(conn.execute("SELECT source_id, status FROM core.source_status").fetchall())
        pages = conn.execute("SELECT DISTINCT snapshot_id FROM staging.ine_comunas ORDER BY 1").fetchall()
        comunas = conn.execute(
            "SELECT count(*) FROM core.territories WHERE kind = 'comuna' AND geometry IS NOT NULL"
        ).fetchone()[0]
        modes = conn.execute("SELECT DISTINCT mode FROM core.snapshots").fetchall()
        site = places.locate_point(conn, *CALAMA)
        before = conn.execute("SELECT * FROM staging.ine_comunas ORDER BY comuna_code").fetchall()
    assert status == {ine_territories.SOURCE.id: "live", dga_basins.SOURCE.id: "live"}
    assert len(pages) == 2 and comunas == len(features) and modes == [("live",)]
    assert (site["comuna"], site["region"], site["basin"]) == ("comuna:02201", "region:02", "basin:021")

    # ArcGIS answers an error with HTTP 200: refused loudly, the earlier comunas stay, the page is kept aside
    error = json.dumps({"error": {"code": 400, "message": "Invalid or missing input parameters."}}).encode()
    http_server.script(LAYER_PATH + "/0/query", Reply(200, error, {"Content-Type": "application/json"}))
    result = run([territories.ine_comuna_boundaries])
    assert not result.success
    with db.reader() as conn:
        status, problem = conn.execute(
            "SELECT status, error FROM core.source_status WHERE source_id = ?", [ine_territories.SOURCE.id]
        ).fetchone()
        after = conn.execute("SELECT * FROM staging.ine_comunas ORDER BY comuna_code").fetchall()
    assert status == "failed" and "Invalid or missing input parameters" in problem
    assert after == before
    assert list((warehouse_env / "raw" / "quarantine" / ine_territories.SOURCE.id).glob("*.bin"))
