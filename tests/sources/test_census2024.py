"""Census 2024 on the real INE workbooks and the real microdata sample (../shared/data/census2024).

Expected figures are read here from the workbook XML with tests/support/xlsx_cells.py (not
openpyxl, which the parser uses) and summed in plain Python.
"""

from pathlib import Path

import pandas as pd
import pytest

from pipelines import census2024_measures as measures
from sources import census2024_microdata as microdata
from sources import census2024_tables as tables
from sources.base import ParseError
from tests.support.xlsx_cells import sheet_rows
from warehouse import db

FILES = {
    "V4": "V4_Servicios_basicos_de_la_vivienda.xlsx",
    "P2": "P2-Pueblos-indigenas.xlsx",
    "D1": "D1_Poblacion-censada-por-sexo-y-edad-en-grupos-quinquenales.xlsx",
    "V1": "V1_Viviendas-y-hogares-censados.xlsx",
    "H1": "H1_Servicios-basicos-hogar-y-tenencia-vivienda.xlsx",
}
ANTOFAGASTA = [2101, 2102, 2103, 2104, 2201, 2202, 2203, 2301, 2302]
EL_LOA = [2201, 2202, 2203]


@pytest.fixture(scope="module")
def census(shared_data) -> Path:
    return shared_data / "census2024"


def _independent(path: Path, sheet: str) -> tuple[list, dict[int, list]]:
    """(header, {code: row}) of a table sheet: header on row 4, code in column A (region) or E (comuna)."""
    rows = sheet_rows(path, sheet)
    header = [" ".join(str(c).split()) if c is not None else "" for c in rows[3]]
    column = 4 if "Código comuna" in header else 0
    data = {int(row[column]): row for row in rows[4:] if row and isinstance(row[column], float)}
    return header, data


def _cells(census: Path, workbook: str) -> pd.DataFrame:
    cells = tables.parse_workbook((census / FILES[workbook]).read_bytes(), workbook)
    return cells.assign(snapshot_id=f"test-{workbook}")


def _value(frame: pd.DataFrame, level: str, code: int, measure: str) -> float | None:
    column = "comuna_code" if level == "comuna" else "region_code"
    row = frame[(frame["level"] == level) & (frame[column] == code) & (frame["measure"] == measure)]
    assert len(row) == 1, (level, code, measure, len(row))
    return row["value"].iloc[0]


def test_water_source_of_antofagasta_comunas_matches_the_workbook(census):
    cells = _cells(census, "V4")
    comunas = tables.table(cells, tables.spec("water_source_comuna"))
    header, expected = _independent(census / FILES["V4"], "2")
    assert header[6] == tables.DWELLINGS and header[7] == "Red pública"
    for code in ANTOFAGASTA:
        for i, measure in enumerate(header[6:12], start=6):
            assert _value(comunas, "comuna", code, measure) == expected[code][i], (code, measure)
    # Calama as published: 52,533 dwellings, 49,842 on the public network, 2,495 by water truck.
    assert [expected[2201][i] for i in (6, 7, 9)] == [52533, 49842, 2495]
    # The region row of sheet 1 is the sum of its nine comunas in sheet 2, for every column.
    region_header, regions = _independent(census / FILES["V4"], "1")
    regional = tables.table(cells, tables.spec("water_source_region"))
    for i, measure in enumerate(header[6:12], start=6):
        summed = sum(expected[code][i] for code in ANTOFAGASTA)
        assert summed == regions[2][header.index(measure) - 4] == _value(regional, "region", 2, measure)
    assert summed is not None and regions[2][2] == sum(expected[c][6] for c in ANTOFAGASTA) == 202065


