"""MDSF comuna poverty (SAE) on the real 2022 multidimensional workbook, values checked against its XML."""

import io

import openpyxl
import pandas as pd
import pytest

from pipelines import poverty
from sources import mds_poverty
from sources.base import ParseError, ValidationError
from tests.support.xlsx_cells import sheet_rows

WORKBOOK = (
    "poverty/estimaciones_indice_pobreza_multidimensional_comunas_2022__bastianolea_pobreza_comunal.xlsx"
)
MULTI = mds_poverty.estimate("multidimensional_2022")
ANTOFAGASTA = [2101, 2102, 2103, 2104, 2201, 2202, 2203, 2301, 2302]


def test_real_workbook_antofagasta_comunas(shared_data):
    path = shared_data / WORKBOOK
    frame = mds_poverty.parse_workbook(path.read_bytes(), MULTI).set_index("comuna_code")
    rows = {int(r[0]): r for r in sheet_rows(path, "Estimaciones")[3:] if r and isinstance(r[0], float)}
    assert len(frame) == len(rows) == 345
    for code in ANTOFAGASTA:
        cells = rows[code]
        assert (
            frame.loc[code, ["population", "poor_persons", "rate", "lower", "upper"]].tolist() == cells[3:8]
        )
        # The estimation type is a formula into another workbook: its cached text is what the parser reads.
        assert frame.loc[code, "estimation"] == cells[9]
    assert frame.loc[2201, "rate"] == pytest.approx(0.1677233196328674)
    assert (
        frame.loc[2202, "estimation"] == mds_poverty.SYNTHETIC and frame.loc[2202, "in_casen_sample"] == "No"
    )
    assert frame["estimation"].value_counts().to_dict() == {
        mds_poverty.FAY_HERRIOT: 298,
        mds_poverty.SYNTHETIC: 47,
    }
    formulas = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    formula = next(formulas.iter_rows(min_row=4, max_row=4, values_only=True))[9]
    assert str(formula).startswith("=IFERROR(IF(VLOOKUP(")


def _rewritten(path, change) -> bytes:
    book = openpyxl.load_workbook(path, data_only=True)
    change(book.worksheets[0])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_percent_instead_of_fractions_and_bad_limits_are_refused(shared_data):
    path = shared_data / WORKBOOK

    def percent(sheet):
        for row in range(4, 349):
            for column in (6, 7, 8):
                sheet.cell(row=row, column=column).value *= 100

    frame = mds_poverty.parse_workbook(_rewritten(path, percent), MULTI)
    staging = frame.assign(territory_id=[f"comuna:{c:05d}" for c in frame["comuna_code"]], snapshot_id="s")
    with pytest.raises(ValidationError, match=r"rate.*in_range\(0, 1\)"):
        poverty.validate_frame(
            poverty.STAGING_SCHEMA, staging[list(poverty.STAGING_COLUMNS)], "mds_poverty_sae"
        )
    fine = mds_poverty.parse_workbook(path.read_bytes(), MULTI)
    swapped = fine.assign(
        lower=fine["upper"], upper=fine["lower"], territory_id="comuna:00000", snapshot_id="s"
    )
    with pytest.raises(ValidationError, match="outside their own confidence limits"):
        poverty.check_estimates(swapped)
    shifted = fine.assign(poor_persons=fine["population"], territory_id="comuna:00000", snapshot_id="s")
    with pytest.raises(ValidationError, match="poor persons != population x rate"):
        poverty.check_estimates(shifted)


def test_header_found_by_words_and_missing_cached_value(shared_data):
    path = shared_data / WORKBOOK

    def shift_down(sheet):
        sheet.insert_rows(1, amount=2)  # the income workbook has extra rows above the header

    frame = mds_poverty.parse_workbook(_rewritten(path, shift_down), MULTI)
    assert len(frame) == 345

    def uncached(sheet):
        sheet.cell(row=4, column=10).value = None

    with pytest.raises(ParseError, match="estimation type None"):
        mds_poverty.parse_workbook(_rewritten(path, uncached), MULTI)


def test_income_layout_is_read_by_its_header_words():
    """An income-poverty workbook (layout known only from users' code): the rate column found by its words."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Estimaciones de tasa de pobreza por ingresos por comuna (test fixture)"])
    sheet.append([])
    sheet.append(["Región", "Código", "Nombre comuna", "Número de personas según proyecciones de población"]
                 + ["Porcentaje de personas en situación de pobreza por ingresos 2022", "Límite inferior", "Límite superior"])  # fmt: skip
    sheet.append(["Antofagasta", 2201, "Calama", 190000, 0.061, 0.05, 0.072])
    out = io.BytesIO()
    book.save(out)
    frame = mds_poverty.parse_workbook(out.getvalue(), mds_poverty.estimate("income_2022"))
    assert frame.iloc[0][["comuna_code", "rate", "lower", "upper"]].tolist() == [2201, 0.061, 0.05, 0.072]
    assert pd.isna(frame.iloc[0]["estimation"])


def test_poverty_sample_rebuilds_byte_identical(tmp_path):
    from sources.samples.poverty import make_sample

    (path,) = make_sample.main(tmp_path)
    assert path.read_bytes() == poverty.SAMPLE.read_bytes()
