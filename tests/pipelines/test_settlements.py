"""Settlements family end to end: offline SAMPLE run, live ArcGIS paging, error-with-200, stale replay.

Territories come from a fixture: the real chilemapas comuna polygons of region 02 (read in
place from the shared data) and the SAMPLE DGA basin zip. Expected figures are computed here
from the raw bytes (json, csv, a small DBF reader, shapely), never from the pipeline's output.
"""

import csv
import json
import zipfile
from collections import Counter, defaultdict
from urllib.parse import parse_qs, urlparse

import pytest
import shapely
from dagster import materialize
from shapely.geometry import shape

from pipelines import settlements as family
from pipelines import territories
from pipelines.lens import LENS_VIEWS
from pipelines.resources import SourcesResource, WarehouseResource
from sources import dga_basins
from sources import minvu_campamentos as mc
from sources.acquire import SAMPLES_DIR
from sources.geometry import WGS84
from tests.sources.test_minvu_campamentos import read_dbf_bytes
from tests.support.http import Reply
from warehouse import db

SAMPLE_2024 = SAMPLES_DIR / "campamentos" / "sample_minvu_catastro_campamentos_2024_featureserver.geojson"
SAMPLE_2022 = SAMPLES_DIR / "campamentos" / "sample_CNC2022_shp.zip"
ANTOFAGASTA = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"]
LAYER_PATH = "/server/rest/services/Catastros/Actualizacion_Catastro_Campamentos_2024/FeatureServer/0"
CNC_PATH = "/mirror/cnc2022/sample_CNC2022_shp.zip"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture()
def places(shared_data, warehouse_env):
    """Region 02, its 9 comunas (real chilemapas polygons) and the SAMPLE basins, in the test warehouse."""
    comunas = json.loads((shared_data / "boundaries" / "chilemapas_comunas_r02.geojson").read_text("utf-8"))
    with open(
        shared_data / "boundaries" / "chilemapas_codigos_territoriales.csv", encoding="utf-8"
    ) as handle:
        names = {row["commune_id"]: row["commune_name"] for row in csv.DictReader(handle)}
    rows = [("region:02", "region", "02", "Antofagasta", "country:CL", None)]
    polygons = {}
    for feature in comunas["features"]:
        code = feature["properties"]["codigo_comuna"]
        polygons[code] = shape(feature["geometry"])
        rows.append(
            (f"comuna:{code}", "comuna", code, names[code], "region:02", shapely.to_wkb(polygons[code]))
        )
    basins = dga_basins.parse_basins(SAMPLES_DIR / "boundaries" / dga_basins.SAMPLE_ARCHIVE_NAME).to_crs(
        WGS84
    )
    for code, name, geometry in zip(basins["basin_code"], basins["basin_name"], basins.geometry, strict=True):
        rows.append((f"basin:{code}", "basin", code, f"SAMPLE {name}", None, shapely.to_wkb(geometry)))
    with db.writer() as conn:
        conn.executemany(
            "INSERT INTO core.territories (territory_id, kind, code, name, parent_id, geometry) "
            "VALUES (?, ?, ?, ?, ?, ST_GeomFromWKB(?))",
            rows,
        )
    return {"comunas": polygons, "loa": basins.set_index("basin_code").geometry["021"]}


def _run(assets=None):
    return materialize(
        assets or [*family.ASSETS, *family.CHECKS],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


def _check(result, name):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def _materialization_metadata(result, asset_name):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset_name]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def _observations(indicator):
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT territory_id, period, value FROM core.observations WHERE indicator_id = ?", [indicator]
        ).fetchall()
    return {(territory, period): value for territory, period, value in rows}


def _tables():
    """Everything the family serves, as query results (geometry as WKB bytes)."""
    with db.reader() as conn:
        return {
            table: conn.execute(f"SELECT * {exclude} FROM {table} ORDER BY ALL").fetchall()  # noqa: S608
            for table, exclude in [
                ("raw.minvu_campamentos_2024", ""),
                ("raw.minvu_cnc_2022", ""),
                ("staging.settlements", ""),
                ("core.settlements", "REPLACE (ST_AsWKB(geometry) AS geometry)"),
                ("core.observations", ""),
                ("core.observation_history", ""),
                ("core.snapshots", ""),
            ]
        }


