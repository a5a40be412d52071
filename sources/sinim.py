"""SINIM (SUBDERE) municipal finance: the AJAX data service, its long extract and its spreadsheet export.

SINIM has no documented API. Its web form talks to three PHP scripts with form-encoded POSTs
and `X-Requested-With: XMLHttpRequest` (SOURCES.md §4, after bastianolea/sinim_municipal_genero
`funciones.R`): the variable catalogue, the municipality list, and one value per
variable × period × municipality. Money is in thousands of nominal CLP (`M$`). A value SINIM never
received from the municipality is written "No Recepcionado": that is *missing*, never zero.

Every parser here returns the same long frame (`LONG_COLUMNS`):

    comuna_code     str    5-digit CUT, zero-padded ("02201")
    municipality    str    name as SINIM writes it ("CALAMA")
    year            int    calendar year
    variable_code   str    the code the product uses: the catalogue `id_dato` ("3754") for the
                           data service and the long extract; the mnemonic ("FCM001") for the
                           spreadsheet export, which does not carry `id_dato`
    variable_label  str    SINIM's label, whitespace-trimmed
    unit            str    SINIM's unit symbol, trimmed, with "Nº" folded into "N°" (two glyphs,
                           one unit); "M$" = thousands of nominal CLP
    value           float  null unless value_status is "ok"
    value_status    str    "ok" | "not_received" ("No Recepcionado") | "missing" (blank)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sources import specs
from sources.base import (
    Fetcher,
    FetchRequest,
    ParseError,
    Payload,
    decode_text,
    normalize_cut,
    parse_number,
)
from sources.spreadsheetml import read_spreadsheetml_rows

SOURCE = specs.source("sinim")

ENDPOINTS = specs.endpoints("sinim")

# The data service answers only what looks like its own page's AJAX calls (headers in the spec).
AJAX_HEADERS = specs.spec(SOURCE.id).request_headers


@dataclass(frozen=True)
class Variable:
    code: str  # catalogue `id_dato`
    key: str  # our short name
    label: str  # SINIM's label, as in the 2019-2023 extract


# The finance variables the lens needs, by catalogue id (labels as in the real extract, PROVENANCE §6a).
FINANCE_VARIABLES: tuple[Variable, ...] = (
    Variable("880", "fcm_income", "Ingresos por Fondo Común Municipal"),
    Variable("879", "own_permanent_income_ipp", "Ingresos Propios Permanentes (IPP)"),
    Variable("1110", "total_income", "Ingresos Municipales (Ingreso Total Percibido)"),
    Variable("3754", "mining_concession_fees", "Patentes Mineras Ley Nº19.143."),
    Variable(
        "1272", "fcm_dependence_pct", "Dependencia del Fondo Común Municipal sobre los Ingresos Propios"
    ),
)

LONG_COLUMNS = [
    "comuna_code",
    "municipality",
    "year",
    "variable_code",
    "variable_label",
    "unit",
    "value",
    "value_status",
]

NOT_RECEIVED = "No Recepcionado"
UNIT_ALIASES = {"Nº": "N°"}  # U+00BA (ordinal) and U+00B0 (degree) are both used for "número"
FIRST_PERIOD_YEAR = 2001  # period code 2; code = year - 1999
# municipio[] ids the public client sends to list every municipality (bastianolea, funciones.R).
DEFAULT_MUNICIPALITY_IDS = tuple(range(180, 701))


def period_code(year: int) -> int:
    """SINIM's period code for a calendar year (2001 -> 2, 2023 -> 24)."""
    if year < FIRST_PERIOD_YEAR:
        raise ValueError(f"SINIM periods start in {FIRST_PERIOD_YEAR}, not {year}")
    return year - 1999


def normalize_unit(unit: str | None) -> str:
    text = (unit or "").strip()
    return UNIT_ALIASES.get(text, text)


_CHILEAN_NUMBER = re.compile(r"-?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?")


def classify_value(raw: object, *, chilean_format: bool) -> tuple[float | None, str]:
    """(value, value_status) for one SINIM cell; "No Recepcionado" is not_received, blank is missing.

    `chilean_format` reads "1.532.715" and "42,31" (the data service's formatted text);
    otherwise the text is a plain float ("1532715.0", as in the extract).
    """
    if raw is None:
        return None, "missing"
    if isinstance(raw, str) and raw.strip().casefold() == NOT_RECEIVED.casefold():
        return None, "not_received"
    if isinstance(raw, str) and not raw.strip():
        return None, "missing"
    if chilean_format and isinstance(raw, str) and not _CHILEAN_NUMBER.fullmatch(raw.strip()):
        # "1532715.0" read the Chilean way would be 15,327,150: refuse rather than guess
        raise ValueError(f"{raw!r} is not a number written the Chilean way")
    value = parse_number(raw, decimal_comma=chilean_format, thousands_dot=chilean_format)
    if value is None:
        return None, "missing"
    return value, "ok"


