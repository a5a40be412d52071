"""Health family end to end on the SAMPLE deaths and population payloads (offline).

Checked figures are recomputed here from the sample files with zipfile, csv and plain
Python: deaths counted row by row, the standard population and person-years summed from
the population CSV, the ASR as sum(w_i d_i / n_i).
"""

import csv
import io
import zipfile
from collections import Counter

import pandas as pd
import pytest
from dagster import materialize

from pipelines import health, health_mortality, health_population, health_tables, territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources import ine_population
from tests.support.http import Reply
from warehouse import db

ANTOFAGASTA = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"]
WINDOW = (2016, 2020)


def _run(assets):
    return materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def offline_warehouse(tmp_path_factory):
    """One offline materialization shared by the tests of this module (the rates take a few seconds)."""
    tmp = tmp_path_factory.mktemp("health")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_LENS_DB", str(tmp / "context.duckdb"))
        mp.setenv("CONTEXT_LENS_RAW_DIR", str(tmp / "raw"))
        mp.setenv("CONTEXT_LENS_OUTPUT", str(tmp / "output"))
        mp.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = _run([*territories.ASSETS, *health.ASSETS, *health.CHECKS])
        assert result.success
        with db.reader() as conn:
            tables = {
                name: conn.execute(sql).df()
                for name, sql in {
                    "rates": "SELECT * FROM marts.mortality_rates",
                    "observations": "SELECT * FROM core.observations",
                    "snapshots": "SELECT * FROM core.snapshots",
                    "indicators": "SELECT * FROM core.indicators",
                }.items()
            }
    return result, tables


def _age_group(age: int | None) -> str | None:
    if age is None:
        return None
    return "80+" if age >= 80 else f"{age // 5 * 5}-{age // 5 * 5 + 4}"


def _sample_deaths() -> list[dict]:
    """Every death row of the SAMPLE zip, with comuna, year and age group worked out by hand."""
    with zipfile.ZipFile(health.DEATHS_SAMPLE) as archive:
        text = archive.read(archive.namelist()[0]).decode("latin-1")
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=";"):
        code = row["COD_COMUNA"].strip()
        unit, value = row["EDAD_TIPO"].strip(), row["EDAD_CANT"].strip()
        age = int(value) if unit == "1" else (0 if unit in ("2", "3", "4") else None)
        rows.append(
            {
                "year": int(row["AÑO"]),
                "comuna": code.zfill(5) if code.isdigit() else "99999",
                "age_group": _age_group(age),
            }
        )
    return rows


def _sample_population() -> dict[tuple[str, int, str], int]:
    """(comuna, year, age group) -> persons, both sexes, from the SAMPLE population CSV."""
    totals: Counter = Counter()
    with open(health.POPULATION_SAMPLE, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            comuna = row["Comuna"].zfill(5)
            group = _age_group(int(row["Edad"]))
            for year in range(2002, 2036):
                totals[(comuna, year, group)] += int(row[f"Poblacion {year}"])
    return totals


def _national_by_age(path, year: int) -> dict[str, int]:
    """Both sexes by single age ('0' .. '100+') in `year` from an INE national projection CSV, read
    with the csv module alone: the first block (AMBOS SEXOS), '.' as thousands separator."""
    with open(path, encoding="cp1252", newline="") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle, delimiter=";")]
    header = next(row for row in rows if row and row[0] == "EDAD")
    column = header.index(str(year))
    ages = {}
    for row in rows[rows.index(header) + 1 :]:
        if row[0] == "TOTAL":
            assert sum(ages.values()) == int(row[column].replace(".", ""))
            return ages
        ages[row[0]] = int(row[column].replace(".", ""))
    raise AssertionError(f"{path}: no TOTAL row in the first block")


