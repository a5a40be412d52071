"""Caravan's CAMELS-CL subset: ERA5-Land forcing plus streamflow for 314 Chilean gauges.

Caravan republishes a subset of CAMELS-CL with its own catchment areas and with streamflow
as a runoff depth in **mm/d**; turning it into m³/s needs that area
(`methods.hydrology.mm_per_day_to_m3s`). It keeps no main-stem Loa gauge (2101001, 2104002,
2104013, 2110001, 2110004 and 2120001 are absent), only tributaries such as 2105001.

Gauge ids carry a prefix (`camelscl_2105001`). The Caravan archive on Zenodo is several GB,
so this module does not fetch it; it parses the per-gauge CSV and the attribute table once an
operator has placed them (see SOURCES.md, section 1).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pandas as pd

from methods.hydrology import mm_per_day_to_m3s
from sources import specs
from sources.base import ParseError, decode_text, is_missing, parse_number
from sources.cr2_streamflow import normalize_gauge_code, payload_bytes

SOURCE = specs.source("caravan_camelscl")

ENDPOINTS = specs.endpoints("caravan_camelscl")

PREFIX = "camelscl_"
ATTRIBUTE_COLUMNS = ("gauge_id", "gauge_name", "country", "gauge_lat", "gauge_lon", "area")
TIMESERIES_COLUMNS = ("date", "streamflow")


def caravan_gauge_code(gauge_id: str) -> str:
    """`camelscl_2105001` -> `02105001`."""
    text = gauge_id.strip()
    if not text.startswith(PREFIX):
        raise ValueError(f"not a Caravan camelscl id: {gauge_id!r}")
    return normalize_gauge_code(text[len(PREFIX) :])


def _rows(
    data: bytes | Path, what: str, required: tuple[str, ...], snapshot: str | None
) -> list[dict[str, str]]:
    text = decode_text(payload_bytes(data), SOURCE.id)
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise ParseError(SOURCE.id, f"{what}: required columns missing: {missing}", snapshot)
    reader.fieldnames = header
    return list(reader)


def parse_attributes_other(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """`attributes_other_camelscl.csv`: gauge_code, caravan_id, name, country, lat, lon, area_km2.

    Names are kept as published, broken escaping included (`Parshall N\\1"`).
    """
    out = []
    for line, row in enumerate(_rows(data, "attributes_other", ATTRIBUTE_COLUMNS, snapshot), start=2):
        try:
            out.append(
                {
                    "gauge_code": caravan_gauge_code(row["gauge_id"]),
                    "caravan_id": row["gauge_id"].strip(),
                    "name": row["gauge_name"].strip(),
                    "country": row["country"].strip(),
                    "lat": float(row["gauge_lat"]),
                    "lon": float(row["gauge_lon"]),
                    "area_km2": parse_number(row["area"]),
                }
            )
        except (ValueError, TypeError) as exc:
            raise ParseError(SOURCE.id, f"attributes_other line {line}: {exc}", snapshot) from exc
    return pd.DataFrame(
        out, columns=["gauge_code", "caravan_id", "name", "country", "lat", "lon", "area_km2"]
    ).astype({"lat": float, "lon": float, "area_km2": float})


def parse_streamflow(
    data: bytes | Path, gauge_code: str, area_km2: float, snapshot: str | None = None
) -> pd.DataFrame:
    """Daily streamflow of one per-gauge Caravan CSV, every calendar row kept.

    Columns: gauge_code, date (datetime64), flow_mm_d (float, NaN where the file says NA),
    flow_m3s (float, converted with `area_km2`). Missing days stay as NaN rows here, unlike
    the long loaders, so coverage can be read straight off the frame. A negative depth is a
    `ParseError`.
    """
    code = normalize_gauge_code(gauge_code)
    dates: list[date] = []
    depths: list[float] = []
    for line, row in enumerate(_rows(data, "timeseries", TIMESERIES_COLUMNS, snapshot), start=2):
        try:
            day = date.fromisoformat(row["date"].strip())
            value = None if is_missing(row["streamflow"]) else parse_number(row["streamflow"])
        except (ValueError, TypeError) as exc:
            raise ParseError(SOURCE.id, f"timeseries line {line}: {exc}", snapshot) from exc
        if value is not None and value < 0:
            raise ParseError(SOURCE.id, f"timeseries line {line}: negative streamflow {value} mm/d", snapshot)
        dates.append(day)
        depths.append(float("nan") if value is None else value)
    try:
        flows = mm_per_day_to_m3s(depths, area_km2)
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"gauge {code}: {exc}", snapshot) from exc
    return pd.DataFrame(
        {
            "gauge_code": code,
            "date": pd.to_datetime(pd.Series(dates, dtype=object)),
            "flow_mm_d": pd.Series(depths, dtype=float),
            "flow_m3s": flows,
        }
    )
