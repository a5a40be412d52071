"""DEIS (MINSAL) deaths open data: one row per death, streamed and aggregated in DuckDB.

The official file is a zip holding one `;`-separated latin-1 CSV of several hundred MB
(869 MB for 1990-2023), so it is never loaded into pandas: the CSV member is extracted to
a temp file with a size cap, then DuckDB's `read_csv` (on a connection the caller passes)
scans it once and returns deaths by year x comuna of residence x sex x 5-year age group x
cause group, a few hundred thousand rows at most.

Traps handled (SOURCES.md section 2, PROVENANCE.md 4a):
- two layouts: old and weekly files have no header (27 columns, `ANO_DEF, ...`), newer
  ones a header `AÑO;FECHA_DEF;SEXO_NOMBRE;...;COD_COMUNA;...`; anything else is refused;
- comuna codes lost their leading zero (`2201`) -> 5 digits; `99999` (comuna ignorada) and
  empty codes are kept as `99999` so unknown residence is counted, never dropped; a code
  that is not a number (a name: swapped `COD_COMUNA`/`COMUNA` headers) is a ParseError
  naming it, never recoded to unknown;
- age is EDAD_CANT in the unit EDAD_TIPO (1 years, 2 months, 3 days, 4 hours; 0 or empty
  unknown) -> completed years, months/days/hours -> 0;
- ICD-9 before 1997, ICD-10 from 1997; for injury deaths the external cause is in DIAG2
  (both rules live in the cause-group reference file, see `sources.icd_groups`);
- SEXO_NOMBRE includes "Indeterminado", kept as sex `U`.

Output of every `aggregate_*` function (`DEATHS_COLUMNS`):
    year (int), comuna_code (str, 5 digits, '99999' unknown residence), sex ('M', 'F', 'U'),
    age_group (str, '0-4' .. '80+' or 'unknown'), cause_group (str), deaths (int).
A death appears once under `all_causes`, once under its chapter group (or `unmapped`) and
once under each specific group it belongs to; see the reference file for which is which.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin

import pandas as pd

from methods.mortality import age_band_to_group, sql_age_group
from sources import specs
from sources.archives import ArchiveLimits, open_member
from sources.base import Fetcher, FetchError, FetchRequest, ParseError, decode_text, fold_name
from sources.icd_groups import CauseGroups, load_cause_groups, sql_normalize_code

if TYPE_CHECKING:  # the connection is always the caller's; sources/ never opens one
    from duckdb import DuckDBPyConnection

SOURCE = specs.source("deis_deaths")

ENDPOINTS = specs.endpoints("deis_deaths")

DEATHS_COLUMNS = ["year", "comuna_code", "sex", "age_group", "cause_group", "deaths"]
UNKNOWN_COMUNA = "99999"
# The 1990-2023 CSV is 869 MB; leave room for a few more years.
DEATHS_ARCHIVE_LIMITS = ArchiveLimits(
    max_total_bytes=4 * 1024**3, max_member_bytes=4 * 1024**3, max_members=10
)

# Column names users assigned to the headerless files (SOURCES.md section 2), in order.
NO_HEADER_COLUMNS: tuple[str, ...] = (
    "ANO_DEF", "FECHA_DEF", "GLOSA_SEXO", "EDAD_TIPO", "EDAD_CANT",
    "CODIGO_COMUNA_RESIDENCIA", "GLOSA_COMUNA_RESIDENCIA", "GLOSA_REG_RES",
    "DIAG1", "CAPITULO_DIAG1", "GLOSA_CAPITULO_DIAG1", "CODIGO_GRUPO_DIAG1", "GLOSA_GRUPO_DIAG1",
    "CODIGO_CATEGORIA_DIAG1", "GLOSA_CATEGORIA_DIAG1", "CODIGO_SUBCATEGORIA_DIAG1", "GLOSA_SUBCATEGORIA_DIAG1",
    "DIAG2", "CAPITULO_DIAG2", "GLOSA_CAPITULO_DIAG2", "CODIGO_GRUPO_DIAG2", "GLOSA_GRUPO_DIAG2",
    "CODIGO_CATEGORIA_DIAG2", "GLOSA_CATEGORIA_DIAG2", "CODIGO_SUBCATEGORIA_DIAG2", "GLOSA_SUBCATEGORIA_DIAG2",
    "LUGAR_DEFUNCION",
)  # fmt: skip
# The header of newer releases: renamed first eight columns, the rest as above.
NEW_HEADER_COLUMNS: tuple[str, ...] = (
    "AÑO", "FECHA_DEF", "SEXO_NOMBRE", "EDAD_TIPO", "EDAD_CANT", "COD_COMUNA", "COMUNA", "NOMBRE_REGION",
) + NO_HEADER_COLUMNS[8:]  # fmt: skip

# Canonical field -> accepted header names (compared after `fold_name`). Every field is
# required except `year`/`date`, of which one is enough.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "year": ("AÑO", "ANO_DEF", "AÑO_DEF"),
    "date": ("FECHA_DEF",),
    "sex": ("SEXO_NOMBRE", "GLOSA_SEXO"),
    "age_unit": ("EDAD_TIPO",),
    "age_value": ("EDAD_CANT",),
    "comuna": ("COD_COMUNA", "CODIGO_COMUNA_RESIDENCIA"),
    "diag1": ("DIAG1",),
    "diag2": ("DIAG2",),
}

WEEKLY_ZIP_PATTERN = re.compile(
    r"[^\s\"'<>()]*DEFUNCIONES_FUENTE_DEIS_(\d{4})_(\d{4})_(\d{2})(\d{2})(\d{4})\.zip", re.IGNORECASE
)


# --- requests -----------------------------------------------------------------------------


def official_request(endpoints: dict[str, str] = ENDPOINTS) -> FetchRequest:
    """The official-figures zip (CIFRAS_OFICIALES), the default series for rates."""
    return FetchRequest(name="deaths-official", url=endpoints["official_zip"], expect="zip")


def open_data_page_request(endpoints: dict[str, str] = ENDPOINTS) -> FetchRequest:
    return FetchRequest(name="open-data-page", url=endpoints["open_data_page"], expect="html")


def find_weekly_zip_url(html: str, page_url: str) -> str | None:
    """The newest `DEFUNCIONES_FUENTE_DEIS_{y0}_{y1}_{DDMMYYYY}.zip` linked from a page.

    Newest by the date in the name (then by the last year covered); links are resolved
    against `page_url`. Names whose date is not a real date are ignored.
    """
    best: tuple[date, int, str] | None = None
    for match in WEEKLY_ZIP_PATTERN.finditer(unquote(html)):
        _, last_year, day, month, year = (int(g) for g in match.groups())
        try:
            published = date(year, month, day)
        except ValueError:
            continue
        candidate = (published, last_year, urljoin(page_url, match.group(0)))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def weekly_request(fetcher: Fetcher, endpoints: dict[str, str] = ENDPOINTS) -> FetchRequest:
    """Fetch the open-data page and return the request for the newest weekly zip it links."""
    page_request = open_data_page_request(endpoints)
    payload = fetcher.fetch(SOURCE, page_request)
    url = find_weekly_zip_url(decode_text(payload.content, SOURCE.id), page_request.url)
    if url is None:
        raise FetchError(
            SOURCE.id,
            f"no DEFUNCIONES_FUENTE_DEIS_<y0>_<y1>_<DDMMYYYY>.zip link on {page_request.url}",
            payload.snapshot_id,
        )
    return FetchRequest(name="deaths-weekly", url=url, expect="zip")


# --- archive ------------------------------------------------------------------------------


def extract_deaths_csv(
    archive: bytes | Path,
    dest_dir: Path,
    *,
    limits: ArchiveLimits = DEATHS_ARCHIVE_LIMITS,
    snapshot: str | None = None,
) -> Path:
    """Stream the single CSV member of a DEIS zip to `dest_dir/deis_deaths.csv`.

    Uses the shared safe unpacking (`sources.archives`): the whole archive is checked, the
    member name is never used as a path, and copying stops past the caps.
    """
    target = Path(dest_dir) / "deis_deaths.csv"
    with open_member(SOURCE.id, archive, ".csv", limits, snapshot) as stream, target.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return target


# --- layout detection ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeathsLayout:
    """Where each canonical field is in a DEIS deaths CSV, and whether line 1 is a header."""

    has_header: bool
    n_columns: int
    positions: dict[str, int]
    delimiter: str = ";"
    encoding: str = "latin-1"


def read_first_line(path: Path, encoding: str, limit: int = 1 << 16) -> str:
    with Path(path).open("rb") as handle:
        head = handle.read(limit)
    line = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
    return line.decode(encoding, errors="replace")


def detect_layout(first_line: str, snapshot: str | None = None) -> DeathsLayout:
    """Header or no header, and the position of each field; ParseError naming what is missing."""
    cells = [cell.strip() for cell in next(csv.reader([first_line], delimiter=";"), [""])]
    folded = [fold_name(cell) for cell in cells]
    known = {fold_name(alias) for aliases in FIELD_ALIASES.values() for alias in aliases}
    if any(cell in known for cell in folded):
        positions = {}
        for field, aliases in FIELD_ALIASES.items():
            wanted = {fold_name(alias) for alias in aliases}
            hits = [i for i, cell in enumerate(folded) if cell in wanted]
            if hits:
                positions[field] = hits[0]
        missing = [aliases[0] for field, aliases in FIELD_ALIASES.items() if field not in positions]
        if "year" in positions or "date" in positions:
            missing = [name for name in missing if name not in ("AÑO", "FECHA_DEF")]
        if missing:
            raise ParseError(
                SOURCE.id,
                f"deaths header lacks required columns {missing} (header: {';'.join(cells)})",
                snapshot,
            )
        return DeathsLayout(True, len(cells), positions)
    looks_like_data = re.fullmatch(r"\d{4}", cells[0]) or (
        len(cells) > 1 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[1])
    )
    if looks_like_data:
        if len(cells) != len(NO_HEADER_COLUMNS):
            raise ParseError(
                SOURCE.id,
                f"headerless deaths file has {len(cells)} columns, expected {len(NO_HEADER_COLUMNS)}",
                snapshot,
            )
        index = {name: i for i, name in enumerate(NO_HEADER_COLUMNS)}
        positions = {
            field: next(index[a] for a in aliases if a in index)
            for field, aliases in FIELD_ALIASES.items()
            if any(a in index for a in aliases)
        }
        return DeathsLayout(False, len(cells), positions)
    raise ParseError(
        SOURCE.id,
        f"first line is neither a known deaths header nor a data row: {first_line[:200]!r}",
        snapshot,
    )


# --- aggregation --------------------------------------------------------------------------


def _read_csv_sql(n_columns: int, has_header: bool, delimiter: str, encoding: str) -> str:
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_columns))
    return (
        f"read_csv($path, delim='{delimiter}', header=false, skip={1 if has_header else 0}, "
        f"columns={{{columns}}}, encoding='{encoding}', quote='\"', escape='\"', auto_detect=false)"
    )


INVALID_CODE = "invalid:"  # prefix of a comuna cell that is not a code, refused after the scan


def _sql_comuna(column: str) -> str:
    """5-digit code; blank is DEIS's unknown residence (99999); anything else is kept to be refused."""
    code = f"trim({column})"
    return (
        f"(CASE WHEN coalesce({code}, '') = '' THEN '{UNKNOWN_COMUNA}' "
        f"WHEN regexp_full_match({code}, '[0-9]{{1,5}}') THEN lpad({code}, 5, '0') "
        f"ELSE '{INVALID_CODE}' || left({code}, 40) END)"
    )