def test_pooled_asr_with_intervals_for_antofagasta_comunas_and_country(offline_warehouse):
    _, tables = offline_warehouse
    rates = tables["rates"]
    pooled = rates[
        (rates["period"] == "2016-2020") & (rates["sex"] == "T") & (rates["cause_group"] == "all_causes")
    ]
    wanted = [f"comuna:{c}" for c in ANTOFAGASTA] + ["country:CL"]
    rows = pooled.set_index("territory_id").loc[wanted]
    assert rows["asr"].notna().all()
    assert (rows["asr_lower"] < rows["asr"]).all() and (rows["asr"] < rows["asr_upper"]).all()
    assert set(rows["deaths_mode"]) == {"sample"} and set(rows["population_mode"]) == {"sample"}
    assert rows["standard"].str.startswith("SAMPLE").all()
    # Ollagüe (about 320 inhabitants) has fewer than 20 deaths in five years: flagged, not hidden.
    assert rows.loc["comuna:02202", "flag"] == "few_deaths"
    assert rows.loc["country:CL", "rate_ratio"] == 1.0

    observations = tables["observations"]
    asr = observations[
        (observations["indicator_id"] == "health_asr_all_causes") & (observations["period"] == "2016-2020")
    ]
    assert set(wanted) <= set(asr["territory_id"])
    assert asr[["lower", "upper"]].notna().all().all()
    ratio = observations[observations["indicator_id"] == "health_asr_ratio_lung_cancer"]
    assert {f"comuna:{c}" for c in ANTOFAGASTA if c != "02202"} <= set(ratio["territory_id"])
    assert "country:CL" not in set(ratio["territory_id"])

    snapshots = tables["snapshots"].set_index("name")
    assert snapshots.loc["deaths-official", "mode"] == "sample"
    assert snapshots.loc["comunas-2002-2035", "mode"] == "sample"
    assert snapshots.loc["country-1992-2050", "mode"] == "sample"
    registered = tables["indicators"].set_index("indicator_id")
    assert registered.loc["health_asr_pneumoconiosis", "lens_section"] == "state_presence"


def test_warehouse_asr_of_calama_equals_a_hand_computation(offline_warehouse):
    _, tables = offline_warehouse
    population = _sample_population()
    groups = [f"{low}-{low + 4}" for low in range(0, 80, 5)] + ["80+"]
    # The standard: the country of 2017 as the (sample) national projection states it.
    standard = Counter()
    for age, count in _national_by_age(health.NATIONAL_SAMPLE, 2017).items():
        standard[_age_group(int(age.rstrip("+")))] += count
    weights = {g: standard[g] / sum(standard.values()) for g in groups}
    deaths = Counter(
        d["age_group"]
        for d in _sample_deaths()
        if d["comuna"] == "02201" and WINDOW[0] <= d["year"] <= WINDOW[1] and d["age_group"] is not None
    )
    person_years = {
        g: sum(population[("02201", y, g)] for y in range(WINDOW[0], WINDOW[1] + 1)) for g in groups
    }
    expected = 100_000 * sum(weights[g] * deaths[g] / person_years[g] for g in groups)

    rates = tables["rates"]
    row = rates[
        (rates["territory_id"] == "comuna:02201")
        & (rates["period"] == "2016-2020")
        & (rates["sex"] == "T")
        & (rates["cause_group"] == "all_causes")
    ].iloc[0]
    assert row["asr"] == pytest.approx(expected, rel=1e-9)
    assert row["deaths"] - row["deaths_unknown_age"] == sum(deaths.values())


def test_population_observations_for_comunas_the_covered_regions_and_the_stated_country(offline_warehouse):
    _, tables = offline_warehouse
    population = _sample_population()
    observations = tables["observations"]
    pop = observations[observations["indicator_id"] == "population"].set_index(["territory_id", "period"])[
        "value"
    ]
    for comuna in ANTOFAGASTA:
        assert pop[(f"comuna:{comuna}", "2017")] == sum(
            v for (c, y, _), v in population.items() if c == comuna and y == 2017
        )
    # The SAMPLE holds 11 of Chile's 346 comunas (all of region 02, one of 05, one of 08):
    # no region 05 or 08 value is published as a sum of the parts it happens to hold.
    assert not {"region:05", "region:08"} & set(pop.index.get_level_values(0))
    # The country is what the (sample) national projection states, under that snapshot.
    assert pop[("country:CL", "2024")] == sum(_national_by_age(health.NATIONAL_SAMPLE, 2024).values())
    national = tables["snapshots"].set_index("name").loc["country-1992-2050"]
    country = observations[
        (observations["indicator_id"] == "population") & (observations["territory_id"] == "country:CL")
    ]
    assert set(country["snapshot_id"]) == {national["snapshot_id"]} and national["mode"] == "sample"
    assert len(country) == 2050 - 1992 + 1
    assert pop[("region:02", "2020")] == sum(
        v for (c, y, _), v in population.items() if y == 2020 and c.startswith("02")
    )
    assert tables["indicators"].set_index("indicator_id").loc["population", "source_id"] == "ine_population"