# --- independent readings of the raw payloads ------------------------------------------------------


def _households(features) -> dict[str, tuple[int, int]]:
    """{comuna: (settlements, households)} straight from GeoJSON feature properties."""
    tally = defaultdict(lambda: [0, 0])
    for feature in features:
        entry = tally[str(feature["properties"]["CUT"]).zfill(5)]
        entry[0] += 1
        entry[1] += feature["properties"]["N_HOG"] or 0
    return {code: tuple(v) for code, v in tally.items()}


def _sample_2022() -> dict[str, tuple[int, int]]:
    with zipfile.ZipFile(SAMPLE_2022) as archive:
        rows = read_dbf_bytes(archive.read("SAMPLE_CNC2022.dbf"))
    tally = defaultdict(lambda: [0, 0])
    for row in rows:
        tally[row["CUT_C"]][0] += 1
        tally[row["CUT_C"]][1] += int(float(row["N_HOG"]))
    return {code: tuple(v) for code, v in tally.items()}


def _ine_population(shared_data, years=(2022, 2024)) -> dict[tuple[str, int], int]:
    totals = Counter()
    path = shared_data / "health" / "ine_proyecciones_comunas_2002-2035_regiones01-04.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Region"] == "2":
                for year in years:
                    totals[(row["Comuna"].zfill(5), year)] += int(row[f"Poblacion {year}"])
    return dict(totals)


# --- offline: the SAMPLE path ----------------------------------------------------------------------


