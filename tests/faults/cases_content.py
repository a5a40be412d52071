"""Payloads that arrive whole but are wrong, served for one OECD indicator with a new ETag.

Refused payloads: a loud error naming the source and the cause, every table as it was, the
payload in quarantine and never promoted. Handled payloads (an encoding the parser knows, a
BOM, an extra column): accepted, and the data must be what the payload says.
"""

from __future__ import annotations

from collections.abc import Callable

from sources import oecd
from tests.faults import payloads
from tests.faults.harness import (
    INDICATORS,
    baseline,
    capture,
    expect_refused,
    live_bytes,
    quarantine,
    require,
    run_oecd,
    serve_oecd,
    short,
    table_dump,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply

GDP, UNEMPLOYMENT = INDICATORS[0], INDICATORS[1]
REFUSED = "refused: error names source and cause; tables intact; payload quarantined, not promoted"


def _serve(indicator: str, body: bytes) -> None:
    serve_oecd(faults={indicator: Reply(200, body, {"Content-Type": "text/csv", "ETag": '"v2"'})})


def _refused(indicator: str, body: bytes, cause: str) -> str:
    with workspace() as ws:
        _serve(indicator, body)
        return expect_refused(ws, run_oecd(), cause, body)


def _raw_rows(db, indicator: str) -> list[tuple]:
    """The raw rows of one indicator's dataflow, without the snapshot id (which names the payload)."""
    dataflow = next(q.dataflow for q in oecd.QUERIES if q.indicator == indicator)
    rows = table_dump(db)["raw.oecd_regional"]
    return sorted(row[:-1] for row in rows if dataflow in row[0])


def _handled(indicator: str, body: bytes, check: Callable[[object], str]) -> str:
    """The payload must be accepted; `check(workspace)` verifies its data and says what it saw."""
    with workspace() as ws:
        _serve(indicator, body)
        error = run_oecd()
        require(error is None, f"the payload was refused: {error}")
        after = capture(ws.root)
        before = baseline().state
        old_snapshots = set(before.tables["core.snapshots"])
        require(old_snapshots <= set(after.tables["core.snapshots"]), "earlier snapshot rows were altered")
        altered = [p for p, digest in before.files.items() if after.files.get(p, digest) != digest]
        require(
            not [p for p in altered if not p.startswith("latest/")], f"raw-store files altered: {altered}"
        )
        require(not quarantine(ws.raw), "a payload was quarantined although the run succeeded")
        return check(ws)


@case(
    "C01",
    "content",
    "wrong encoding: the payload arrives in cp1252 instead of UTF-8",
    "handled: decoded as cp1252, every raw row identical to the UTF-8 payload's ('Tarapacá' intact)",
)
def cp1252_payload() -> str:
    body = live_bytes(GDP).decode("utf-8").encode("cp1252")
    require(body != live_bytes(GDP), "the sample has no non-ASCII text to mis-decode")

    def check(ws) -> str:
        rows = _raw_rows(ws.db, GDP)
        require(
            rows == _raw_rows(baseline().root / "context.duckdb", GDP),
            "the cp1252 payload parsed differently",
        )
        labels = {row[2] for row in rows}
        require("Tarapacá" in labels, f"accented labels garbled: {sorted(labels)}")
        return f"accepted; {len(rows)} raw rows identical to the UTF-8 payload's; labels {sorted(labels)[:3]}"

    return _handled(GDP, body, check)


@case(
    "C02",
    "content",
    "wrong encoding: the payload arrives as UTF-16",
    REFUSED,
)
def utf16_payload() -> str:
    return _refused(
        GDP, live_bytes(GDP).decode("utf-8").encode("utf-16"), r"UTF-16|NUL|missing required column"
    )


@case(
    "C03",
    "content",
    "UTF-8 byte-order mark before the header",
    "handled: BOM stripped; every raw row identical to the payload without BOM (no '\\ufeffSTRUCTURE')",
)
def bom_payload() -> str:
    body = b"\xef\xbb\xbf" + live_bytes(GDP)

    def check(ws) -> str:
        rows = _raw_rows(ws.db, GDP)
        require(
            rows == _raw_rows(baseline().root / "context.duckdb", GDP), "the BOM payload parsed differently"
        )
        require(not any("\ufeff" in str(row) for row in rows), "the BOM leaked into the data")
        return f"accepted; {len(rows)} raw rows identical to the payload without BOM"

    return _handled(GDP, body, check)


@case("C04", "content", "renamed column (OBS_VALUE -> VALUE)", REFUSED)
def renamed_column() -> str:
    return _refused(GDP, payloads.rename_column(live_bytes(GDP), "OBS_VALUE", "VALUE"), r"OBS_VALUE")


@case("C05", "content", "missing column (TIME_PERIOD and its label dropped)", REFUSED)
def missing_column() -> str:
    return _refused(GDP, payloads.drop_column(live_bytes(GDP), "TIME_PERIOD"), r"TIME_PERIOD")


@case(
    "C06",
    "content",
    "extra column (a new SDMX dimension SOURCE_NOTE)",
    "accepted by rule: an extra dimension is kept in raw.dimensions and changes no selected value",
)
def extra_column() -> str:
    body = payloads.add_column(live_bytes(GDP), "SOURCE_NOTE", "Source note", "revised")

    def check(ws) -> str:
        new, old = _raw_rows(ws.db, GDP), _raw_rows(baseline().root / "context.duckdb", GDP)
        require(all("SOURCE_NOTE=revised" in row[7] for row in new), "the new dimension is not kept in raw")
        strip = [(*row[:7], row[7].replace(";SOURCE_NOTE=revised", ""), *row[8:]) for row in new]
        require(sorted(strip) == old, "the extra column changed values other than raw.dimensions")
        return f"accepted; {len(new)} rows, values unchanged, dimensions e.g. {short(new[0][7], 70)}"

    return _handled(GDP, body, check)


@case("C07", "content", "duplicate key (CL02 2020 twice)", REFUSED)
def duplicate_key() -> str:
    body = payloads.duplicate_row(live_bytes(GDP), payloads.area_year("CL02", "2020"))
    return _refused(GDP, body, r"several rows for CL02 2020")


@case(
    "C08",
    "content",
    "value out of range (unemployment rate 250 % in CL02 2020)",
    REFUSED,
)
def out_of_range() -> str:
    body = payloads.edit_rows(
        live_bytes(UNEMPLOYMENT), payloads.area_year("CL02", "2020"), {"OBS_VALUE": "250"}
    )
    return _refused(UNEMPLOYMENT, body, r"oecd_unemployment_rate|range|plausible")


@case(
    "C09",
    "content",
    "unit changed: UNIT_MULT 3 on CL02 GDP rows (values x1000)",
    REFUSED,
)
def unit_multiplier() -> str:
    body = payloads.edit_rows(live_bytes(GDP), payloads.area("CL02"), {"UNIT_MULT": "3"})
    return _refused(GDP, body, r"oecd_gdp_per_capita_usd_ppp|range|plausible|UNIT_MULT")


@case(
    "C10",
    "content",
    "unit changed: UNIT_MEASURE USD_PPP_PS -> USD_PS on every GDP row",
    REFUSED,
)
def unit_measure_all() -> str:
    body = payloads.edit_rows(live_bytes(GDP), lambda row: True, {"UNIT_MEASURE": "USD_PS"})
    return _refused(GDP, body, r"USD_PS.*where USD_PPP_PS was expected")


@case(
    "C11",
    "content",
    "unit changed for one region only: CL02 GDP in USD_PS",
    REFUSED,
)
def unit_measure_one_region() -> str:
    body = payloads.edit_rows(live_bytes(GDP), payloads.area("CL02"), {"UNIT_MEASURE": "USD_PS"})
    return _refused(GDP, body, r"USD_PS|unit")


@case(
    "C12",
    "content",
    "unknown territory code (CL03 -> CL99)",
    REFUSED,
)
def unknown_territory() -> str:
    body = payloads.edit_rows(live_bytes(GDP), payloads.area("CL03"), {"REF_AREA": "CL99"})
    return _refused(GDP, body, r"CL99")
