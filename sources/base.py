"""Shared vocabulary of every source module: who publishes it, what we ask for, what can go wrong.

Source modules stay free of Dagster and DuckDB. They export a `SOURCE` (a `SourceInfo`) and
their default `ENDPOINTS`, both read from the source's spec (`sources/specs/<id>.yaml`, via
`sources.specs`), and pure functions that turn payload bytes into typed frames.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, Protocol

Mode = Literal["live", "curated", "sample"]
Expect = Literal["csv", "json", "geojson", "zip", "xlsx", "xml", "html", "any"]


@dataclass(frozen=True)
class SourceInfo:
    """Citation and cadence of one public source; becomes a row of `core.sources`."""

    id: str
    publisher: str
    title: str
    landing_url: str
    licence: str
    citation: str
    cadence: timedelta
    family: str


@dataclass(frozen=True)
class FetchRequest:
    """One HTTP(S) or file:// request, declared by a source and carried out by `sources.fetch`.

    `endpoint` names the entry of the source's ENDPOINTS that `url` was built from, so a
    mirror override of that endpoint can be applied and recorded.
    """

    name: str
    url: str
    expect: Expect = "any"
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] | None = None
    data: dict[str, Any] | list[tuple[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class SourceError(Exception):
    """An error that names the source, the snapshot (when there is one) and the problem."""

    stage = "source"

    def __init__(self, source: str, problem: str, snapshot: str | None = None):
        self.source = source
        self.problem = problem
        self.snapshot = snapshot
        where = f"source {source!r}" + (f", snapshot {snapshot}" if snapshot else "")
        super().__init__(f"{self.stage} failed for {where}: {problem}")


class FetchError(SourceError):
    stage = "fetch"


class ParseError(SourceError):
    stage = "parse"


class ValidationError(SourceError):
    stage = "validation"


@dataclass(frozen=True)
class Payload:
    """What a fetch returns: the bytes, where they came from, and their content address.

    `mode` is `live` for a payload fetched now, and whatever the stored snapshot says when
    the payload was reused (unchanged upstream, or a fallback).
    """

    source: str
    name: str
    url: str
    content: bytes
    sha256: str
    retrieved_at: str
    mode: Mode
    snapshot_id: str
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    content_type: str | None = None


class Fetcher(Protocol):
    """The single fetch layer (`sources.fetch.HttpFetcher`) as a source module sees it."""

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload: ...


# --- helpers for the messy text that real public files contain ---------------------------

MISSING_MARKERS = frozenset({"", " ", "NA", "N/A", "NaN", "nan", "-9999", "-9999.0", "No Recepcionado", "-"})


def decode_text(data: bytes, source: str, encodings: tuple[str, ...] = ("utf-8-sig", "cp1252")) -> str:
    """Decode bytes trying UTF-8 (BOM stripped) first, then the latin-1 family Chilean files use."""
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ParseError(source, f"payload is not valid text in any of {', '.join(encodings)}")


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return str(value).strip() in MISSING_MARKERS or str(value) == " "


def parse_number(value: Any, *, decimal_comma: bool = False, thousands_dot: bool = False) -> float | None:
    """Parse '1.234,5', ' 50.29', '-9999', 'NA' and friends; None for a missing marker."""
    if is_missing(value):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().strip('"').strip()
    if text in MISSING_MARKERS:
        return None
    if thousands_dot:
        text = text.replace(".", "")
    if decimal_comma:
        text = text.replace(",", ".")
    return float(text)


_CODE_WIDTH = {"region": 2, "province": 3, "comuna": 5}


def normalize_cut(value: Any, kind: str = "comuna") -> str | None:
    """Pad a CUT code that lost its leading zero: 2201, '2201', 2201.0, '02201' -> '02201'.

    Region codes written as five digits ('00002', as chilemapas does) come back as '02'.
    """
    if is_missing(value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    if not text.isdigit():
        raise ValueError(f"not a CUT code: {value!r}")
    width = _CODE_WIDTH[kind]
    text = text.lstrip("0") or "0"
    if len(text) > width:
        raise ValueError(f"CUT code {value!r} is longer than a {kind} code ({width} digits)")
    return text.zfill(width)


def fold_name(name: str) -> str:
    """Accent-, case- and space-insensitive key for matching place names ('Ollagüe' ~ 'OLLAGUE')."""
    text = unicodedata.normalize("NFKD", str(name))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return " ".join(text.split())
