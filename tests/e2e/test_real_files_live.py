"""End to end on the real public files: MINVU 2024, CNC 2022 and INE population, served live.

The real files of ../shared/data (PROVENANCE.md 3b, 3c, 4b) are served in place by a local
HTTP server at the URL paths the sources request by default:
- the 2024 layer as the GeoIDE FeatureServer pages it: `/query` with resultOffset and
  resultRecordCount, at most MAX_RECORD_COUNT features a page ordered by OBJECTID, and
  `exceededTransferLimit` on every page but the last;
- the CNC 2022 shapefile as its five parts (`CNC2022.shp`, `.shx`, `.dbf`, `.prj`, `.CPG`);
- the INE comuna projections at the INE workbook URL (the shared file is the CSV with the
  workbook's columns, which the source reads as well).

Territories are the official division alone (no boundary source runs), health loads the
population, and settlements run their live path. Every expected figure is computed here from
the raw bytes (json, csv, a small DBF reader), never by the pipeline's parsers.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
from dagster import materialize

from pipelines import health, settlements, territories
from pipelines.lens import LENS_VIEWS
from pipelines.resources import SourcesResource, WarehouseResource
from sources import ine_population
from sources import minvu_campamentos as mc
from tests.sources.test_minvu_campamentos import read_dbf_bytes
from tests.support.http import Reply, ScriptedServer, featureserver_layer
from warehouse import db

# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas".
REGION = "02"
ANTOFAGASTA = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"]
COMUNAS_OF_CHILE = 346  # the official division (SUBDERE/INE CUT)
MAX_RECORD_COUNT = 500  # the server's cap per page, below the 1,000 the client asks for
POPULATION_YEARS = (2022, 2024)  # the catastro years, so the per-1,000 rates have a denominator

LAYER_PATH = urlparse(mc.ENDPOINTS["catastro_2024_layer"]).path
CNC_PATH = urlparse(mc.ENDPOINTS["cnc_2022_shapefile"]).path
INE_PATH = urlparse(ine_population.ENDPOINTS["comunas_xlsx"]).path
NATIONAL_PATH = urlparse(ine_population.ENDPOINTS["national_csv"]).path
FILES = {
    "layer": ("campamentos", "minvu_catastro_campamentos_2024_featureserver.geojson"),
    "cnc": ("campamentos", "CNC2022_shp"),
    "population": ("health", "ine_proyecciones_comunas_2002-2035_regiones01-04.csv"),
    "national": ("health", "ine_proyecciones_pais_1992-2050_base2017_edad_simple.csv"),
}
SETTLEMENT_INDICATORS = (
    "settlements_count",
    "settlement_households",
    "settlement_area_ha_published",
    "settlement_households_per_1000",
)


def _run(assets):
    return materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


# --- the local server, in the real URL shapes ------------------------------------------------------


def _serve(server, paths, env) -> list[dict]:
    features = json.loads(paths["layer"].read_bytes())["features"]
    server.script(LAYER_PATH + "/query", featureserver_layer(features, MAX_RECORD_COUNT))
    for part in mc.SHAPEFILE_PARTS:
        body = (paths["cnc"] / f"CNC2022{part}").read_bytes()
        server.script(CNC_PATH + part, Reply(200, body, {"Content-Type": "application/octet-stream"}))
    population = paths["population"].read_bytes()
    server.script(INE_PATH, Reply(200, population, {"Content-Type": "text/csv; charset=utf-8"}))
    national = paths["national"].read_bytes()
    server.script(NATIONAL_PATH, Reply(200, national, {"Content-Type": "text/csv; charset=windows-1252"}))
    for source, name, path in [
        ("MINVU_CAMPAMENTOS", "CATASTRO_2024_LAYER", LAYER_PATH),
        ("MINVU_CAMPAMENTOS", "CNC_2022_SHAPEFILE", CNC_PATH),
        ("INE_POPULATION", "COMUNAS_XLSX", INE_PATH),
        ("INE_POPULATION", "NATIONAL_CSV", NATIONAL_PATH),
    ]:
        env.setenv(f"CONTEXT_LENS_ENDPOINT__{source}__{name}", server.url(path))
    return features


# --- independent readings of the raw files ---------------------------------------------------------


def _tally(rows) -> dict[str, dict[str, float]]:
    """{territory id: {settlements, households, hectares}} for region 02 and each of its comunas,
    from (region, comuna, households, hectares) tuples; comunas with none listed count 0."""
    tally: dict[str, Counter] = defaultdict(Counter)
    for region, comuna, households, hectares in rows:
        if region != REGION:
            continue
        for territory in (f"region:{region}", f"comuna:{comuna}"):
            tally[territory].update({"settlements": 1, "households": households, "hectares": hectares})
    return {t: dict(tally[t]) for t in [f"region:{REGION}", *(f"comuna:{c}" for c in ANTOFAGASTA)]}


def _expected_2024(features) -> dict[str, dict[str, float]]:
    """FeatureServer properties: CUT_R the region, CUT the comuna (an unpadded integer), N_HOG, HECTAREAS."""
    return _tally(
        (
            f["properties"]["CUT_R"],
            str(f["properties"]["CUT"]).zfill(5),
            f["properties"]["N_HOG"],
            f["properties"]["HECTAREAS"],
        )
        for f in features
    )


def _expected_2022(directory) -> dict[str, dict[str, float]]:
    """CNC 2022 DBF: CUT_R, CUT_C (5 digits), N_HOG (a float as text), SUP_M2 (m², decimal comma)."""
    rows = read_dbf_bytes((directory / "CNC2022.dbf").read_bytes())
    return _tally(
        (
            row["CUT_R"],
            row["CUT_C"],
            int(float(row["N_HOG"])),
            float(row["SUP_M2"].replace(",", ".")) / 10_000,
        )
        for row in rows
    )


def _expected_population(path) -> tuple[dict[tuple[str, str], int], set[str]]:
    """{(territory id, year): people} for region 02 and its comunas (all sexes and ages summed),
    and every comuna the file holds."""
    totals: Counter = Counter()
    comunas = set()
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            comunas.add(row["Comuna"].zfill(5))
            if row["Region"].zfill(2) != REGION:
                continue
            for year in POPULATION_YEARS:
                people = int(row[f"Poblacion {year}"])
                totals[(f"region:{REGION}", str(year))] += people
                totals[(f"comuna:{row['Comuna'].zfill(5)}", str(year))] += people
    return dict(totals), comunas


def _chile_stated(path, year: int) -> int:
    """Chile in `year` as INE's national file states it: the TOTAL row of its first block
    (both sexes), '.' as thousands separator, read with the csv module."""
    with open(path, encoding="cp1252", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    column = next(row for row in rows if row and row[0] == "EDAD").index(str(year))
    return int(next(row for row in rows if row and row[0] == "TOTAL")[column].replace(".", ""))


# --- one live build, shared by the tests below ----------------------------------------------------


@dataclass
class Build:
    """What one live build left: its inputs, its Dagster results, the requests served, its tables."""

    paths: dict
    features: list[dict]
    places_and_people: object
    catastros: object
    requests: list[dict]
    base_url: str
    tables: dict[str, list[tuple]]

    def checks(self) -> dict[str, tuple[bool, dict]]:
        return {
            e.check_name: (e.passed, {key: value.value for key, value in e.metadata.items()})
            for result in (self.places_and_people, self.catastros)
            for e in result.get_asset_check_evaluations()
        }

    def observed(self) -> dict[tuple[str, str, str], float]:
        return {(i, t, p): value for i, t, p, value in self.tables["observations"]}

    def expected(self) -> dict[int, dict[str, dict[str, float]]]:
        return {2024: _expected_2024(self.features), 2022: _expected_2022(self.paths["cnc"])}


@pytest.fixture(scope="module")
def build(shared_data, tmp_path_factory):
    """Territories (the official division) and population, then settlements, all live from the server."""
    paths = {key: shared_data.joinpath(*parts) for key, parts in FILES.items()}
    absent = [str(path) for path in paths.values() if not path.exists()]
    if absent:
        pytest.skip(f"real public files not found: {absent}")
    root = tmp_path_factory.mktemp("e2e-real-files")
    with ScriptedServer() as server, pytest.MonkeyPatch.context() as env:
        env.setenv("CONTEXT_LENS_DB", str(root / "context.duckdb"))
        env.setenv("CONTEXT_LENS_RAW_DIR", str(root / "raw"))
        env.setenv("CONTEXT_LENS_OUTPUT", str(root / "output"))
        env.delenv("CONTEXT_LENS_OFFLINE", raising=False)
        features = _serve(server, paths, env)
        places_and_people = _run(
            [territories.territories, health.health_population, health.health_population_totals]
        )
        catastros = _run([*settlements.ASSETS, *settlements.CHECKS])
        with db.writer() as conn:
            conn.execute(LENS_VIEWS.read_text())  # marts.observation_lineage, marts.territory_profile
            tables = {
                "observations": conn.execute(
                    "SELECT indicator_id, territory_id, period, value FROM core.observations"
                ).fetchall(),
                "lineage": conn.execute(
                    "SELECT indicator_id, territory_id, period, mode, inputs FROM marts.observation_lineage"
                ).fetchall(),
                "profile": conn.execute(
                    "SELECT indicator_id, territory_id, mode FROM marts.territory_profile"
                ).fetchall(),
                "snapshots": conn.execute(
                    "SELECT source_id, mode, request_url FROM core.snapshots"
                ).fetchall(),
                "status": conn.execute("SELECT source_id, status, mode FROM core.source_status").fetchall(),
                "by_comuna": conn.execute(
                    "SELECT comuna_code, catastro_year, settlements, households FROM marts.settlements_by_comuna"
                ).fetchall(),
            }
        yield Build(
            paths, features, places_and_people, catastros, list(server.requests), server.base_url, tables
        )


# --- the tests -------------------------------------------------------------------------------------


def test_the_build_walks_the_layer_as_arcgis_pages_it_and_fetches_every_part_live(build):
    assert build.places_and_people.success and build.catastros.success
    layer = [parse_qs(urlparse(r["path"]).query) for r in build.requests if LAYER_PATH in r["path"]]
    assert [int(q["resultOffset"][0]) for q in layer] == list(range(0, len(build.features), MAX_RECORD_COUNT))
    paths = Counter(r["path"] for r in build.requests if LAYER_PATH not in r["path"])
    assert paths == {**{CNC_PATH + part: 1 for part in mc.SHAPEFILE_PARTS}, INE_PATH: 1, NATIONAL_PATH: 1}
    # Every snapshot is live and came from the local server: no sample, no other host.
    snapshots = build.tables["snapshots"]
    assert {(source, mode) for source, mode, _ in snapshots} == {
        ("minvu_campamentos", "live"),
        ("ine_population", "live"),
    }
    assert {urlparse(url).netloc for *_, url in snapshots} == {urlparse(build.base_url).netloc}
    assert sorted(build.tables["status"]) == [
        ("ine_population", "live", "live"),
        ("minvu_campamentos", "live", "live"),
    ]


def test_region_02_and_its_comunas_hold_the_counts_and_totals_of_the_files(build):
    observed, expected = build.observed(), build.expected()
    population, _ = _expected_population(build.paths["population"])
    # PROVENANCE.md 3a/3b, 3c and 4b state these totals for region 02: a check of the readers above.
    assert expected[2024][f"region:{REGION}"]["settlements"] == 116
    assert expected[2024][f"region:{REGION}"]["households"] == 9361
    assert expected[2022][f"region:{REGION}"]["settlements"] == 85
    assert population[(f"region:{REGION}", "2024")] == 718_232
    for year, by_territory in expected.items():
        for territory, figures in by_territory.items():
            key = (territory, str(year))
            households = figures.get("households", 0)
            assert observed[("settlements_count", *key)] == figures.get("settlements", 0), key
            assert observed[("settlement_households", *key)] == households, key
            assert observed[("settlement_area_ha_published", *key)] == pytest.approx(
                figures.get("hectares", 0.0), rel=1e-9, abs=1e-9
            ), key
            assert observed[("population", *key)] == population[key], key
            assert observed[("settlement_households_per_1000", *key)] == pytest.approx(
                households / population[key] * 1000, rel=1e-12
            ), key
    for territory, now in expected[2024].items():
        change = now.get("households", 0) - expected[2022][territory].get("households", 0)
        assert observed[("settlement_households_change", territory, "2022-2024")] == change, territory
    # The lens mart of settlements by comuna says the same.
    mart = {(code, year): (n, households) for code, year, n, households in build.tables["by_comuna"]}
    for year, by_territory in expected.items():
        for code in ANTOFAGASTA:
            figures = by_territory[f"comuna:{code}"]
            assert mart[(code, year)] == (figures.get("settlements", 0), figures.get("households", 0)), code


def test_the_checks_see_the_quirks_of_the_real_files(build):
    """PROVENANCE.md 3b: FOLIO 1320115 has an empty polygon; repeated folios are flagged, not merged."""
    checks = build.checks()
    empty = [f for f in build.features if not (f.get("geometry") or {}).get("coordinates")]
    folios = Counter(f["properties"]["FOLIO"] for f in build.features)
    folios_2022 = Counter(
        r["FOLIO_NUM"] for r in read_dbf_bytes((build.paths["cnc"] / "CNC2022.dbf").read_bytes())
    )
    repeated = sum(n for n in folios.values() if n > 1) + sum(n for n in folios_2022.values() if n > 1)
    passed, flags = checks["settlements_quality_flags"]
    assert not passed and flags["by_flag"]["geometry_missing"] == len(empty) == 1
    assert flags["by_flag"].get("folio_repeated", 0) == repeated
    assert [f["properties"]["FOLIO"] for f in empty] == [1320115]
    assert checks["settlement_territories_known"][0]  # every CUT is a comuna of the official division
    passed, totals = checks["health_population_totals"]
    assert passed and totals["comuna_file_complete"] is False and totals["mismatches"] == []
    assert totals["country_not_as_stated"] == []


def test_every_one_of_those_values_is_labelled_live_with_its_inputs(build):
    lineage = {(i, t, p): (mode, inputs) for i, t, p, mode, inputs in build.tables["lineage"]}
    territories_02 = [f"region:{REGION}", *(f"comuna:{c}" for c in ANTOFAGASTA)]
    wanted = [
        (indicator, territory, str(year))
        for indicator in (*SETTLEMENT_INDICATORS, "population")
        for territory in territories_02
        for year in POPULATION_YEARS
    ] + [("settlement_households_change", territory, "2022-2024") for territory in territories_02]
    assert {key: lineage[key][0] for key in wanted} == dict.fromkeys(wanted, "live")
    rate_inputs = lineage[("settlement_households_per_1000", f"region:{REGION}", "2024")][1]
    assert "numerator: minvu_campamentos" in rate_inputs and "denominator: ine_population" in rate_inputs
    profile = {(i, t): mode for i, t, mode in build.tables["profile"] if t in territories_02}
    assert profile and set(profile.values()) == {"live"}


def test_chile_is_the_figure_ine_states_not_a_sum_of_the_four_regions_the_comuna_file_holds(build):
    _, comunas_in_file = _expected_population(build.paths["population"])
    chile = _chile_stated(build.paths["national"], 2024)
    with open(build.paths["population"], encoding="utf-8", newline="") as handle:
        four_regions = sum(int(row["Poblacion 2024"]) for row in csv.DictReader(handle))
    assert chile == 20_086_377 and four_regions == 2_323_778 and len(comunas_in_file) == 40
    assert build.observed()[("population", "country:CL", "2024")] == chile != four_regions
    mode, inputs = next(
        (m, i)
        for ind, t, p, m, i in build.tables["lineage"]
        if (ind, t, p) == ("population", "country:CL", "2024")
    )
    region = next(
        i for ind, t, p, _, i in build.tables["lineage"] if (ind, t, p) == ("population", "region:02", "2024")
    )
    # Its one input is the national snapshot, not the comuna file's that the regions are summed from.
    assert mode == "live" and inputs.startswith("value: ine_population ") and ";" not in inputs
    assert inputs != region
    events = [
        e
        for e in build.places_and_people.get_asset_materialization_events()
        if e.asset_key.path[-1] == "health_population"
    ]
    left_out = events[-1].materialization.metadata["partial_levels_not_published"].value
    assert left_out == {}  # Chile is stated, regions 01-04 are whole: nothing is left out