# --- data service: requests -----------------------------------------------------------------


def catalogue_request(endpoint: str) -> FetchRequest:
    """POST for the whole variable catalogue (all areas, all subareas)."""
    return FetchRequest(
        name="sinim-catalogue",
        url=endpoint,
        expect="json",
        method="POST",
        data=[("dato_area[]", "T"), ("dato_subarea[]", "T")],
        headers=dict(AJAX_HEADERS),
    )


def municipalities_request(
    endpoint: str, municipality_ids: Iterable[int | str] = DEFAULT_MUNICIPALITY_IDS, region: str = "T"
) -> FetchRequest:
    """POST for the municipality list, which maps SINIM's `id_municipio` to the CUT (`idLegal`)."""
    data: list[tuple[str, object]] = [("region[]", region)]
    data += [("municipio[]", str(mid)) for mid in municipality_ids]
    data += [("limit", "5000"), ("campo", "id_legal"), ("orden", "ASC"), ("pagina", "1")]
    return FetchRequest(
        name="sinim-municipalities",
        url=endpoint,
        expect="json",
        method="POST",
        data=data,
        headers=dict(AJAX_HEADERS),
    )


def values_request(
    endpoint: str,
    variable_code: str,
    year: int,
    municipality_id: str,
    municipality: str,
    comuna_code: str,
    corrmon: bool = False,
    value_type: str = "I",
) -> FetchRequest:
    """POST for one variable × year × municipality.

    `corrmon=true` asks SINIM for monetary correction (real pesos); we ask for nominal values
    and deflate ourselves, so the conversion is on record. `value_type` is `mtro_datos_tipo`:
    "I" for indicators; the public client notes some count variables need "V".
    """
    key = f"variables[1][{variable_code}][0]"
    data = [
        (f"{key}[id_periodo]", str(period_code(year))),
        (f"{key}[mtro_datos_tipo]", value_type),
        ("municipios[0][id_municipio]", str(municipality_id)),
        ("municipios[0][municipio]", municipality),
        ("municipios[0][tipoCol]", "par"),
        ("municipios[0][idLegal]", comuna_code),
        ("pagina", "1"),
        ("corrmon", "true" if corrmon else "false"),
    ]
    return FetchRequest(
        name=f"sinim-values-{variable_code}-{year}-{comuna_code}",
        url=endpoint,
        expect="json",
        method="POST",
        data=data,
        headers=dict(AJAX_HEADERS),
    )


# --- data service: answers ------------------------------------------------------------------


def _answer_document(content: bytes, what: str, snapshot: str | None) -> object:
    """Decode a data-service answer, refusing the HTML pages and error objects it sends with HTTP 200."""
    text = decode_text(content, SOURCE.id).strip()
    if text[:1] == "<":
        preview = re.sub(r"\s+", " ", text[:120])
        raise ParseError(
            SOURCE.id, f"{what}: SINIM answered an HTML page instead of JSON ({preview!r})", snapshot
        )
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"{what}: answer is not JSON ({exc})", snapshot) from exc
    if isinstance(document, dict) and "error" in document:
        raise ParseError(SOURCE.id, f"{what}: SINIM answered an error: {document['error']!r}", snapshot)
    return document


def _textos(document: object, what: str, snapshot: str | None) -> list[dict]:
    if not isinstance(document, dict) or not isinstance(document.get("textos"), list):
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ParseError(
            SOURCE.id, f"{what}: expected an object with a 'textos' list, found {found}", snapshot
        )
    return document["textos"]


def _require_keys(record: dict, keys: Sequence[str], what: str, snapshot: str | None) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise ParseError(SOURCE.id, f"{what}: record lacks {missing} (has {sorted(record)})", snapshot)