def test_offline_run_builds_settlements_and_indicators_from_the_samples(places, shared_data, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    result = _run()
    assert result.success

    features_2024 = json.loads(SAMPLE_2024.read_text("utf-8"))["features"]
    expected = {2024: _households(features_2024), 2022: _sample_2022()}
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id = 'minvu_campamentos'"
        ).fetchone()
        modes = conn.execute(
            """
            SELECT DISTINCT s.mode, s.request_url FROM core.observations o JOIN core.snapshots s USING (snapshot_id)
            WHERE o.source_id = 'minvu_campamentos'
            """
        ).fetchall()
        per_year = dict(
            conn.execute("SELECT catastro_year, count(*) FROM core.settlements GROUP BY 1").fetchall()
        )
        located = conn.execute(
            "SELECT count(*) FILTER (WHERE cut_mismatch), count(*) FILTER (WHERE located_comuna_code = comuna_code), "
            "count(*) FROM core.settlements"
        ).fetchone()
        in_loa = conn.execute(
            "SELECT catastro_year, count(*) FROM core.settlements WHERE located_basin_code = '021' GROUP BY 1"
        ).fetchall()
        marts = conn.execute(
            "SELECT comuna_code, catastro_year, settlements, households FROM marts.settlements_by_comuna"
        ).fetchall()
        layers = conn.execute(
            "SELECT layer, count(*), min(geojson) FROM marts.settlement_map GROUP BY 1"
        ).fetchall()
    assert status == ("sample", "sample")
    assert {mode for mode, _ in modes} == {"sample"} and all("sample" in url.lower() for _, url in modes)
    assert per_year == {year: sum(n for n, _ in by_comuna.values()) for year, by_comuna in expected.items()}
    assert located == (0, per_year[2022] + per_year[2024], per_year[2022] + per_year[2024])

    # Basin by polygon: which sample settlements have their polygon inside the SAMPLE Loa outline.
    loa_2024 = sum(
        1 for f in features_2024 if places["loa"].contains(shape(f["geometry"]).representative_point())
    )
    assert dict(in_loa)[2024] == loa_2024 > 0

    counts, households = _observations("settlements_count"), _observations("settlement_households")
    for year, by_comuna in expected.items():
        for code in ANTOFAGASTA:  # every comuna, including those with none listed (0)
            n, h = by_comuna.get(code, (0, 0))
            assert counts[(f"comuna:{code}", str(year))] == n, (code, year)
            assert households[(f"comuna:{code}", str(year))] == h, (code, year)
        assert counts[("region:02", str(year))] == sum(n for n, _ in by_comuna.values())
    assert counts[("basin:021", "2024")] == loa_2024
    change = _observations("settlement_households_change")
    for code in ANTOFAGASTA:
        before, after = expected[2022].get(code, (0, 0))[1], expected[2024].get(code, (0, 0))[1]
        assert change[(f"comuna:{code}", "2022-2024")] == after - before
    assert any(change[(f"comuna:{code}", "2022-2024")] for code in ANTOFAGASTA)

    # The mart has all 9 comunas for both years; the map layer carries parseable GeoJSON.
    assert {(c, y) for c, y, _, _ in marts} == {(c, y) for c in ANTOFAGASTA for y in (2022, 2024)}
    assert {layer: n for layer, n, _ in layers} == {"settlement": located[2], "comuna": 9}
    assert all(json.loads(geojson)["type"] in ("Polygon", "MultiPolygon") for _, _, geojson in layers)

    assert _check(result, "settlements_cut_matches_location").passed
    assert _check(result, "settlements_quality_flags").passed
    metadata = _materialization_metadata(result, "settlement_observations")
    assert metadata["households_per_1000"].startswith("waits for population")
    assert not _observations("settlement_households_per_1000")

    # Once the health family has loaded population, the rate appears, computed from it.
    population = _ine_population(shared_data)
    with db.writer() as conn:
        conn.executemany(
            "INSERT INTO core.observations VALUES ('population', ?, ?, ?, NULL, NULL, NULL, 'ine_population', 'test')",
            [(f"comuna:{code}", str(year), value) for (code, year), value in population.items()],
        )
    assert _run([family.settlement_observations]).success
    rates = _observations("settlement_households_per_1000")
    expected_rates = {
        (f"comuna:{code}", str(year)): expected[year].get(code, (0, 0))[1] / people * 1000
        for (code, year), people in population.items()
    }
    assert rates == pytest.approx(expected_rates)
    assert ("region:02", "2024") not in rates  # no regional population loaded: nothing invented
    with db.reader() as conn:
        kept = conn.execute(
            "SELECT count(*) FROM core.observations WHERE indicator_id = 'population'"
        ).fetchone()
    assert kept[0] == len(population)


# --- live: ArcGIS paging against a local server ------------------------------------------------------


def _live_pages() -> tuple[list[dict], list[dict]]:
    """Two FeatureServer GeoJSON pages in the real layout, built from the SAMPLE layer plus three
    invented SAMPLE rows that mimic the real layer's quirks: an empty polygon (the real layer's
    FOLIO 1320115 has `coordinates: []`), a repeated folio, and a CUT that disagrees with where
    the polygon lies (a Calama polygon attributed to Antofagasta)."""
    features = json.loads(SAMPLE_2024.read_text("utf-8"))["features"]
    calama = next(f for f in features if f["properties"]["CUT"] == 2201)
    antofagasta = next(f for f in features if f["properties"]["CUT"] == 2101)
    extra = []
    for object_id, (base, changes, geometry) in enumerate(
        [
            (antofagasta, {"NOMBRE": "SAMPLE Toma sin poligono", "FOLIO": 2101990, "HECTAREAS": 0}, None),
            (antofagasta, {"NOMBRE": "SAMPLE Folio repetido"}, "shifted"),
            (
                calama,
                {
                    "NOMBRE": "SAMPLE CUT equivocado",
                    "FOLIO": 2101991,
                    "CUT": 2101,
                    "PROVINCIA": "Antofagasta",
                    "CUT_P": "021",
                    "COMUNA": "Antofagasta",
                },
                "same",
            ),
        ],
        start=len(features) + 1,
    ):
        feature = json.loads(json.dumps(base))
        feature["id"] = object_id
        feature["properties"].update(
            {"OBJECTID": object_id, "OBJECTID_12": object_id, "OBJECTID_1": object_id, **changes}
        )
        if geometry is None:
            feature["geometry"] = {"type": "Polygon", "coordinates": []}
        elif geometry == "shifted":
            ring = feature["geometry"]["coordinates"][0]
            feature["geometry"]["coordinates"] = [[[x, y - 0.01] for x, y in ring]]
        extra.append(feature)
    everything = features + extra
    return everything[:5], everything[5:]


