"""Exchange rate (dólar observado) and UF: mindicador.cl, with Banco Central's BDE as the official alternative.

mindicador.cl republishes Banco Central de Chile's daily series without an account; BDE is
the official source but needs a free account, so its credentials come only from the
environment and are never written into a URL we log, store or put in an error.

Dates: mindicador writes each observation's `fecha` as a UTC instant, e.g.
"2022-01-28T03:00:00.000Z". That instant is midnight in Chile (UTC-3 in summer time, UTC-4 in
winter): the value belongs to the *Chilean* calendar day. We therefore convert the instant to
America/Santiago and take its date (`local_date`); taking the UTC date happens to agree for
midnight stamps but would shift any stamp between 20:00 and 24:00 local time to the next day.
BDE writes plain dates ("28-01-2022", day first) that need no conversion.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, decode_text
from sources.fetch import redact_url

CHILE = ZoneInfo("America/Santiago")

SOURCE = specs.source("mindicador")

ENDPOINTS = specs.endpoints("mindicador")

# Indicators we ask for per year; the root lists more (ivp, euro, ipc, utm, ...).
SERIES_INDICATORS = ("dolar", "uf")

SERIES_COLUMNS = ["indicator", "date", "value", "unit", "fecha_utc"]
ROOT_COLUMNS = ["indicator", "name", "unit", "date", "value", "fecha_utc"]


def local_date(fecha: str) -> date:
    """The Chilean calendar date of a mindicador UTC stamp ("2022-01-28T03:00:00.000Z" -> 2022-01-28)."""
    instant = datetime.fromisoformat(fecha.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"fecha {fecha!r} carries no time zone")
    return instant.astimezone(CHILE).date()


def series_request(endpoint: str, indicator: str, year: int) -> FetchRequest:
    """GET `/api/{indicator}/{year}`: one year of a daily series."""
    if indicator not in SERIES_INDICATORS:
        raise ValueError(f"indicator {indicator!r} is not one of {SERIES_INDICATORS}")
    return FetchRequest(
        name=f"mindicador-{indicator}-{year}", url=f"{endpoint.rstrip('/')}/{indicator}/{year}", expect="json"
    )


def root_request(endpoint: str) -> FetchRequest:
    """GET `/api`: the latest value of every indicator."""
    return FetchRequest(name="mindicador-root", url=endpoint.rstrip("/"), expect="json")


def _document(data: bytes | Path, source: str, snapshot: str | None) -> dict:
    content = data.read_bytes() if isinstance(data, Path) else data
    try:
        document = json.loads(decode_text(content, source))
    except ValueError as exc:
        raise ParseError(source, f"answer is not JSON ({exc})", snapshot) from exc
    if not isinstance(document, dict):
        raise ParseError(source, f"expected a JSON object, found {type(document).__name__}", snapshot)
    return document


def _observation(indicator: str, fecha: object, valor: object, snapshot: str | None) -> tuple[date, float]:
    try:
        return local_date(str(fecha)), float(valor)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ParseError(
            SOURCE.id, f"{indicator}: unreadable observation fecha={fecha!r} valor={valor!r}", snapshot
        ) from exc


def parse_series(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """`{"codigo","unidad_medida","serie":[{"fecha","valor"}]}` -> SERIES_COLUMNS, one row per day.

    Columns: indicator (codigo), date (Chilean date, datetime64), value (float, CLP per unit),
    unit (unidad_medida), fecha_utc (the stamp as sent).
    """
    document = _document(data, SOURCE.id, snapshot)
    if "codigo" not in document or not isinstance(document.get("serie"), list):
        raise ParseError(
            SOURCE.id,
            f"not a mindicador series answer (expected 'codigo' and a 'serie' list, found {sorted(document)})",
            snapshot,
        )
    indicator = str(document["codigo"])
    rows = []
    for point in document["serie"]:
        if not isinstance(point, dict) or "fecha" not in point or "valor" not in point:
            raise ParseError(SOURCE.id, f"{indicator}: serie entry {point!r} lacks fecha/valor", snapshot)
        day, value = _observation(indicator, point["fecha"], point["valor"], snapshot)
        rows.append((indicator, day, value, str(document.get("unidad_medida", "")), str(point["fecha"])))
    frame = pd.DataFrame(rows, columns=SERIES_COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"])
    if frame.duplicated("date").any():
        raise ParseError(SOURCE.id, f"{indicator}: two values for one Chilean date", snapshot)
    return frame.sort_values("date", ignore_index=True)


def parse_root(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """The root `/api` answer (`{"version","autor","fecha", <codigo>: {...}, ...}`) -> ROOT_COLUMNS."""
    document = _document(data, SOURCE.id, snapshot)
    indicators = {key: item for key, item in document.items() if isinstance(item, dict)}
    if not indicators or "version" not in document:
        raise ParseError(SOURCE.id, f"not a mindicador root answer (found keys {sorted(document)})", snapshot)
    rows = []
    for key, item in indicators.items():
        missing = [k for k in ("codigo", "nombre", "unidad_medida", "fecha", "valor") if k not in item]
        if missing:
            raise ParseError(SOURCE.id, f"indicator {key!r} lacks {missing}", snapshot)
        day, value = _observation(key, item["fecha"], item["valor"], snapshot)
        rows.append((item["codigo"], item["nombre"], item["unidad_medida"], day, value, item["fecha"]))
    frame = pd.DataFrame(rows, columns=ROOT_COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


# --- Banco Central de Chile, BDE web service (official alternative; needs an account) ----------

BDE_SOURCE = specs.source("bcentral_bde")

BDE_ENDPOINTS = specs.endpoints("bcentral_bde")
BDE_SERIES = {"dolar": "F073.TCO.PRE.Z.D", "uf": "F073.UFF.PRE.Z.D"}
BDE_USER_ENV, BDE_PASS_ENV = "CONTEXT_LENS_BCCH_USER", "CONTEXT_LENS_BCCH_PASS"


class MissingCredentials(RuntimeError):
    """BDE needs an account; the message names the variables, never their values."""


def bde_series_request(endpoint: str, indicator: str, first: date, last: date) -> FetchRequest:
    """GetSeries for `indicator` ("dolar" | "uf") between two dates, credentials from the environment.

    The credentials travel only in `params`; the fetch layer shows URLs through `redact_url`.
    """
    user, password = os.environ.get(BDE_USER_ENV), os.environ.get(BDE_PASS_ENV)
    if not user or not password:
        raise MissingCredentials(
            f"Banco Central BDE needs {BDE_USER_ENV} and {BDE_PASS_ENV} in the environment"
        )
    return FetchRequest(
        name=f"bde-{indicator}-{first.year}-{last.year}",
        url=endpoint,
        expect="json",
        params={
            "user": user,
            "pass": password,
            "function": "GetSeries",
            "timeseries": BDE_SERIES[indicator],
            "firstdate": first.isoformat(),
            "lastdate": last.isoformat(),
        },
    )


def bde_display_url(request: FetchRequest) -> str:
    """The full URL of a BDE request as it may appear in logs, snapshots and errors (credentials redacted)."""
    return redact_url(f"{request.url}?{urlencode(request.params or {})}")


def parse_bde_series(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """`{"Codigo":0,"Series":{"seriesId","Obs":[{"indexDateString":"dd-mm-yyyy","value","statusCode"}]}}`.

    A non-zero `Codigo` (bad credentials, unknown series) is an error; "NaN" values (statusCode
    "ND", e.g. weekends for the dollar) are dropped, never read as zero.
    Columns: series_id, date (datetime64), value (float).
    """
    document = _document(data, BDE_SOURCE.id, snapshot)
    if document.get("Codigo") != 0:
        # Descripcion is BDE's own text; it never echoes the credentials, but redact defensively.
        raise ParseError(
            BDE_SOURCE.id,
            f"BDE answered Codigo {document.get('Codigo')!r}: {redact_url(str(document.get('Descripcion')))}",
            snapshot,
        )
    series = document.get("Series")
    if not isinstance(series, dict) or not isinstance(series.get("Obs"), list):
        raise ParseError(
            BDE_SOURCE.id, f"BDE answer has no Series.Obs list (found {sorted(document)})", snapshot
        )
    rows = []
    for obs in series["Obs"]:
        text = str(obs.get("value", "")).strip()
        if obs.get("statusCode") != "OK" or text in ("", "NaN"):
            continue
        try:
            rows.append(
                (series.get("seriesId"), datetime.strptime(obs["indexDateString"], "%d-%m-%Y"), float(text))
            )
        except (KeyError, ValueError) as exc:
            raise ParseError(BDE_SOURCE.id, f"unreadable BDE observation {obs!r}", snapshot) from exc
    return pd.DataFrame(rows, columns=["series_id", "date", "value"])
