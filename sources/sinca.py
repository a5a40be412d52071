"""SINCA, the Ministry of the Environment's air-quality network: stations and daily series.

Two endpoints (PROVENANCE_new_families.md section 3):
- the station list, JSON `https://sinca.mma.gob.cl/index.php/json/listadomapa2k19/`: a list of
  objects with `nombre, key, latitud, longitud, comuna, red, region, regionindex, calificacion,
  empresa, realtime[]`. The derived CSV kept by py-atmchile (`city,station_code,latitude,
  longitude,station_name,region,network,region_index,access_type,operator`) carries the same
  stations with renamed fields; `parse_stations` reads either into `STATION_COLUMNS`;
- the Airviro CGI export of one station's daily series of one parameter:
  `apub.tsindico2.cgi?outtype=xcl&macro=./<station>/Cal/<PARAM>//<PARAM>.diario.diario.ic&from=YYMMDD&to=YYMMDD&...`.

The export's wire format (checked on the real files in air_quality/): `;`-separated, latin-1
(ASCII in practice), LF, a trailing `;` on every line (an empty sixth column), decimal comma
mixed with integers, header `FECHA (YYMMDD);HORA (HHMM);Registros validados;Registros
preliminares;Registros no validados;`. Dates are `YYMMDD` with two-digit years spanning
centuries (`970402` is 1997-04-02): years 70-99 are 19xx, 00-69 20xx (SINCA's records start in
the late 1980s). The three value columns are mutually exclusive; each value keeps its level
(`validated`, `preliminary`, `unvalidated`). A row with two levels filled is refused, as is the
meteorological "V1" variant (`FECHA (YYMMDD);HORA (HHMM);;`), which has no validation columns,
and anything else (an HTML error page served with status 200 among them).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date

import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, decode_text, parse_number

SOURCE = specs.source("sinca")

HEADERS = specs.spec(SOURCE.id).request_headers

EXPORT_HEADER = (
    "FECHA (YYMMDD)",
    "HORA (HHMM)",
    "Registros validados",
    "Registros preliminares",
    "Registros no validados",
)
LEVELS = ("validated", "preliminary", "unvalidated")  # the order of the export's three value columns


@dataclass(frozen=True)
class Parameter:
    code: str
    name: str
    unit: str


PARAMETERS = {
    "PM25": Parameter("PM25", "fine particulate matter (PM2.5)", "µg/m³"),
    "PM10": Parameter("PM10", "respirable particulate matter (PM10)", "µg/m³N"),
    # Arsenic measured on the particulate filters: what people breathe, NOT arsenic in the Loa's water.
    "ARSE": Parameter("ARSE", "arsenic in airborne particulate matter (not arsenic in water)", "µg/m³N"),
}

# The daily series asked for: Antofagasta region stations and the parameters each one measures
# (from the macro paths SINCA lists for them; pmbusch/Reportes-SINCA, region II rows), among
# the stations of the current station list (Estación Centro RII/236 and Sierra Gorda RII/204 are
# not in it).
SERIES: tuple[tuple[str, str], ...] = (
    ("RII/217", "PM10"), ("RII/217", "PM25"), ("RII/217", "ARSE"),
    ("RII/233", "PM10"), ("RII/233", "PM25"),
    ("RII/235", "PM10"), ("RII/235", "PM25"),
    ("RII/253", "PM10"),
    ("RII/237", "PM10"), ("RII/237", "PM25"),
    ("RII/251", "PM10"), ("RII/251", "PM25"),
)  # fmt: skip


def series_name(station: str, parameter: str) -> str:
    """The request and endpoint name of one series: `RII/217` PM10 -> `RII_217_PM10`."""
    return f"{station.replace('/', '_')}_{parameter}"


# The station list and one CGI export URL per series (2015-01-01 to 2024-12-31, the shape
# SINCA's own pages use), in the spec.
ENDPOINTS = specs.endpoints(SOURCE.id, names=["stations", *(series_name(*series) for series in SERIES)])


def build_requests(endpoints: dict[str, str]) -> dict[str, FetchRequest]:
    """The station list and one request per declared series, by name."""
    requests = {
        "stations": FetchRequest(
            name="stations", url=endpoints["stations"], expect="json", headers=dict(HEADERS)
        )
    }
    for station, parameter in SERIES:
        name = series_name(station, parameter)
        requests[name] = FetchRequest(name=name, url=endpoints[name], expect="csv", headers=dict(HEADERS))
    return requests


def series_of(name: str) -> tuple[str, str]:
    """`RII_217_PM10` -> ('RII/217', 'PM10'), for the declared series only."""
    for station, parameter in SERIES:
        if series_name(station, parameter) == name:
            return station, parameter
    raise KeyError(name)


# --- stations ------------------------------------------------------------------------------

STATION_COLUMNS = [
    "station_code",
    "station_name",
    "city",
    "region",
    "network",
    "access_type",
    "operator",
    "operator_kind",
    "latitude",
    "longitude",
]
JSON_FIELDS = {
    "key": "station_code",
    "nombre": "station_name",
    "comuna": "city",
    "region": "region",
    "red": "network",
    "calificacion": "access_type",
    "empresa": "operator",
    "latitud": "latitude",
    "longitud": "longitude",
}
CSV_FIELDS = {name: name for name in STATION_COLUMNS if name != "operator_kind"}
_STATION_CODE = re.compile(r"^R(?:[IVX]+|M)/[A-Z]{0,2}\d+$")

# Operators that are mining or smelting companies (the station is run by, or for, the mine).
MINING_OPERATORS = re.compile(
    r"codelco|minera|mining|escondida|sqm|anglo american|antofagasta minerals|altonorte|glencore|"
    r"chuquicamata|radomiro|el abra|spence|zald[ií]var|lomas bayas|sierra gorda scm",
    re.I,
)
STATE_OPERATORS = re.compile(r"ministerio|seremi|mma\b|municipalidad|gobierno", re.I)


def operator_kind(operator: str) -> str:
    """`mining company`, `state`, `other company` or `not stated`, from the operator's name."""
    if not operator.strip():
        return "not stated"
    if MINING_OPERATORS.search(operator):
        return "mining company"
    if STATE_OPERATORS.search(operator):
        return "state"
    return "other company"