def _serve_layer(server, pages, error_on_second=False):
    first, second = pages

    def reply(handler):
        offset = int(parse_qs(urlparse(handler.path).query)["resultOffset"][0])
        if offset == 0:
            body = {
                "type": "FeatureCollection",
                "features": first,
                "properties": {"exceededTransferLimit": True},
            }
        elif offset == len(first):
            if error_on_second:
                error = {"code": 400, "message": "Unable to complete operation.", "details": []}
                return Reply(200, json.dumps({"error": error}).encode(), {"Content-Type": "application/json"})
            body = {"type": "FeatureCollection", "features": second}
        else:
            return Reply(400, b"unexpected offset")
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/geo+json"})

    server.script(LAYER_PATH + "/query", reply)


def _serve_zip_with_etag(handler):
    """The 2022 endpoint pointed at a zip (the SAMPLE zip, served as a mirror would), with an ETag."""
    etag = '"cnc2022-v1"'
    if handler.headers.get("If-None-Match") == etag:
        return Reply(304)
    return Reply(200, SAMPLE_2022.read_bytes(), {"Content-Type": "application/zip", "ETag": etag})


def test_live_paging_then_error_with_200_then_stale_replay(places, http_server, monkeypatch):
    pages = _live_pages()
    _serve_layer(http_server, pages)
    http_server.script(CNC_PATH, _serve_zip_with_etag)
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__MINVU_CAMPAMENTOS__CATASTRO_2024_LAYER", http_server.url(LAYER_PATH)
    )
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__MINVU_CAMPAMENTOS__CNC_2022_SHAPEFILE", http_server.url(CNC_PATH)
    )

    result = _run()
    assert result.success
    offsets = [
        parse_qs(urlparse(r["path"]).query)["resultOffset"][0]
        for r in http_server.requests
        if r["path"].startswith(LAYER_PATH)
    ]
    assert offsets == ["0", str(len(pages[0]))]
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id = 'minvu_campamentos'"
        ).fetchone()
        rows = {
            name: (sid, mismatch, located, flags, snapshot, has_geometry)
            for name, sid, mismatch, located, flags, snapshot, has_geometry in conn.execute(
                "SELECT name, settlement_id, cut_mismatch, located_comuna_code, quality_flags, snapshot_id, "
                "geometry IS NOT NULL FROM core.settlements WHERE catastro_year = 2024"
            ).fetchall()
        }
        page_snapshots = conn.execute(
            "SELECT snapshot_id FROM core.snapshots WHERE name LIKE 'catastro-2024-offset-%' ORDER BY name"
        ).fetchall()
    assert status == ("live", "live")
    assert len(rows) == len(pages[0]) + len(pages[1])
    # Each row keeps the snapshot of the page it came from.
    first_page_names = {f["properties"]["NOMBRE"] for f in pages[0]}
    snapshot_of_page = {0: page_snapshots[0][0], 1: page_snapshots[1][0]}
    for name, row in rows.items():
        assert row[4] == snapshot_of_page[0 if name in first_page_names else 1], name
    wrong = rows["SAMPLE CUT equivocado"]
    assert wrong[1] is True and wrong[2] == "02201"
    assert (
        rows["SAMPLE Toma sin poligono"][3] == "geometry_missing"
        and rows["SAMPLE Toma sin poligono"][5] is False
    )
    assert rows["SAMPLE Toma sin poligono"][2] is None
    assert (
        rows["SAMPLE Folio repetido"][0].endswith("-2")
        and "folio_repeated" in rows["SAMPLE Folio repetido"][3]
    )
    assert sum(mismatch is True for _, mismatch, *_ in rows.values()) == 1

    cut_check = _check(result, "settlements_cut_matches_location")
    assert not cut_check.passed and cut_check.severity.value == "WARN"
    listed = cut_check.metadata["mismatched_settlements"].value
    assert [(r["settlement_id"], r["located_comuna_code"]) for r in listed] == [(wrong[0], "02201")]
    flag_check = _check(result, "settlements_quality_flags")
    assert not flag_check.passed and flag_check.severity.value == "WARN"
    assert flag_check.metadata["by_flag"].value == {"geometry_missing": 1, "folio_repeated": 2}

    # The households of Antofagasta comuna follow the attribute CUT (the wrong one included).
    households = _observations("settlement_households")
    everything = pages[0] + pages[1]
    assert households[("comuna:02101", "2024")] == _households(everything)["02101"][1]

    # A later run: the second page is an ArcGIS error answered with HTTP 200.
    before = _tables()
    _serve_layer(http_server, pages, error_on_second=True)
    failed = _run([family.settlement_catastros])
    assert not failed.success
    error = failed.get_step_failure_events()[0].event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "HTTP 200" in message and "400" in message and "Unable to complete operation" in message
    assert _tables() == before
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode, error FROM core.source_status WHERE source_id = 'minvu_campamentos'"
        ).fetchone()
    assert status[0] == "failed" and status[1] == "live" and "HTTP 200" in status[2]
    quarantined = [json.loads(p.read_text()) for p in _quarantine().glob("*.json")]
    assert any("HTTP 200" in q["reason"] for q in quarantined)

    # The layer is down: the earlier good walk is replayed (stale), never the error page or the sample.
    http_server.script(LAYER_PATH + "/query", Reply(503, b"unavailable"))
    assert _run().success
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id = 'minvu_campamentos'"
        ).fetchone()
    assert status == ("stale", "live")
    after = _tables()
    for table in (
        "raw.minvu_campamentos_2024",
        "staging.settlements",
        "core.settlements",
        "core.observations",
    ):
        assert after[table] == before[table], table


