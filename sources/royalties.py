"""Mining-royalty (Ley 21.591) allocations: a curated file, because the official figures exist only in PDFs.

`sources/curated/royalty_allocations.csv` holds one row per allocation, each citing the public
document it was transcribed from; `royalty_stated_totals.csv` holds the totals those documents
state. Loading validates both and reconciles them: per-comuna rows of a fund and year must add
up to the stated total (exactly, for whole-peso CLP). A stated total with no rows yet is a
known gap (listed in `sources/curated/README.md`), reported but not an error.

Output of `load_allocations` (ALLOCATION_COLUMNS):
    fund, year (int), territory_code (5-digit comuna or 2-digit region), territory_level
    ("comuna" | "region"), amount (float; exact for CLP below 2**53), currency, document_title,
    document_url, document_page, transcribed_by, transcribed_on, verification ("checked" against
    the primary document | "unverified", transcribed from a secondary source), note, mode ("curated").
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path

import pandas as pd

from sources import specs
from sources.base import Mode, ValidationError
from sources.division import all_comunas, comunas_of

CURATED_DIR = Path(__file__).resolve().parent / "curated"
MODE: Mode = "curated"

SOURCE = specs.source("royalties_curated")

ENDPOINTS = specs.endpoints("royalties_curated")

ALLOCATION_FIELDS = [
    "fund",
    "year",
    "territory_code",
    "amount",
    "currency",
    "document_title",
    "document_url",
    "document_page",
    "transcribed_by",
    "transcribed_on",
    "verification",
    "note",
]
STATED_FIELDS = [
    "fund",
    "year",
    "territory_code",
    "territory_scope",
    "stated_total",
    "currency",
    "rounded_to",
    "document_title",
    "document_url",
    "document_date",
    "transcribed_by",
    "verification",
    "note",
]
ALLOCATION_COLUMNS = [*ALLOCATION_FIELDS[:3], "territory_level", *ALLOCATION_FIELDS[3:], "mode"]
CURRENCIES = ("CLP", "USD")
# How sure a curated row is: `checked` against the primary document (the resolution, the budget
# law), or `unverified` (transcribed from a secondary source, not yet checked). An unverified
# row makes every value computed from it `curated-unverified` (warehouse/sql/views/90_lens.sql).
VERIFICATION = ("checked", "unverified")

# Region 02 has exactly these 9 comunas (the official division, sources/reference/).
REGION_02_COMUNAS = comunas_of("02")


def _rows(data: bytes | Path, fields: list[str], what: str) -> list[dict[str, str]]:
    content = data.read_bytes() if isinstance(data, Path) else data
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    header = reader.fieldnames or []
    missing = [f for f in fields if f not in header]
    extra = [f for f in header if f not in fields]
    if missing or extra:
        raise ValidationError(SOURCE.id, f"{what}: columns missing {missing}, unexpected {extra}")
    return [{k: (v or "").strip() for k, v in row.items()} for row in reader]


def territory_level(code: str, known_comunas: frozenset[str] | None = None) -> str:
    """'comuna' for a valid 5-digit CUT, 'region' for a 2-digit region code; ValueError otherwise."""
    if not re.fullmatch(r"\d{2}|\d{5}", code) or not 1 <= int(code[:2]) <= 16:
        raise ValueError(f"{code!r} is neither a 2-digit region (01-16) nor a 5-digit comuna code")
    if len(code) == 2:
        return "region"
    if code[:2] == "02" and code not in REGION_02_COMUNAS:
        raise ValueError(f"{code!r} is not one of the 9 comunas of region 02")
    if code not in all_comunas():
        raise ValueError(f"{code!r} is not a comuna of the official territorial division")
    if known_comunas is not None and code not in known_comunas:
        raise ValueError(f"{code!r} is not a known comuna code")
    return "comuna"


def _amount(text: str, currency: str) -> int | float:
    """CLP are whole pesos written as plain digits; other currencies may carry a decimal point."""
    pattern = r"\d+" if currency == "CLP" else r"\d+(\.\d+)?"
    if not re.fullmatch(pattern, text):
        raise ValueError(
            f"amount {text!r} is not a plain {'whole number' if currency == 'CLP' else 'number'}"
        )
    value = int(text) if currency == "CLP" else float(text)
    if value <= 0:
        raise ValueError(f"amount {text!r} is not positive")
    return value


def _check_citation(row: dict[str, str], where: str) -> None:
    if not row["document_title"]:
        raise ValidationError(SOURCE.id, f"{where}: no document_title: every figure must cite its document")
    if not re.match(r"https?://\S+$", row["document_url"]):
        raise ValidationError(
            SOURCE.id, f"{where}: document_url {row['document_url']!r} is not an http(s) URL"
        )
    if not row["transcribed_by"]:
        raise ValidationError(SOURCE.id, f"{where}: transcribed_by is empty")
    if row["verification"] not in VERIFICATION:
        raise ValidationError(
            SOURCE.id, f"{where}: verification {row['verification']!r} is not one of {VERIFICATION}"
        )


def validate(
    allocations: list[dict[str, str]],
    stated: list[dict[str, str]],
    known_comunas: frozenset[str] | None = None,
) -> list[str]:
    """Check every row and reconcile totals; raise ValidationError on the first problem.

    Returns the known gaps: stated totals (fund, year) that have no allocation rows yet.
    """
    sums = _allocation_sums(allocations, known_comunas)
    totals = _stated_totals(stated, known_comunas)
    for group, amount_sum in sums.items():
        _reconcile(group, amount_sum, totals, allocations)
    return [
        f"{fund} {year}: stated total without allocation rows"
        for fund, year, cur in totals
        if (fund, year, cur) not in sums
    ]


def _allocation_sums(
    allocations: list[dict[str, str]], known_comunas: frozenset[str] | None
) -> dict[tuple[str, int, str], int | float]:
    """Each row checked (fund, year, currency, territory, amount, date, citation, no repeat); sums per fund, year, currency."""
    sums: dict[tuple[str, int, str], int | float] = {}
    seen: set[tuple[str, str, str]] = set()
    for number, row in enumerate(allocations, start=2):  # line 1 is the header
        where = f"royalty_allocations.csv line {number} ({row['fund']} {row['year']} {row['territory_code']})"
        if not row["fund"]:
            raise ValidationError(SOURCE.id, f"{where}: fund is empty")
        if not re.fullmatch(r"20\d\d", row["year"]):
            raise ValidationError(SOURCE.id, f"{where}: year {row['year']!r} is not a 20xx year")
        if row["currency"] not in CURRENCIES:
            raise ValidationError(
                SOURCE.id, f"{where}: currency {row['currency']!r} is not one of {CURRENCIES}"
            )
        try:
            territory_level(row["territory_code"], known_comunas)
            amount = _amount(row["amount"], row["currency"])
            date.fromisoformat(row["transcribed_on"])
        except ValueError as exc:
            raise ValidationError(SOURCE.id, f"{where}: {exc}") from exc
        _check_citation(row, where)
        key = (row["fund"], row["year"], row["territory_code"])
        if key in seen:
            raise ValidationError(SOURCE.id, f"{where}: a second row for the same fund, year and territory")
        seen.add(key)
        group = (row["fund"], int(row["year"]), row["currency"])
        sums[group] = sums.get(group, 0) + amount
    return sums


def _stated_totals(
    stated: list[dict[str, str]], known_comunas: frozenset[str] | None
) -> dict[tuple[str, int, str], tuple[int | float, int, str]]:
    """(fund, year, currency) -> (stated total, rounding unit, territory scope), each row checked."""
    totals = {}
    for number, row in enumerate(stated, start=2):
        where = f"royalty_stated_totals.csv line {number} ({row['fund']} {row['year']})"
        try:
            territory_level(row["territory_code"], known_comunas)
            total = _amount(row["stated_total"], row["currency"])
            rounded_to = int(row["rounded_to"])
        except ValueError as exc:
            raise ValidationError(SOURCE.id, f"{where}: {exc}") from exc
        _check_citation(row, where)
        totals[(row["fund"], int(row["year"]), row["currency"])] = (total, rounded_to, row["territory_code"])
    return totals


def _reconcile(
    group: tuple[str, int, str], amount_sum, totals: dict, allocations: list[dict[str, str]]
) -> None:
    """A fund-year's allocations lie in its stated scope and add up to its stated total (within rounding)."""
    fund, year, currency = group
    if group not in totals:
        raise ValidationError(
            SOURCE.id, f"{fund} {year}: allocation rows have no stated total in {currency} to reconcile with"
        )
    total, rounded_to, scope = totals[group]
    outside = [r["territory_code"] for r in allocations if (r["fund"], int(r["year"])) == (fund, year)]
    outside = [code for code in outside if not code.startswith(scope)]
    if outside:
        raise ValidationError(
            SOURCE.id, f"{fund} {year}: rows {outside} lie outside the stated scope {scope}"
        )
    difference = amount_sum - total
    tolerance = 0 if rounded_to <= 1 else rounded_to / 2  # a total stated "in millions" is rounded
    if abs(difference) > tolerance:
        raise ValidationError(
            SOURCE.id,
            f"{fund} {year}: allocations add up to {amount_sum:,} {currency} but the stated total is "
            f"{total:,} (difference {difference:+,}; tolerance {tolerance:,.0f})",
        )


