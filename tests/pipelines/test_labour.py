"""Labour, census and poverty families end to end: offline on the SAMPLE payloads, then live against a local server.

Checked figures are recomputed here from the sample files with csv, zipfile and the XML reader of
tests/support, never with the code under test.
"""

import csv
import io
import zipfile
from collections import Counter

import pytest
from dagster import materialize

from pipelines import census2024, labour, poverty, territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources import census2024_microdata, census2024_tables, ine_ene, mds_poverty
from tests.support.http import Reply
from tests.support.xlsx_cells import sheet_rows
from warehouse import db

ASSETS = [*territories.ASSETS, *labour.ASSETS, *census2024.ASSETS, *poverty.ASSETS]
CHECKS = [*labour.CHECKS, *census2024.CHECKS]


def _run(assets=ASSETS, checks=CHECKS):
    return materialize(
        [*assets, *checks],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labour")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_LENS_DB", str(tmp / "context.duckdb"))
        mp.setenv("CONTEXT_LENS_RAW_DIR", str(tmp / "raw"))
        mp.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = _run()
        with db.reader() as conn:
            observations = conn.execute("SELECT * FROM core.observations").df()
            status = dict(conn.execute("SELECT source_id, mode FROM core.source_status").fetchall())
    return result, observations.set_index(["indicator_id", "territory_id", "period"]), status, None


def _value(observations, indicator, territory, period):
    return observations.loc[(indicator, territory, period), "value"]


def test_offline_every_source_is_sample_and_checks_pass(offline):
    result, observations, status, _ = offline
    assert result.success
    for source in ("ine_ene", "ine_censo2024_tables", "ine_censo2024_microdata", "mds_poverty_sae"):
        assert status[source] == "sample"
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)