def _station_records(text: str, snapshot: str | None) -> list[dict]:
    """One record per listed station, in `STATION_COLUMNS` names, from SINCA's JSON or the derived CSV."""
    if not (text.startswith("[") or text.startswith("{")):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        missing = sorted(set(CSV_FIELDS) - (set(rows[0]) if rows else set()))
        if missing:
            raise ParseError(SOURCE.id, f"station list CSV lacks column(s) {missing}", snapshot)
        return [{column: row[field] for field, column in CSV_FIELDS.items()} for row in rows]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(SOURCE.id, f"station list is not valid JSON: {exc}", snapshot) from exc
    if isinstance(document, dict):
        document = document.get("data") or document.get("estaciones") or []
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise ParseError(SOURCE.id, "station list JSON is not a list of station objects", snapshot)
    missing = sorted({f for f in ("key", "latitud", "longitud") for item in document if f not in item})
    if missing:
        raise ParseError(SOURCE.id, f"station objects lack field(s) {missing}", snapshot)
    return [{column: item.get(field) for field, column in JSON_FIELDS.items()} for item in document]


def parse_stations(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """The station list (SINCA's JSON or the derived CSV) -> `STATION_COLUMNS`, one row per station.

    Repeated station codes (the derived CSV lists some twice) must agree; a station without
    coordinates or a code is refused, as are coordinates that are not numbers.
    """
    records = _station_records(decode_text(content, SOURCE.id).strip(), snapshot)
    if not records:
        raise ParseError(SOURCE.id, "station list is empty", snapshot)
    frame = pd.DataFrame(records)
    for column in ("station_code", "station_name", "city", "region", "network", "access_type", "operator"):
        frame[column] = frame[column].map(lambda v: "" if v is None else str(v).strip())
    # The JSON's `key` may be the bare Airviro key under `region`; the CSV writes `R<roman>/<key>`.
    bare = frame["station_code"].str.fullmatch(r"\d+")
    frame.loc[bare, "station_code"] = "R" + frame.loc[bare, "region"] + "/" + frame.loc[bare, "station_code"]
    bad = ~frame["station_code"].str.match(_STATION_CODE)
    if bad.any():
        raise ParseError(
            SOURCE.id,
            f"station codes {sorted(frame.loc[bad, 'station_code'])[:5]} are not R<region>/<key>",
            snapshot,
        )
    for column in ("latitude", "longitude"):
        try:
            frame[column] = frame[column].map(lambda v: parse_number(v)).astype(float)
        except (TypeError, ValueError) as exc:
            raise ParseError(SOURCE.id, f"station {column} is not a number: {exc}", snapshot) from exc
    unlocated = frame[frame["latitude"].isna() | frame["longitude"].isna()]
    if not unlocated.empty:
        raise ParseError(
            SOURCE.id, f"station(s) {sorted(unlocated['station_code'])[:5]} have no coordinates", snapshot
        )
    frame["operator_kind"] = frame["operator"].map(operator_kind)
    frame = frame[STATION_COLUMNS]
    distinct = frame.drop_duplicates()
    clash = distinct[distinct["station_code"].duplicated(keep=False)]
    if not clash.empty:
        raise ParseError(
            SOURCE.id,
            f"station code(s) {sorted(clash['station_code'].unique())[:5]} listed twice with different details",
            snapshot,
        )
    return distinct.sort_values("station_code").reset_index(drop=True)


# Chile's continental and insular territory, loosely (Easter Island reaches -109.5 W). A
# station outside it has swapped or mistyped coordinates and is flagged, never moved.
CHILE_BOUNDS = {"latitude": (-56.0, -17.4), "longitude": (-109.5, -66.0)}


def outside_chile(stations: pd.DataFrame) -> pd.Series:
    """True for the stations whose coordinates fall outside Chile's bounding box."""
    (lat_lo, lat_hi), (lon_lo, lon_hi) = CHILE_BOUNDS["latitude"], CHILE_BOUNDS["longitude"]
    return ~(stations["latitude"].between(lat_lo, lat_hi) & stations["longitude"].between(lon_lo, lon_hi))


# --- daily export ----------------------------------------------------------------------------

DAILY_COLUMNS = ["date", "value", "level"]


def two_digit_year(yy: int) -> int:
    """70-99 -> 19xx, 00-69 -> 20xx (SINCA's oldest records are from the late 1980s)."""
    return 1900 + yy if yy >= 70 else 2000 + yy


def parse_date(text: str) -> date:
    if not re.fullmatch(r"\d{6}", text):
        raise ValueError(f"{text!r} is not YYMMDD")
    return date(two_digit_year(int(text[:2])), int(text[2:4]), int(text[4:6]))


def parse_export(content: bytes, snapshot: str | None = None, *, daily: bool = True) -> pd.DataFrame:
    """One CGI export -> `DAILY_COLUMNS`: one row per record with a value, its validation level kept.

    Empty days (no value in any column) are not rows; `count_days` tells how many days the
    export spans. The header must be the V2 pollutant header exactly; for a daily series every
    `HORA` must be `0000`.
    """
    text = decode_text(content, SOURCE.id, ("utf-8", "latin-1"))
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    header = [cell.strip() for cell in first.split(";")]
    if header[:2] == list(EXPORT_HEADER[:2]) and tuple(header[:5]) != EXPORT_HEADER:
        raise ParseError(
            SOURCE.id,
            f"export header {first!r} has no validated/preliminary/unvalidated columns "
            "(the meteorological variant?): not a pollutant series",
            snapshot,
        )
    if tuple(header[:5]) != EXPORT_HEADER:
        shown = first[:80] + ("..." if len(first) > 80 else "")
        raise ParseError(SOURCE.id, f"not a SINCA export: first line {shown!r}", snapshot)
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(";")]
        if len(cells) < 5 or any(cells[5:]):
            raise ParseError(
                SOURCE.id, f"export line {number} has {len(cells)} fields: {line[:60]!r}", snapshot
            )
        try:
            day = parse_date(cells[0])
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"export line {number}: date {exc}", snapshot) from exc
        if daily and cells[1] != "0000":
            raise ParseError(
                SOURCE.id, f"export line {number}: HORA {cells[1]!r} in a daily series", snapshot
            )
        filled = [(level, cell) for level, cell in zip(LEVELS, cells[2:5], strict=True) if cell]
        if not filled:
            continue
        if len(filled) > 1:
            raise ParseError(
                SOURCE.id,
                f"export line {number} has values in more than one validation column: {line!r}",
                snapshot,
            )
        level, cell = filled[0]
        try:
            value = parse_number(cell, decimal_comma=True)
        except ValueError as exc:
            raise ParseError(
                SOURCE.id, f"export line {number}: value {cell!r} is not a number", snapshot
            ) from exc
        records.append({"date": day, "value": value, "level": level})
    frame = pd.DataFrame(records, columns=DAILY_COLUMNS)
    if frame["date"].duplicated().any():
        raise ParseError(SOURCE.id, "export repeats a date", snapshot)
    frame["value"] = frame["value"].astype(float)
    return frame