def test_checks_pass_and_unknown_residence_is_counted(offline_warehouse):
    result, _ = offline_warehouse
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "health_deaths_reconcile",
        "health_population_totals",
        "health_comunas_resolve",
    }
    assert all(e.passed for e in evaluations.values())
    unknown = sum(1 for d in _sample_deaths() if d["comuna"] == "99999")
    assert unknown > 0
    assert evaluations["health_comunas_resolve"].metadata["unknown_residence_deaths"].value == unknown
    reconciled = evaluations["health_deaths_reconcile"].metadata
    assert reconciled["deaths_all_causes"].value == len(_sample_deaths())


def _weekly_zip() -> bytes:
    """A weekly DEIS file in its real wire format (headerless, 27 columns, `;`, latin-1).

    SAMPLE rows written for this test: one 2016 death (a year the official file covers, so it
    must be ignored) and two 2021 deaths in Calama (kept as preliminary).
    """
    rows = [
        "2016;2016-03-01;Mujer;1;70;2201;Calama;De Antofagasta;C349" + ";" * 18 + "Hospital",
        "2021;2021-02-11;Hombre;1;64;2201;Calama;De Antofagasta;C349" + ";" * 18 + "Hospital",
        "2021;2021-06-30;Mujer;1;81;2201;Calama;De Antofagasta;J628" + ";" * 18 + "Casa habitación",
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.csv", "\r\n".join(rows).encode("latin-1")
        )
    return buffer.getvalue()