def _sql_sex(column: str) -> str:
    return (
        f"(CASE upper(trim({column})) WHEN 'HOMBRE' THEN 'M' WHEN '1' THEN 'M' "
        f"WHEN 'MUJER' THEN 'F' WHEN '2' THEN 'F' ELSE 'U' END)"
    )


def _records_select(
    *, year: str, comuna: str, sex: str, age: str, diag1: str, diag2: str, reader: str
) -> str:
    """One normalised row per death: year, comuna_code, sex, age_group, diag1, diag2.

    Every argument is SQL this module wrote from column positions and constants; the file
    path is bound as `$path`, so no value read from a payload reaches the SQL text.
    """
    return (
        f"SELECT {year} AS year, {_sql_comuna(comuna)} AS comuna_code, {_sql_sex(sex)} AS sex, "  # noqa: S608
        f"{sql_age_group(age)} AS age_group, {diag1} AS diag1, {diag2} AS diag2 FROM {reader}"
    )


def _records_sql(layout: DeathsLayout) -> str:
    col = {field: f"c{i}" for field, i in layout.positions.items()}
    year_parts = []
    if "year" in col:
        year_parts.append(f"try_cast(trim({col['year']}) AS INTEGER)")
    if "date" in col:
        year_parts.append(f"year(try_cast(trim({col['date']}) AS DATE))")
    value = f"try_cast(trim({col['age_value']}) AS INTEGER)"
    age = (
        f"(CASE trim({col['age_unit']}) WHEN '1' THEN (CASE WHEN {value} BETWEEN 0 AND 130 THEN {value} END) "
        f"WHEN '2' THEN 0 WHEN '3' THEN 0 WHEN '4' THEN 0 END)"
    )
    return _records_select(
        year=f"coalesce({', '.join(year_parts)})",
        comuna=col["comuna"],
        sex=col["sex"],
        age=age,
        diag1=col["diag1"],
        diag2=col["diag2"],
        reader=_read_csv_sql(layout.n_columns, layout.has_header, layout.delimiter, layout.encoding),
    )


