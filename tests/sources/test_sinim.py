"""SINIM: the real long extract and SpreadsheetML exports read in place, and the AJAX protocol on SAMPLE answers."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from sources import sinim
from sources.base import FetchRequest, ParseError, Payload, SourceInfo

SAMPLES = Path(sinim.__file__).resolve().parent / "samples" / "finance"
EXTRACT = "finance/sinim_2019-2023_finanzas_region02_plus4.csv"
EXPORT_FCM = "finance/sinim_original_export_20240615162543.xls"
EXPORT_IPP_SHARE = "finance/sinim_original_export_20240615162701.xls"
REGION_02 = {"02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"}


# --- the long extract ------------------------------------------------------------------------


def test_extract_calama_mining_fees_as_documented(shared_data: Path) -> None:
    frame = sinim.parse_long_extract(shared_data / EXTRACT, variable_codes=["3754"])
    calama = frame[frame["comuna_code"] == "02201"].set_index("year")
    # PROVENANCE.md §6a: Calama's Patentes Mineras was 1,532,715 M$ in 2019 and 1,917,621 M$ in 2023.
    assert calama.at[2019, "value"] == 1_532_715.0
    assert calama.at[2023, "value"] == 1_917_621.0
    assert set(calama["unit"]) == {"M$"}
    assert set(calama["variable_label"]) == {"Patentes Mineras Ley Nº19.143."}
    assert set(calama["value_status"]) == {"ok"}


def test_extract_gives_the_five_finance_variables_for_the_nine_comunas(shared_data: Path) -> None:
    codes = [v.code for v in sinim.FINANCE_VARIABLES]
    frame = sinim.parse_long_extract(shared_data / EXTRACT, variable_codes=codes)
    region = frame[frame["comuna_code"].isin(REGION_02)]
    assert len(region) == 9 * 5 * 5
    labels = region.groupby("variable_code")["variable_label"].unique().to_dict()
    assert {code: list(found) for code, found in labels.items()} == {
        v.code: [v.label] for v in sinim.FINANCE_VARIABLES
    }
    units = region.groupby("variable_code")["unit"].unique().to_dict()
    assert {code: list(found) for code, found in units.items()} == {
        "879": ["M$"], "880": ["M$"], "1110": ["M$"], "3754": ["M$"], "1272": ["%"]
    }  # fmt: skip


def test_extract_rows_blanks_and_codes_match_the_raw_file(shared_data: Path) -> None:
    with open(shared_data / EXTRACT, encoding="utf-8", newline="") as handle:
        raw = list(csv.DictReader(handle))
    frame = sinim.parse_long_extract(shared_data / EXTRACT, chunk_rows=1000)  # several chunks
    assert len(frame) == len(raw) == 8060
    blanks = sum(1 for row in raw if row["valor"] == "")
    assert blanks == 2826  # PROVENANCE.md §6a
    assert (frame["value_status"] == "missing").sum() == blanks
    assert frame.loc[frame["value_status"] == "missing", "value"].isna().all()
    assert frame["comuna_code"].str.fullmatch(r"\d{5}").all()
    assert REGION_02 <= set(frame["comuna_code"])
    # every non-blank raw value comes through unchanged, in order
    raw_values = [float(row["valor"]) for row in raw if row["valor"] != ""]
    assert frame.loc[frame["value_status"] == "ok", "value"].tolist() == raw_values


def test_extract_folds_the_two_numero_glyphs(shared_data: Path) -> None:
    with open(shared_data / EXTRACT, encoding="utf-8", newline="") as handle:
        raw_units = [row["unidad"] for row in csv.DictReader(handle)]
    frame = sinim.parse_long_extract(shared_data / EXTRACT)
    assert "Nº" in raw_units and "N°" in raw_units  # U+00BA and U+00B0 both occur
    assert "Nº" not in set(frame["unit"])
    assert (frame["unit"] == "N°").sum() == raw_units.count("Nº") + raw_units.count("N°")


def test_extract_with_a_renamed_column_names_it() -> None:
    text = (SAMPLES / "sinim_finanzas_region02_2019-2023_SAMPLE.csv").read_text(encoding="utf-8")
    broken = text.replace(",unidad,valor\n", ",unidad,value\n", 1).encode()
    with pytest.raises(ParseError, match=r"lacks column\(s\) \['valor'\]"):
        sinim.parse_long_extract(broken)


def test_extract_accepts_cp1252_and_codes_without_leading_zero() -> None:
    text = (SAMPLES / "sinim_finanzas_region02_2019-2023_SAMPLE.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    mangled = [lines[0]] + [line.replace(",02201,", ",2201,") for line in lines[1:]]
    frame = sinim.parse_long_extract(("\r\n".join(mangled) + "\r\n").encode("cp1252"))
    assert "02201" in set(frame["comuna_code"]) and "2201" not in set(frame["comuna_code"])
    assert "Patentes Mineras Ley Nº19.143." in set(frame["variable_label"])


def test_extract_period_code_rule_is_enforced() -> None:
    text = (SAMPLES / "sinim_finanzas_region02_2019-2023_SAMPLE.csv").read_text(encoding="utf-8")
    broken = text.replace("ANTOFAGASTA,02101,20,2019", "ANTOFAGASTA,02101,21,2019", 1).encode()
    with pytest.raises(ParseError, match="period code"):
        sinim.parse_long_extract(broken)


# --- SINIM's SpreadsheetML export --------------------------------------------------------------


def _independent_read(path: Path, comuna: str) -> dict[int, str]:
    """Year -> cell text for one CODIGO row, read with plain regular expressions."""
    text = path.read_text(encoding="utf-8")
    rows = re.findall(r"<Row>(.*?)</Row>", text, flags=re.S)
    cells = [re.findall(r"<Data ss:Type=\"\w+\">(.*?)</Data>", row, flags=re.S) for row in rows]
    header = next(c for c in cells if c and c[0] == "CODIGO")
    row = next(c for c in cells if c and c[0] == comuna)
    return {int(year): value for year, value in zip(header[2:], row[2:], strict=True)}


@pytest.mark.parametrize("comuna", ["02201", "02202", "02101"])
def test_export_values_equal_an_independent_read(shared_data: Path, comuna: str) -> None:
    path = shared_data / EXPORT_FCM
    expected = _independent_read(path, comuna)
    frame = sinim.parse_spreadsheet_export(path)
    got = frame[frame["comuna_code"] == comuna].set_index("year")
    assert sorted(got.index) == sorted(expected) == [2018, 2019, 2020, 2021, 2022, 2023]
    for year, text in expected.items():
        assert got.at[year, "value"] == float(text)
    assert set(got["variable_code"]) == {"FCM001"}
    assert set(got["unit"]) == {"M$"}


@pytest.mark.parametrize(("name", "expected"), [(EXPORT_IPP_SHARE, 16), (EXPORT_FCM, 0)])
def test_export_not_received_cells_are_counted_not_zeroed(
    shared_data: Path, name: str, expected: int
) -> None:
    path = shared_data / name
    raw_count = len(
        re.findall(r'<Data ss:Type="String">No Recepcionado</Data>', path.read_text(encoding="utf-8"))
    )
    frame = sinim.parse_spreadsheet_export(path)
    assert raw_count == expected  # PROVENANCE.md §6b
    assert (frame["value_status"] == "not_received").sum() == raw_count
    assert frame.loc[frame["value_status"] == "not_received", "value"].isna().all()
    assert not (frame.loc[frame["value_status"] == "not_received", "value"] == 0).any()


def test_export_keeps_codigo_as_text_with_its_zero(shared_data: Path) -> None:
    frame = sinim.parse_spreadsheet_export(shared_data / EXPORT_IPP_SHARE)
    assert frame["comuna_code"].nunique() == 345  # PROVENANCE.md §6b
    assert frame["comuna_code"].str.fullmatch(r"\d{5}").all()
    assert REGION_02 <= set(frame["comuna_code"])
    assert set(frame["unit"]) == {"%"}
    assert set(frame["variable_code"]) == {"IADM02"}


def test_export_and_extract_agree_on_the_ipp_share(shared_data: Path) -> None:
    """IADM02 in SINIM's own export is variable 1086 of the API extract: two products, one figure."""
    export = sinim.parse_spreadsheet_export(shared_data / EXPORT_IPP_SHARE)
    extract = sinim.parse_long_extract(shared_data / EXTRACT, variable_codes=["1086"])
    assert set(export["variable_label"]) == set(extract["variable_label"])
    both = export.merge(extract, on=["comuna_code", "year"], suffixes=("_export", "_extract"))
    both = both[(both["value_status_export"] == "ok") & (both["value_status_extract"] == "ok")]
    assert len(both) >= 40
    assert (both["value_export"].round(2) == both["value_extract"].round(2)).all()