def _population_xlsx() -> bytes:
    """The SAMPLE population rows laid out as the INE workbook (its multi-line Sexo header)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    with open(health.POPULATION_SAMPLE, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        sheet.append(["Sexo\n1=Hombre\n2=Mujer" if cell.startswith("Sexo") else cell for cell in header])
        for row in reader:
            sheet.append([int(cell) if cell.isdigit() else cell for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_live_official_and_discovered_weekly_zip(warehouse_env, http_server, monkeypatch):
    zip_type = {"Content-Type": "application/zip"}
    http_server.script("/official.zip", Reply(200, health.DEATHS_SAMPLE.read_bytes(), zip_type))
    http_server.script(
        "/datos/files/DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.zip", Reply(200, _weekly_zip(), zip_type)
    )
    page = (
        '<html><a href="files/DEFUNCIONES_FUENTE_DEIS_2019_2020_01062021.zip">old</a>'
        '<a href="files/DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.zip">new</a></html>'
    )
    http_server.script("/datos/", Reply(200, page.encode(), {"Content-Type": "text/html"}))
    xlsx_type = {"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    http_server.script("/ine.xlsx", Reply(200, _population_xlsx(), xlsx_type))
    csv_type = {"Content-Type": "text/csv"}
    http_server.script("/ine-pais.csv", Reply(200, health.NATIONAL_SAMPLE.read_bytes(), csv_type))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OFFICIAL_ZIP", http_server.url("/official.zip"))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OPEN_DATA_PAGE", http_server.url("/datos/"))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__INE_POPULATION__COMUNAS_XLSX", http_server.url("/ine.xlsx"))
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__INE_POPULATION__NATIONAL_CSV", http_server.url("/ine-pais.csv")
    )

    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")  # places from their SAMPLE; health is what goes live
    assert _run(territories.ASSETS).success
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    result = _run(health.ASSETS)
    assert result.success
    assert http_server.hits("/datos/files/DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.zip") == 1
    with db.reader() as conn:
        modes = dict(
            conn.execute(
                "SELECT name, mode FROM core.snapshots WHERE source_id IN ('deis_deaths', 'ine_population')"
            ).fetchall()
        )
        by_series = dict(
            conn.execute(
                "SELECT series || ':' || min(year) || '-' || max(year), sum(deaths) FROM core.deaths "
                "WHERE cause_group = 'all_causes' GROUP BY series"
            ).fetchall()
        )
        calama_2021 = conn.execute(
            "SELECT deaths, asr FROM core.mortality_rates WHERE territory_id = 'region:02' AND period = '2021' "
            "AND cause_group = 'all_causes' AND sex = 'T'"
        ).fetchone()
    assert modes == {
        "deaths-official": "live",
        "deaths-weekly": "live",
        "comunas-2002-2035": "live",
        "country-1992-2050": "live",
    }
    assert by_series == {"official:2016-2020": len(_sample_deaths()), "preliminary:2021-2021": 2}
    assert calama_2021[0] == 2 and calama_2021[1] > 0


def test_unknown_comuna_code_is_refused_by_the_shared_resolver(warehouse_env, http_server, monkeypatch):
    """A death whose comuna of residence is no known territory stops the load, naming the code."""
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert _run([*territories.ASSETS, *health.ASSETS]).success
    with db.reader() as conn:
        before = conn.execute("SELECT * FROM core.deaths ORDER BY ALL").fetchall()
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    with zipfile.ZipFile(io.BytesIO(_weekly_zip())) as good:
        (name,) = good.namelist()
        text = good.read(name).replace(b"2021-06-30;Mujer;1;81;2201", b"2021-06-30;Mujer;1;81;7777")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    bad = buffer.getvalue()
    zip_type = {"Content-Type": "application/zip"}
    http_server.script("/official.zip", Reply(200, health.DEATHS_SAMPLE.read_bytes(), zip_type))
    http_server.script(
        "/datos/files/DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.zip", Reply(200, bad, zip_type)
    )
    page = '<html><a href="files/DEFUNCIONES_FUENTE_DEIS_2020_2021_05012022.zip">new</a></html>'
    http_server.script("/datos/", Reply(200, page.encode(), {"Content-Type": "text/html"}))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OFFICIAL_ZIP", http_server.url("/official.zip"))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OPEN_DATA_PAGE", http_server.url("/datos/"))

    result = _run([health.health_deaths])
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "deis_deaths" in message and "07777" in message
    with db.reader() as conn:
        assert conn.execute("SELECT * FROM core.deaths ORDER BY ALL").fetchall() == before
        status = conn.execute(
            "SELECT status FROM core.source_status WHERE source_id = 'deis_deaths'"
        ).fetchone()
    assert status == ("failed",)


def test_the_four_region_population_file_gives_no_chile_total(shared_data):
    """INE's comuna file for regions 01-04 only: regions 01-04 summed, and no `country:CL` (2,323,778 in 2024)."""
    path = shared_data / "health" / "ine_proyecciones_comunas_2002-2035_regiones01-04.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    frame = ine_population.parse_comunas(path.read_bytes(), "ine_population-real")
    frame["snapshot_id"] = "ine_population-real"
    observations, partial = health_population.population_observations(
        frame[list(health_tables.POPULATION_COLUMNS)], "ine_population", "ine_population-real"
    )
    assert partial == {"country:CL": "40 of 346 comunas"}
    territories = set(observations["territory_id"])
    assert "country:CL" not in territories
    assert {t for t in territories if t.startswith("region:")} == {
        "region:01",
        "region:02",
        "region:03",
        "region:04",
    }
    y2024 = observations[observations["period"] == "2024"].set_index("territory_id")["value"]
    with open(path, encoding="utf-8") as handle:  # independent of the parser: the file's own column
        rows = list(csv.DictReader(handle))
    for region in ("01", "02", "03", "04"):
        expected = sum(int(r["Poblacion 2024"]) for r in rows if int(r["Region"]) == int(region))
        assert y2024[f"region:{region}"] == expected
    assert sum(y2024[f"region:0{r}"] for r in range(1, 5)) == 2_323_778