def _run(con: DuckDBPyConnection, sql: str, path: Path, snapshot: str | None):
    try:
        return con.execute(sql, {"path": str(path)})
    except Exception as exc:  # duckdb.Error subclasses; sources/ does not import duckdb
        raise ParseError(SOURCE.id, f"DuckDB could not read {Path(path).name}: {exc}", snapshot) from exc


def _aggregate(
    con: DuckDBPyConnection, records_sql: str, path: Path, groups: CauseGroups, snapshot: str | None
) -> pd.DataFrame:
    """Group normalised death records into `DEATHS_COLUMNS` in one scan of the file."""
    revision = groups.sql_revision("year")
    cause = groups.sql_underlying_code("revision", "diag1", "diag2")
    flags = groups.sql_specific_flags("revision", "cause_code")
    flag_columns = "".join(f", {sql} AS is_{gid}" for gid, sql in flags.items())
    keys = "year, comuna_code, sex, age_group"
    # (group label, filter): all causes, the chapter of each death, then each specific group.
    outputs = [(f"'{groups.total.id}'", "TRUE"), ("chapter", "TRUE")] + [(f"'{g}'", f"is_{g}") for g in flags]
    selects = [
        f"SELECT {keys}, {label} AS cause_group, sum(deaths) AS deaths FROM counted WHERE {where} GROUP BY ALL"  # noqa: S608
        for label, where in outputs
    ]
    sql = f"""
        WITH records AS ({records_sql}),
        coded AS (
            SELECT {keys}, {revision} AS revision,
                   {sql_normalize_code("diag1")} AS diag1, {sql_normalize_code("diag2")} AS diag2
            FROM records),
        caused AS (SELECT {keys}, revision, {cause} AS cause_code FROM coded),
        counted AS MATERIALIZED (
            SELECT {keys}, {groups.sql_chapter("revision", "cause_code")} AS chapter{flag_columns},
                   count(*) AS deaths
            FROM caused GROUP BY ALL)
        {" UNION ALL ".join(selects)}
        ORDER BY year, comuna_code, sex, age_group, cause_group
    """  # noqa: S608 - built from the reference file's validated codes, see _records_select
    frame = _run(con, sql, path, snapshot).df()
    if frame["year"].isna().any():
        bad = int(frame.loc[frame["year"].isna() & (frame["cause_group"] == groups.total.id), "deaths"].sum())
        raise ParseError(SOURCE.id, f"{bad} deaths have neither a year nor a parseable date", snapshot)
    _refuse_invalid_codes(frame, groups, snapshot)
    frame["year"] = frame["year"].astype("int64")
    frame["deaths"] = frame["deaths"].astype("int64")
    return frame[DEATHS_COLUMNS]


