"""CAMELS-CL: catchment attributes and daily streamflow for 516 Chilean basins.

Two releases are in use and differ on the wire:
- v202201 (one ~275 MB zip at cr2.cl): `q_m3s_day.csv` with columns
  `date,year,month,day,<gauge_id…>`, `NA` for missing, ~516 gauges × ~40,000 days, and a
  row-wise `catchment_attributes.csv`;
- 2018 (PANGAEA, one zip per variable): tab-separated wide `.txt` files with every value
  quoted and `" "` (a quoted space) for missing, gauge ids with leading spaces, and a
  **transposed** attributes table (one row per attribute, one column per gauge). The early
  April-2018 CSV of the attributes is comma-separated with the same transposition.

The daily matrices are never pivoted in pandas: DuckDB streams them into long rows
`(gauge_code, date, flow_m3s)` (see `sources.cr2_streamflow` for the shared mechanics).
Gauge ids are BNA codes without their leading zero; they come out as 8-digit DGA codes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, decode_text, is_missing, parse_number
from sources.cr2_streamflow import (
    WideDailyLayout,
    long_frame,
    member_to_file,
    normalize_gauge_code,
    payload_bytes,
    read_wide_daily_header,
    wide_daily_long_sql,
)

SOURCE = specs.source("camels_cl")

ENDPOINTS = specs.endpoints("camels_cl")

V202201_DAILY_MEMBER = "q_m3s_day.csv"
V202201_ATTRIBUTES_MEMBER = "catchment_attributes.csv"
PANGAEA_DAILY_MEMBER = "2_camelscl_streamflow_m3s.txt"
PANGAEA_ATTRIBUTES_MEMBER = "1_camelscl_attributes.txt"

DAILY_LAYOUT = WideDailyLayout(date_header="date", extra_columns=("year", "month", "day"))
DAILY_2018_LAYOUT = WideDailyLayout(date_header="gauge_id", delimiter="\t")


def build_requests(endpoints: Mapping[str, str]) -> list[FetchRequest]:
    """The v202201 archive (daily flows + attributes) and the two 2018 PANGAEA archives."""
    return [
        FetchRequest(name="camels_cl_v202201_zip", url=endpoints["v202201_zip"], expect="zip"),
        FetchRequest(
            name="camels_cl_2018_attributes_zip", url=endpoints["pangaea_attributes_zip"], expect="zip"
        ),
        FetchRequest(
            name="camels_cl_2018_streamflow_m3s_zip",
            url=endpoints["pangaea_streamflow_m3s_zip"],
            expect="zip",
        ),
    ]


# --- daily flows -----------------------------------------------------------------------------


def daily_csv_file(data: bytes | Path, workdir: Path, snapshot: str | None = None) -> Path:
    """`q_m3s_day.csv` streamed out of the v202201 zip (or the payload itself if it is the CSV)."""
    return member_to_file(data, V202201_DAILY_MEMBER, workdir, "q_m3s_day.csv", SOURCE.id, snapshot=snapshot)


def load_camels_daily_sql(path: Path, snapshot: str | None = None) -> str:
    """DuckDB SELECT of `(gauge_code VARCHAR, date DATE, flow_m3s DOUBLE)` from `q_m3s_day.csv`."""
    return wide_daily_long_sql(read_wide_daily_header(path, DAILY_LAYOUT, SOURCE.id, snapshot), SOURCE.id)


def parse_camels_daily(data: bytes | Path, workdir: Path, snapshot: str | None = None) -> pd.DataFrame:
    """Long rows of a *small* `q_m3s_day.csv` (sample, test) as a DataFrame.

    Columns: gauge_code (str, 8 digits), date (datetime64), flow_m3s (float, never missing).
    """
    path = daily_csv_file(data, workdir, snapshot)
    return long_frame(load_camels_daily_sql(path, snapshot), SOURCE.id, snapshot)


def daily_2018_txt_file(data: bytes | Path, workdir: Path, snapshot: str | None = None) -> Path:
    """`2_CAMELScl_streamflow_m3s.txt` streamed out of its PANGAEA zip."""
    return member_to_file(
        data, PANGAEA_DAILY_MEMBER, workdir, "2_CAMELScl_streamflow_m3s.txt", SOURCE.id, snapshot=snapshot
    )


def load_camels2018_daily_sql(path: Path, snapshot: str | None = None) -> str:
    """DuckDB SELECT of long rows from the 2018 tab-separated, all-quoted streamflow matrix.

    Label rows between the header and the first day (the 2018 readme lists gauge_name,
    gauge_lat, …, start_obs) are detected and skipped.
    """
    return wide_daily_long_sql(
        read_wide_daily_header(path, DAILY_2018_LAYOUT, SOURCE.id, snapshot), SOURCE.id
    )


def parse_camels2018_daily(path: Path, snapshot: str | None = None) -> pd.DataFrame:
    """Long rows of a small 2018-release streamflow `.txt` as a DataFrame (columns as `parse_camels_daily`)."""
    return long_frame(load_camels2018_daily_sql(path, snapshot), SOURCE.id, snapshot)


# --- attributes ------------------------------------------------------------------------------

# output column -> attribute names seen across releases (first present wins)
_NUMERIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "lat": ("gauge_lat",),
    "lon": ("gauge_lon",),
    "area_km2": ("area", "area_km2"),
    "elev_gauge_m": ("elev_gauge",),
    "q_mean_mm_d": ("q_mean",),
    "interv_degree": ("interv_degree",),
    "sur_rights_n": ("sur_rights_n",),
    "sur_rights_flow_m3s": ("sur_rights_flow",),
    "gw_rights_n": ("gw_rights_n",),
    "gw_rights_flow_m3s": ("gw_rights_flow",),
    "big_dam": ("big_dam",),
}
_DATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "record_period_start": ("record_period_start",),
    "record_period_end": ("record_period_end",),
}
_REQUIRED = ("gauge_name", "gauge_lat", "gauge_lon")

ATTRIBUTE_COLUMNS = ["gauge_code", "name", *_NUMERIC_ATTRIBUTES, *_DATE_ATTRIBUTES]


def parse_camels_attributes(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """One row per gauge from any CAMELS-CL attributes table (transposed 2018 CSV/TXT or row-wise v202201).

    Columns: gauge_code (8-digit DGA code), name, lat, lon, area_km2, elev_gauge_m,
    q_mean_mm_d, interv_degree, sur_rights_n, sur_rights_flow_m3s (m3/s), gw_rights_n,
    gw_rights_flow_m3s (m3/s), big_dam, record_period_start, record_period_end. Attributes a
    release does not carry are NaN/None (the April-2018 CSV has no big_dam nor record period).
    Duplicated `.1` attribute rows of the 2018 CSV must agree with their originals or the
    parse fails; the undocumented `interv_degree2` is not used.
    """
    text = decode_text(payload_bytes(data), SOURCE.id)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows or rows[0][0].strip() != "gauge_id":
        raise ParseError(
            SOURCE.id, "attributes table: required 'gauge_id' missing from its first cell", snapshot
        )
    header = [cell.strip() for cell in rows[0]]
    if "gauge_name" in header:
        table = _row_wise(header, rows[1:], snapshot)
    else:
        table = _transposed(rows, snapshot)
    missing = [name for name in _REQUIRED if name not in table]
    if not any(alias in table for alias in _NUMERIC_ATTRIBUTES["area_km2"]):
        missing.append("area")
    if missing:
        raise ParseError(SOURCE.id, f"attributes table: required attributes missing: {missing}", snapshot)
    return _attribute_frame(table, snapshot)


def _transposed(rows: list[list[str]], snapshot: str | None) -> dict[str, list[str]]:
    width = len(rows[0])
    table: dict[str, list[str]] = {}
    for row in rows:
        name = row[0].strip()
        if len(row) != width:
            raise ParseError(
                SOURCE.id, f"attribute row {name!r} has {len(row)} cells, header has {width}", snapshot
            )
        values = row[1:]
        if name.endswith(".1") and name[:-2] in table:
            _check_duplicate(name, table[name[:-2]], values, snapshot)
            continue
        table[name] = values
    return table


def _row_wise(header: list[str], rows: list[list[str]], snapshot: str | None) -> dict[str, list[str]]:
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ParseError(
                SOURCE.id, f"attributes line {line}: {len(row)} cells, header has {len(header)}", snapshot
            )
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def _check_duplicate(name: str, original: list[str], copy: list[str], snapshot: str | None) -> None:
    for value, other in zip(original, copy, strict=True):
        if is_missing(value) and is_missing(other):
            continue
        if is_missing(value) or is_missing(other) or parse_number(value) != parse_number(other):
            raise ParseError(
                SOURCE.id,
                f"attribute {name!r} disagrees with {name[:-2]!r}: {other!r} vs {value!r}",
                snapshot,
            )


def _first_present(table: dict[str, list[str]], aliases: tuple[str, ...]) -> list[str] | None:
    return next((table[alias] for alias in aliases if alias in table), None)


def _optional_date(value: str) -> date | None:
    return None if is_missing(value) else date.fromisoformat(value.strip()[:10])


def _attribute_frame(table: dict[str, list[str]], snapshot: str | None) -> pd.DataFrame:
    count = len(table["gauge_id"])
    columns: dict[str, list] = {}
    try:
        columns["gauge_code"] = [normalize_gauge_code(value) for value in table["gauge_id"]]
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"attributes table: {exc}", snapshot) from exc
    columns["name"] = [None if is_missing(v) else v.strip() for v in table["gauge_name"]]
    for output, aliases in _NUMERIC_ATTRIBUTES.items():
        values = _first_present(table, aliases)
        try:
            columns[output] = [parse_number(v) for v in values] if values else [None] * count
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"attribute {aliases[0]!r}: {exc}", snapshot) from exc
    for output, aliases in _DATE_ATTRIBUTES.items():
        values = _first_present(table, aliases)
        try:
            columns[output] = [_optional_date(v) for v in values] if values else [None] * count
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"attribute {aliases[0]!r}: {exc}", snapshot) from exc
    frame = pd.DataFrame(columns, columns=ATTRIBUTE_COLUMNS)
    for name in ("lat", "lon", "area_km2"):
        if frame[name].isna().any():
            bad = frame.loc[frame[name].isna(), "gauge_code"].tolist()
            raise ParseError(SOURCE.id, f"attribute {name!r} missing for gauges {bad[:10]}", snapshot)
    duplicated = sorted(set(frame["gauge_code"][frame["gauge_code"].duplicated()]))
    if duplicated:
        raise ParseError(SOURCE.id, f"attributes table lists gauges twice: {duplicated}", snapshot)
    return frame.astype({name: float for name in _NUMERIC_ATTRIBUTES})


# --- macro-basin annual series (CAMELS-CL author's FSEQ210001 basin simulator) -----------------

# Its own source (see its spec): another repository than the CAMELS-CL releases.
MACROBASIN_SOURCE = specs.source("camels_cl_macrobasins")
MACROBASIN_ENDPOINTS = specs.endpoints("camels_cl_macrobasins")


def macrobasin_request(endpoints: Mapping[str, str]) -> FetchRequest:
    return FetchRequest(name="camels_cl_macrobasins_yr_csv", url=endpoints["annual_csv"], expect="csv")


MACROBASIN_COLUMNS = ["gauge_code", "gauge_name", "area_km2", "year", "qobs_m3s", "qsim_m3s", "experiment"]
_MACROBASIN_REQUIRED = ("gauge_id", "gauge_name", "area_km2", "date", "qobs_m3s_yr", "qsim_m3s_yr")


def parse_macrobasin_annual(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """Annual observed (and mHM-simulated) outlet flow per macro-basin, one row per gauge and year.

    The file (`data_macrobasin_platform_yr.csv`) has one row per basin × year × experiment,
    dates written `YYYY-01-01`, `NA` for years without observations. Observed flow is the
    same in every experiment, so rows are kept per experiment and the caller picks one.
    """
    raw = data.read_bytes() if isinstance(data, Path) else data
    rows = list(csv.reader(io.StringIO(decode_text(raw, SOURCE.id))))
    if not rows:
        raise ParseError(SOURCE.id, "macro-basin annual file is empty", snapshot)
    header, body = rows[0], [r for r in rows[1:] if r]
    missing = [c for c in _MACROBASIN_REQUIRED if c not in header]
    if missing:
        raise ParseError(SOURCE.id, f"macro-basin annual file lacks column(s) {', '.join(missing)}", snapshot)
    at = {name: i for i, name in enumerate(header)}
    records = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ParseError(
                SOURCE.id, f"line {line} has {len(row)} fields, the header {len(header)}", snapshot
            )
        day = row[at["date"]]
        if not (len(day) == 10 and day[4] == "-" and day[:4].isdigit()):
            raise ParseError(SOURCE.id, f"line {line}: date {day!r} is not YYYY-MM-DD", snapshot)
        try:
            observed = parse_number(row[at["qobs_m3s_yr"]])
            simulated = parse_number(row[at["qsim_m3s_yr"]])
            area = parse_number(row[at["area_km2"]])
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"line {line}: unreadable number ({exc})", snapshot) from exc
        if observed is not None and observed < 0:
            raise ParseError(SOURCE.id, f"line {line}: negative observed flow {observed}", snapshot)
        records.append(
            {
                "gauge_code": normalize_gauge_code(row[at["gauge_id"]]),
                "gauge_name": row[at["gauge_name"]],
                "area_km2": area,
                "year": int(day[:4]),
                "qobs_m3s": observed,
                "qsim_m3s": simulated,
                "experiment": row[at["sim_short_name"]] if "sim_short_name" in at else None,
            }
        )
    return pd.DataFrame(records, columns=MACROBASIN_COLUMNS)
