"""DEIS deaths: both header layouts, the traps of the real files, the COVID extract, weekly discovery."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sources.base import FetchError, FetchRequest, ParseError, Payload
from sources.deis_deaths import (
    DEATHS_COLUMNS,
    ENDPOINTS,
    NEW_HEADER_COLUMNS,
    NO_HEADER_COLUMNS,
    SOURCE,
    aggregate_covid_extract,
    aggregate_deaths_csv,
    aggregate_deaths_zip,
    detect_layout,
    find_weekly_zip_url,
    official_request,
    read_first_line,
    weekly_request,
)

COVID_EXTRACT = "health/deis_defunciones_solo_causa_covid_2020-08-06.csv"

# Hand-made records: the raw fields, then what each death must become.
# (AÑO, FECHA_DEF, SEXO, EDAD_TIPO, EDAD_CANT, COD_COMUNA, COMUNA, REGION, DIAG1, DIAG2)
#   -> (comuna_code, sex, age_group, groups)
RECORDS = [
    (("2019", "2019-03-02", "Hombre", "1", "67", "2201", "Calama", "De Antofagasta", "C349", ""),
     ("02201", "M", "65-69", {"all_causes", "neoplasms_malignant", "lung_cancer"})),
    (("2019", "2019-05-11", "Mujer", "2", "7", "2201", "Calama", "De Antofagasta", "J189", ""),
     ("02201", "F", "0-4", {"all_causes", "respiratory"})),
    (("2019", "2019-05-12", "Mujer", "3", "12", "16104", "El Carmen", "De Ñuble", "P073", ""),
     ("16104", "F", "0-4", {"all_causes", "unmapped"})),
    (("2019", "2019-07-01", "Hombre", "1", "34", "2101", "Antofagasta", "De Antofagasta", "S069", "X70X"),
     ("02101", "M", "30-34", {"all_causes", "external"})),
    (("2019", "2019-07-02", "Hombre", "1", "93", "99999", "Ignorada", "Ignorada", "I219", ""),
     ("99999", "M", "80+", {"all_causes", "circulatory"})),
    (("2019", "2019-07-03", "Indeterminado", "1", "80", "2301", "Tocopilla", "De Antofagasta", "J628", ""),
     ("02301", "U", "80+", {"all_causes", "respiratory", "pneumoconiosis"})),
    (("2019", "2019-08-09", "Mujer", "", "45", "2101", "Antofagasta", "De Antofagasta", "E119", ""),
     ("02101", "F", "unknown", {"all_causes", "unmapped"})),
    (("", "2020-04-30", "Mujer", "1", "79", "13101", "Santiago", "Metropolitana de Santiago", "U07.1", ""),
     ("13101", "F", "75-79", {"all_causes", "covid19"})),
    (("1995", "1995-01-15", "Hombre", "1", "70", "2201", "Calama", "De Antofagasta", "1629", ""),
     ("02201", "M", "70-74", {"all_causes", "neoplasms_malignant", "lung_cancer"})),
    (("1995", "1995-02-15", "Hombre", "1", "19", "2201", "Calama", "De Antofagasta", "9509", ""),
     ("02201", "M", "15-19", {"all_causes", "external"})),
    (("2019", "2019-03-03", "Hombre", "1", "68", "2201", "Calama", "De Antofagasta", "C34.1", ""),
     ("02201", "M", "65-69", {"all_causes", "neoplasms_malignant", "lung_cancer"})),
]  # fmt: skip


def _row(fields: tuple[str, ...]) -> list[str]:
    """Spread the 10 fields over the 27 columns, with a glosa that contains the separator."""
    year, date, sex, unit, amount, comuna, name, region, diag1, diag2 = fields
    diag1_block = [
        diag1,
        "",
        "Glosa; con punto y coma",
        "",
        "",
        diag1[:3],
        "Categoría",
        diag1,
        "Subcategoría",
    ]
    diag2_block = [diag2] + [""] * 8
    return [
        year,
        date,
        sex,
        unit,
        amount,
        comuna,
        name,
        region,
        *diag1_block,
        *diag2_block,
        "Hospital o Clínica",
    ]


def _write(path: Path, header: list[str] | None, records=RECORDS, encoding="latin-1") -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(_row(fields) for fields, _ in records)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def _expected(records=RECORDS) -> Counter:
    expected = Counter()
    for fields, (comuna, sex, age_group, groups) in records:
        year = int(fields[0] or fields[1][:4])
        for group in groups:
            expected[(year, comuna, sex, age_group, group)] += 1
    return expected


def _as_counter(frame) -> Counter:
    return Counter({tuple(row[:5]): row[5] for row in frame[DEATHS_COLUMNS].itertuples(index=False)})


@pytest.fixture()
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_new_header_layout(tmp_path, con):
    path = _write(tmp_path / "new.csv", list(NEW_HEADER_COLUMNS))
    frame = aggregate_deaths_csv(con, path)
    assert list(frame.columns) == DEATHS_COLUMNS
    assert _as_counter(frame) == _expected()
    assert frame["comuna_code"].str.len().eq(5).all()


def test_headerless_layout_gives_the_same_result(tmp_path, con):
    with_header = aggregate_deaths_csv(con, _write(tmp_path / "new.csv", list(NEW_HEADER_COLUMNS)))
    old_path = _write(tmp_path / "old.csv", None)
    without = aggregate_deaths_csv(con, old_path)
    assert detect_layout(read_first_line(old_path, "latin-1")).has_header is False
    assert _as_counter(without) == _as_counter(with_header) == _expected()


def test_header_after_a_utf8_bom(tmp_path, con):
    path = _write(tmp_path / "bom.csv", list(NEW_HEADER_COLUMNS))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _as_counter(aggregate_deaths_csv(con, path)) == _expected()


def test_old_header_names_are_accepted(tmp_path, con):
    frame = aggregate_deaths_csv(con, _write(tmp_path / "named.csv", list(NO_HEADER_COLUMNS)))
    assert _as_counter(frame) == _expected()


def test_renamed_column_is_a_clear_error(tmp_path, con):
    header = ["GENERO" if name == "SEXO_NOMBRE" else name for name in NEW_HEADER_COLUMNS]
    with pytest.raises(ParseError, match="SEXO_NOMBRE") as info:
        aggregate_deaths_csv(con, _write(tmp_path / "renamed.csv", header))
    assert info.value.source == SOURCE.id
    header = [name for name in NEW_HEADER_COLUMNS if name != "DIAG2"]
    with pytest.raises(ParseError, match="DIAG2"):
        detect_layout(";".join(header))


def test_unknown_first_lines_are_refused():
    with pytest.raises(ParseError, match="27"):
        detect_layout("2019;2019-01-01;Hombre;1;40")
    with pytest.raises(ParseError, match="27"):
        detect_layout(";2019-01-01;Hombre;1;40")  # a data row whose year is empty
    with pytest.raises(ParseError, match="neither"):
        detect_layout("hello;world")


def test_ragged_row_is_a_parse_error(tmp_path, con):
    path = _write(tmp_path / "ragged.csv", list(NEW_HEADER_COLUMNS))
    path.write_bytes(path.read_bytes() + b"2019;2019-01-01;Hombre\r\n")
    with pytest.raises(ParseError, match="DuckDB could not read"):
        aggregate_deaths_csv(con, path)


def test_zip_is_extracted_and_refused_when_ambiguous(tmp_path, con):
    csv_bytes = _write(tmp_path / "inner.csv", list(NEW_HEADER_COLUMNS)).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("DEFUNCIONES_FUENTE_DEIS_2022_2024_25062024.csv", csv_bytes)
    frame = aggregate_deaths_zip(con, buffer.getvalue(), work_dir=tmp_path)
    assert _as_counter(frame) == _expected()
    assert [p.name for p in tmp_path.iterdir()] == ["inner.csv"]  # the extracted copy is gone

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("a.csv", csv_bytes)
        bundle.writestr("b.csv", csv_bytes)
    with pytest.raises(ParseError, match=r"\.csv"):
        aggregate_deaths_zip(con, buffer.getvalue(), work_dir=tmp_path)
    with pytest.raises(ParseError):
        aggregate_deaths_zip(con, b"not a zip", work_dir=tmp_path)


def test_chapter_groups_and_unmapped_add_up_to_all_causes(tmp_path, con):
    from sources.icd_groups import load_cause_groups

    frame = aggregate_deaths_csv(con, _write(tmp_path / "new.csv", list(NEW_HEADER_COLUMNS)))
    partition = frame[frame["cause_group"].isin(load_cause_groups().partition_ids)]
    keys = ["year", "comuna_code", "sex", "age_group"]
    all_causes = frame[frame["cause_group"] == "all_causes"].set_index(keys)["deaths"]
    assert partition.groupby(keys)["deaths"].sum().sort_index().equals(all_causes.sort_index())


# --- the real COVID extract ---------------------------------------------------------------


def test_covid_extract_against_an_independent_count(shared_data, con):
    path = shared_data / COVID_EXTRACT
    frame = aggregate_covid_extract(con, path)
    all_causes = frame[frame["cause_group"] == "all_causes"]

    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_comuna = Counter(row["comuna_código"].zfill(5) for row in rows)
    by_sex = Counter({"Hombre": "M", "Mujer": "F"}[row["género"]] for row in rows)

    assert all_causes.groupby("comuna_code")["deaths"].sum().to_dict() == dict(by_comuna)
    assert all_causes.groupby("sex")["deaths"].sum().to_dict() == dict(by_sex)
    assert int(all_causes["deaths"].sum()) == len(rows) == 13_939  # PROVENANCE 4a
    covid = frame[frame["cause_group"] == "covid19"]["deaths"].sum()
    assert covid == sum(row["código_detalle"] in ("U07.1", "U07.2") for row in rows)

    # PROVENANCE 4a: Antofagasta region 514 (Calama 287, Antofagasta 185, Tocopilla 13)
    region = all_causes[all_causes["comuna_code"].str.startswith("02")]
    independent_region = sum(1 for row in rows if row["región"] == "De Antofagasta")
    assert int(region["deaths"].sum()) == independent_region == 514
    per_comuna = region.groupby("comuna_code")["deaths"].sum()
    assert (per_comuna["02201"], per_comuna["02101"], per_comuna["02301"]) == (287, 185, 13)

    # unknown residence is kept and counted
    unknown = int(all_causes.loc[all_causes["comuna_code"] == "99999", "deaths"].sum())
    assert unknown == sum(1 for row in rows if row["comuna_código"] == "99999") == 2


def test_covid_extract_age_bands_map_to_five_year_groups(shared_data, con):
    path = shared_data / COVID_EXTRACT
    frame = aggregate_covid_extract(con, path)
    by_group = frame[frame["cause_group"] == "all_causes"].groupby("age_group")["deaths"].sum()
    with path.open(encoding="utf-8", newline="") as handle:
        bands = Counter(row["edad"] for row in csv.DictReader(handle))
    # "< 1" and "1 a 4" -> 0-4; "80 a 84" ... "100 +" -> 80+
    assert by_group["0-4"] == bands["< 1"] + bands["1 a 4"]
    assert by_group["80+"] == bands["80 a 84"] + bands["85 a 89"] + bands["90 a 99"] + bands["100 +"]
    assert by_group["45-49"] == bands["45 a 49"]
    assert "unknown" not in by_group.index


def test_covid_extract_with_a_missing_column(tmp_path, con):
    path = tmp_path / "extract.csv"
    path.write_text("año,fecha,edad,comuna_código,código_detalle\n2020,2020-06-01,80 a 84,2201,U07.1\n")
    with pytest.raises(ParseError, match="género"):
        aggregate_covid_extract(con, path)
    path.write_text(
        "año,fecha,género,edad,comuna_código,código_detalle\n2020,2020-06-01,Mujer,0 a 9,2201,U07.1\n",
        encoding="utf-8",
    )
    with pytest.raises(ParseError, match="0 a 9"):
        aggregate_covid_extract(con, path)


# --- requests and weekly discovery --------------------------------------------------------

OPEN_DATA_PAGE = """<!doctype html><html><body>
<h2>Defunciones</h2>
<a href="https://repositoriodeis.minsal.cl/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_1990_2023_CIFRAS_OFICIALES.zip">
  Cifras oficiales 1990-2023</a>