def _sample_rows(flow_id: str) -> list[dict]:
    text = (labour.SAMPLE_DIR / f"{flow_id}_SAMPLE.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_women_in_mining_second_half_2024(offline):
    _, observations, _, _ = offline
    rows = _sample_rows("DF_OCURAMA_RAMA_SEXO")
    for area, territory in (("2", "region:02"), ("_T", "country:CL")):
        picked = [r for r in rows if r["RAMA"] == "B" and r["AREA_REF"] == area]
        summed = Counter()
        for row in picked:
            if row["TIME_PERIOD"] in ("2024-07-01/P3M", "2024-10-01/P3M"):
                summed[row["SEXO"]] += float(row["OBS_VALUE"])
        expected = 100 * summed["F"] / summed["AS"]
        assert _value(observations, "ene_mining_women_share", territory, "2024-07/P6M") == pytest.approx(
            expected
        )
        quarter = {r["SEXO"]: float(r["OBS_VALUE"]) for r in picked if r["TIME_PERIOD"] == "2024-07-01/P3M"}
        assert _value(observations, "ene_mining_women_share", territory, "2024-07/P3M") == pytest.approx(
            100 * quarter["F"] / quarter["AS"]
        )


def test_unemployment_region_province_and_country(offline):
    _, observations, _, _ = offline
    rates = {
        (r["AREA_REF"], r["TIME_PERIOD"]): float(r["OBS_VALUE"])
        for r in _sample_rows("DF_TDES_SEXO")
        if r["SEXO"] == "AS"
    }
    for area, territory in (("2", "region:02"), ("_T", "country:CL")):
        year = [rates[(area, f"2024-{m}-01/P3M")] for m in ("01", "04", "07", "10")]
        assert _value(observations, "ene_unemployment_rate", territory, "2024") == pytest.approx(
            sum(year) / 4
        )
        assert _value(observations, "ene_unemployment_rate", territory, "2025-02/P3M") == pytest.approx(
            rates[(area, "2025-02-01/P3M")]
        )
    el_loa = {
        r["TIME_PERIOD"]: float(r["OBS_VALUE"])
        for r in _sample_rows("DF_TDES_PROVINCIAS")
        if r["AREA_REF"] == "22"
    }
    assert _value(observations, "ene_unemployment_rate", "province:022", "2024-07/P3M") == pytest.approx(
        el_loa["2024-07-01/P3M"]
    )
    flagged = observations[observations["flag"].fillna("").str.contains("unreliable")]
    assert not flagged.empty  # the sample's OBS_STATUS Y estimates carry their flag


def _sample_csv(name: str, member: str) -> list[dict]:
    with zipfile.ZipFile(census2024.SAMPLES[name]) as archive:
        text = archive.read(member).decode("ascii")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def test_rural_water_and_census_unemployment_from_microdata(offline):
    _, observations, _, _ = offline
    dwellings = _sample_csv("viviendas", "viviendas_censo2024.csv")
    region = [
        d for d in dwellings if d["region"] == "2" and d["area"] == "2" and d["p6_fuente_agua"] in "1234"
    ]
    without = sum(1 for d in region if d["p6_fuente_agua"] != "1")
    assert _value(
        observations, "census_dwellings_no_public_water_share_rural", "region:02", "2024"
    ) == pytest.approx(100 * without / len(region))
    persons = _sample_csv("personas", "personas_censo2024.csv")
    calama = [p for p in persons if p["comuna"] == "2201" and p["sit_fuerza_trabajo"] in ("1", "2")]
    unemployed = sum(1 for p in calama if p["sit_fuerza_trabajo"] == "2")
    assert _value(observations, "census_unemployment_rate", "comuna:02201", "2024") == pytest.approx(
        100 * unemployed / len(calama)
    )
    mining = [
        p for p in persons if p["region"] == "2" and p["sit_fuerza_trabajo"] == "1" and p["cod_caenes"] == "B"
    ]
    women = sum(1 for p in mining if p["sexo"] == "2")
    assert _value(observations, "census_mining_women_share", "region:02", "2024") == pytest.approx(
        100 * women / len(mining)
    )


def test_table_indicators_from_the_sample_workbooks(offline):
    _, observations, _, _ = offline
    rows = sheet_rows(census2024.SAMPLES["V4"], "2")
    calama = next(r for r in rows if len(r) > 4 and r[4] == 2201.0)
    total, network, undeclared = calama[6], calama[7], calama[11]
    assert _value(
        observations, "census_dwellings_no_public_water_share", "comuna:02201", "2024"
    ) == pytest.approx(100 * (total - network - undeclared) / (total - undeclared))
    peoples = sheet_rows(census2024.SAMPLES["P2"], "2")
    header = [" ".join(str(c).split()) for c in peoples[3]]
    ollague = next(r for r in peoples if len(r) > 4 and r[4] == 2202.0)
    assert ollague[header.index("Atacameño o Lickanantay")] == "*"
    row = observations.loc[("census_lickanantay_population", "comuna:02202", "2024")]
    assert row["flag"].startswith("suppressed") and row["value"] != row["value"]  # NaN, not a number
    poverty_rows = sheet_rows(poverty.SAMPLE, "Estimaciones")
    calama_poverty = next(r for r in poverty_rows if r and r[0] == 2201.0)
    assert _value(observations, "mds_multidimensional_poverty_rate", "comuna:02201", "2022") == pytest.approx(
        100 * calama_poverty[5]
    )
    assert observations.loc[
        ("mds_multidimensional_poverty_rate", "comuna:02201", "2022"), "lower"
    ] == pytest.approx(100 * calama_poverty[6])


def test_every_observation_is_registered_with_unit_and_method(offline):
    _, observations, _, _ = offline
    mine = {
        i
        for i in observations.index.get_level_values("indicator_id")
        if i.startswith(("ene_", "census_", "mds_"))
    }
    registry = {
        i["indicator_id"]: i
        for name in ("labour", "census2024", "poverty")
        for i in labour.load_indicators(name)
    }
    assert mine <= set(registry)
    assert all(registry[i]["unit"] and registry[i]["method"] and registry[i]["lens_section"] for i in mine)


def _serve(server, monkeypatch, source_id: str, endpoints: dict[str, str], bodies: dict[str, bytes]):
    for name, body in bodies.items():
        path = f"/{source_id}/{name}"

        def reply(handler, body=body):
            if handler.headers.get("If-None-Match") == '"v1"':
                return Reply(304)
            return Reply(200, body, {"ETag": '"v1"'})

        server.script(path, reply)
        monkeypatch.setenv(f"CONTEXT_LENS_ENDPOINT__{source_id.upper()}__{name.upper()}", server.url(path))


def test_live_against_a_local_server(warehouse_env, http_server, monkeypatch):
    flows = {
        flow.id: (labour.SAMPLE_DIR / f"{flow.id}_SAMPLE.csv").read_bytes() for flow in ine_ene.DATAFLOWS
    }
    _serve(http_server, monkeypatch, "ine_ene", ine_ene.ENDPOINTS, flows)
    workbooks = {name: census2024.SAMPLES[name].read_bytes() for name in census2024_tables.WORKBOOKS}
    _serve(http_server, monkeypatch, "ine_censo2024_tables", census2024_tables.ENDPOINTS, workbooks)
    files = {name: census2024.SAMPLES[name].read_bytes() for name in ("dictionary", "viviendas", "personas")}
    _serve(http_server, monkeypatch, "ine_censo2024_microdata", census2024_microdata.ENDPOINTS, files)
    _serve(
        http_server,
        monkeypatch,
        "mds_poverty_sae",
        mds_poverty.ENDPOINTS,
        {"multidimensional_2022": poverty.SAMPLE.read_bytes()},
    )
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__MDS_POVERTY_SAE__INCOME_2022", http_server.url("/no-income-file")
    )
    assert _run().success
    ene = [r for r in http_server.requests if r["path"].startswith("/ine_ene/")]
    assert len(ene) == len(ine_ene.DATAFLOWS) and {r["headers"].get("Accept-Language") for r in ene} == {"es"}
    with db.reader() as conn:
        status = dict(conn.execute("SELECT source_id, status FROM core.source_status").fetchall())
        before = conn.execute("SELECT * FROM core.observations ORDER BY ALL").fetchall()
    assert status["ine_ene"] == status["ine_censo2024_microdata"] == status["ine_censo2024_tables"] == "live"
    # The income workbook is optional: its 404 leaves the multidimensional estimates live.
    assert status["mds_poverty_sae"] == "live"
    # Unchanged upstream: conditional requests answered 304, the same observations.
    count = len(http_server.requests)
    assert _run().success
    again = http_server.requests[count:]
    assert all("If-None-Match" in r["headers"] for r in again if r["path"] != "/no-income-file")
    with db.reader() as conn:
        assert conn.execute("SELECT * FROM core.observations ORDER BY ALL").fetchall() == before