def test_indigenous_peoples_with_suppressed_cells(census):
    cells = _cells(census, "P2")
    comunas = tables.table(cells, tables.spec("indigenous_comuna"))
    header, expected = _independent(census / FILES["P2"], "2")
    lickanantay = header.index("Atacameño o Lickanantay")
    for code in ANTOFAGASTA:
        cell = expected[code][lickanantay]
        row = comunas[(comunas["comuna_code"] == code) & (comunas["measure"] == "Atacameño o Lickanantay")]
        if cell == "*":
            assert row["cell_state"].item() == "suppressed" and pd.isna(row["value"].item())
        else:
            assert row["value"].item() == cell and row["cell_state"].item() == "value"
    assert expected[2201][lickanantay] == 19322 and expected[2202][lickanantay] == "*"
    suppressed = comunas[comunas["cell_state"] == "suppressed"]
    stars = sum(1 for row in expected.values() for cell in row[6:] if cell == "*")
    assert len(suppressed) == stars == 2325


def test_population_and_households_by_comuna(census):
    header, expected = _independent(census / FILES["D1"], "2")
    population = tables.table(_cells(census, "D1"), tables.spec("population_comuna"))
    for code in ANTOFAGASTA:
        for measure in ("Población censada", "Hombres", "Mujeres"):
            assert _value(population, "comuna", code, measure) == expected[code][header.index(measure)]
    assert sum(expected[c][6] for c in ANTOFAGASTA) == 635416
    header, expected = _independent(census / FILES["V1"], "6")
    households = tables.table(_cells(census, "V1"), tables.spec("households_comuna"))
    assert _value(households, "comuna", 2201, "Hogares censados") == expected[2201][6] == 56045


def _staged(census: Path) -> pd.DataFrame:
    """The declared tables of all five workbooks, with territory ids made by hand (no resolver)."""
    parts = []
    for workbook in FILES:
        cells = _cells(census, workbook)
        parts += [tables.table(cells, spec) for spec in tables.TABLES if spec.workbook == workbook]
    staged = pd.concat(parts, ignore_index=True)
    staged["territory_id"] = [
        "country:CL"
        if level == "country"
        else (f"region:{r:02d}" if level == "region" else f"comuna:{int(c):05d}")
        for level, r, c in zip(
            staged["level"],
            staged["region_code"],
            pd.to_numeric(staged["comuna_code"]).fillna(0),
            strict=True,
        )
    ]
    return staged


def test_indicators_from_the_real_tables(census):
    staged = _staged(census)
    frame = measures.table_observations(staged).set_index(["indicator_id", "territory_id"])
    _, water = _independent(census / FILES["V4"], "2")
    total, network, truck, undeclared = (water[2201][i] for i in (6, 7, 9, 11))
    assert frame.loc[("census_dwellings_no_public_water_share", "comuna:02201"), "value"] == pytest.approx(
        100 * (total - network - undeclared) / (total - undeclared)
    )
    assert frame.loc[("census_dwellings_water_truck_share", "comuna:02201"), "value"] == pytest.approx(
        100 * truck / (total - undeclared)
    )
    # El Loa: the three comunas summed, then the share.
    loa = [sum(water[c][i] for c in EL_LOA) for i in (6, 7, 11)]
    assert frame.loc[("census_dwellings_no_public_water_share", "province:022"), "value"] == pytest.approx(
        100 * (loa[0] - loa[1] - loa[2]) / (loa[0] - loa[2])
    )
    _, peoples = _independent(census / FILES["P2"], "2")
    _, people = _independent(census / FILES["D1"], "2")
    assert frame.loc[("census_indigenous_share", "comuna:02201"), "value"] == pytest.approx(
        100 * peoples[2201][6] / people[2201][6]
    )
    ollague = frame.loc[("census_lickanantay_population", "comuna:02202")]
    assert pd.isna(ollague["value"]) and ollague["flag"] == measures.SUPPRESSED_FLAG
    assert (
        frame.loc[("census_lickanantay_population", "province:022"), "flag"] == measures.SUPPRESSED_IN_COMUNA
    )
    assert (
        frame.loc[("census_lickanantay_population", "region:02"), "value"] > 0
    )  # the region sheet is not suppressed


