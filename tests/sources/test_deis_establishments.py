"""DEIS establishments workbook on the real 2020 file, counted independently from its XML."""

import io
from collections import Counter

import openpyxl
import pytest

from sources import deis_establishments as deis
from sources.base import ParseError
from sources.samples.facilities import make_samples
from tests.support.xlsx_cells import sheet_rows

WORKBOOK = "health_facilities/Establecimientos_ChileDEIS_MINSAL(10-07-2020).xlsx"


@pytest.fixture(scope="module")
def real(shared_data):
    path = shared_data / WORKBOOK
    return path, deis.parse_establishments(path), deis.parse_public_beds(path)


def _xml_establishments(path):
    rows = sheet_rows(path, "Establecimientos Vigentes")
    header = rows[1]
    return header, [r + [None] * (len(header) - len(r)) for r in rows[2:] if r]


def test_region_02_establishments_by_comuna(real):
    path, frame, _ = real
    header, rows = _xml_establishments(path)
    at = header.index("Código Comuna")
    # Independently: text codes as they are, integer cells (13 of them) padded to 5 digits.
    codes = [c if isinstance(c, str) else f"{int(c):05d}" for c in (r[at] for r in rows)]
    expected = Counter(c for c in codes if c.startswith("02"))
    assert expected == {
        "02101": 80, "02201": 41, "02203": 5, "02102": 3, "02301": 3, "02302": 3,
        "02104": 2, "02103": 2, "02202": 1,
    }  # fmt: skip
    assert frame[frame["region_code"] == "02"]["comuna_code"].value_counts().to_dict() == dict(expected)
    assert len(frame) == len(rows) == 4055
    assert sum(not isinstance(r[at], str) for r in rows) == 13
    assert frame.loc[frame["comuna_code"] == "13101", "establishment_code"].size == sum(
        c == "13101" for c in codes
    )


def test_levels_provision_and_pending_coordinates(real):
    path, frame, _ = real
    header, rows = _xml_establishments(path)
    level = Counter((r[header.index("Nivel de Atención")] or "").strip().lower() for r in rows)
    counts = frame["care_level"].value_counts().to_dict()
    assert counts["tertiary"] == level["terciario"] == 211  # 'Terciario' and 'terciario'
    assert counts["primary"] == level["primario"] and counts["secondary"] == level["secundario"]
    private = sum(r[header.index("Dependencia")] == "Privado" for r in rows)
    assert (frame["provision"] == "private").sum() == private == 1026
    lon = header.index("LONGITUD [Grados decimales]")
    pending = sum(r[lon] == "Pendiente" for r in rows)
    assert pending == 217
    assert frame["coordinate_flag"].str.startswith("coordinates pending").sum() == pending
    assert frame["longitude"].isna().sum() == pending  # pending rows kept, not dropped
    calama = frame[frame["high_complexity"] & (frame["comuna_code"] == "02201")]
    assert calama["name"].tolist() == ["Hospital Dr. Carlos Cisternas (Calama)"]
    assert deis.workbook_version(path).isoformat() == "2020-07-10"


def test_public_beds_reconcile_with_the_sheet(real):
    path, establishments, beds = real
    rows = sheet_rows(path, "Dotación de Camas Públicas")
    # names carry padding and no-break spaces in the sheet; the parser collapses them
    totals = [(str(int(r[1])), " ".join(r[3].split()), r[6]) for r in rows[4:] if r and r[1] is not None]
    assert rows[3][0] == "Total" and rows[3][6] == sum(t for *_, t in totals) == beds["beds"].sum() == 26382
    assert list(zip(beds["establishment_code"], beds["name"], beds["beds"], strict=True)) == totals
    # The service names are space-padded in the sheet, not in the frame.
    assert rows[4][0].endswith("   ") and beds["service"].iloc[0] == "Arica"
    # One establishment's Total row differs from its areas: kept with its Total, flagged.
    flagged = beds.dropna(subset=["beds_flag"])
    assert flagged["establishment_code"].tolist() == ["107105"] and flagged["area_rows"].iloc[0] == 47
    # Code 120105 is written for three hospitals: each is placed by its name, and flagged.
    placed = deis.place_beds(beds, establishments).set_index("name")
    repeated = placed.loc[["Hospital de Laja", "Hospital de Nacimiento", "Hospital de Santa Bárbara"]]
    assert repeated["matched_code"].tolist() == ["120105", "120103", "120106"]
    assert repeated["comuna_code"].tolist() == ["08304", "08306", "08311"]
    assert repeated["beds_flag"].str.contains("repeated in the beds sheet").all()
    assert placed["comuna_code"].notna().all() and not placed["matched_code"].duplicated().any()
    header, rows = _xml_establishments(path)
    code, comuna = header.index("Código Nuevo "), header.index("Código Comuna")
    in_calama = {str(int(r[code])) for r in rows if r[comuna] == "02201"}
    expected = sum(t for c, _, t in totals if c in in_calama)
    assert placed.loc[placed["comuna_code"] == "02201", "beds"].sum() == expected == 202


def _sample_book():
    return openpyxl.load_workbook(io.BytesIO(make_samples.workbook()))


def _bytes(book) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_sample_is_deterministic_and_parses():
    assert make_samples.workbook() == make_samples.workbook()
    frame = deis.parse_establishments(make_samples.workbook())
    assert len(frame) == len(make_samples.ESTABLISHMENTS)
    assert frame.loc[frame["establishment_code"] == "113100", "comuna_code"].item() == "13101"  # an int cell


def test_sheet_moved_is_found_by_name_and_a_renamed_sheet_is_refused():
    book = _sample_book()
    book.move_sheet("Establecimientos Vigentes", offset=3)
    moved = deis.parse_establishments(_bytes(book))
    assert moved.equals(deis.parse_establishments(make_samples.workbook()))
    book["Establecimientos Vigentes"].title = "Vigentes 2025"
    with pytest.raises(ParseError, match=r"no sheet 'Establecimientos Vigentes'.*Vigentes 2025"):
        deis.parse_establishments(_bytes(book))


def test_coordinates_outside_chile_are_flagged_not_dropped():
    book = _sample_book()
    sheet = book["Establecimientos Vigentes"]
    sheet.cell(row=3, column=28).value, sheet.cell(row=3, column=29).value = -20.49, -69.33  # swapped
    frame = deis.parse_establishments(_bytes(book))
    assert len(frame) == len(make_samples.ESTABLISHMENTS)
    assert (
        frame["coordinate_flag"].iloc[0]
        == "coordinates outside Chile (-20.49, -69.33): not used to locate it"
    )


def test_unknown_values_and_a_beds_total_that_does_not_add_up_are_refused():
    book = _sample_book()
    book["Establecimientos Vigentes"].cell(row=3, column=12).value = "Cooperativa"
    with pytest.raises(ParseError, match=r"row 3: Dependencia 'Cooperativa' is not a known value"):
        deis.parse_establishments(_bytes(book))
    book = _sample_book()
    book["Dotación de Camas Públicas"].cell(row=4, column=7).value = 1
    with pytest.raises(ParseError, match=r"Total row \(1.0\) is not the sum"):
        deis.parse_public_beds(_bytes(book))
    book = _sample_book()
    book["Establecimientos Vigentes"].cell(row=3, column=28).value = "sin dato"
    with pytest.raises(ParseError, match=r"row 3: coordinate 'sin dato'"):
        deis.parse_establishments(_bytes(book))
