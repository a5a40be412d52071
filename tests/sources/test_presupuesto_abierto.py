"""Presupuesto Abierto: request building and the ASSUMED grouped-answer shape, on a SAMPLE answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sources import presupuesto_abierto as pa
from sources.base import ParseError

SAMPLE = (
    Path(pa.__file__).resolve().parent
    / "samples"
    / "finance"
    / "presupuesto_abierto_pagos_region02_2024_SAMPLE.json"
)


def test_request_carries_group_by_and_where_as_json() -> None:
    request = pa.pagos_request("https://mirror.example/api/v1/data/pagos", region=2, year=2024)
    assert request.url == "https://mirror.example/api/v1/data/pagos" and request.method == "GET"
    assert json.loads(request.params["group-by"]) == ["partida", "capitulo", "area"]
    assert json.loads(request.params["where"]) == {"region": 2, "periodo": 2024}


def test_sample_answer_parses_with_amounts_unchanged() -> None:
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    frame = pa.parse_pagos(SAMPLE, region=2, year=2024)
    assert list(frame.columns) == pa.COLUMNS and len(frame) == len(raw)
    assert frame["amount_clp"].tolist() == [float(row["sum"]) for row in raw]
    assert frame["payments_count"].tolist() == [row["count"] for row in raw]
    assert set(frame["region_code"]) == {"02"} and set(frame["year"]) == {2024}
    assert frame["area_name"].notna().all() and frame["partida_name"].isna().all()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"error": "Invalid where clause", "status": 400}',
            r"found an object with keys \['error', 'status'\]",
        ),
        (b"<!DOCTYPE html><html><body>Service Unavailable</body></html>", "HTML/XML page, not JSON"),
        (
            b'[{"partida": "31", "capitulo": "02", "area": "001", "monto": 5}]',
            r"lacks \['count', 'sum'\].*keys found: \['area', 'capitulo', 'monto', 'partida'\]",
        ),
        (
            b'[{"partida": "31", "capitulo": "02", "area": "001", "count": 3, "sum": "n/d"}]',
            "count/sum not numeric",
        ),
        (b"{not json", "not JSON"),
    ],
)
def test_any_other_shape_fails_loudly(content: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        pa.parse_pagos(content, region=2, year=2024, snapshot="snap-x")


def test_assumption_is_stated_in_the_citation() -> None:
    assert "ASSUMED" in pa.SOURCE.citation and "ASSUMED" in (pa.__doc__ or "")