SPREADSHEET_HEAD = (
    '\n<?xml version="1.0"?>\r\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"\n'
    ' xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="Hoja1"><Table>\n'
)
SPREADSHEET_ROWS = (
    '<Row><Cell><Data ss:Type="String">Valores en miles de pesos nominales (M$) de cada año.</Data></Cell></Row>\n'
    '<Row><Cell><Data ss:Type="String"></Data></Cell><Cell><Data ss:Type="String"></Data></Cell>'
    '<Cell><Data ss:Type="String">FCM001 (M$) Monto Percibido</Data></Cell>'
    '<Cell><Data ss:Type="String">FCM001 (M$) Monto Percibido</Data></Cell></Row>\n'
    '<Row><Cell><Data ss:Type="String">CODIGO</Data></Cell><Cell><Data ss:Type="String">MUNICIPIO</Data></Cell>'
    '<Cell><Data ss:Type="String">2023</Data></Cell><Cell><Data ss:Type="String">2022</Data></Cell></Row>\n'
    '<Row><Cell><Data ss:Type="Number">02202</Data></Cell><Cell><Data ss:Type="String">OLLAGÜE</Data></Cell>'
    '<Cell ss:Index="4"><Data ss:Type="Number">1234</Data></Cell></Row>\n'
)


def test_export_honours_ss_index_skipped_cells() -> None:
    content = (SPREADSHEET_HEAD + SPREADSHEET_ROWS + "</Table></Worksheet></Workbook>\n").encode()
    frame = sinim.parse_spreadsheet_export(content).set_index("year")
    assert frame.at[2023, "value_status"] == "missing"  # skipped by ss:Index, not shifted
    assert frame.at[2022, "value"] == 1234.0
    assert set(frame["comuna_code"]) == {"02202"}