def parse_catalogue(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """Variable catalogue: `{subarea name: [{id_dato, mtro_datos_nombre, unidad_medida_simbolo, ...}]}`.

    Columns: variable_code (str), variable_label, unit, area, subarea.
    """
    document = _answer_document(content, "catalogue", snapshot)
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise ParseError(SOURCE.id, "catalogue: expected an object of subarea -> list of variables", snapshot)
    rows = []
    for records in document.values():
        for record in records:
            _require_keys(
                record, ("id_dato", "mtro_datos_nombre", "unidad_medida_simbolo"), "catalogue", snapshot
            )
            rows.append(
                {
                    "variable_code": str(record["id_dato"]).strip(),
                    "variable_label": str(record["mtro_datos_nombre"]).strip(),
                    "unit": normalize_unit(record["unidad_medida_simbolo"]),
                    "area": str(record.get("nombre_area") or "").strip(),
                    "subarea": str(record.get("nombre_subarea") or "").strip(),
                }
            )
    if not rows:
        raise ParseError(SOURCE.id, "catalogue: no variables in the answer", snapshot)
    return pd.DataFrame(rows).drop_duplicates("variable_code").reset_index(drop=True)


def parse_municipalities(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """Municipality list `{"textos": [{id_municipio, municipio, idLegal}]}`.

    Columns: municipality_id (str, SINIM's internal id), municipality, comuna_code (5-digit CUT).
    """
    records = _textos(_answer_document(content, "municipalities", snapshot), "municipalities", snapshot)
    rows = []
    for record in records:
        _require_keys(record, ("id_municipio", "municipio", "idLegal"), "municipalities", snapshot)
        try:
            code = normalize_cut(record["idLegal"], "comuna")
        except ValueError as exc:
            raise ParseError(
                SOURCE.id, f"municipalities: bad idLegal {record['idLegal']!r}", snapshot
            ) from exc
        rows.append(
            {
                "municipality_id": str(record["id_municipio"]).strip(),
                "municipality": str(record["municipio"]).strip(),
                "comuna_code": code,
            }
        )
    if not rows:
        raise ParseError(SOURCE.id, "municipalities: empty list", snapshot)
    return pd.DataFrame(rows)


def parse_values(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """Value cells `{"textos": [{valor, col, classtype, municipio}]}` of one obtener_valores answer.

    `valor` is text in Chilean format ("1.532.715", "42,31") or "No Recepcionado".
    Columns: municipality, raw_value (str), value (float|None), value_status.
    """
    records = _textos(_answer_document(content, "values", snapshot), "values", snapshot)
    rows = []
    for record in records:
        _require_keys(record, ("valor", "municipio"), "values", snapshot)
        raw = record["valor"]
        try:
            value, status = classify_value(raw, chilean_format=True)
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"values: unreadable valor {raw!r}", snapshot) from exc
        rows.append(
            {
                "municipality": str(record["municipio"]).strip(),
                "raw_value": None if raw is None else str(raw),
                "value": value,
                "value_status": status,
            }
        )
    return pd.DataFrame(rows, columns=["municipality", "raw_value", "value", "value_status"])


def _wanted_municipalities(answer: Payload, comuna_codes: Sequence[str] | None) -> pd.DataFrame:
    """SINIM's municipality list, cut to the wanted comunas; a wanted comuna it lacks is an error."""
    municipalities = parse_municipalities(answer.content, answer.snapshot_id)
    if comuna_codes is None:
        return municipalities
    wanted = [normalize_cut(code, "comuna") for code in comuna_codes]
    absent = sorted(set(wanted) - set(municipalities["comuna_code"]))
    if absent:
        raise ParseError(
            SOURCE.id, f"comunas {absent} are not in SINIM's municipality list", answer.snapshot_id
        )
    return municipalities[municipalities["comuna_code"].isin(wanted)]


def _value_row(fetch, url: str, catalogue: pd.DataFrame, code: str, year: int, muni, corrmon: bool) -> dict:
    """One variable x year x municipality: its single cell, with the payload it came from."""
    request = values_request(
        url, code, year, muni.municipality_id, muni.municipality, muni.comuna_code, corrmon
    )
    answer = fetch(request)
    cells = parse_values(answer.content, answer.snapshot_id)
    if len(cells) != 1:
        raise ParseError(
            SOURCE.id,
            f"values for variable {code}, {year}, {muni.comuna_code}: expected one cell, got {len(cells)}",
            answer.snapshot_id,
        )
    cell = cells.iloc[0]
    return {
        "comuna_code": muni.comuna_code,
        "municipality": muni.municipality,
        "year": int(year),
        "variable_code": code,
        "variable_label": catalogue.at[code, "variable_label"],
        "unit": catalogue.at[code, "unit"],
        "value": cell["value"],
        "value_status": cell["value_status"],
        "snapshot_id": answer.snapshot_id,
    }


def fetch_values(
    fetcher: Fetcher,
    endpoints: dict[str, str],
    variable_codes: Sequence[str],
    years: Sequence[int],
    comuna_codes: Sequence[str] | None = None,
    corrmon: bool = False,
) -> tuple[pd.DataFrame, list[Payload]]:
    """Walk catalogue -> municipalities -> one value per variable × year × municipality.

    Returns the long frame (LONG_COLUMNS plus snapshot_id, the payload each value came from)
    and every payload fetched, for provenance. A variable missing from the catalogue, or a
    comuna missing from the municipality list, is an error, never a silent gap.
    """
    payloads: list[Payload] = []

    def fetch(request: FetchRequest) -> Payload:
        payload = fetcher.fetch(SOURCE, request)
        payloads.append(payload)
        return payload

    answer = fetch(catalogue_request(endpoints["catalogue"]))
    catalogue = parse_catalogue(answer.content, answer.snapshot_id).set_index("variable_code")
    unknown = [code for code in variable_codes if code not in catalogue.index]
    if unknown:
        raise ParseError(SOURCE.id, f"variables {unknown} are not in the SINIM catalogue", answer.snapshot_id)

    answer = fetch(municipalities_request(endpoints["municipalities"]))
    municipalities = _wanted_municipalities(answer, comuna_codes)
    rows = [
        _value_row(fetch, endpoints["values"], catalogue, code, year, muni, corrmon)
        for code in variable_codes
        for year in years
        for muni in municipalities.itertuples(index=False)
    ]
    return _typed(pd.DataFrame(rows, columns=[*LONG_COLUMNS, "snapshot_id"])), payloads


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["year"] = frame["year"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype("float64")
    return frame


# --- long extract (bastianolea/sinim_datos_comunales, re-serialised by pandas) ---------------

EXTRACT_COLUMNS = ("municipio", "cut_comuna", "año_id", "año", "variable_id", "variable", "unidad", "valor")


def parse_long_extract(
    data: bytes | Path, variable_codes: Sequence[str] | None = None, chunk_rows: int = 50_000
) -> pd.DataFrame:
    """The long CSV of SINIM API pulls (one row per comuna × year × variable) -> LONG_COLUMNS.

    Read in chunks as text so codes keep their zeros and blanks stay blank; `valor` is a
    plain float ("1532715.0") and blank means missing. The extract does not keep
    "No Recepcionado": its blanks may hide some, so they are "missing", not "not_received".
    """
    wanted = None if variable_codes is None else {str(c) for c in variable_codes}
    try:
        return _read_extract(data, "utf-8-sig", wanted, chunk_rows)
    except UnicodeDecodeError:
        return _read_extract(data, "cp1252", wanted, chunk_rows)


def _read_extract(
    data: bytes | Path, encoding: str, wanted: set[str] | None, chunk_rows: int
) -> pd.DataFrame:
    handle = io.BytesIO(data) if isinstance(data, bytes) else data
    reader = pd.read_csv(handle, dtype=str, keep_default_na=False, encoding=encoding, chunksize=chunk_rows)
    parts = []
    for chunk in reader:
        missing = [c for c in EXTRACT_COLUMNS if c not in chunk.columns]
        if missing:
            raise ParseError(
                SOURCE.id, f"SINIM extract lacks column(s) {missing} (has {list(chunk.columns)})"
            )
        if wanted is not None:
            chunk = chunk[chunk["variable_id"].str.strip().isin(wanted)]
        if len(chunk):
            parts.append(_extract_chunk_to_long(chunk))
    if not parts:
        raise ParseError(SOURCE.id, "SINIM extract has no rows (for the variables asked for)")
    return _typed(pd.concat(parts, ignore_index=True))


def _extract_chunk_to_long(chunk: pd.DataFrame) -> pd.DataFrame:
    years = pd.to_numeric(chunk["año"], errors="coerce")
    codes = pd.to_numeric(chunk["año_id"], errors="coerce")
    bad = chunk[(years - 1999 != codes) | years.isna()]
    if len(bad):
        first = bad.iloc[0]
        raise ParseError(
            SOURCE.id,
            f"SINIM extract: año_id {first['año_id']!r} is not año {first['año']!r} - 1999 (period code rule)",
        )
    out = pd.DataFrame(
        {
            "comuna_code": [_cut(v) for v in chunk["cut_comuna"]],
            "municipality": chunk["municipio"].str.strip().to_numpy(),
            "year": years.astype("int64").to_numpy(),
            "variable_code": chunk["variable_id"].str.strip().to_numpy(),
            "variable_label": chunk["variable"].str.strip().to_numpy(),
            "unit": [normalize_unit(u) for u in chunk["unidad"]],
        }
    )
    classified = [_classify_or_fail(v, chilean_format=False) for v in chunk["valor"]]
    out["value"] = pd.Series([v for v, _ in classified], index=out.index, dtype="float64")
    out["value_status"] = [s for _, s in classified]
    return out[LONG_COLUMNS]


def _cut(value: str) -> str:
    try:
        code = normalize_cut(value, "comuna")
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"not a comuna code: {value!r}") from exc
    if code is None:
        raise ParseError(SOURCE.id, "a row has no comuna code")
    return code


def _classify_or_fail(raw: str, *, chilean_format: bool) -> tuple[float | None, str]:
    try:
        return classify_value(raw, chilean_format=chilean_format)
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"unreadable value {raw!r}") from exc


# --- SINIM's own spreadsheet export (Excel 2003 SpreadsheetML, despite the .xls name) ---------

_HEADER_LABEL = re.compile(r"^\s*(?P<code>\S+)\s+\((?P<unit>[^)]*)\)\s*(?P<label>.*?)\s*$", re.S)


def _year_columns(header: list[str], variable_row: list[str], snapshot: str | None) -> list[tuple]:
    """(position, year, variable code, unit, label) of every year column of a spreadsheet export."""
    columns = []
    for position in range(2, len(header)):
        if not re.fullmatch(r"\d{4}", header[position]):
            raise ParseError(
                SOURCE.id,
                f"spreadsheet column {position + 1} header {header[position]!r} is not a year",
                snapshot,
            )
        label_text = variable_row[position] if position < len(variable_row) else ""
        match = _HEADER_LABEL.match(label_text)
        if not match:
            raise ParseError(
                SOURCE.id,
                f"spreadsheet column {position + 1}: variable label {label_text!r} is not 'CODE (unit) label'",
                snapshot,
            )
        columns.append(
            (position, int(header[position]), match["code"], normalize_unit(match["unit"]), match["label"])
        )
    return columns


def parse_spreadsheet_export(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """A `datos_municipales_*.xls` download -> LONG_COLUMNS.

    Layout: a note row, a row naming each year column's variable ("FCM001 (M$) Monto ..."),
    a header row "CODIGO | MUNICIPIO | 2023 | 2022 | ..." (years descending), then one row per
    municipality. CODIGO is typed Number but written "02101"; we read its text, never a float.
    """
    content = data.read_bytes() if isinstance(data, Path) else data
    rows = read_spreadsheetml_rows(SOURCE.id, content, snapshot)
    header_at = next((i for i, r in enumerate(rows) if r and r[0][1].strip().upper() == "CODIGO"), None)
    if header_at is None or header_at == 0:
        raise ParseError(
            SOURCE.id, "spreadsheet export has no CODIGO header row after a variable row", snapshot
        )
    header = [text.strip() for _, text in rows[header_at]]
    if len(header) < 3 or header[1].upper() != "MUNICIPIO":
        raise ParseError(
            SOURCE.id, f"spreadsheet header is not CODIGO, MUNICIPIO, years...: {header}", snapshot
        )
    columns = _year_columns(header, [text for _, text in rows[header_at - 1]], snapshot)
    records = []
    for row in rows[header_at + 1 :]:
        if not row or not row[0][1].strip():
            continue
        comuna_code = _cut(row[0][1])
        municipality = row[1][1].strip() if len(row) > 1 else ""
        for position, year, code, unit, label in columns:
            kind, text = row[position] if position < len(row) else (None, "")
            if kind == "String" and text.strip() and text.strip().casefold() != NOT_RECEIVED.casefold():
                raise ParseError(
                    SOURCE.id, f"{comuna_code} {year}: unexpected text {text!r} in a value cell", snapshot
                )
            value, status = _classify_or_fail(text, chilean_format=False)
            records.append(
                {
                    "comuna_code": comuna_code,
                    "municipality": municipality,
                    "year": year,
                    "variable_code": code,
                    "variable_label": label,
                    "unit": unit,
                    "value": value,
                    "value_status": status,
                }
            )
    if not records:
        raise ParseError(SOURCE.id, "spreadsheet export has no municipality rows", snapshot)
    return _typed(pd.DataFrame(records, columns=LONG_COLUMNS))
