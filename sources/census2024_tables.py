"""INE's published 2024 Census tables (Censo de Población y Vivienda 2024), one workbook per topic.

Every workbook has a `Nota` sheet (presentation, "Fecha de publicación: ...", glossary), then
numbered table sheets laid out alike (PROVENANCE_new_families.md 4a): a title row
(`2. Viviendas particulares ocupadas ... según comuna.`), a header row starting with
`Código región`, a `País` row with codes 0, data rows (north to south: region 15 first), a
blank row and a footnote. Codes are integers without leading zeros (comuna 2201 = Calama).

Each sheet is found by its *title* and checked by its *header*, never by its position:
`parse_workbook` reads every table sheet into long cells, `table` picks one declared table
(`TABLES`) and refuses a workbook whose title or header changed. Cells keep their state:
`value`, `suppressed` (`*`: 50 people or fewer, P2), `undefined` (`-`: a total of zero).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, fold_name

SOURCE = specs.source("ine_censo2024_tables")

ENDPOINTS = specs.endpoints("ine_censo2024_tables")

CODE_HEADERS = {
    "Código región": "region_code",
    "Código provincia": "province_code",
    "Código comuna": "comuna_code",
}
NAME_HEADERS = {"Región": "region_name", "Provincia": "province_name", "Comuna": "comuna_name"}
# Columns that split rows further instead of holding counts.
CATEGORY_HEADERS = ("Grupos de edad", "Disponibilidad de equipo o servicio")
SUPPRESSED, UNDEFINED = "*", "-"
CELL_COLUMNS = [
    "workbook",
    "sheet",
    "title",
    "level",
    "region_code",
    "province_code",
    "comuna_code",
    "category",
    "measure",
    "value",
    "cell_state",
]
_TITLE = re.compile(r"^\s*(\d+)\.\s+(.+?)\s*\.?\s*$", re.S)


@dataclass(frozen=True)
class TableSpec:
    """A table we use: its workbook, the words its title must start with, and the columns it needs."""

    key: str
    workbook: str
    title: str
    level: str
    measures: tuple[str, ...]


WATER_SOURCE = ("Red pública", "Pozo o noria", "Camión aljibe", "Fuente de origen del agua no declarado")
SEWER = (
    "Dentro de la vivienda, conectado a una red de alcantarillado",
    "Fuera de la vivienda, conectado a una red de alcantarillado",
    "Sistema de servicio higiénico no declarado",
)
PEOPLES = ("Aymara", "Atacameño o Lickanantay", "Quechua")
DWELLINGS = "Viviendas particulares ocupadas con moradores presentes"
INDIGENOUS = "Población que es o se considera perteneciente a un pueblo indígena u originario"

TABLES = tuple(
    TableSpec(f"{key}_{level}", workbook, f"{title}, según {word}", level, measures)
    for key, workbook, title, measures in (
        ("water_source", "V4", f"{DWELLINGS} por fuente de origen del agua para uso doméstico", (DWELLINGS, *WATER_SOURCE)),
        ("water_distribution", "V4", f"{DWELLINGS} por sistema de distribución del agua", (DWELLINGS, "No tiene sistema, la acarrea", "Sistema de distribución del agua no declarado")),
        ("sanitation", "V4", f"{DWELLINGS} por sistema de servicio higiénico", (DWELLINGS, *SEWER)),
        ("electricity", "V4", f"{DWELLINGS} por fuente de energía eléctrica", (DWELLINGS, "No tiene energía eléctrica", "Fuente de energía eléctrica no declarada")),
        ("waste", "V4", f"{DWELLINGS} por medio de eliminación de basura", (DWELLINGS, "La recogen los servicios de aseo", "Medio de eliminación de basura no declarado")),
        ("indigenous", "P2", f"{INDIGENOUS} por nombre del pueblo originario", (INDIGENOUS, *PEOPLES)),
        ("population", "D1", "Población censada por sexo y razón hombre-mujer", ("Población censada", "Hombres", "Mujeres")),
        ("households", "V1", "Hogares censados y promedio de personas por hogar", ("Hogares censados", "Promedio de personas por hogar")),
        ("ict", "H1", "Equipos o servicios que dispone el hogar", ("Internet fija",)),
    )
    for level, word in (("region", "región"), ("comuna", "comuna"))
)  # fmt: skip
WORKBOOKS = tuple(ENDPOINTS)


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    return [FetchRequest(name=name, url=endpoints[name], expect="xlsx") for name in WORKBOOKS]


def clean_header(text: object) -> str:
    """Header text with embedded newlines and repeated spaces collapsed (INE headers have both)."""
    return " ".join(str(text).split()) if text is not None else ""


def _open(content: bytes | Path, workbook: str, snapshot: str | None):
    try:
        handle = io.BytesIO(content) if isinstance(content, bytes) else Path(content)
        return openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and InvalidFileException variants
        raise ParseError(SOURCE.id, f"workbook {workbook} is not a readable xlsx ({exc})", snapshot) from exc


def publication_date(content: bytes | Path, workbook: str, snapshot: str | None = None) -> str | None:
    """'Fecha de publicación: 30 de mayo, 2025.' from the Nota sheet, as written."""
    book = _open(content, workbook, snapshot)
    try:
        if "Nota" not in book.sheetnames:
            return None
        for row in book["Nota"].iter_rows(max_row=40, values_only=True):
            for cell in row:
                if isinstance(cell, str) and "Fecha de publicación" in cell:
                    return cell.split(":", 1)[-1].strip().rstrip(".")
    finally:
        book.close()
    return None


def parse_workbook(content: bytes | Path, workbook: str, snapshot: str | None = None) -> pd.DataFrame:
    """Every table sheet of a census workbook as long cells (`CELL_COLUMNS`)."""
    book = _open(content, workbook, snapshot)
    try:
        frames = [
            _sheet_cells(sheet.title, list(sheet.iter_rows(values_only=True)), workbook, snapshot)
            for sheet in book.worksheets
            if sheet.title != "Nota"
        ]
    finally:
        book.close()
    frames = [frame for frame in frames if frame is not None]
    if not frames:
        raise ParseError(SOURCE.id, f"workbook {workbook} has no table sheet with a numbered title", snapshot)
    return pd.concat(frames, ignore_index=True)


def _find_title(rows: list[tuple], sheet: str) -> tuple[int, str] | None:
    for index, row in enumerate(rows[:8]):
        texts = [cell for cell in row if isinstance(cell, str) and cell.strip()]
        if texts and _TITLE.match(texts[0]):
            return index, clean_header(_TITLE.match(texts[0]).group(2))
    return None


def _sheet_cells(sheet: str, rows: list[tuple], workbook: str, snapshot: str | None) -> pd.DataFrame | None:
    """One table sheet as long cells, or None for a sheet without a numbered title."""
    found = _find_title(rows, sheet)
    if found is None:
        return None
    title_row, title = found
    header = [clean_header(cell) for cell in rows[title_row + 1]] if len(rows) > title_row + 1 else []
    where = f"{workbook} sheet {sheet!r} ({title[:60]}...)"
    if not header or header[0] != "Código región":
        raise ParseError(
            SOURCE.id, f"{where}: the header row does not start with 'Código región': {header[:4]}", snapshot
        )
    columns = {i: name for i, name in enumerate(header) if name}
    codes = {i: CODE_HEADERS[name] for i, name in columns.items() if name in CODE_HEADERS}
    category = next((i for i, name in columns.items() if name in CATEGORY_HEADERS), None)
    measures = {
        i: name
        for i, name in columns.items()
        if name not in CODE_HEADERS and name not in NAME_HEADERS and i != category
    }
    records = []
    for offset, row in enumerate(rows[title_row + 2 :], start=title_row + 3):
        if not any(cell is not None and str(cell).strip() for cell in row):
            break
        record = _codes(row, codes, where, offset, snapshot)
        record["category"] = clean_header(row[category]) if category is not None else ""
        for i, measure in measures.items():
            value, state = _cell(row[i] if i < len(row) else None, where, offset, measure, snapshot)
            records.append({**record, "measure": measure, "value": value, "cell_state": state})
    frame = pd.DataFrame(records)
    if frame.empty:
        raise ParseError(SOURCE.id, f"{where}: no data rows under the header", snapshot)
    level = "comuna" if "comuna_code" in codes.values() else "region"
    frame["level"] = frame["region_code"].map(lambda code: "country" if code == 0 else level)
    frame = frame.assign(workbook=workbook, sheet=sheet, title=title)
    for column in ("province_code", "comuna_code"):
        if column not in frame:
            frame[column] = pd.NA
    return frame[CELL_COLUMNS]


def _codes(row: tuple, codes: dict[int, str], where: str, line: int, snapshot: str | None) -> dict:
    record = {}
    for i, name in codes.items():
        cell = row[i] if i < len(row) else None
        if isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        if isinstance(cell, str) and cell.strip().isdigit():
            cell = int(cell.strip())
        if not isinstance(cell, int):
            raise ParseError(SOURCE.id, f"{where}, row {line}: {name} {cell!r} is not a code", snapshot)
        record[name] = cell
    return record


def _cell(
    cell: object, where: str, line: int, measure: str, snapshot: str | None
) -> tuple[float | None, str]:
    if isinstance(cell, bool):
        raise ParseError(SOURCE.id, f"{where}, row {line}, {measure!r}: boolean cell", snapshot)
    if isinstance(cell, int | float):
        return float(cell), "value"
    text = "" if cell is None else str(cell).strip()
    if text == SUPPRESSED:
        return None, "suppressed"
    if text in (UNDEFINED, ""):
        return None, "undefined"
    raise ParseError(SOURCE.id, f"{where}, row {line}, {measure!r}: unreadable cell {text[:40]!r}", snapshot)


def table(cells: pd.DataFrame, spec: TableSpec, snapshot: str | None = None) -> pd.DataFrame:
    """The cells of one declared table, found by title; a missing title or header column is an error."""
    wanted = fold_name(spec.title)
    titles = cells.loc[cells["workbook"] == spec.workbook, ["sheet", "title"]].drop_duplicates()
    match = titles[titles["title"].map(lambda t: fold_name(t).startswith(wanted))]
    if len(match) != 1:
        raise ParseError(
            SOURCE.id,
            f"workbook {spec.workbook}: {'no' if match.empty else 'more than one'} sheet titled "
            f"{spec.title!r}... (titles: {sorted(titles['title'].str[:70])})",
            snapshot,
        )
    sheet = match["sheet"].iloc[0]
    rows = cells[(cells["workbook"] == spec.workbook) & (cells["sheet"] == sheet)]
    missing = [m for m in spec.measures if m not in set(rows["measure"])]
    if missing:
        raise ParseError(
            SOURCE.id,
            f"workbook {spec.workbook} sheet {sheet!r} ({spec.key}): header lacks {missing} "
            f"(header: {sorted(set(rows['measure']))[:12]})",
            snapshot,
        )
    if not (rows["level"] == "country").any():
        raise ParseError(SOURCE.id, f"workbook {spec.workbook} sheet {sheet!r}: no 'País' row", snapshot)
    return rows.assign(table=spec.key)


def spec(key: str) -> TableSpec:
    return next(s for s in TABLES if s.key == key)
