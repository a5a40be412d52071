"""INE population estimates and projections (base Censo 2017), turned into long frames.

The denominators of every death rate. Four real layouts are read (PROVENANCE.md 4b-4f):

- comunas 2002-2035 (`parse_comunas`): the INE xlsx (one sheet, sex header literally
  "Sexo\\n1=Hombre\\n2=Mujer", two footer-note rows) or the same columns as CSV (where the
  header reads "Sexo (1=Hombre 2=Mujer)"); Edad 0..80 with 80 meaning 80 and over;
  -> region_code, comuna_code (5 digits), sex ('M'/'F'), age, year, population;
- regions 2002-2035 (`parse_region_base`): `Region,Sexo,Edad,a2002..a2035`, CRLF, ages
  0..100 -> region_code, sex, age, year, population;
- country 1992-2050 by single age (`parse_national_projection`): cp1252, `;`, a title row
  per block (both sexes, HOMBRES, MUJERES), `EDAD;1992;...`, "." as thousands separator,
  top age "100+", a TOTAL row that must equal the sum of the ages (else ParseError)
  -> sex ('T'/'M'/'F'), age (100 = 100+), year, population;
- census 2017 by comuna and 5-year band (`parse_census_2017_comunas`, chilemapas)
  -> comuna_code, sex, age_group, year, population.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd

from methods.mortality import SEX_TOTAL, age_band_to_group
from sources import specs
from sources.base import (
    FetchRequest,
    ParseError,
    decode_text,
    fold_name,
    is_missing,
    normalize_cut,
    parse_number,
)

SOURCE = specs.source("ine_population")

ENDPOINTS = specs.endpoints("ine_population")

COMUNA_COLUMNS = ["region_code", "comuna_code", "sex", "age", "year", "population"]
REGION_COLUMNS = ["region_code", "sex", "age", "year", "population"]
NATIONAL_COLUMNS = ["sex", "age", "year", "population"]
CENSUS_COLUMNS = ["comuna_code", "sex", "age_group", "year", "population"]

SEX_CODES = {"1": "M", "2": "F"}
COMUNAS_TOP_AGE = 80


def comunas_request(endpoints: dict[str, str] = ENDPOINTS) -> FetchRequest:
    return FetchRequest(name="comunas-2002-2035", url=endpoints["comunas_xlsx"], expect="xlsx")


def national_request(endpoints: dict[str, str] = ENDPOINTS) -> FetchRequest:
    """Chile's own projection: the figure INE states for the whole country, 1992-2050."""
    return FetchRequest(name="country-1992-2050", url=endpoints["national_csv"], expect="csv")


# --- shared mechanics ---------------------------------------------------------------------


def _read_bytes(data: bytes | Path) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def _csv_rows(data: bytes | Path, delimiter: str = ",") -> Iterator[list[str]]:
    text = decode_text(_read_bytes(data), SOURCE.id)
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _integer(value: object, what: str, snapshot: str | None, thousands_dot: bool = False) -> int:
    """A whole, non-negative count; anything else is a ParseError naming the cell."""
    try:
        number = parse_number(value, thousands_dot=thousands_dot)
    except ValueError:
        number = None
    if number is None or number < 0 or number != int(number):
        raise ParseError(SOURCE.id, f"{what} is not a whole non-negative number: {value!r}", snapshot)
    return int(number)


def _year_columns(folded: Sequence[str], pattern: str) -> dict[int, int]:
    """{year: column index} for header cells like 'poblacion 2017' or 'a2017'."""
    years = {}
    for index, cell in enumerate(folded):
        match = re.fullmatch(pattern, cell)
        if match:
            years[int(match.group(1))] = index
    return years