def test_export_with_a_doctype_is_refused_before_parsing() -> None:
    evil = SPREADSHEET_HEAD.replace(
        "<Workbook", '<!DOCTYPE Workbook [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<Workbook', 1
    )
    content = (evil + SPREADSHEET_ROWS + "</Table></Worksheet></Workbook>").encode()
    with pytest.raises(ParseError, match="DOCTYPE/ENTITY"):
        sinim.parse_spreadsheet_export(content)


def test_export_with_unexpected_text_in_a_value_cell_fails() -> None:
    rows = SPREADSHEET_ROWS.replace('<Data ss:Type="Number">1234</Data>', '<Data ss:Type="String">s/i</Data>')
    content = (SPREADSHEET_HEAD + rows + "</Table></Worksheet></Workbook>").encode()
    with pytest.raises(ParseError, match="unexpected text 's/i'"):
        sinim.parse_spreadsheet_export(content)


# --- the AJAX data service ---------------------------------------------------------------------


def test_period_code_is_year_minus_1999() -> None:
    assert sinim.period_code(2001) == 2
    assert sinim.period_code(2023) == 24


def test_values_request_is_the_documented_form_post() -> None:
    request = sinim.values_request(
        "https://mirror.example/obtener_valores.php", "3754", 2019, "194", "CALAMA", "02201"
    )
    assert request.method == "POST" and request.url == "https://mirror.example/obtener_valores.php"
    assert request.headers["X-Requested-With"] == "XMLHttpRequest"
    form = dict(request.data)
    assert form["variables[1][3754][0][id_periodo]"] == "20"
    assert form["variables[1][3754][0][mtro_datos_tipo]"] == "I"
    assert form["municipios[0][id_municipio]"] == "194"
    assert form["municipios[0][municipio]"] == "CALAMA"
    assert form["municipios[0][idLegal]"] == "02201"
    assert form["corrmon"] == "false"
    catalogue = sinim.catalogue_request("https://mirror.example/filtros.php")
    assert catalogue.data == [("dato_area[]", "T"), ("dato_subarea[]", "T")] and catalogue.method == "POST"


def test_catalogue_and_municipalities_parse() -> None:
    catalogue = sinim.parse_catalogue((SAMPLES / "sinim_obtener_datos_filtros_SAMPLE.json").read_bytes())
    assert set(catalogue["variable_code"]) == {v.code for v in sinim.FINANCE_VARIABLES}
    assert catalogue.set_index("variable_code").at["1272", "unit"] == "%"  # " %" trimmed
    municipalities = sinim.parse_municipalities(
        (SAMPLES / "sinim_obtener_municipios_SAMPLE.json").read_bytes()
    )
    assert set(municipalities["comuna_code"]) == REGION_02


