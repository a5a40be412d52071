"""Comuna poverty estimates of the Ministerio de Desarrollo Social y Familia (small-area estimation, SAE).

Two workbooks, same publisher (Observatorio Social): multidimensional poverty 2022 (one sheet
`Estimaciones`: a title row, a blank row, the header on row 3, 345 comuna rows, footnotes) and
income poverty (`Estimaciones_Tasa_Pobreza_Ingresos_Comunas_2022.xlsx`, read when it is given;
its layout is only known from users' code, which skips two rows, so the header is found by its
words, not by position). Quirks handled (PROVENANCE_new_families.md 6):
- `Código` is an integer without the leading zero (2201 = Calama);
- the rate and its limits are fractions (0.1677), not percentages: a file in percent is refused;
- the `Tipo de estimación SAE` column is a formula into an external workbook: its cached value
  (`Directa y Sintética (Fay-Herriot)` or `Sintética`) is what is read; no cached value is an error;
- person counts are non-integer (projections times the rate), from Censo 2017 projections.
The publisher asks that regional and national figures come from Casen itself, so only comunas
are published.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, fold_name, is_missing

SOURCE = specs.source("mds_poverty_sae")

ENDPOINTS = specs.endpoints("mds_poverty_sae")


@dataclass(frozen=True)
class Estimate:
    """One workbook: the words its rate column must contain, and its year."""

    name: str
    kind: str
    rate_words: tuple[str, ...]
    year: str


ESTIMATES = (
    Estimate("multidimensional_2022", "multidimensional", ("porcentaje", "pobreza multidimensional"), "2022"),
    Estimate("income_2022", "income", ("pobreza", "ingresos"), "2022"),
)
POVERTY_COLUMNS = [
    "kind",
    "year",
    "comuna_code",
    "comuna_name",
    "region_name",
    "population",
    "poor_persons",
    "rate",
    "lower",
    "upper",
    "in_casen_sample",
    "estimation",
]
FAY_HERRIOT, SYNTHETIC = "Directa y Sintética (Fay-Herriot)", "Sintética"
# Column -> words its folded header must contain (the rate column comes from the Estimate).
HEADER_WORDS = {
    "comuna_code": ("codigo",),
    "region_name": ("region",),
    "comuna_name": ("nombre comuna",),
    "population": ("numero de personas", "proyecciones"),
    "poor_persons": ("numero de personas", "situacion de pobreza"),
    "lower": ("limite inferior",),
    "upper": ("limite superior",),
    "in_casen_sample": ("muestra casen",),
    "estimation": ("tipo de estimacion",),
}
OPTIONAL = ("in_casen_sample", "estimation", "poor_persons", "region_name")


def build_requests(endpoints: dict[str, str]) -> dict[str, FetchRequest]:
    return {e.name: FetchRequest(name=e.name, url=endpoints[e.name], expect="xlsx") for e in ESTIMATES}


def estimate(name: str) -> Estimate:
    return next(e for e in ESTIMATES if e.name == name)


def _header_positions(row: tuple, spec: Estimate) -> dict[str, int] | None:
    folded = [fold_name(cell) if isinstance(cell, str) else "" for cell in row]
    words = {**HEADER_WORDS, "rate": spec.rate_words}
    found = {}
    for column, needed in words.items():
        hits = [i for i, text in enumerate(folded) if all(w in text for w in needed)]
        if column == "population":
            hits = [i for i in hits if "pobreza" not in folded[i]]
        if column == "rate":
            hits = [i for i in hits if not folded[i].startswith("numero")]
        if hits:
            found[column] = hits[0]
    return found if "comuna_code" in found and "rate" in found else None


def parse_workbook(content: bytes | Path, spec: Estimate, snapshot: str | None = None) -> pd.DataFrame:
    """The comuna rows of one SAE workbook (`POVERTY_COLUMNS`), rates as fractions, header found by its words."""
    try:
        handle = io.BytesIO(content) if isinstance(content, bytes) else Path(content)
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several exception types for a bad workbook
        raise ParseError(SOURCE.id, f"{spec.name}: not a readable xlsx ({exc})", snapshot) from exc
    try:
        rows = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    found = next(((i, p) for i, row in enumerate(rows[:15]) if (p := _header_positions(row, spec))), None)
    if found is None:
        raise ParseError(
            SOURCE.id, f"{spec.name}: no header with a Código and a {spec.kind} poverty rate column", snapshot
        )
    start, at = found
    missing = [c for c in HEADER_WORDS if c not in at and c not in OPTIONAL]
    if missing:
        raise ParseError(
            SOURCE.id, f"{spec.name}: header lacks {missing} (row {start + 1}: {rows[start]})", snapshot
        )
    records = []
    for line, row in enumerate(rows[start + 1 :], start=start + 2):
        code = row[at["comuna_code"]] if at["comuna_code"] < len(row) else None
        if is_missing(code) or (isinstance(code, str) and not code.strip().isdigit()):
            break  # the blank row before the footnotes
        records.append(_record(row, at, spec, line, snapshot))
    if not records:
        raise ParseError(SOURCE.id, f"{spec.name}: no comuna rows under the header", snapshot)
    return pd.DataFrame(records)[POVERTY_COLUMNS]


def _number(
    row: tuple, at: dict, column: str, line: int, spec: Estimate, snapshot: str | None
) -> float | None:
    if column not in at:
        return None
    cell = row[at[column]]
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return float(cell)
    if is_missing(cell):
        return None
    raise ParseError(SOURCE.id, f"{spec.name}, row {line}: {column} {cell!r} is not a number", snapshot)


def _record(row: tuple, at: dict, spec: Estimate, line: int, snapshot: str | None) -> dict:
    def text(column: str) -> str | None:
        return str(row[at[column]]).strip() if column in at and row[at[column]] is not None else None

    estimation = text("estimation")
    if "estimation" in at and estimation not in (FAY_HERRIOT, SYNTHETIC):
        raise ParseError(
            SOURCE.id,
            f"{spec.name}, row {line}: estimation type {estimation!r} (a formula without a cached value?)",
            snapshot,
        )
    number = lambda column: _number(row, at, column, line, spec, snapshot)  # noqa: E731
    return {
        "kind": spec.kind,
        "year": spec.year,
        "comuna_code": int(str(row[at["comuna_code"]]).strip().split(".")[0]),
        "comuna_name": text("comuna_name"),
        "region_name": text("region_name"),
        "population": number("population"),
        "poor_persons": number("poor_persons"),
        "rate": number("rate"),
        "lower": number("lower"),
        "upper": number("upper"),
        "in_casen_sample": text("in_casen_sample"),
        "estimation": estimation,
    }
