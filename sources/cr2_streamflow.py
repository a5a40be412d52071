"""CR2's compilation of DGA daily streamflow (`cr2_qflxDaily_2018`), and the mechanics the
Chilean streamflow sources share.

The DGA has no open API (its series portal sits behind a captcha), so CR2's compilation is
the practical route to the gauge records. It is one wide CSV: a header `codigo_estacion,
<gauge codes…>`, a block of station-metadata rows (14 in the 2018 release, other CR2 files
have 16: the count is detected, never assumed), then one row per day with `-9999` for
missing. CAMELS-CL cuts its streamflow from this compilation and ships the same
day × gauge matrix, so what both need lives here once:

- DGA/BNA gauge codes, which arrive as `2104002`, `" 2104002"`, `02104002` or `02120001-8`;
- reading the header of a wide day × gauge file and generating the DuckDB SQL that unpivots
  it into long rows `(gauge_code, date, flow_m3s)`, so the matrix never sits in pandas;
- finding the real download link (with its `wpdmdl=` token) on a CR2 WordPress Download
  Manager page;
- streaming one CSV member out of a release zip (through `sources.archives`) into a work dir.

Missing values: `NA`, `-9999`, an empty cell and a (quoted) single space all become absent
rows. A negative flow other than `-9999` is not a flow: loading raises `ParseError`.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pandas as pd

from sources import specs
from sources.archives import DEFAULT_LIMITS, ArchiveLimits, open_member
from sources.base import (
    Fetcher,
    FetchRequest,
    ParseError,
    Payload,
    SourceInfo,
    decode_text,
    is_missing,
    parse_number,
)
from warehouse import long_rows

SOURCE = specs.source("cr2_streamflow")

ENDPOINTS = specs.endpoints("cr2_streamflow")

DAILY_MEMBER = "cr2_qflxdaily_2018.[ct][sx][vt]"  # .csv or .txt; not the *_stations.txt sibling
STATIONS_MEMBER = "cr2_qflxdaily_2018_stations.txt"

STATION_COLUMNS = (
    "codigo_estacion",
    "institucion",
    "fuente",
    "nombre",
    "altura",
    "latitud",
    "longitud",
    "codigo_cuenca",
    "nombre_cuenca",
    "codigo_sub_cuenca",
    "nombre_sub_cuenca",
    "inicio_observaciones",
    "fin_observaciones",
    "cantidad_observaciones",
    "inicio_automatica",
)

# --- DGA gauge codes ----------------------------------------------------------------------

_GAUGE_CODE = re.compile(r"(\d+)(?:-([0-9Kk]))?")


def dga_check_digit(code: str) -> str:
    """The modulo-11 verifier DGA appends to a station code (`02120001-8`), the RUT algorithm."""
    digits = code.lstrip("0") or "0"
    total = sum(int(d) * w for d, w in zip(reversed(digits), itertools.cycle(range(2, 8)), strict=False))
    rest = 11 - total % 11
    return {11: "0", 10: "K"}.get(rest, str(rest))


def normalize_gauge_code(value: object) -> str:
    """The 8-digit DGA/BNA form of a gauge code: `2104002`, `" 2104002"`, `2104002.0` -> `02104002`.

    A trailing check digit (`02120001-8`) is verified and dropped; a wrong one is an error,
    because it means the code was mistyped somewhere upstream.
    """
    if is_missing(value):
        raise ValueError("empty gauge code")
    text = str(value).strip().strip('"').strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    match = _GAUGE_CODE.fullmatch(text)
    digits = match.group(1).lstrip("0") if match else ""
    if not 7 <= len(digits) <= 8:
        raise ValueError(f"not a DGA gauge code: {value!r}")
    code = digits.zfill(8)
    given = match.group(2)
    if given is not None and given.upper() != dga_check_digit(code):
        raise ValueError(f"gauge code {value!r} has check digit {given}, expected {dga_check_digit(code)}")
    return code


# --- wide day × gauge files ----------------------------------------------------------------

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NULL_MARKERS = ("NA", " ", "")
MISSING_FLOW = -9999
NEGATIVE_FLOW = "negative flow"


@dataclass(frozen=True)
class WideDailyLayout:
    """How one publisher lays out a wide day × gauge file.

    `date_header` is the header cell over the date column (`date`, `codigo_estacion`,
    `gauge_id`); `extra_columns` are non-gauge columns to drop (`year`, `month`, `day`).
    """

    date_header: str
    delimiter: str = ","
    extra_columns: tuple[str, ...] = ()
    max_label_rows: int = 40


@dataclass(frozen=True)
class WideDailyHeader:
    """What the first lines of a wide file say: its gauges and where the day rows start."""

    path: Path
    layout: WideDailyLayout
    columns: tuple[str, ...]  # DuckDB column names in file order: "date", extras, gauge codes
    gauge_codes: tuple[str, ...]
    label_rows: tuple[tuple[str, ...], ...]  # rows between the header and the first day
    skip_lines: int  # physical lines before the first day row


class _LineCounter:
    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        return line


def read_wide_daily_header(
    path: Path, layout: WideDailyLayout, source: str, snapshot: str | None = None
) -> WideDailyHeader:
    """Read only the header and label rows; count the label rows instead of assuming them.

    A row is a label row while its first cell is not an ISO date. Label rows (station names)
    are decoded as UTF-8, or as cp1252 when they are not valid UTF-8.
    """
    path = Path(path).resolve()
    try:
        return _read_wide_daily_header(path, layout, source, snapshot, "utf-8-sig")
    except UnicodeDecodeError:
        return _read_wide_daily_header(path, layout, source, snapshot, "cp1252")


def _read_wide_daily_header(
    path: Path, layout: WideDailyLayout, source: str, snapshot: str | None, encoding: str
) -> WideDailyHeader:
    with path.open("r", encoding=encoding, newline="") as handle:
        counter = _LineCounter(handle)
        reader = csv.reader(counter, delimiter=layout.delimiter)
        header = next(reader, None)
        if not header:
            raise ParseError(source, f"{path.name} is empty", snapshot)
        if header[0].strip() != layout.date_header:
            raise ParseError(
                source,
                f"{path.name}: required column {layout.date_header!r} missing "
                f"(first header cell is {header[0]!r})",
                snapshot,
            )
        columns, codes = ["date"], []
        for position, cell in enumerate(header[1:], start=2):
            name = cell.strip()
            if name in layout.extra_columns:
                columns.append(name)
                continue
            try:
                code = normalize_gauge_code(name)
            except ValueError as exc:
                raise ParseError(
                    source,
                    f"{path.name}: header column {position} ({cell!r}) is not a gauge code "
                    f"nor one of {list(layout.extra_columns)} ({exc})",
                    snapshot,
                ) from exc
            columns.append(code)
            codes.append(code)
        if not codes:
            raise ParseError(source, f"{path.name}: header names no gauge columns", snapshot)
        duplicated = sorted({c for c in codes if codes.count(c) > 1})
        if duplicated:
            raise ParseError(source, f"{path.name}: gauge columns appear twice: {duplicated}", snapshot)
        labels: list[tuple[str, ...]] = []
        while True:
            before = counter.count
            row = next(reader, None)
            if row is None:
                raise ParseError(source, f"{path.name}: no day rows after the header", snapshot)
            if row and ISO_DATE.fullmatch(row[0].strip()):
                return WideDailyHeader(path, layout, tuple(columns), tuple(codes), tuple(labels), before)
            labels.append(tuple(row))
            if len(labels) > layout.max_label_rows:
                raise ParseError(
                    source,
                    f"{path.name}: no ISO-dated row within the first {layout.max_label_rows} rows "
                    f"after the header (first cells: {[r[0] if r else '' for r in labels[:5]]})",
                    snapshot,
                )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def wide_daily_long_sql(header: WideDailyHeader, source: str) -> str:
    """A DuckDB SELECT of long rows `(gauge_code VARCHAR, date DATE, flow_m3s DOUBLE)`.

    DuckDB streams the CSV with the column types fixed from the header (no type sniffing over
    516 columns), UNPIVOT drops the NULL cells, `-9999` rows are filtered, and a negative
    flow raises through DuckDB's `error()` so it cannot slip into the table.
    """
    layout = header.layout
    types = ", ".join(
        f"{_sql_string(name)}: {'DATE' if i == 0 else 'VARCHAR' if name in layout.extra_columns else 'DOUBLE'}"
        for i, name in enumerate(header.columns)
    )
    nulls = ", ".join(_sql_string(marker) for marker in NULL_MARKERS)
    read = (
        f"read_csv({_sql_string(str(header.path))}, header = false, skip = {header.skip_lines}, "
        f"auto_detect = false, delim = {_sql_string(layout.delimiter)}, quote = '\"', escape = '\"', "
        f"nullstr = [{nulls}], dateformat = '%Y-%m-%d', columns = {{{types}}})"
    )
    # Every interpolated value below is a literal quoted by _sql_string/quote_identifier or an
    # int; gauge columns were validated as digit-only codes by read_wide_daily_header.
    extras = [c for c in header.columns if c in layout.extra_columns]
    if extras:
        excluded = ", ".join(long_rows.quote_identifier(c) for c in extras)
        read = f"(SELECT * EXCLUDE ({excluded}) FROM {read})"  # noqa: S608
    prefix = _sql_string(f"{source}: {NEGATIVE_FLOW} ")
    checked_flow = (
        f"CASE WHEN flow < 0 THEN error({prefix} || flow || ' m3/s at gauge ' || gauge_code "
        "|| ' on ' || \"date\") ELSE flow END"
    )
    unpivot = f'UNPIVOT {read} ON COLUMNS(* EXCLUDE ("date")) INTO NAME gauge_code VALUE flow'
    return (
        f'SELECT gauge_code, "date", {checked_flow} AS flow_m3s FROM ({unpivot}) WHERE flow <> {MISSING_FLOW}'  # noqa: S608
    )


def long_frame(sql: str, source: str, snapshot: str | None = None) -> pd.DataFrame:
    """Long rows `(gauge_code str, date datetime64, flow_m3s float)` of a small file's SELECT.

    For small files (samples, tests); full-size files are streamed into a table by the family
    (`warehouse.long_rows.load`).
    """
    frame = long_rows.frame(sql, source, snapshot)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.astype({"gauge_code": str, "flow_m3s": float}).reset_index(drop=True)


# --- payloads: zips, plain files, work directories ----------------------------------------


def payload_bytes(data: bytes | Path) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def is_zip(data: bytes | Path) -> bool:
    return zipfile.is_zipfile(io.BytesIO(data) if isinstance(data, bytes) else Path(data))


def member_to_file(
    data: bytes | Path,
    member_pattern: str,
    workdir: Path,
    out_name: str,
    source: str,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    snapshot: str | None = None,
) -> Path:
    """A file DuckDB can read: the zip member streamed to `workdir/out_name`, or the payload itself.

    A payload that is not a zip (a sample CSV, a mirror serving the bare file) is used as is,
    so the same loader serves live, mirrored and sample snapshots.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / Path(out_name).name
    if not is_zip(data):
        if isinstance(data, bytes):
            target.write_bytes(data)
            return target
        return Path(data)
    with open_member(source, data, member_pattern, limits, snapshot) as stream, target.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return target


