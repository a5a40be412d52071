"""DEIS (MINSAL) health establishments workbook: every facility in force, and public hospital beds.

`Establecimientos_ChileDEIS_MINSAL(<dd-mm-yyyy>).xlsx` (the date is in the file name, so the
repository URL changes with each release). Sheets used, found by *name* and checked by their
header words, never by position (PROVENANCE_new_families.md 5):
- `Establecimientos Vigentes`: a `Versión YYYYMMDD` row, the header, one row per establishment;
- `Dotación de Camas Públicas`: title, `Fuente`, header, a `Total` row, then per establishment a
  total row (`cod` 100, `Área funcional` `Total`) followed by its functional-area rows.
Quirks handled: `Código Comuna` is zero-padded text in most rows and an integer in some (13101);
coordinates are the text `Pendiente` when not yet geocoded (kept as a flagged row, never dropped);
`Nivel de Atención` mixes `Terciario` and `terciario`; names and service names are space-padded.
The private-beds sheet (formulas, "dato referencial") is not read: the indicators are public beds.
A workbook without a sheet, a header word, or with a value outside the known vocabularies is a
ParseError naming the sheet and the row, so a change of layout is never read silently.
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, fold_name, is_missing
from sources.geometry import outside_chile

SOURCE = specs.source("deis_establishments")

ENDPOINTS = specs.endpoints("deis_establishments")

ESTABLISHMENTS_SHEET = "Establecimientos Vigentes"
PUBLIC_BEDS_SHEET = "Dotación de Camas Públicas"
# Column -> words its folded header must contain (the first matching header is taken).
ESTABLISHMENT_HEADERS = {
    "establishment_code": ("codigo nuevo",),
    "region_code": ("codigo region",),
    "service": ("seremi servicio de salud",),
    "snss": ("perteneciente",),
    "facility_type": ("tipo establecimiento",),
    "dependency": ("dependencia",),
    "care_level": ("nivel de atencion",),
    "name": ("nombre oficial",),
    "comuna_code": ("codigo comuna",),
    "comuna_name": ("nombre comuna",),
    "longitude": ("longitud",),
    "latitude": ("latitud",),
}
BEDS_HEADERS = {
    "service": ("nombre servicio de salud",),
    "establishment_code": ("codigo establecimiento",),
    "complexity_type": ("tipo de establecimiento",),
    "name": ("nombre establecimiento",),
    "area_code": ("cod",),
    "area": ("area funcional",),
    "beds": ("total",),
}
# `Dependencia` -> public or private provision (fold_name keys). `Otra Institución` (armed forces,
# police, universities, mutual insurers) is neither, and is counted apart.
DEPENDENCY = {
    "municipal": "public",
    "servicio de salud": "public",
    "publico no perteneciente al snss": "public",
    "autoridad sanitaria": "public",
    "ministerio de justicia": "public",
    "establecimiento experimental": "public",
    "privado": "private",
    "otra institucion": "other",
    "pendiente": "unknown",
}
CARE_LEVEL = {
    "primario": "primary",
    "secundario": "secondary",
    "terciario": "tertiary",
    "no aplica": "not_applicable",
    "pendiente": "pending",
}
HIGH_COMPLEXITY = "alta complejidad"
ESTABLISHMENT_COLUMNS = [
    "establishment_code",
    "name",
    "region_code",
    "comuna_code",
    "comuna_name",
    "service",
    "snss",
    "facility_type",
    "dependency",
    "provision",
    "care_level_published",
    "care_level",
    "high_complexity",
    "longitude",
    "latitude",
    "coordinate_flag",
]
BEDS_COLUMNS = ["establishment_code", "name", "service", "complexity_type", "beds", "area_rows", "beds_flag"]
# A few establishments whose Total row differs from their areas are flagged (the real 2020 file has
# one); more than this share means the sheet is not laid out as we read it.
MAX_INCONSISTENT_SHARE = 0.05
_VERSION = re.compile(r"versi[oó]n\s*(\d{4})(\d{2})(\d{2})", re.IGNORECASE)
_FILE_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})")


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    return [FetchRequest(name="workbook", url=endpoints["workbook"], expect="xlsx")]


def _open(content: bytes | Path, snapshot: str | None):
    try:
        handle = io.BytesIO(content) if isinstance(content, bytes) else Path(content)
        return openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several exception types for a bad workbook
        raise ParseError(SOURCE.id, f"not a readable xlsx ({exc})", snapshot) from exc


def sheet_rows(content: bytes | Path, sheet: str, snapshot: str | None = None) -> list[tuple]:
    """The rows of the sheet named `sheet` (spaces and case ignored); an error lists the sheets there are."""
    book = _open(content, snapshot)
    try:
        names = {fold_name(name): name for name in book.sheetnames}
        if fold_name(sheet) not in names:
            raise ParseError(
                SOURCE.id, f"no sheet {sheet!r} in the workbook (sheets: {book.sheetnames})", snapshot
            )
        return list(book[names[fold_name(sheet)]].iter_rows(values_only=True))
    finally:
        book.close()


def _header(rows: list[tuple], words: dict, sheet: str, snapshot: str | None) -> tuple[int, dict[str, int]]:
    """(row index, {column: position}) of the first row among the first 10 holding every header word."""
    for index, row in enumerate(rows[:10]):
        folded = [fold_name(cell) if isinstance(cell, str) else "" for cell in row]
        found = {}
        for column, needed in words.items():
            hits = [
                i
                for i, text in enumerate(folded)
                if all(w in text for w in needed) and i not in found.values()
            ]
            exact = [i for i in hits if folded[i] == " ".join(needed)]
            if hits:
                found[column] = (exact or hits)[0]
        if len(found) == len(words):
            return index, found
        if len(found) >= len(words) // 2:
            missing = sorted(set(words) - set(found))
            raise ParseError(
                SOURCE.id, f"sheet {sheet!r}, row {index + 1}: header lacks {missing} ({row})", snapshot
            )
    raise ParseError(SOURCE.id, f"sheet {sheet!r}: no header row with {sorted(words)}", snapshot)


def workbook_version(content: bytes | Path, url: str = "", snapshot: str | None = None) -> date:
    """The release date: the sheet's `Versión YYYYMMDD` row, else the date in the file name."""
    rows = sheet_rows(content, ESTABLISHMENTS_SHEET, snapshot)
    for row in rows[:3]:
        for cell in row:
            if isinstance(cell, str) and (match := _VERSION.search(cell)):
                return date(*(int(g) for g in match.groups()))
    if match := _FILE_DATE.search(url):
        day, month, year = (int(g) for g in match.groups())
        return date(year, month, day)
    raise ParseError(SOURCE.id, "no `Versión YYYYMMDD` row and no dd-mm-yyyy date in the file name", snapshot)


