"""INE's 2024 Census microdata (dwellings and persons), streamed through DuckDB into small cubes.

The files are large (`personas_censo2024.csv` is 2.3 GB for 18,480,432 persons, `viviendas`
426 MB for 7,664,466 dwellings; `;`-separated ASCII, also published as Parquet), shipped as
zips (`https://storage.googleapis.com/bktdescargascenso2024/{personas,viviendas}_censo2024.zip`).
They never reach pandas: the member is extracted under the size caps of `sources.archives`,
DuckDB (on a connection the caller passes, see `warehouse.db.scan`) reads only the columns
used and groups them to comuna x area x sex x code, a few tens of thousands of rows.

The data dictionary decides the codes (PROVENANCE_new_families.md 4b): `parse_dictionary`
reads INE's layout (`Entidad,Nombre variable,Descripción de la variable,Valor,Etiqueta de
categoría,Rango,Universo,Conteo`, CRLF records with bare-LF line breaks inside quoted cells,
trailing empty columns, NBSP, `"7,664,466"` counts, codes such as `\\nB`). Where it leaves a
`Valor` empty (water source codes 3 and 4), the missing codes of its `Rango` are assigned in
the order the rows are listed. `check_codes` refuses any code outside the dictionary, by
variable and code; `count_mismatches` compares each code's count with the dictionary's
`Conteo`, which a complete census file reproduces exactly (a sample, a truncated or a doubled
file does not).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import openpyxl
import pandas as pd

from sources import specs
from sources.archives import ArchiveLimits, check_archive, find_member, open_member
from sources.base import FetchRequest, ParseError, decode_text

if TYPE_CHECKING:  # the connection is always the caller's; sources/ never opens one
    from duckdb import DuckDBPyConnection

SOURCE = specs.source("ine_censo2024_microdata")

ENDPOINTS = specs.endpoints("ine_censo2024_microdata")
ARCHIVE_LIMITS = ArchiveLimits(max_total_bytes=8 * 1024**3, max_member_bytes=6 * 1024**3, max_members=20)
NULL_CODES = ("NA", "")  # "No aplica" in the CSV; Parquet has real nulls


@dataclass(frozen=True)
class Entity:
    """One microdata file: its dictionary entity, the member to read and the variables we use."""

    name: str
    dictionary_entity: str
    member: str
    variables: tuple[str, ...]
    text_variables: tuple[str, ...] = ()


DWELLINGS = Entity(
    "viviendas",
    "Vivienda",
    "viviendas_censo2024",
    ("region", "provincia", "comuna", "area", "p6_fuente_agua"),
)
PERSONS = Entity(
    "personas",
    "Persona",
    "personas_censo2024",
    ("region", "provincia", "comuna", "area", "sexo", "sit_fuerza_trabajo", "cod_caenes"),
    text_variables=("cod_caenes",),
)
ENTITIES = (DWELLINGS, PERSONS)
# Variables whose values are territory codes: checked against the division, not a code list.
TERRITORY_VARIABLES = ("region", "provincia", "comuna")
COUNT = "records"


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    return [
        FetchRequest(name="dictionary", url=endpoints["dictionary"], expect="any"),
        FetchRequest(name="viviendas", url=endpoints["viviendas"], expect="zip"),
        FetchRequest(name="personas", url=endpoints["personas"], expect="zip"),
    ]


# --- the data dictionary -------------------------------------------------------------------

DICTIONARY_HEADER = ("Entidad", "Nombre variable", "Valor", "Etiqueta de categoría", "Rango", "Conteo")
DICTIONARY_COLUMNS = ["entity", "variable", "code", "label", "count", "code_range", "inferred"]
_RANGE = re.compile(r"^(-?\d+):(-?\d+)$")


def _dictionary_rows(content: bytes, snapshot: str | None) -> list[list[str]]:
    if content[:2] == b"PK":
        try:
            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several exception types for a bad workbook
            raise ParseError(SOURCE.id, f"dictionary workbook is not readable ({exc})", snapshot) from exc
        rows = []
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                rows.append(["" if cell is None else str(cell) for cell in row])
        book.close()
        return rows
    return list(csv.reader(io.StringIO(decode_text(content, SOURCE.id), newline="")))


def parse_dictionary(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """Every (entity, variable, code) the dictionary lists, with its label and count (`DICTIONARY_COLUMNS`)."""
    rows = _dictionary_rows(content, snapshot)
    records: list[dict] = []
    at: dict[str, int] | None = None
    variable = ""
    for row in rows:
        cells = [cell.replace("\xa0", " ").strip() for cell in row]
        if cells[:2] == ["Entidad", "Nombre variable"]:
            missing = [name for name in DICTIONARY_HEADER if name not in cells]
            if missing:
                raise ParseError(SOURCE.id, f"dictionary header lacks {missing}: {cells[:9]}", snapshot)
            at = {name: cells.index(name) for name in DICTIONARY_HEADER}
            continue
        if at is None or not any(cells):
            continue
        variable = cells[at["Nombre variable"]] or variable
        count = cells[at["Conteo"]].replace(",", "")
        records.append(
            {
                "entity": cells[at["Entidad"]],
                "variable": variable,
                "code": cells[at["Valor"]],
                "label": cells[at["Etiqueta de categoría"]],
                "count": int(count) if count.isdigit() else None,
                "code_range": " ".join(cells[at["Rango"]].split()),
            }
        )
    if at is None:
        raise ParseError(SOURCE.id, "no dictionary header (Entidad, Nombre variable, ...) found", snapshot)
    frame = pd.DataFrame(records)
    return _infer_missing_codes(frame, snapshot)[DICTIONARY_COLUMNS]


def _infer_missing_codes(frame: pd.DataFrame, snapshot: str | None) -> pd.DataFrame:
    """Give rows with an empty `Valor` the codes of their `Rango` that no row lists, in order."""
    frame = frame.assign(inferred=False)
    for (entity, variable), rows in frame.groupby(["entity", "variable"], sort=False):
        empty = rows.index[rows["code"] == ""]
        if empty.empty:
            continue
        match = _RANGE.match(rows["code_range"].iloc[0].split(";")[0].strip())
        listed = set(rows["code"])
        free = (
            [str(c) for c in range(int(match[1]), int(match[2]) + 1) if str(c) not in listed] if match else []
        )
        if len(free) != len(empty):
            raise ParseError(
                SOURCE.id,
                f"dictionary {entity}.{variable}: {len(empty)} categories without a code and "
                f"{len(free)} unlisted codes in its range {rows['code_range'].iloc[0]!r}",
                snapshot,
            )
        frame.loc[empty, "code"] = free
        frame.loc[empty, "inferred"] = True
    return frame


def allowed_codes(
    dictionary: pd.DataFrame, entity: Entity, variable: str
) -> tuple[set[str], list[tuple[int, int]]]:
    """(listed codes, numeric ranges) of one variable; 'NA' stands for a missing value."""
    rows = dictionary[
        (dictionary["entity"] == entity.dictionary_entity) & (dictionary["variable"] == variable)
    ]
    codes, ranges = set(), []
    for code in rows["code"]:
        match = _RANGE.match(code)
        if match:
            ranges.append((int(match[1]), int(match[2])))
        else:
            codes.add(code)
    return codes, ranges


# --- reading the files ------------------------------------------------------------------------


@contextmanager
def member_file(
    archive: bytes | Path, entity: Entity, work_dir: Path | None, snapshot: str | None
) -> Iterator[Path]:
    """The entity's CSV or Parquet member, extracted under the caps to a temporary file (removed after)."""
    members = check_archive(SOURCE.id, archive, ARCHIVE_LIMITS, snapshot)
    names = [m.filename for m in members if not m.is_dir()]
    suffix = next(
        (s for s in (".parquet", ".csv") if any(n.lower().endswith(entity.member + s) for n in names)), None
    )
    if suffix is None:
        raise ParseError(
            SOURCE.id,
            f"{entity.name} archive has no {entity.member}.csv or .parquet (members: {names})",
            snapshot,
        )
    find_member(SOURCE.id, members, f"{entity.member}{suffix}", snapshot)
    scratch = Path(tempfile.mkdtemp(prefix=f"censo2024_{entity.name}_", dir=work_dir))
    target = scratch / f"{entity.member}{suffix}"
    try:
        with open_member(SOURCE.id, archive, f"{entity.member}{suffix}", ARCHIVE_LIMITS, snapshot) as stream:
            with target.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        yield target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def csv_header(path: Path, snapshot: str | None) -> list[str]:
    with Path(path).open("rb") as handle:
        line = handle.read(1 << 16).removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
    return [name.strip().strip('"') for name in line.decode("ascii", errors="replace").split(";")]


