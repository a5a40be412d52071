"""Presupuesto Abierto (DIPRES / Ministerio de Hacienda): central-government payments by region and year.

We use it for regional-government budget execution: payments grouped by partida, capítulo and
área, filtered to one region and one year.

ASSUMED RESPONSE SHAPE (not verified against a live answer; no saved `data/pagos` response
exists in our notes). We assume the grouped `data/pagos` answer is what a saved probe of the
sibling endpoint `data/municipios` returned (public repository
smoralesm07-source/Rada_Presupuesto_Abierto, `docs/data/municipal_api_probe.json`), and what
public R code reading this very URL with `jsonlite::fromJSON` into a data frame implies:
a top-level JSON array of flat objects, one per group, holding the group-by keys plus `count`
(number of payment records) and `sum` (amount paid, assumed CLP), e.g.

    [{"partida": "31", "capitulo": "02", "area": "...", "count": 812, "sum": 40338615342}]

Anything else (an object, an error message, an HTML page, a row without these keys) is a
ParseError that lists the keys found, so the first live run shows the real shape at once.
The region goes into `where` as a number, as in SOURCES.md; the sibling `data/municipios`
answer writes regions as text ("02"), so an empty live answer may mean the filter wants text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sources import specs
from sources.base import FetchRequest, ParseError, decode_text, normalize_cut

SOURCE = specs.source("presupuesto_abierto")

ENDPOINTS = specs.endpoints("presupuesto_abierto")

GROUP_BY = ("partida", "capitulo", "area")
REQUIRED_KEYS = (*GROUP_BY, "count", "sum")
NAME_KEYS = {"partida": "nombre_partida", "capitulo": "nombre_capitulo", "area": "nombre_area"}

COLUMNS = [
    "region_code",  # 2-digit region the request filtered on
    "year",  # the request's periodo
    "partida",
    "capitulo",
    "area",
    "partida_name",  # null unless the answer carries nombre_partida
    "capitulo_name",
    "area_name",
    "payments_count",  # `count`
    "amount_clp",  # `sum`, assumed nominal CLP
]


def pagos_request(endpoint: str, region: int, year: int) -> FetchRequest:
    """GET payments grouped by partida, capítulo, área for one region (number, e.g. 2) and year."""
    where = json.dumps({"region": int(region), "periodo": int(year)}, separators=(",", ":"))
    return FetchRequest(
        name=f"presupuesto-abierto-pagos-r{int(region):02d}-{year}",
        url=endpoint,
        expect="json",
        params={"group-by": json.dumps(list(GROUP_BY), separators=(",", ":")), "where": where},
    )


def parse_pagos(data: bytes | Path, region: int, year: int, snapshot: str | None = None) -> pd.DataFrame:
    """The grouped `data/pagos` answer -> COLUMNS (see the module docstring for the assumed shape)."""
    content = data.read_bytes() if isinstance(data, Path) else data
    text = decode_text(content, SOURCE.id).strip()
    if text[:1] == "<":
        raise ParseError(SOURCE.id, f"answer is an HTML/XML page, not JSON ({text[:80]!r})", snapshot)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"answer is not JSON ({exc})", snapshot) from exc
    if not isinstance(document, list):
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ParseError(
            SOURCE.id,
            f"expected a JSON list of grouped rows (assumed shape), found an object with keys {found}",
            snapshot,
        )
    rows = []
    for position, record in enumerate(document):
        if not isinstance(record, dict):
            raise ParseError(SOURCE.id, f"row {position} is {type(record).__name__}, not an object", snapshot)
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise ParseError(
                SOURCE.id,
                f"row {position} lacks {missing} (assumed shape); keys found: {sorted(record)}",
                snapshot,
            )
        try:
            count, amount = int(record["count"]), float(record["sum"])
        except (TypeError, ValueError) as exc:
            raise ParseError(
                SOURCE.id,
                f"row {position}: count/sum not numeric ({record['count']!r}, {record['sum']!r})",
                snapshot,
            ) from exc
        rows.append(
            {
                "region_code": normalize_cut(region, "region"),
                "year": int(year),
                **{key: str(record[key]).strip() for key in GROUP_BY},
                **{f"{key}_name": record.get(name_key) for key, name_key in NAME_KEYS.items()},
                "payments_count": count,
                "amount_clp": amount,
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"year": "int64", "payments_count": "int64", "amount_clp": "float64"})