def load_allocations(
    allocations: bytes | Path = CURATED_DIR / "royalty_allocations.csv",
    stated_totals: bytes | Path = CURATED_DIR / "royalty_stated_totals.csv",
    known_comunas: frozenset[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Read, validate and reconcile the curated files -> (ALLOCATION_COLUMNS frame, known gaps)."""
    rows = _rows(allocations, ALLOCATION_FIELDS, "royalty_allocations.csv")
    stated = _rows(stated_totals, STATED_FIELDS, "royalty_stated_totals.csv")
    gaps = validate(rows, stated, known_comunas)
    frame = pd.DataFrame(rows, columns=ALLOCATION_FIELDS)
    frame.insert(
        3, "territory_level", [territory_level(code, known_comunas) for code in frame["territory_code"]]
    )
    frame["year"] = frame["year"].astype("int64")
    frame["amount"] = frame["amount"].astype("float64")
    frame["mode"] = MODE
    return frame[ALLOCATION_COLUMNS], gaps


def load_stated_totals(
    stated_totals: bytes | Path = CURATED_DIR / "royalty_stated_totals.csv",
) -> pd.DataFrame:
    """The stated totals as a frame (stated_total float, rounded_to int), for the report's context lines."""
    frame = pd.DataFrame(
        _rows(stated_totals, STATED_FIELDS, "royalty_stated_totals.csv"), columns=STATED_FIELDS
    )
    return frame.astype({"year": "int64", "stated_total": "float64", "rounded_to": "int64"})