def _refuse_invalid_codes(frame: pd.DataFrame, groups: CauseGroups, snapshot: str | None) -> None:
    """A comuna of residence that is not a code is an error, counted and named, never 'unknown'."""
    totals = frame[frame["cause_group"] == groups.total.id]
    bad = totals[totals["comuna_code"].str.startswith(INVALID_CODE)]
    if bad.empty:
        return
    by_value = bad.groupby("comuna_code")["deaths"].sum().sort_values(ascending=False)
    examples = ", ".join(f"{code[len(INVALID_CODE) :]!r} ({n})" for code, n in by_value.head(5).items())
    raise ParseError(
        SOURCE.id,
        f"{int(by_value.sum())} of {int(totals['deaths'].sum())} deaths have a comuna of residence that is not "
        f"a comuna code, e.g. {examples}: the comuna code column holds something else (swapped headers?)",
        snapshot,
    )


def aggregate_deaths_csv(
    con: DuckDBPyConnection, csv_path: Path, groups: CauseGroups | None = None, snapshot: str | None = None
) -> pd.DataFrame:
    """Deaths by year x comuna x sex x age group x cause group from an extracted DEIS CSV.

    `con` is a DuckDB connection owned by the caller (its memory_limit/threads apply).
    """
    groups = groups or load_cause_groups()
    layout = detect_layout(read_first_line(csv_path, "latin-1"), snapshot)
    return _aggregate(con, _records_sql(layout), csv_path, groups, snapshot)