def _find_columns(
    header: Sequence[object], wanted: dict[str, str], snapshot: str | None, what: str
) -> tuple[dict[str, int], list[str]]:
    """Positions of the wanted columns (by folded prefix match); ParseError naming the missing ones."""
    folded = [fold_name(cell) if cell is not None else "" for cell in header]
    found, missing = {}, []
    for key, label in wanted.items():
        target = fold_name(label)
        hits = [i for i, cell in enumerate(folded) if cell == target or cell.startswith(target + " ")]
        if (
            key == "sex"
        ):  # "Sexo\n1=Hombre\n2=Mujer" and "Sexo (1=Hombre 2=Mujer)" both fold to "sexo 1 hombre ..."
            hits = [i for i, cell in enumerate(folded) if cell.split(" ")[0] == "sexo"]
        if hits:
            found[key] = hits[0]
        else:
            missing.append(label)
    if missing:
        raise ParseError(SOURCE.id, f"{what} header lacks columns {missing}", snapshot)
    return found, folded


def _long_frame(
    keys: dict[str, list], years: list[int], values: list[list[int]], columns: list[str]
) -> pd.DataFrame:
    """Wide rows (one value per year) -> long rows, without a pandas melt of strings."""
    matrix = np.asarray(values, dtype=np.int64).reshape(len(values), len(years))
    n_rows, n_years = matrix.shape
    frame = {name: np.repeat(np.asarray(column, dtype=object), n_years) for name, column in keys.items()}
    frame["year"] = np.tile(np.asarray(years, dtype=np.int64), n_rows)
    frame["population"] = matrix.reshape(-1)
    long = pd.DataFrame(frame)
    for name in ("age", "year", "population"):
        if name in long.columns:
            long[name] = long[name].astype(np.int64)
    return long[columns]


# --- comunas 2002-2035 --------------------------------------------------------------------

_COMUNA_FIELDS = {"region": "Region", "comuna": "Comuna", "sex": "Sexo", "age": "Edad"}


def _comunas_long(rows: Iterable[Sequence[object]], snapshot: str | None) -> pd.DataFrame:
    rows = iter(rows)
    header = next(rows, None)
    if header is None:
        raise ParseError(SOURCE.id, "comunas file is empty", snapshot)
    positions, folded = _find_columns(header, _COMUNA_FIELDS, snapshot, "comunas")
    year_index = _year_columns(folded, r"poblacion (\d{4})")
    if not year_index:
        raise ParseError(SOURCE.id, "comunas header has no 'Poblacion <year>' columns", snapshot)
    years = sorted(year_index)
    keys: dict[str, list] = {"region_code": [], "comuna_code": [], "sex": [], "age": []}
    values: list[list[int]] = []
    seen: set[tuple[str, str, int]] = set()
    footer_started = False
    for line, row in enumerate(rows, start=2):
        cells = list(row) + [None] * (len(header) - len(row))
        if all(is_missing(cell) for cell in cells):
            continue
        if is_missing(cells[positions["comuna"]]) and is_missing(cells[positions["age"]]):
            footer_started = True  # INE ends the sheet with note rows: text in the first cell only
            continue
        if footer_started:
            raise ParseError(SOURCE.id, f"data row {line} follows the footer notes", snapshot)
        try:
            comuna = normalize_cut(cells[positions["comuna"]], "comuna")
            region = normalize_cut(cells[positions["region"]], "region")
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"row {line}: {exc}", snapshot) from exc
        sex = SEX_CODES.get(str(_integer(cells[positions["sex"]], f"row {line} Sexo", snapshot)))
        if sex is None:
            raise ParseError(
                SOURCE.id, f"row {line}: Sexo {cells[positions['sex']]!r} is not 1 or 2", snapshot
            )
        age = _integer(cells[positions["age"]], f"row {line} Edad", snapshot)
        if age > COMUNAS_TOP_AGE:
            raise ParseError(
                SOURCE.id, f"row {line}: Edad {age} above the top group {COMUNAS_TOP_AGE}", snapshot
            )
        if (comuna, sex, age) in seen:
            raise ParseError(SOURCE.id, f"row {line}: comuna {comuna} sex {sex} age {age} repeats", snapshot)
        seen.add((comuna, sex, age))
        keys["region_code"].append(region)
        keys["comuna_code"].append(comuna)
        keys["sex"].append(sex)
        keys["age"].append(age)
        values.append([_integer(cells[year_index[y]], f"row {line} Poblacion {y}", snapshot) for y in years])
    if not values:
        raise ParseError(SOURCE.id, "comunas file has no data rows", snapshot)
    return _long_frame(keys, years, values, COMUNA_COLUMNS)