def _quarantine():
    return db.raw_dir() / "quarantine" / mc.SOURCE.id


def test_a_basin_count_rests_on_its_basin_polygon_and_takes_its_mode(warehouse_env, http_server, monkeypatch):
    """Comunas and regions count by the catastro's own CUT; a basin counts by polygon, so its
    value lists the basin polygon's snapshot (role boundary) and is no better than it: here the
    SAMPLE basins make a live catastro's basin count sample, and leave the comuna counts live."""
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert materialize(
        territories.ASSETS,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    ).success
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    _serve_layer(http_server, _live_pages())
    http_server.script(CNC_PATH, _serve_zip_with_etag)
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__MINVU_CAMPAMENTOS__CATASTRO_2024_LAYER", http_server.url(LAYER_PATH)
    )
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__MINVU_CAMPAMENTOS__CNC_2022_SHAPEFILE", http_server.url(CNC_PATH)
    )
    assert _run(family.ASSETS).success
    with db.writer() as conn:
        conn.execute(LENS_VIEWS.read_text())
        basin_snapshot = conn.execute(
            "SELECT snapshot_id FROM core.territories WHERE territory_id = 'basin:021'"
        ).fetchone()[0]
        lineage = {
            (territory, period): (mode, inputs)
            for territory, period, mode, inputs in conn.execute(
                "SELECT territory_id, period, mode, inputs FROM marts.observation_lineage "
                "WHERE indicator_id = 'settlements_count'"
            ).fetchall()
        }
    mode, inputs = lineage[("basin:021", "2024")]
    assert mode == "sample" and f"boundary: dga_bna_basins {basin_snapshot} (sample)" in inputs
    assert (
        lineage[("comuna:02101", "2024")][0] == "live"
        and "boundary" not in lineage[("comuna:02101", "2024")][1]
    )
    assert lineage[("region:02", "2024")][0] == "live"