def test_changed_title_or_header_is_refused(census, tmp_path):
    cells = _cells(census, "V4")
    renamed = cells.assign(title=cells["title"].str.replace("fuente de origen del agua", "origen del agua"))
    with pytest.raises(ParseError, match="no sheet titled"):
        tables.table(renamed, tables.spec("water_source_comuna"))
    no_truck = cells[cells["measure"] != "Camión aljibe"]
    with pytest.raises(ParseError, match=r"header lacks \['Camión aljibe'\]"):
        tables.table(no_truck, tables.spec("water_source_comuna"))


def test_publication_date_from_the_nota_sheet(census):
    assert tables.publication_date((census / FILES["V4"]).read_bytes(), "V4") == "30 de mayo, 2025"


# --- microdata: the real OEF sample of INE's files ------------------------------------------


@pytest.fixture(scope="module")
def oef(shared_data) -> Path:
    return shared_data / "census2024" / "oef_microdata_sample"


@pytest.fixture(scope="module")
def dictionary(oef) -> pd.DataFrame:
    return pd.concat(
        [
            microdata.parse_dictionary((oef / name).read_bytes())
            for name in ("dictionary_homes.csv", "dictionary_people.csv")
        ],
        ignore_index=True,
    )


def test_dictionary_quirks(dictionary):
    water = dictionary[(dictionary["variable"] == "p6_fuente_agua")].set_index("code")
    assert list(water.index) == ["1", "2", "3", "4", "-99", "NA"]
    assert water.loc[["3", "4"], "inferred"].all() and water.loc["3", "label"] == "Camión aljibe"
    assert water.loc["3", "count"] == 131141 and water.loc["1", "count"] == 5914136
    branches = dictionary[dictionary["variable"] == "cod_caenes"]
    assert "B" in set(branches["code"]) and not branches["code"].str.contains("\n").any()
    persons = dictionary[(dictionary["entity"] == "Persona") & (dictionary["variable"] == "comuna")]
    assert persons["count"].item() == 18480432


def test_microdata_sample_aggregates_and_codes(oef, dictionary):
    with db.scan() as con:
        dwellings = microdata.aggregate(con, oef / "viviendas_sample.parquet", microdata.DWELLINGS)
        persons = microdata.aggregate(con, oef / "personas_sample.parquet", microdata.PERSONS)
    assert dwellings["records"].sum() == 5000 and persons["records"].sum() == 25000
    # PROVENANCE_new_families.md 4b: region 2 has 163 dwellings and 907 persons in the sample.
    assert dwellings.loc[dwellings["region"] == 2, "records"].sum() == 163
    assert persons.loc[persons["region"] == 2, "records"].sum() == 907
    for cube, entity in ((dwellings, microdata.DWELLINGS), (persons, microdata.PERSONS)):
        microdata.check_codes(cube, dictionary, entity)
        microdata.check_territory_codes(cube, entity)
    # A 5,000-row sample is not the census the dictionary counts: every count differs.
    mismatches = microdata.count_mismatches(dwellings, dictionary, microdata.DWELLINGS)
    assert "comuna=1101:16305: 5,000 records, dictionary 7,664,466" in mismatches


def test_code_outside_the_dictionary_is_refused(oef, dictionary):
    with db.scan() as con:
        persons = microdata.aggregate(con, oef / "personas_sample.parquet", microdata.PERSONS)
    broken = persons.copy()
    broken.loc[broken.index[0], "sit_fuerza_trabajo"] = 7
    with pytest.raises(
        ParseError, match=r"sit_fuerza_trabajo code\(s\) \{'7': \d+\} \(records\) outside the dictionary"
    ):
        microdata.check_codes(broken, dictionary, microdata.PERSONS)
    shifted = persons.copy()
    shifted.loc[shifted.index[0], "comuna"] = 13101
    with pytest.raises(ParseError, match="not in their province/region"):
        microdata.check_territory_codes(shifted, microdata.PERSONS)


def test_census_samples_rebuild_byte_identical(tmp_path):
    from pipelines import census2024
    from sources.samples.census2024 import make_samples

    written = make_samples.main(tmp_path)
    assert {p.name for p in written} == {p.name for p in census2024.SAMPLES.values()}
    for path in written:
        assert path.read_bytes() == (census2024.SAMPLE_DIR / path.name).read_bytes(), path.name