def parse_comunas_xlsx(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """The INE comunas workbook, read in openpyxl's streaming read-only mode."""
    source = io.BytesIO(data) if isinstance(data, bytes) else Path(data)
    try:
        workbook = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException variants
        raise ParseError(SOURCE.id, f"comunas workbook cannot be opened ({exc})", snapshot) from exc
    try:
        return _comunas_long(workbook.worksheets[0].iter_rows(values_only=True), snapshot)
    finally:
        workbook.close()


def parse_comunas_csv(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """The same columns as CSV (UTF-8 or cp1252, comma)."""
    return _comunas_long(_csv_rows(data), snapshot)


def parse_comunas(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """xlsx or CSV, told apart by the zip magic bytes of the workbook. Columns `COMUNA_COLUMNS`."""
    if isinstance(data, bytes):
        head = data[:4]
    else:
        with Path(data).open("rb") as handle:
            head = handle.read(4)
    if head == b"PK\x03\x04":
        return parse_comunas_xlsx(data, snapshot)
    return parse_comunas_csv(data, snapshot)


# --- regions 2002-2035 --------------------------------------------------------------------


def parse_region_base(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """`Region,Sexo,Edad,a2002..a2035` -> `REGION_COLUMNS` (age 0..100)."""
    rows = _csv_rows(data)
    header = next(rows, None) or []
    positions, folded = _find_columns(
        header, {"region": "Region", "sex": "Sexo", "age": "Edad"}, snapshot, "region"
    )
    year_index = _year_columns(folded, r"a(\d{4})")
    if not year_index:
        raise ParseError(SOURCE.id, "region header has no 'a<year>' columns", snapshot)
    years = sorted(year_index)
    keys: dict[str, list] = {"region_code": [], "sex": [], "age": []}
    values = []
    for line, row in enumerate(rows, start=2):
        if not row or all(is_missing(cell) for cell in row):
            continue
        try:
            keys["region_code"].append(normalize_cut(row[positions["region"]], "region"))
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"row {line}: {exc}", snapshot) from exc
        sex = SEX_CODES.get(row[positions["sex"]].strip())
        if sex is None:
            raise ParseError(SOURCE.id, f"row {line}: Sexo {row[positions['sex']]!r} is not 1 or 2", snapshot)
        keys["sex"].append(sex)
        keys["age"].append(_integer(row[positions["age"]], f"row {line} Edad", snapshot))
        values.append([_integer(row[year_index[y]], f"row {line} a{y}", snapshot) for y in years])
    return _long_frame(keys, years, values, REGION_COLUMNS)


# --- country 1992-2050 by single age ------------------------------------------------------

_BLOCK_SEX = (("ambos", SEX_TOTAL), ("hombres", "M"), ("mujeres", "F"))


class _NationalBlocks:
    """The state of reading the national projection: the open block (its sex, years, age rows)."""

    def __init__(self, snapshot: str | None):
        self.snapshot = snapshot
        self.keys: dict[str, list] = {"sex": [], "age": []}
        self.values: list[list[int]] = []
        self.sex: str | None = None
        self.years: list[int] = []
        self.block_rows: list[list[int]] = []
        self.block_years: set[tuple[int, ...]] = set()

    def fail(self, message: str):
        raise ParseError(SOURCE.id, message, self.snapshot)

    def number(self, cell: str, what: str) -> int:
        return _integer(cell, what, self.snapshot, thousands_dot=True)

    def read(self, line: int, cells: list[str]) -> None:
        first = fold_name(cells[0])
        if len(cells) == 1 and not first.isdigit():
            matches = [code for word, code in _BLOCK_SEX if word in first.split()]
            if len(matches) != 1 or self.sex is not None:
                self.fail(f"line {line}: unexpected block title {cells[0]!r}")
            self.sex, self.years, self.block_rows = matches[0], [], []
        elif self.sex is None:
            self.fail(f"line {line}: row {cells[0]!r} outside a titled block")
        elif first == "edad":
            self.years = [self.number(cell, f"line {line} year") for cell in cells[1:]]
        elif not self.years:
            self.fail(f"line {line}: row {cells[0]!r} before the EDAD header")
        elif first == "total":
            self.close([self.number(c, f"line {line} TOTAL") for c in cells[1:]], line)
        else:
            self.age_row(line, cells)

    def age_row(self, line: int, cells: list[str]) -> None:
        match = re.fullmatch(r"(\d+)\+?", cells[0])
        if not match or len(cells) - 1 != len(self.years):
            self.fail(f"line {line}: malformed age row {cells[0]!r}")
        counts = [self.number(c, f"line {line} age {cells[0]}") for c in cells[1:]]
        self.block_rows.append(counts)
        self.keys["sex"].append(self.sex)
        self.keys["age"].append(int(match.group(1)))
        self.values.append(counts)

    def close(self, total: list[int], line: int) -> None:
        """The block's TOTAL row must equal the sum of its ages, year by year."""
        if len(total) != len(self.years):
            self.fail(f"line {line}: TOTAL row has {len(total)} values for {len(self.years)} years")
        sums = np.asarray(self.block_rows, dtype=np.int64).sum(axis=0)
        wrong = [(y, int(s), t) for y, s, t in zip(self.years, sums, total, strict=True) if s != t]
        if wrong:
            y, s, t = wrong[0]
            self.fail(
                f"line {line}: block {self.sex} TOTAL for {y} is {t} but its ages add up to {s} "
                f"({len(wrong)} years disagree)"
            )
        self.block_years.add(tuple(self.years))
        self.sex = None


def parse_national_projection(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """The INE national single-age projection (three blocks) -> `NATIONAL_COLUMNS`.

    Each block's TOTAL row is checked against the sum of its ages, year by year.
    """
    blocks = _NationalBlocks(snapshot)
    for line, row in enumerate(_csv_rows(data, ";"), start=1):
        cells = [cell.strip() for cell in row]
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            blocks.read(line, cells)
    if blocks.sex is not None:
        blocks.fail(f"block {blocks.sex} has no TOTAL row")
    if len(blocks.block_years) != 1:
        blocks.fail(f"expected blocks over the same years, found {len(blocks.block_years)} sets")
    return _long_frame(blocks.keys, blocks.years, blocks.values, NATIONAL_COLUMNS)


# --- census 2017 by comuna and 5-year band (chilemapas) ----------------------------------

_CENSUS_SEX = {"hombres": "M", "mujeres": "F"}


def parse_census_2017_comunas(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """`codigo_comuna,edad,sexo,poblacion` with bands "0 a 4".."100 o mas" -> `CENSUS_COLUMNS`."""
    rows = _csv_rows(data)
    header = next(rows, None) or []
    fields = {"comuna": "codigo_comuna", "band": "edad", "sex": "sexo", "population": "poblacion"}
    positions, _ = _find_columns(header, fields, snapshot, "census")
    records = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            comuna = normalize_cut(row[positions["comuna"]], "comuna")
            group = age_band_to_group(row[positions["band"]])
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"row {line}: {exc}", snapshot) from exc
        sex = _CENSUS_SEX.get(row[positions["sex"]].strip().lower())
        if sex is None:
            raise ParseError(
                SOURCE.id, f"row {line}: sexo {row[positions['sex']]!r} is not hombres/mujeres", snapshot
            )
        records.append((comuna, sex, group, _integer(row[positions["population"]], f"row {line}", snapshot)))
    frame = pd.DataFrame(records, columns=["comuna_code", "sex", "age_group", "population"])
    frame = frame.groupby(["comuna_code", "sex", "age_group"], as_index=False, sort=True)["population"].sum()
    frame["year"] = 2017
    return frame[CENSUS_COLUMNS]
