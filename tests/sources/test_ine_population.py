"""INE population: the real comunas, region, country and census files, and the xlsx layout."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import openpyxl
import pytest

from sources.base import ParseError
from sources.ine_population import (
    COMUNA_COLUMNS,
    ENDPOINTS,
    comunas_request,
    national_request,
    parse_census_2017_comunas,
    parse_comunas,
    parse_comunas_csv,
    parse_national_projection,
    parse_region_base,
)

COMUNAS_CSV = "health/ine_proyecciones_comunas_2002-2035_regiones01-04.csv"
REGION_CSV = "health/ine_estimaciones-y-proyecciones-2002-2035_base-2017_region_base.csv"
NATIONAL_CSV = "health/ine_proyecciones_pais_1992-2050_base2017_edad_simple.csv"
CENSUS_CSV = "health/chilemapas_censo_2017_comunas.csv"


@pytest.fixture(scope="module")
def comunas(shared_data):
    return parse_comunas(shared_data / COMUNAS_CSV)


def test_comuna_and_region_totals_equal_the_source_rows(shared_data, comunas):
    by_comuna: dict[tuple[str, int], int] = defaultdict(int)
    by_region: dict[tuple[str, int], int] = defaultdict(int)
    with (shared_data / COMUNAS_CSV).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            for column, value in row.items():
                if column.startswith("Poblacion "):
                    year = int(column.split()[1])
                    by_comuna[(row["Comuna"].zfill(5), year)] += int(value)
                    by_region[(row["Region"].zfill(2), year)] += int(value)

    assert list(comunas.columns) == COMUNA_COLUMNS
    parsed_comuna = comunas.groupby(["comuna_code", "year"])["population"].sum().to_dict()
    parsed_region = comunas.groupby(["region_code", "year"])["population"].sum().to_dict()
    assert parsed_comuna == dict(by_comuna)
    assert parsed_region == dict(by_region)
    # PROVENANCE 4b
    assert parsed_region[("02", 2017)] == 623_851
    assert parsed_region[("02", 2024)] == 718_232


def test_comunas_shape_codes_and_top_age(comunas):
    region2 = comunas[(comunas["region_code"] == "02") & (comunas["year"] == 2017)]
    assert len(region2) == 1_458  # 9 comunas x 2 sexes x 81 ages (PROVENANCE 4b)
    assert sorted(region2["comuna_code"].unique()) == [
        "02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302",
    ]  # fmt: skip
    assert set(comunas["sex"]) == {"M", "F"}
    assert comunas["age"].min() == 0 and comunas["age"].max() == 80
    assert sorted(comunas["year"].unique()) == list(range(2002, 2036))


def test_region_file_equals_its_rows_and_the_comunas_file(shared_data, comunas):
    regions = parse_region_base(shared_data / REGION_CSV)
    independent: dict[tuple[str, int], int] = defaultdict(int)
    with (shared_data / REGION_CSV).open(encoding="ascii", newline="") as handle:
        for row in csv.DictReader(handle):
            for column, value in row.items():
                if column.startswith("a"):
                    independent[(row["Region"].zfill(2), int(column[1:]))] += int(value)
    assert regions.groupby(["region_code", "year"])["population"].sum().to_dict() == dict(independent)
    assert independent[("02", 2017)] == 623_851 and independent[("02", 2024)] == 718_232
    # the two INE products agree for the regions the comunas subset holds
    from_comunas = comunas.groupby(["region_code", "year"])["population"].sum()
    from_regions = regions[regions["region_code"].isin(["01", "02", "03", "04"])]
    assert from_regions.groupby(["region_code", "year"])["population"].sum().equals(from_comunas)


def _national_totals(raw: bytes) -> dict[tuple[str, int], int]:
    """The TOTAL rows of each block, read with the csv module."""
    totals, block, years = {}, None, []
    for row in csv.reader(io.StringIO(raw.decode("cp1252"), newline=""), delimiter=";"):
        cells = [c for c in row if c != ""]
        if len(cells) == 1:
            block = {"POBLACIÓN TOTAL (AMBOS SEXOS)": "T", "HOMBRES": "M", "MUJERES": "F"}[cells[0]]
        elif cells and cells[0] == "EDAD":
            years = [int(c) for c in cells[1:]]
        elif cells and cells[0] == "TOTAL":
            for year, value in zip(years, cells[1:], strict=True):
                totals[(block, year)] = int(value.replace(".", ""))
    return totals


def test_national_ages_sum_to_the_total_rows(shared_data):
    raw = (shared_data / NATIONAL_CSV).read_bytes()
    national = parse_national_projection(raw)
    totals = _national_totals(raw)
    assert len(totals) == 3 * 59  # three blocks x 1992..2050
    assert national.groupby(["sex", "year"])["population"].sum().to_dict() == totals
    assert national["age"].max() == 100  # "100+"
    assert sorted(national["age"].unique()) == list(range(101))
    # men + women = both sexes, year by year
    by_sex = national.groupby(["year", "sex"])["population"].sum().unstack()
    assert (by_sex["M"] + by_sex["F"]).equals(by_sex["T"])


def test_national_total_mismatch_is_a_parse_error(shared_data):
    raw = (shared_data / NATIONAL_CSV).read_bytes()
    lines = raw.split(b"\r\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(b"TOTAL;"))
    cells = lines[index].split(b";")
    cells[1] = b"1" + cells[1]  # one year's TOTAL no longer matches its ages
    lines[index] = b";".join(cells)
    with pytest.raises(ParseError, match="TOTAL for 1992"):
        parse_national_projection(b"\r\n".join(lines))
    without_total = b"\r\n".join(line for i, line in enumerate(lines) if i != index)
    with pytest.raises(ParseError):
        parse_national_projection(without_total)


def test_census_2017(shared_data):
    census = parse_census_2017_comunas(shared_data / CENSUS_CSV)
    eighty_plus = {"80 a 84", "85 a 89", "90 a 94", "95 a 99", "100 o mas"}
    independent_total, independent_80 = 0, 0
    with (shared_data / CENSUS_CSV).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["codigo_comuna"].startswith("02"):
                independent_total += int(row["poblacion"])
                if row["edad"] in eighty_plus:
                    independent_80 += int(row["poblacion"])
    region2 = census[census["comuna_code"].str.startswith("02")]
    assert int(region2["population"].sum()) == independent_total == 607_534  # PROVENANCE 4f
    assert int(region2.loc[region2["age_group"] == "80+", "population"].sum()) == independent_80
    assert census["age_group"].nunique() == 17


# --- the xlsx layout ----------------------------------------------------------------------

HEADER = ["Region", "Nombre Region", "Provincia", "Nombre Provincia", "Comuna", "Nombre Comuna"]
HEADER += ["Sexo\n1=Hombre\n2=Mujer", "Edad", "Poblacion 2016", "Poblacion 2017"]
ROWS = [
    [2, "Antofagasta", 22, "El Loa", 2202, "Ollagüe", 1, 0, 3, 4],
    [2, "Antofagasta", 22, "El Loa", 2202, "Ollagüe", 1, 80, 9, 10],
    [2, "Antofagasta", 22, "El Loa", 2202, "Ollagüe", 2, 0, 2, 2],
    [2, "Antofagasta", 22, "El Loa", 2202, "Ollagüe", 2, 80, 11, 12],
    [13, "Metropolitana de Santiago", 131, "Santiago", 13101, "Santiago", 1, 40, 5000, 5100],
]
FOOTER = [["Fuente: INE, estimaciones y proyecciones de población base 2017."], ["Nota: 80 = 80 años y más."]]


def _workbook(header=HEADER, rows=ROWS, footer=FOOTER) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in [header, *rows, *footer]:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _expected_rows():
    expected = set()
    for row in ROWS:
        for year, value in ((2016, row[8]), (2017, row[9])):
            sex = {1: "M", 2: "F"}[row[6]]
            expected.add((str(row[0]).zfill(2), str(row[4]).zfill(5), sex, row[7], year, value))
    return expected


def test_xlsx_in_the_real_layout():
    frame = parse_comunas(_workbook())
    assert list(frame.columns) == COMUNA_COLUMNS
    assert set(frame.itertuples(index=False, name=None)) == _expected_rows()
    assert len(frame) == 2 * len(ROWS)  # the two footer rows are not data


def test_csv_with_the_other_sex_header_gives_the_same_frame():
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([("Sexo (1=Hombre 2=Mujer)" if h.startswith("Sexo") else h) for h in HEADER])
    writer.writerows(ROWS)
    from_csv = parse_comunas_csv(buffer.getvalue().encode("cp1252"))
    assert set(from_csv.itertuples(index=False, name=None)) == _expected_rows()


def test_xlsx_missing_column_and_bad_rows_are_parse_errors():
    with pytest.raises(ParseError, match="Edad"):
        parse_comunas(_workbook(header=[h if h != "Edad" else "Age" for h in HEADER]))
    bad_sex = [row[:6] + [3] + row[7:] for row in ROWS]
    with pytest.raises(ParseError, match="Sexo"):
        parse_comunas(_workbook(rows=bad_sex))
    with pytest.raises(ParseError, match="follows the footer"):
        parse_comunas(_workbook(rows=[*ROWS[:2], *FOOTER, *ROWS[2:]], footer=[]))
    with pytest.raises(ParseError, match="repeats"):
        parse_comunas(_workbook(rows=[*ROWS, ROWS[0]]))
    with pytest.raises(ParseError, match="NA"):
        parse_comunas(_workbook(rows=[ROWS[0][:8] + ["NA", 4]]))


def test_comunas_request_is_built_from_the_endpoint():
    assert comunas_request().url == ENDPOINTS["comunas_xlsx"]
    assert (
        comunas_request({"comunas_xlsx": "https://mirror.example/c.xlsx"}).url
        == "https://mirror.example/c.xlsx"
    )


def test_national_request_is_built_from_the_endpoint():
    assert national_request().url == ENDPOINTS["national_csv"]
    assert national_request({"national_csv": "file:///mirror/pais.csv"}).url == "file:///mirror/pais.csv"
    assert national_request().expect == "csv"


def test_the_national_sample_is_the_sample_comunas_in_the_real_layout():
    """The SAMPLE national file parses with the real file's parser (blocks, TOTAL rows checked)
    and its 'country' is the sum of the sample comunas, ages 80..100+ adding up to their 80+."""
    from sources.samples.health import make_sample

    national = parse_national_projection(make_sample.HERE / make_sample.NATIONAL_CSV)
    comunas = parse_comunas(make_sample.HERE / make_sample.POPULATION_CSV)
    assert sorted(national["year"].unique()) == list(range(1992, 2051))
    capped = national[national["sex"] != "T"].assign(age=national["age"].clip(upper=80))
    summed = capped.groupby(["sex", "age", "year"])["population"].sum()
    expected = comunas.groupby(["sex", "age", "year"])["population"].sum()
    assert summed.loc[expected.index].to_dict() == expected.to_dict()
    raw = (make_sample.HERE / make_sample.NATIONAL_CSV).read_bytes()
    assert raw.startswith("POBLACIÓN TOTAL (AMBOS SEXOS);".encode("cp1252")) and b"\r\n" in raw