# --- CR2 download pages (WordPress Download Manager) ----------------------------------------


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (url, text of the anchor or "")
        self._open: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        for attribute in ("href", "data-downloadurl"):
            if values.get(attribute):
                self.links.append((values[attribute], ""))
                if tag == "a" and attribute == "href":
                    self._open.append(len(self.links) - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            url, text = self.links[self._open[-1]]
            self.links[self._open[-1]] = (url, text + data)


def find_wpdm_download_url(
    html: bytes | str, page_url: str, source: str, *, expect: str | None = None, snapshot: str | None = None
) -> str:
    """The absolute download URL (with its `wpdmdl=` token) on a CR2 download page.

    `expect` (e.g. `cr2_qflxdaily_2018`) must appear in the link or its text: CR2 pages also
    link other releases, and one mislabelled link is known to serve the 2020 file.
    Zero or several distinct candidates are a `ParseError`, never a guess.
    """
    text = html if isinstance(html, str) else decode_text(html, source)
    collector = _LinkCollector()
    collector.feed(text)
    candidates: dict[str, str] = {}
    for url, label in collector.links:
        absolute = urljoin(page_url, url.strip())
        token = parse_qs(urlparse(absolute).query).get("wpdmdl")
        if not token:
            continue
        if expect and expect.lower() not in (absolute + " " + label).lower():
            continue
        candidates.setdefault(token[0], absolute)
    if not candidates:
        wanted = f" mentioning {expect!r}" if expect else ""
        raise ParseError(source, f"no wpdmdl download link{wanted} on {page_url}", snapshot)
    if len(candidates) > 1:
        raise ParseError(
            source, f"several wpdmdl download links on {page_url}: {sorted(candidates.values())}", snapshot
        )
    return next(iter(candidates.values()))


def fetch_via_wpdm_page(
    fetcher: Fetcher, source: SourceInfo, page_url: str, name: str, expect: str
) -> Payload:
    """Fetch a CR2 WPDM page, follow its tokenised link and return the archive payload.

    When the endpoint is overridden to point straight at the archive (a mirror, a file://
    copy), the page fetch already returns the zip and is used as is.
    """
    page = fetcher.fetch(source, FetchRequest(name=f"{name}-page", url=page_url, expect="any"))
    if is_zip(page.content):
        return page
    link = find_wpdm_download_url(
        page.content, page.url or page_url, source.id, expect=expect, snapshot=page.snapshot_id
    )
    return fetcher.fetch(source, FetchRequest(name=name, url=link, expect="zip"))


# --- CR2 files -------------------------------------------------------------------------------

DAILY_LAYOUT = WideDailyLayout(date_header="codigo_estacion")


def fetch_daily_zip(fetcher: Fetcher, endpoints: Mapping[str, str]) -> Payload:
    """The `cr2_qflxDaily_2018.zip` payload, found through its WPDM page."""
    return fetch_via_wpdm_page(
        fetcher, SOURCE, endpoints["qflx_daily_2018_page"], "cr2_qflxdaily_2018_zip", "cr2_qflxdaily_2018"
    )


def daily_csv_file(data: bytes | Path, workdir: Path, snapshot: str | None = None) -> Path:
    """`cr2_qflxDaily_2018.csv` (or `.txt`) streamed out of the release zip into `workdir`."""
    return member_to_file(data, DAILY_MEMBER, workdir, "cr2_qflxDaily_2018.csv", SOURCE.id, snapshot=snapshot)


def load_cr2_daily_sql(path: Path, snapshot: str | None = None) -> str:
    """DuckDB SELECT of `(gauge_code, date, flow_m3s)` from the wide CR2 daily file."""
    return wide_daily_long_sql(read_wide_daily_header(path, DAILY_LAYOUT, SOURCE.id, snapshot), SOURCE.id)


def parse_cr2_daily(path: Path, snapshot: str | None = None) -> pd.DataFrame:
    """Long rows of a small CR2 daily file as a DataFrame (gauge_code str, date datetime64, flow_m3s float)."""
    return long_frame(load_cr2_daily_sql(path, snapshot), SOURCE.id, snapshot)


def parse_cr2_daily_metadata(path: Path, snapshot: str | None = None) -> pd.DataFrame:
    """The station-metadata rows of the daily file, as a frame shaped like `parse_cr2_stations`."""
    header = read_wide_daily_header(path, DAILY_LAYOUT, SOURCE.id, snapshot)
    by_label = {row[0].strip(): row for row in header.label_rows if row}
    missing = [column for column in STATION_COLUMNS[1:] if column not in by_label]
    if missing:
        raise ParseError(SOURCE.id, f"{Path(path).name}: metadata rows missing: {missing}", snapshot)
    width = len(header.columns)
    records = []
    for position, code in enumerate(header.columns[1:], start=1):
        record = {"codigo_estacion": code}
        for label in STATION_COLUMNS[1:]:
            row = by_label[label]
            if len(row) != width:
                raise ParseError(
                    SOURCE.id, f"metadata row {label!r} has {len(row)} cells, header has {width}", snapshot
                )
            record[label] = row[position]
        records.append(record)
    return _station_frame(records, snapshot)


def parse_cr2_stations(data: bytes | Path, snapshot: str | None = None) -> pd.DataFrame:
    """The `cr2_qflxDaily_2018_stations.txt` catalogue, one row per gauge.

    Columns: gauge_code (8-digit DGA code), institution, data_source, name (as published,
    escaped quotes decoded), altitude_m (float; the file's 0 means unknown -> NaN), lat, lon,
    cr2_basin_code / cr2_basin_name / cr2_subbasin_code / cr2_subbasin_name (strings as
    published: the Loa carries both 21 and 32, so never decide basin membership from them),
    obs_start, obs_end (date), obs_count (Int64), automatic_start (date; `-` -> None).
    """
    text = decode_text(payload_bytes(data), SOURCE.id)
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        raise ParseError(SOURCE.id, "stations file is empty", snapshot)
    header = [cell.strip() for cell in rows[0]]
    missing = [column for column in STATION_COLUMNS if column not in header]
    if missing:
        raise ParseError(SOURCE.id, f"stations file: required columns missing: {missing}", snapshot)
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ParseError(
                SOURCE.id, f"stations file line {line}: {len(row)} cells, expected {len(header)}", snapshot
            )
        records.append(dict(zip(header, row, strict=True)))
    return _station_frame(records, snapshot)


def _optional_date(value: str) -> date | None:
    return None if is_missing(value) else date.fromisoformat(value.strip())


def _station_frame(records: list[dict[str, str]], snapshot: str | None) -> pd.DataFrame:
    out = []
    for record in records:
        where = f"station {record.get('codigo_estacion')!r}"
        try:
            altitude = parse_number(record["altura"])
            count = parse_number(record["cantidad_observaciones"])
            out.append(
                {
                    "gauge_code": normalize_gauge_code(record["codigo_estacion"]),
                    "institution": record["institucion"].strip(),
                    "data_source": record["fuente"].strip(),
                    "name": record["nombre"].strip(),
                    "altitude_m": None if not altitude else altitude,
                    "lat": float(record["latitud"]),
                    "lon": float(record["longitud"]),
                    "cr2_basin_code": record["codigo_cuenca"].strip(),
                    "cr2_basin_name": record["nombre_cuenca"].strip(),
                    "cr2_subbasin_code": record["codigo_sub_cuenca"].strip(),
                    "cr2_subbasin_name": record["nombre_sub_cuenca"].strip(),
                    "obs_start": _optional_date(record["inicio_observaciones"]),
                    "obs_end": _optional_date(record["fin_observaciones"]),
                    "obs_count": None if count is None else int(count),
                    "automatic_start": _optional_date(record["inicio_automatica"]),
                }
            )
        except ValueError as exc:
            raise ParseError(SOURCE.id, f"{where}: {exc}", snapshot) from exc
    frame = pd.DataFrame(out, columns=list(_STATION_DTYPES))
    duplicated = sorted(set(frame["gauge_code"][frame["gauge_code"].duplicated()]))
    if duplicated:
        raise ParseError(SOURCE.id, f"gauge codes listed twice: {duplicated}", snapshot)
    return frame.astype(_STATION_DTYPES)


_STATION_DTYPES = {
    "gauge_code": str,
    "institution": str,
    "data_source": str,
    "name": str,
    "altitude_m": float,
    "lat": float,
    "lon": float,
    "cr2_basin_code": str,
    "cr2_basin_name": str,
    "cr2_subbasin_code": str,
    "cr2_subbasin_name": str,
    "obs_start": object,
    "obs_end": object,
    "obs_count": "Int64",
    "automatic_start": object,
}