def export_span(content: bytes) -> tuple[date, date] | None:
    """First and last date the export lists (with or without values), None if it lists none."""
    dates = [
        line.split(";", 1)[0].strip()
        for line in decode_text(content, SOURCE.id, ("utf-8", "latin-1")).splitlines()[1:]
    ]
    dates = [d for d in dates if re.fullmatch(r"\d{6}", d)]
    return (parse_date(dates[0]), parse_date(dates[-1])) if dates else None


# --- annual figures -----------------------------------------------------------------------

COMPLETENESS = 0.75  # an annual mean needs validated values on at least 75% of the year's days


def annual_summary(daily: pd.DataFrame, daily_limit: float | None = None) -> pd.DataFrame:
    """Per calendar year of a daily series: days, validated days, completeness and the figures.

    Only validated values count. `mean` is the mean of the validated daily values, NULL when
    fewer than `COMPLETENESS` of the year's days have one (the year is still listed, with its
    completeness, so a gap is visible); `days_above` counts validated days above `daily_limit`
    (NULL without a limit or when the year is incomplete). `preliminary_days` and
    `unvalidated_days` say what was left out.
    """
    columns = [
        "year",
        "days",
        "validated_days",
        "preliminary_days",
        "unvalidated_days",
        "completeness",
        "mean",
        "days_above",
    ]
    if daily.empty:
        return pd.DataFrame(columns=columns)
    frame = daily.assign(year=pd.to_datetime(daily["date"]).dt.year)
    rows = []
    for year, group in frame.groupby("year", sort=True):
        days = 366 if pd.Timestamp(year=int(year), month=12, day=31).dayofyear == 366 else 365
        validated = group.loc[group["level"] == "validated", "value"]
        completeness = len(validated) / days
        complete = completeness >= COMPLETENESS
        rows.append(
            {
                "year": int(year),
                "days": days,
                "validated_days": len(validated),
                "preliminary_days": int((group["level"] == "preliminary").sum()),
                "unvalidated_days": int((group["level"] == "unvalidated").sum()),
                "completeness": completeness,
                "mean": float(validated.mean()) if complete else None,
                "days_above": int((validated > daily_limit).sum())
                if complete and daily_limit is not None
                else None,
            }
        )
    result = pd.DataFrame(rows, columns=columns)
    result["mean"] = result["mean"].astype(float)
    result["days_above"] = result["days_above"].astype("Int64")
    return result