def test_live_rates_only_for_territories_the_population_file_covers():
    """A live population file with all of region 02 and one comuna of 05: rates for region 02 and the
    comunas, none for region 05 or Chile (national deaths over part of the population is not a rate)."""
    from methods import mortality
    from sources import division

    comunas = sorted(division.comunas_of("02")) + ["05101"]
    population = pd.DataFrame(
        [
            (year, c, c[:2], sex, group, 1000.0)
            for year in range(2016, 2021)
            for c in comunas
            for sex in ("M", "F")
            for group in mortality.AGE_GROUPS
        ],
        columns=["year", "comuna_code", "region_code", "sex", "age_group", "population"],
    )
    deaths = pd.DataFrame(
        [(year, c, "M", "80+", "all_causes", 30) for year in range(2016, 2021) for c in comunas],
        columns=["year", "comuna_code", "sex", "age_group", "cause_group", "deaths"],
    )
    config = health_mortality.HealthConfig()
    standard = health_mortality.standard_population(config, population, False, "10 of 346 comunas")
    assert "10 of 346 comunas (not all of Chile)" in standard.name
    whole, _ = health_mortality.rate_table(deaths, population, config, standard, "v", whole_only=True)
    kinds = set(whole["territory_id"])
    assert "region:02" in kinds and "comuna:05101" in kinds
    assert not {"country:CL", "region:05"} & kinds
    every, _ = health_mortality.rate_table(deaths, population, config, standard, "v")
    assert {"country:CL", "region:05"} <= set(every["territory_id"])


NATIONAL_REAL = "ine_proyecciones_pais_1992-2050_base2017_edad_simple.csv"
COMUNAS_REAL = "ine_proyecciones_comunas_2002-2035_regiones01-04.csv"


def _serve_population(http_server, monkeypatch, comunas: bytes, national: bytes) -> None:
    csv_type = {"Content-Type": "text/csv"}
    http_server.script("/comunas.csv", Reply(200, comunas, csv_type))
    http_server.script("/pais.csv", Reply(200, national, csv_type))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__INE_POPULATION__COMUNAS_XLSX", http_server.url("/comunas.csv"))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__INE_POPULATION__NATIONAL_CSV", http_server.url("/pais.csv"))


def _inputs(conn, indicator: str, territory: str, period: str) -> list[tuple[str, str]]:
    """(role, snapshot) of every input of one observation."""
    return conn.execute(
        "SELECT role, input_snapshot_id FROM core.observation_inputs "
        "WHERE indicator_id = ? AND territory_id = ? AND period = ? ORDER BY ALL",
        [indicator, territory, period],
    ).fetchall()


def test_real_national_projection_is_chile_with_the_four_region_comuna_file(
    shared_data, warehouse_env, http_server, monkeypatch
):
    """The real INE national CSV and the real four-region comuna file served live: Chile is INE's own
    figure under the national snapshot (not 2,323,778, the four regions' sum), it is the country's
    denominator and the standard population, and regions 05.. have no value."""
    national_path, comunas_path = (
        shared_data / "health" / NATIONAL_REAL,
        shared_data / "health" / COMUNAS_REAL,
    )
    for path in (national_path, comunas_path):
        if not path.is_file():
            pytest.skip(f"{path} not found")
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")  # places and deaths from their SAMPLE
    assert _run(territories.ASSETS).success
    assert _run([health.health_deaths]).success
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    _serve_population(http_server, monkeypatch, comunas_path.read_bytes(), national_path.read_bytes())
    result = _run([health.health_population, health.health_rates, health.health_population_totals])
    assert result.success
    chile_2024 = sum(_national_by_age(national_path, 2024).values())
    chile_2017 = _national_by_age(national_path, 2017)
    with db.reader() as conn:
        national_snapshot, mode = conn.execute(
            "SELECT snapshot_id, mode FROM core.snapshots WHERE name = 'country-1992-2050'"
        ).fetchone()
        population = dict(
            conn.execute(
                "SELECT territory_id, value FROM core.observations WHERE indicator_id = 'population' "
                "AND period = '2024' AND territory_id NOT LIKE 'comuna:%'"
            ).fetchall()
        )
        country_inputs = _inputs(conn, "population", "country:CL", "2024")
        rate = conn.execute(
            "SELECT population, population_snapshot_id, standard FROM core.mortality_rates "
            "WHERE territory_id = 'country:CL' AND period = '2017' AND cause_group = 'all_causes' AND sex = 'T'"
        ).fetchone()
        asr_inputs = _inputs(conn, "health_asr_all_causes", "country:CL", "2016-2020")
        ratio_inputs = _inputs(conn, "health_asr_ratio_all_causes", "comuna:02201", "2016-2020")
        marts_mode = conn.execute(
            "SELECT DISTINCT population_mode FROM marts.mortality_rates WHERE territory_id = 'country:CL'"
        ).fetchall()
    assert mode == "live"
    assert chile_2024 == 20_086_377  # read from the file above; not the 2,323,778 of regions 01-04
    assert population["country:CL"] == chile_2024
    assert set(population) == {"country:CL", "region:01", "region:02", "region:03", "region:04"}
    assert country_inputs == [("value", national_snapshot)]
    # The country's 2017 person-years are INE's stated 2017 population, all ages (100+ in 80+).
    assert rate[0] == sum(chile_2017.values()) and rate[1] == national_snapshot
    assert rate[2].startswith("Chile 2017, INE estimaciones y proyecciones base 2017")
    assert ("denominator", national_snapshot) in asr_inputs
    assert ("standard_population", national_snapshot) in asr_inputs
    assert ("denominator", national_snapshot) in ratio_inputs  # the ratio divides by Chile's ASR
    assert marts_mode == [("live",)]
    check = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "health_population_totals"
    )
    assert check.passed and check.metadata["comuna_file_complete"].value is False