def aggregate_deaths_zip(
    con: DuckDBPyConnection,
    archive: bytes | Path,
    groups: CauseGroups | None = None,
    *,
    work_dir: Path | None = None,
    limits: ArchiveLimits = DEATHS_ARCHIVE_LIMITS,
    snapshot: str | None = None,
) -> pd.DataFrame:
    """`aggregate_deaths_csv` on the CSV inside a DEIS zip; the extracted copy is deleted after."""
    scratch = Path(tempfile.mkdtemp(prefix="deis_deaths_", dir=work_dir))
    try:
        csv_path = extract_deaths_csv(archive, scratch, limits=limits, snapshot=snapshot)
        return aggregate_deaths_csv(con, csv_path, groups, snapshot)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the COVID-cause extract (PROVENANCE 4a) ----------------------------------------------

COVID_EXTRACT_FIELDS: dict[str, str] = {
    "year": "año",
    "date": "fecha",
    "sex": "género",
    "age_band": "edad",
    "comuna": "comuna_código",
    "diag1": "código_detalle",
}


def _check_age_bands(bands: list[str], snapshot: str | None) -> None:
    """Refuse age bands that cannot be put in one of our age groups."""
    bad = []
    for band in bands:
        try:
            age_band_to_group(band)
        except ValueError:
            bad.append(band)
    if bad:
        raise ParseError(SOURCE.id, f"age bands {bad} do not fit the 5-year groups", snapshot)


def aggregate_covid_extract(
    con: DuckDBPyConnection, csv_path: Path, groups: CauseGroups | None = None, snapshot: str | None = None
) -> pd.DataFrame:
    """The DEIS COVID-cause extract (UTF-8, comma, accented header, age bands) -> `DEATHS_COLUMNS`.

    Its traps stand in for the full file's: 4-digit comuna codes, `99999`/"Ignorada"
    residence, age as bands ("< 1", "1 a 4", "90 a 99", "100 +"), ICD-10 codes with a dot.
    """
    groups = groups or load_cause_groups()
    cells = [c.strip() for c in next(csv.reader([read_first_line(csv_path, "utf-8")]), [""])]
    folded = [fold_name(c) for c in cells]
    positions, missing = {}, []
    for field, name in COVID_EXTRACT_FIELDS.items():
        if fold_name(name) in folded:
            positions[field] = folded.index(fold_name(name))
        else:
            missing.append(name)
    if missing:
        raise ParseError(SOURCE.id, f"COVID extract header lacks columns {missing}", snapshot)
    col = {field: f"c{i}" for field, i in positions.items()}
    reader = _read_csv_sql(len(cells), True, ",", "utf-8")
    rows = _run(con, f"SELECT DISTINCT {col['age_band']} FROM {reader}", csv_path, snapshot).fetchall()  # noqa: S608
    _check_age_bands([row[0] for row in rows if row[0] is not None], snapshot)
    band = f"trim({col['age_band']})"
    records = _records_select(
        year=f"coalesce(try_cast(trim({col['year']}) AS INTEGER), year(try_cast(trim({col['date']}) AS DATE)))",
        comuna=col["comuna"],
        sex=col["sex"],
        age=f"(CASE WHEN {band} LIKE '<%' THEN 0 ELSE try_cast(regexp_extract({band}, '^([0-9]+)', 1) AS INTEGER) END)",
        diag1=col["diag1"],
        diag2="CAST(NULL AS VARCHAR)",
        reader=reader,
    )
    return _aggregate(con, records, csv_path, groups, snapshot)