def test_values_answer_in_chilean_format() -> None:
    cells = sinim.parse_values((SAMPLES / "sinim_obtener_valores_SAMPLE_3754_2019_02201.json").read_bytes())
    raw = json.loads((SAMPLES / "sinim_obtener_valores_SAMPLE_3754_2019_02201.json").read_text())["textos"][
        0
    ]["valor"]
    assert cells.iloc[0]["value"] == float(raw.replace(".", "").replace(",", "."))
    assert cells.iloc[0]["value_status"] == "ok"
    decimal = json.dumps({"textos": [{"valor": "42,31", "col": "1", "classtype": "par", "municipio": "X"}]})
    assert sinim.parse_values(decimal.encode()).iloc[0]["value"] == 42.31
    received = sinim.parse_values((SAMPLES / "sinim_obtener_valores_SAMPLE_not_received.json").read_bytes())
    assert received.iloc[0]["value_status"] == "not_received" and received["value"].isna().all()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ((SAMPLES / "sinim_obtener_valores_SAMPLE_error.html").read_bytes(), "HTML page instead of JSON"),
        (b'{"error": "Sesion expirada"}', "SINIM answered an error: 'Sesion expirada'"),
        (b'{"datos": []}', r"expected an object with a 'textos' list, found \['datos'\]"),
        (b'{"textos": [{"col": "1", "municipio": "CALAMA"}]}', r"lacks \['valor'\]"),
        (b'{"textos": [{"valor": "1532715.0", "municipio": "CALAMA"}]}', "unreadable valor '1532715.0'"),
    ],
)
def test_values_error_answers_fail_clearly(content: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        sinim.parse_values(content, snapshot="snap-1")


class SampleFetcher:
    """Answers SINIM's POSTs from the SAMPLE files, the way the real service would, recording each request."""

    def __init__(self, values: dict[tuple[str, int, str], str]):
        self.values = values
        self.requests: list[FetchRequest] = []

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        self.requests.append(request)
        form = dict(request.data or [])
        if request.name == "sinim-catalogue":
            content = (SAMPLES / "sinim_obtener_datos_filtros_SAMPLE.json").read_bytes()
        elif request.name == "sinim-municipalities":
            content = (SAMPLES / "sinim_obtener_municipios_SAMPLE.json").read_bytes()
        else:
            (key,) = [k for k in form if k.endswith("[id_periodo]")]
            variable, year = key.split("][")[1], int(form[key]) + 1999
            raw = self.values[(variable, year, form["municipios[0][idLegal]"])]
            valor = "No Recepcionado" if raw == "" else f"{int(float(raw)):,}".replace(",", ".")
            answer = {
                "textos": [
                    {
                        "valor": valor,
                        "col": "1",
                        "classtype": "par",
                        "municipio": form["municipios[0][municipio]"],
                    }
                ]
            }
            content = json.dumps(answer).encode()
        digest = hashlib.sha256(content).hexdigest()
        return Payload(
            source.id,
            request.name,
            request.url,
            content,
            digest,
            "2026-11-27T00:00:00Z",
            "sample",
            digest[:12],
        )


def _sample_long_values() -> dict[tuple[str, int, str], str]:
    with open(
        SAMPLES / "sinim_finanzas_region02_2019-2023_SAMPLE.csv", encoding="utf-8", newline=""
    ) as handle:
        return {
            (r["variable_id"], int(r["año"]), r["cut_comuna"]): r["valor"] for r in csv.DictReader(handle)
        }


def test_fetch_values_walks_catalogue_municipalities_values() -> None:
    values = _sample_long_values()
    fetcher = SampleFetcher(values)
    frame, payloads = sinim.fetch_values(
        fetcher, sinim.ENDPOINTS, ["3754", "880"], [2019, 2020], comuna_codes=["2201", "02202"]
    )
    names = [r.name for r in fetcher.requests]
    assert names[:2] == ["sinim-catalogue", "sinim-municipalities"]
    assert len(names) == 2 + 2 * 2 * 2 and len(payloads) == len(names)
    assert all(
        r.method == "POST" and r.headers["X-Requested-With"] == "XMLHttpRequest" for r in fetcher.requests
    )
    assert list(frame.columns) == [*sinim.LONG_COLUMNS, "snapshot_id"]
    for row in frame.itertuples():
        raw = values[(row.variable_code, row.year, row.comuna_code)]
        if raw == "":  # the SAMPLE blank for Ollagüe 3754/2020 was served as "No Recepcionado"
            assert row.value_status == "not_received" and row.value != row.value
        else:
            assert row.value == float(raw) and row.value_status == "ok"
    assert (frame["value_status"] == "not_received").sum() == 1
    assert set(frame.loc[frame["variable_code"] == "3754", "unit"]) == {"M$"}


def test_fetch_values_refuses_unknown_variables_and_comunas() -> None:
    fetcher = SampleFetcher(_sample_long_values())
    with pytest.raises(ParseError, match=r"variables \['9999'\] are not in the SINIM catalogue"):
        sinim.fetch_values(fetcher, sinim.ENDPOINTS, ["9999"], [2019])
    with pytest.raises(ParseError, match=r"comunas \['13101'\] are not in SINIM's municipality list"):
        sinim.fetch_values(fetcher, sinim.ENDPOINTS, ["3754"], [2019], comuna_codes=["13101"])