def _reader(path: Path, entity: Entity, snapshot: str | None) -> str:
    """The DuckDB table function for the file, typing only the columns used (path bound as $path)."""
    if path.suffix == ".parquet":
        return "read_parquet($path)"
    header = csv_header(path, snapshot)
    missing = [v for v in entity.variables if v not in header]
    if missing:
        raise ParseError(
            SOURCE.id, f"{entity.name} file lacks column(s) {missing} (header: {header[:12]}...)", snapshot
        )
    types = {v: ("VARCHAR" if v in entity.text_variables else "INTEGER") for v in entity.variables}
    columns = ", ".join(f"'{name}': '{types.get(name, 'VARCHAR')}'" for name in header)
    nulls = ", ".join(f"'{code}'" for code in NULL_CODES)
    return (
        f"read_csv($path, delim=';', header=true, auto_detect=false, columns={{{columns}}}, "
        f"nullstr=[{nulls}], quote='\"')"
    )


def aggregate(
    con: DuckDBPyConnection, path: Path, entity: Entity, snapshot: str | None = None
) -> pd.DataFrame:
    """Records grouped by every variable of the entity, in one DuckDB scan: one row per distinct
    combination of codes, with the count in `records`. Text codes are trimmed (`\\nB` -> `B`)."""
    if not all(re.fullmatch(r"[a-z0-9_]+", v) for v in entity.variables):
        raise ValueError(f"unexpected variable names in {entity.variables}")
    select = ", ".join(
        f"nullif(trim(CAST({v} AS VARCHAR)), '') AS {v}" if v in entity.text_variables else v
        for v in entity.variables
    )
    sql = f"SELECT {select}, count(*) AS {COUNT} FROM {_reader(path, entity, snapshot)} GROUP BY ALL"  # noqa: S608 - names checked above
    try:
        frame = con.execute(sql, {"path": str(path)}).df()
    except Exception as exc:  # duckdb.Error subclasses; sources/ does not import duckdb
        raise ParseError(
            SOURCE.id, f"DuckDB could not read the {entity.name} file {path.name}: {exc}", snapshot
        ) from exc
    frame[COUNT] = frame[COUNT].astype("int64")
    return frame