<a href="https://repositoriodeis.minsal.cl/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_2022_2024_25062024.zip">
  Semanal (25-06-2024)</a>
<a href='/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip'>Semanal</a>
<a href="https://repositoriodeis.minsal.cl/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_2021_2023_28112023.zip">x</a>
<a href="https://example.org/DEFUNCIONES_FUENTE_DEIS_2024_2026_31022026.zip">not a real date</a>
<script>var old = "DEFUNCIONES_FUENTE_DEIS_2020_2022_01012023.zip";</script>
</body></html>"""


def test_find_weekly_zip_url_takes_the_newest_real_date():
    url = find_weekly_zip_url(OPEN_DATA_PAGE, "https://deis.minsal.cl/#datosabiertos")
    assert (
        url == "https://deis.minsal.cl/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip"
    )
    assert find_weekly_zip_url("<html>no links</html>", "https://deis.minsal.cl/") is None


class FakeFetcher:
    """Answers every request with the given body, recording what was asked."""

    def __init__(self, body: bytes):
        self.body = body
        self.requests: list[FetchRequest] = []

    def fetch(self, source, request: FetchRequest) -> Payload:
        self.requests.append(request)
        return Payload(
            source=source.id,
            name=request.name,
            url=request.url,
            content=self.body,
            sha256="0" * 64,
            retrieved_at=datetime.now(UTC).isoformat(),
            mode="live",
            snapshot_id="test-snapshot",
        )


def test_weekly_request_uses_the_endpoint_it_is_given():
    endpoints = dict(ENDPOINTS, open_data_page="https://mirror.example/deis/index.html")
    fetcher = FakeFetcher(OPEN_DATA_PAGE.encode("cp1252"))
    request = weekly_request(fetcher, endpoints)
    assert fetcher.requests[0].url == "https://mirror.example/deis/index.html"
    assert (
        request.url
        == "https://mirror.example/DatosAbiertos/VITALES/DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip"
    )
    assert request.expect == "zip"
    with pytest.raises(FetchError, match="DEFUNCIONES_FUENTE_DEIS"):
        weekly_request(FakeFetcher(b"<html></html>"), endpoints)


def test_official_request_is_built_from_the_endpoint():
    assert official_request().url == ENDPOINTS["official_zip"]
    assert "repositoriodeis.minsal.cl" in ENDPOINTS["official_zip"]
    assert official_request({"official_zip": "file:///mirror/deaths.zip"}).url == "file:///mirror/deaths.zip"