def test_refused_national_projection_publishes_no_chile(warehouse_env, http_server, monkeypatch):
    """A national file whose TOTAL disagrees with its ages is refused, naming the source and snapshot:
    the population asset fails and nothing is published (no sum of comunas is put in Chile's place)."""
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert _run(territories.ASSETS).success
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    text = health.NATIONAL_SAMPLE.read_bytes().decode("cp1252").split("\r\n")
    total = next(i for i, line in enumerate(text) if line.startswith("TOTAL;"))
    cells = text[total].split(";")
    cells[1] = str(int(cells[1].replace(".", "")) + 1)  # one person more than its ages add up to
    text[total] = ";".join(cells)
    _serve_population(
        http_server, monkeypatch, health.POPULATION_SAMPLE.read_bytes(), "\r\n".join(text).encode("cp1252")
    )
    result = _run([health.health_population])
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "ine_population" in message and "TOTAL" in message and "ine_population-" in message
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status FROM core.source_status WHERE source_id = 'ine_population'"
        ).fetchone()
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        published = (
            conn.execute(
                "SELECT count(*) FROM core.observations WHERE territory_id = 'country:CL'"
            ).fetchone()[0]
            if "observations" in tables
            else 0
        )
    assert status == ("failed",)
    assert published == 0 and "population_country" not in tables


def test_country_cross_check_of_the_real_346_comunas_against_the_national_projection(shared_data):
    """All 346 comunas (yearly totals, bastianolea's processed INE file) against INE's national
    figure: the cross-check finds them equal in every year 2002-2035."""
    national_path = shared_data / "health" / NATIONAL_REAL
    comunas_path = shared_data / "health" / "bastianolea_censo_proyecciones_anio_comunas.csv"
    for path in (national_path, comunas_path):
        if not path.is_file():
            pytest.skip(f"{path} not found")
    with open(comunas_path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    comunas = pd.DataFrame(
        {
            "comuna_code": [r["cut_comuna"].zfill(5) for r in rows],
            "year": [int(r["año"]) for r in rows],
            "population": [int(r["población"]) for r in rows],
        }
    )
    country = ine_population.parse_national_projection(national_path.read_bytes(), "real")
    check = health_population.country_cross_check(comunas, country)
    assert list(check["year"]) == list(range(2002, 2036))
    assert (check["relative_gap"] == 0).all()
    assert check.set_index("year").loc[2024, "stated"] == sum(_national_by_age(national_path, 2024).values())
    # Part of Chile is no check of Chile.
    assert health_population.country_cross_check(comunas[comunas["comuna_code"] < "05000"], country).empty