def aggregate_archive(
    con: DuckDBPyConnection,
    archive: bytes | Path,
    entity: Entity,
    *,
    work_dir: Path | None = None,
    snapshot: str | None = None,
) -> pd.DataFrame:
    """`aggregate` on the member inside a microdata zip; the extracted copy is deleted after."""
    with member_file(archive, entity, work_dir, snapshot) as path:
        return aggregate(con, path, entity, snapshot)


# --- the dictionary decides -----------------------------------------------------------------


def _code_text(value) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "NA"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_codes(
    cube: pd.DataFrame, dictionary: pd.DataFrame, entity: Entity, snapshot: str | None = None
) -> None:
    """Refuse any code outside the dictionary, naming the variable, the codes and how many records carry them."""
    problems = []
    for variable in entity.variables:
        codes, ranges = allowed_codes(dictionary, entity, variable)
        if not codes and not ranges:
            problems.append(f"{variable}: not in the dictionary")
            continue
        counts = cube.groupby(cube[variable].map(_code_text), dropna=False)[COUNT].sum()
        bad = {
            code: int(n)
            for code, n in counts.items()
            if code not in codes
            and not (code.lstrip("-").isdigit() and any(lo <= int(code) <= hi for lo, hi in ranges))
        }
        if bad:
            problems.append(
                f"{variable} code(s) {dict(sorted(bad.items()))} (records) outside the dictionary"
            )
    if problems:
        raise ParseError(SOURCE.id, f"{entity.name}: " + "; ".join(problems), snapshot)


def count_mismatches(cube: pd.DataFrame, dictionary: pd.DataFrame, entity: Entity) -> list[str]:
    """Codes whose record count differs from the dictionary's `Conteo` (a complete file has none)."""
    found = []
    rows = dictionary[dictionary["entity"] == entity.dictionary_entity]
    total = int(cube[COUNT].sum())
    for variable in entity.variables:
        listed = rows[(rows["variable"] == variable) & rows["count"].notna()]
        counts = cube.groupby(cube[variable].map(_code_text), dropna=False)[COUNT].sum()
        for code, expected in zip(listed["code"], listed["count"], strict=True):
            actual = total if _RANGE.match(code) else int(counts.get(code, 0))
            if actual != int(expected):
                found.append(f"{variable}={code}: {actual:,} records, dictionary {int(expected):,}")
    return found


def check_territory_codes(cube: pd.DataFrame, entity: Entity, snapshot: str | None = None) -> None:
    """comuna 2201 lies in province 22 and region 2; a record that disagrees means shifted columns."""
    comuna = cube["comuna"].astype("Int64")
    wrong = cube[
        (comuna // 100 != cube["provincia"].astype("Int64"))
        | (comuna // 1000 != cube["region"].astype("Int64"))
    ]
    if not wrong.empty:
        example = wrong[["region", "provincia", "comuna"]].drop_duplicates().head(3).to_dict("records")
        raise ParseError(
            SOURCE.id,
            f"{entity.name}: {int(wrong[COUNT].sum())} record(s) whose comuna is not in their province/region: {example}",
            snapshot,
        )
