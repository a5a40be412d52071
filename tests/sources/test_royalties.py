"""The curated Ley 21.591 royalty file: it passes its own checks, and broken copies fail with a clear message."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sources import royalties
from sources.base import ValidationError

ALLOCATIONS = royalties.CURATED_DIR / "royalty_allocations.csv"
STATED = royalties.CURATED_DIR / "royalty_stated_totals.csv"
FONDO_PUENTE_2024 = {  # SOURCES.md §4 (antofagasta.tv), transcribed independently of the CSV
    "02202": 343_661_390, "02104": 487_793_358, "02301": 601_297_370, "02201": 2_163_944_957,
    "02302": 380_978_225, "02103": 477_922_881, "02102": 455_019_382, "02203": 393_507_266,
    "02101": 992_799_311,
}  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_curated_file_passes_its_checks_and_matches_the_notes() -> None:
    frame, gaps = royalties.load_allocations()
    assert set(frame["mode"]) == {"curated"}
    assert dict(zip(frame["territory_code"], frame["amount"].astype(int), strict=True)) == FONDO_PUENTE_2024
    assert sum(FONDO_PUENTE_2024.values()) == 6_296_924_140  # the stated total in SOURCES.md §4
    assert set(frame["territory_level"]) == {"comuna"}
    assert gaps == ["ley21591_comunas_fund_not_stated 2025: stated total without allocation rows"]


def test_every_row_cites_a_document() -> None:
    for row in _rows(ALLOCATIONS) + _rows(STATED):
        assert row["document_title"].strip() and row["document_url"].startswith("https://")
        assert "not yet checked" in row["transcribed_by"]


def test_a_changed_amount_breaks_reconciliation_naming_fund_year_and_difference(tmp_path: Path) -> None:
    rows = _rows(ALLOCATIONS)
    calama = next(row for row in rows if row["territory_code"] == "02201")
    calama["amount"] = str(int(calama["amount"]) + 1000)
    broken = _write(tmp_path / "royalty_allocations.csv", rows)
    with pytest.raises(
        ValidationError, match=r"fondo_puente 2024: .*stated total is 6,296,924,140 \(difference \+1,000"
    ):
        royalties.load_allocations(broken, STATED)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("document_url", "", "document_url '' is not an http"),
        ("document_title", "", "no document_title"),
        ("territory_code", "2201", "neither a 2-digit region"),
        ("territory_code", "02999", "not one of the 9 comunas of region 02"),
        ("amount", "0", "is not positive"),
        ("amount", "2.163.944.957", "not a plain whole number"),
        ("currency", "UF", "currency 'UF'"),
        ("transcribed_on", "ayer", "Invalid isoformat"),
        ("verification", "", "verification '' is not one of \\('checked', 'unverified'\\)"),
        ("verification", "verified", "verification 'verified' is not one of"),
    ],
)
def test_broken_rows_fail_with_a_clear_message(tmp_path: Path, field: str, value: str, message: str) -> None:
    rows = _rows(ALLOCATIONS)
    rows[3][field] = value
    broken = _write(tmp_path / "royalty_allocations.csv", rows)
    with pytest.raises(ValidationError, match=f"line 5 .*{message}"):
        royalties.load_allocations(broken, STATED)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "document_url"} for row in _rows(ALLOCATIONS)]
    with pytest.raises(ValidationError, match=r"columns missing \['document_url'\]"):
        royalties.load_allocations(_write(tmp_path / "a.csv", rows), STATED)


def test_rows_without_a_stated_total_are_refused(tmp_path: Path) -> None:
    rows = _rows(ALLOCATIONS)
    for row in rows:
        row["year"] = "2023"
    with pytest.raises(ValidationError, match="fondo_puente 2023: allocation rows have no stated total"):
        royalties.load_allocations(_write(tmp_path / "a.csv", rows), STATED)


def test_a_total_stated_in_millions_reconciles_within_rounding(tmp_path: Path) -> None:
    template = _rows(ALLOCATIONS)[0]
    fund = "ley21591_comunas_fund_not_stated"
    rows = [dict(template, fund=fund, year="2025", territory_code="02201", amount="7000400000"),
            dict(template, fund=fund, year="2025", territory_code="02101", amount="7020800000")]  # fmt: skip
    frame, gaps = royalties.load_allocations(
        _write(tmp_path / "a.csv", rows), STATED
    )  # 14,021.2 M ~ 14,021 M
    assert len(frame) == 2 and gaps == ["fondo_puente 2024: stated total without allocation rows"]
    rows[1]["amount"] = "7021200000"  # 14,021.6 M: off by more than half a million
    with pytest.raises(
        ValidationError, match=r"ley21591_comunas_fund_not_stated 2025: .*difference \+600,000"
    ):
        royalties.load_allocations(_write(tmp_path / "b.csv", rows), STATED)


def test_every_shipped_row_says_how_sure_it_is() -> None:
    """The shipped rows come from news reports and research notes: unverified, not checked."""
    frame, _ = royalties.load_allocations(ALLOCATIONS, STATED)
    assert set(frame["verification"]) == {"unverified"}
    assert all(
        "secondary source" in note or "not yet checked" in by
        for note, by in zip(frame["note"], frame["transcribed_by"], strict=True)
    )