def comuna_code(value: object) -> str | None:
    """5-digit CUT from zero-padded text ('02101') or an integer that lost its zero (2101); else None."""
    if isinstance(value, bool) or is_missing(value):
        return None
    text = (
        str(int(value))
        if isinstance(value, int | float) and float(value).is_integer()
        else str(value).strip()
    )
    return text.zfill(5) if text.isdigit() and len(text) <= 5 else None


def _coordinate(value: object) -> tuple[float | None, bool]:
    """(degrees, pending): a number, or None with pending=True for `Pendiente`/`S/I`; else a ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), False
    if is_missing(value) or fold_name(value) in ("pendiente", "s i", "sin informacion"):
        return None, True
    raise ValueError(f"coordinate {value!r} is neither degrees nor 'Pendiente'")


def _vocabulary(
    value: object, table: dict[str, str], column: str, line: int, snapshot: str | None
) -> str | None:
    if is_missing(value):
        return None
    key = fold_name(value)
    if key not in table:
        raise ParseError(
            SOURCE.id,
            f"sheet {ESTABLISHMENTS_SHEET!r}, row {line}: {column} {value!r} is not a known value ({sorted(table)})",
            snapshot,
        )
    return table[key]


def _text(value: object) -> str | None:
    return None if is_missing(value) else " ".join(str(value).split())


def _establishment(row: tuple, at: dict[str, int], line: int, snapshot: str | None) -> dict:
    cell = lambda column: row[at[column]] if at[column] < len(row) else None  # noqa: E731
    code = cell("establishment_code")
    if not (isinstance(code, int | float) and float(code).is_integer()) and not str(code).strip().isdigit():
        raise ParseError(
            SOURCE.id, f"sheet {ESTABLISHMENTS_SHEET!r}, row {line}: establishment code {code!r}", snapshot
        )
    comuna = comuna_code(cell("comuna_code"))
    if comuna is None:
        raise ParseError(
            SOURCE.id,
            f"sheet {ESTABLISHMENTS_SHEET!r}, row {line}: comuna code {cell('comuna_code')!r} is not a code",
            snapshot,
        )
    try:
        (lon, lon_pending), (lat, lat_pending) = _coordinate(cell("longitude")), _coordinate(cell("latitude"))
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"sheet {ESTABLISHMENTS_SHEET!r}, row {line}: {exc}", snapshot) from exc
    flag = None
    if lon_pending or lat_pending:
        lon = lat = None
        flag = "coordinates pending (not geocoded by DEIS)"
    elif outside_chile(lon, lat):
        flag = f"coordinates outside Chile ({lon}, {lat}): not used to locate it"
    facility_type = _text(cell("facility_type")) or ""
    published_level = _text(cell("care_level"))
    return {
        "establishment_code": str(int(float(code))),
        "name": _text(cell("name")),
        "region_code": comuna[:2],
        "comuna_code": comuna,
        "comuna_name": _text(cell("comuna_name")),
        "service": _text(cell("service")),
        "snss": fold_name(cell("snss") or "") == "perteneciente",
        "facility_type": facility_type,
        "dependency": _text(cell("dependency")),
        "provision": _vocabulary(cell("dependency"), DEPENDENCY, "Dependencia", line, snapshot),
        "care_level_published": published_level,
        "care_level": _vocabulary(published_level, CARE_LEVEL, "Nivel de Atención", line, snapshot),
        "high_complexity": HIGH_COMPLEXITY in fold_name(facility_type),
        "longitude": lon,
        "latitude": lat,
        "coordinate_flag": flag,
    }


def parse_establishments(content: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """Every establishment in force (`ESTABLISHMENT_COLUMNS`), none dropped: odd rows are flagged."""
    rows = sheet_rows(content, ESTABLISHMENTS_SHEET, snapshot)
    start, at = _header(rows, ESTABLISHMENT_HEADERS, ESTABLISHMENTS_SHEET, snapshot)
    records = []
    for line, row in enumerate(rows[start + 1 :], start=start + 2):
        if all(is_missing(cell) for cell in row):
            continue
        records.append(_establishment(row, at, line, snapshot))
    if not records:
        raise ParseError(SOURCE.id, f"sheet {ESTABLISHMENTS_SHEET!r}: no establishment rows", snapshot)
    frame = pd.DataFrame(records)[ESTABLISHMENT_COLUMNS]
    repeated = frame[frame["establishment_code"].duplicated(keep=False)]
    if not repeated.empty:
        raise ParseError(
            SOURCE.id,
            f"sheet {ESTABLISHMENTS_SHEET!r}: establishment codes repeated {sorted(set(repeated['establishment_code']))[:5]}",
            snapshot,
        )
    return frame


def _flag_area_mismatches(frame: pd.DataFrame, snapshot: str | None) -> pd.DataFrame:
    """Flag establishments whose Total differs from their areas; too many of them is a shifted sheet."""
    off = (frame["area_rows"] > 0) & (frame["area_rows"] != frame["beds"])
    frame["beds_flag"] = [
        f"the establishment's Total row ({b:g}) differs from the sum of its areas ({a:g}); Total used"
        if o
        else None
        for b, a, o in zip(frame["beds"], frame["area_rows"], off, strict=True)
    ]
    if off.mean() > MAX_INCONSISTENT_SHARE:
        raise ParseError(
            SOURCE.id,
            f"sheet {PUBLIC_BEDS_SHEET!r}: {int(off.sum())} of {len(frame)} establishment totals differ from "
            f"their areas (a shifted sheet?): "
            f"{frame.loc[off, ['establishment_code', 'beds', 'area_rows']].head(3).to_dict('records')}",
            snapshot,
        )
    return frame


def parse_public_beds(content: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """Public beds per establishment (`BEDS_COLUMNS`): its `Total` row, checked against its area rows.

    The sheet's grand `Total` must equal the sum of the establishments' totals (a truncated or
    shifted sheet fails); an establishment whose total differs from its areas is flagged.
    """
    rows = sheet_rows(content, PUBLIC_BEDS_SHEET, snapshot)
    start, at = _header(rows, BEDS_HEADERS, PUBLIC_BEDS_SHEET, snapshot)
    grand_total, records, current = None, [], None
    for line, row in enumerate(rows[start + 1 :], start=start + 2):
        cell = lambda column, row=row: row[at[column]] if at[column] < len(row) else None  # noqa: E731
        if all(is_missing(c) for c in row):
            continue
        beds = cell("beds")
        if not isinstance(beds, int | float) or isinstance(beds, bool):
            raise ParseError(SOURCE.id, f"sheet {PUBLIC_BEDS_SHEET!r}, row {line}: beds {beds!r}", snapshot)
        if fold_name(cell("service") or "") == "total" and is_missing(cell("establishment_code")):
            grand_total = float(beds)
        elif not is_missing(cell("establishment_code")):
            current = {
                "establishment_code": str(int(float(cell("establishment_code")))),
                "name": _text(cell("name")),
                "service": _text(cell("service")),
                "complexity_type": _text(cell("complexity_type")),
                "beds": float(beds),
                "area_rows": 0.0,
            }
            records.append(current)
        elif current is not None and _text(cell("name")) == current["name"]:
            current["area_rows"] += float(beds)
        else:
            raise ParseError(
                SOURCE.id,
                f"sheet {PUBLIC_BEDS_SHEET!r}, row {line}: an area row outside its establishment ({row})",
                snapshot,
            )
    if not records:
        raise ParseError(SOURCE.id, f"sheet {PUBLIC_BEDS_SHEET!r}: no establishment rows", snapshot)
    frame = _flag_area_mismatches(pd.DataFrame(records), snapshot)
    frame = frame[BEDS_COLUMNS]
    if grand_total is None or grand_total != frame["beds"].sum():
        raise ParseError(
            SOURCE.id,
            f"sheet {PUBLIC_BEDS_SHEET!r}: the Total row ({grand_total}) is not the sum of the "
            f"establishments ({frame['beds'].sum()})",
            snapshot,
        )
    return frame


_NAME_STOPWORDS = frozenset({"hospital", "de", "del", "la", "el", "los", "las", "y", "dr", "dra"})


def _distinctive(name: str) -> set[str]:
    return set(fold_name(name).split()) - _NAME_STOPWORDS


def place_beds(beds: pd.DataFrame, establishments: pd.DataFrame) -> pd.DataFrame:
    """Beds with the establishment they belong to (`matched_code`) and its `comuna_code`.

    A code is matched as written, except where the beds sheet repeats it for different
    hospitals (the 2020 file gives 120105 to Laja, Nacimiento and Santa Bárbara): each such row
    goes to the one hospital of the code's region whose name holds every distinctive word of
    its name, or stays unplaced; both are flagged, neither is dropped.
    """
    by_code = establishments.set_index("establishment_code")
    repeated = beds["establishment_code"].duplicated(keep=False)
    matched, flags = [], []
    for code, name, repeat, flag in zip(
        beds["establishment_code"], beds["name"], repeated, beds["beds_flag"], strict=True
    ):
        notes = [flag] if isinstance(flag, str) else []
        found = code if code in by_code.index else None
        if repeat:
            region = by_code.loc[code, "region_code"] if code in by_code.index else code[1:3]
            words = _distinctive(name or "")
            pool = establishments[
                (establishments["region_code"] == region)
                & establishments["facility_type"].map(fold_name).str.contains("hospital")
            ]
            hits = [
                c
                for c, n in zip(pool["establishment_code"], pool["name"], strict=True)
                if words <= _distinctive(n or "")
            ]
            found = hits[0] if len(hits) == 1 and words else None
            notes.append(
                f"code {code} repeated in the beds sheet; matched by name to {found}"
                if found
                else f"code {code} repeated in the beds sheet; no single establishment matches {name!r}: not placed"
            )
        elif found is None:
            notes.append(f"code {code} is not in the establishments sheet: not placed in a comuna")
        matched.append(found)
        flags.append("; ".join(notes) or None)
    comuna = [by_code.loc[c, "comuna_code"] if c is not None else None for c in matched]
    return beds.assign(matched_code=matched, comuna_code=comuna, beds_flag=flags)
