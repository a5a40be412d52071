"""SDMX-CSV: the one reader for the SDMX REST services the project queries (OECD, INE Chile).

Both services answer a data query with SDMX-CSV, one row per observation, in one of two
shapes:
- codes only (`format=csv`, INE): `DATAFLOW,FREQ,INDICADOR,AREA_REF,...,OBS_VALUE,...`;
- codes with labels (`format=csvfilewithlabels`, OECD): every code column is followed by a
  column holding its label, whose header is prose (`REF_AREA,Reference area,...`).
A column whose header is an upper-case SDMX identifier is a code column; any other column is
the label of the code column before it and comes back as `<CODE>__label`.

Services also answer *errors* with HTTP 200: an SDMX-ML `<message:Error>` document, a JSON
error object, or a short text such as `NoResultsFound`. Those are refused here, by their own
words, before anything tries to read them as data. Which dataflow and dimensions a payload
must have is the caller's declaration (`expect_structure`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from sources.base import ParseError, decode_text

CODE_COLUMN = re.compile(r"^[A-Z][A-Z0-9_]*$")
LABEL_SUFFIX = "__label"
_XML_ERROR = re.compile(r"<(?:\w+:)?(?:Error|ErrorMessage)\b", re.I)
_XML_TEXT = re.compile(r"<(?:\w+:)?Text[^>]*>(.*?)</(?:\w+:)?Text>", re.I | re.S)
_XML_CODE = re.compile(r"<(?:\w+:)?ErrorMessage[^>]*\bcode=\"([^\"]+)\"", re.I)
_TEXT_ERRORS = ("noresultsfound", "no results found", "norecordsfound", "could not find", "semantic error")


def error_message(text: str) -> str | None:
    """The service's own words when a body is an SDMX error message rather than data, else None."""
    head = text.lstrip()[:4096]
    if head.startswith("<") and _XML_ERROR.search(head):
        code = _XML_CODE.search(head)
        words = " ".join(" ".join(t.split()) for t in _XML_TEXT.findall(head)) or "no message text"
        return f"SDMX error message{f' (code {code.group(1)})' if code else ''}: {words[:300]}"
    if head.startswith("<"):
        return f"an XML document where SDMX-CSV was expected: {' '.join(head[:200].split())}"
    if head.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        errors = document.get("errors") if isinstance(document, dict) else None
        if errors:
            return f"SDMX-JSON error message: {json.dumps(errors, ensure_ascii=False)[:300]}"
        return "a JSON document where SDMX-CSV was expected"
    first_line = head.split("\n", 1)[0].strip().lower()
    if any(marker in first_line for marker in _TEXT_ERRORS):
        return f"SDMX error message: {head.splitlines()[0][:300]}"
    return None


def read_csv(
    content: bytes, source: str, snapshot: str | None = None, *, required: Iterable[str] = ()
) -> pd.DataFrame:
    """Every observation row as strings, code columns by name and label columns as `<CODE>__label`.

    Refuses an error message, a body without the `required` columns and ragged rows, each
    with a ParseError that says which.
    """
    text = decode_text(content, source)
    problem = error_message(text)
    if problem:
        raise ParseError(source, f"the service answered with {problem}", snapshot)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ParseError(source, "SDMX-CSV payload is empty", snapshot) from None
    missing = [name for name in required if name not in header]
    if missing:
        raise ParseError(
            source,
            f"SDMX-CSV is missing required column(s) {', '.join(missing)}; got {header[:14]}",
            snapshot,
        )
    names = _column_names(header, source, snapshot)
    rows = []
    for line_number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ParseError(
                source, f"line {line_number} has {len(row)} fields, the header has {len(header)}", snapshot
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names)


def _column_names(header: list[str], source: str, snapshot: str | None) -> list[str]:
    names: list[str] = []
    code: str | None = None
    for name in header:
        if CODE_COLUMN.match(name):
            code = name
            names.append(name)
        elif code is None:
            raise ParseError(source, f"SDMX-CSV header starts with {name!r}, not a code column", snapshot)
        else:
            names.append(code + LABEL_SUFFIX)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ParseError(source, f"SDMX-CSV header repeats column(s) {duplicated}", snapshot)
    return names


def code_columns(frame: pd.DataFrame) -> list[str]:
    return [name for name in frame.columns if not name.endswith(LABEL_SUFFIX)]


def expect_structure(
    frame: pd.DataFrame,
    source: str,
    snapshot: str | None,
    *,
    structure_column: str,
    structure: str,
    dimensions: Iterable[str],
) -> None:
    """Refuse a payload of another dataflow, or with other dimensions than the declared ones.

    `structure` is the id the rows must carry in `structure_column` (e.g. `CL01:DF_TDES_SEXO(1.0)`).
    """
    found = sorted(set(frame[structure_column].dropna())) if structure_column in frame else []
    if found != [structure]:
        raise ParseError(
            source,
            f"the payload is not dataflow {structure}: its {structure_column} column holds {found[:5]}",
            snapshot,
        )
    wanted = list(dimensions)
    present = code_columns(frame)
    missing = [d for d in wanted if d not in present]
    if missing:
        raise ParseError(
            source,
            f"dataflow {structure} answered with another structure: dimension(s) {missing} missing "
            f"(columns: {present})",
            snapshot,
        )


def observation_values(
    frame: pd.DataFrame,
    source: str,
    snapshot: str | None = None,
    *,
    value: str = "OBS_VALUE",
    multiplier: str | None = None,
) -> pd.Series:
    """OBS_VALUE as floats (empty, `NaN` and `NA` as missing), times 10**multiplier when one is given."""
    text = frame[value].astype(str).str.strip()
    missing = text.isin(["", "NaN", "nan", "NA"])
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        raise ParseError(
            source, f"unreadable number(s) in {value}: {sorted(text[bad].unique())[:5]}", snapshot
        )
    if multiplier and multiplier in frame:
        power = frame[multiplier].astype(str).str.strip().replace("", "0")
        exponents = pd.to_numeric(power, errors="coerce")
        if exponents.isna().any():
            raise ParseError(
                source,
                f"unreadable unit multiplier(s) in {multiplier}: {sorted(power[exponents.isna()].unique())}",
                snapshot,
            )
        numbers = numbers * np.power(10.0, exponents)
    return numbers.astype(float)
