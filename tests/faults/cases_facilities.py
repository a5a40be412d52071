"""Bad input for the facilities (DEIS establishments) and conflicts (INDH) families (issue 18, Bad input).

Same baseline and serving as cases_labour.py. A workbook whose sheet moved, or an HTML page served
with status 200, is refused: the previous good data stays. Coordinates outside Chile and a conflict
with no point are published as flagged rows: nothing is dropped, and nothing else changes.
"""

from __future__ import annotations

import json

import duckdb

from pipelines import conflicts, facilities
from sources import deis_establishments, indh_conflicts
from tests.faults.cases_labour import REFUSED, _baseline, _serve, _workbook, refused, run_family, workspace
from tests.faults.harness import capture, names_source_and_cause, require, shown, status, tables_intact
from tests.faults.matrix import case

DEIS, INDH = deis_establishments.SOURCE.id, indh_conflicts.SOURCE.id
FLAGGED = "published with the row kept and flagged; counts unchanged; status ok"


@case("E01", "content", "DEIS workbook whose establishments sheet moved (renamed)", REFUSED)
def deis_sheet_moved() -> str:
    def edit(book):
        book.move_sheet("Establecimientos Vigentes", offset=2)
        book["Establecimientos Vigentes"].title = "Vigentes"

    body = _workbook(facilities.SAMPLE, edit)
    return refused(DEIS, "workbook", body, r"no sheet 'Establecimientos Vigentes' in the workbook")


@case(
    "E02",
    "content",
    "INDH map answers an HTML maintenance page with status 200",
    "not accepted: the earlier live payload is served (stale), the error names the source; tables intact",
)
def indh_html_with_200() -> str:
    body = (
        b"<!DOCTYPE html><html><head><title>Mantenimiento</title></head><body>En mantenimiento</body></html>"
    )
    with workspace() as ws:
        _serve({(INDH, "conflicts"): body})
        error = run_family(INDH)
        require(error is None, f"the family failed instead of serving its earlier payload: {error}")
        row = status(ws.db, INDH)
        require(row is not None and row[0] == "stale", f"source status is {row}, not stale")
        names_source_and_cause(str(row), r"HTML page was served where json was expected", INDH)
        before, after = _baseline()[1], capture(ws.root)
        tables_intact(before, after)
        return f"stale (earlier live snapshot served): {shown(row[3])}; tables intact"


def _published(source: str, name: str, body: bytes, query: str) -> list[tuple]:
    with workspace() as ws:
        _serve({(source, name): body})
        error = run_family(source)
        require(error is None, f"the payload was refused: {error}")
        with duckdb.connect(str(ws.db), read_only=True) as conn:
            status = conn.execute(
                "SELECT status FROM core.source_status WHERE source_id = ?", [source]
            ).fetchone()
            require(status and status[0] != "failed", f"status is {status}")
            return conn.execute(query).fetchall()


@case(
    "E03",
    "content",
    "DEIS establishment with coordinates outside Chile (latitude and longitude swapped)",
    FLAGGED,
)
def deis_outside_chile() -> str:
    def edit(book):
        sheet = book["Establecimientos Vigentes"]
        sheet.cell(row=3, column=28).value, sheet.cell(row=3, column=29).value = -20.49, -69.33

    body = _workbook(facilities.SAMPLE, edit)
    rows = _published(
        DEIS,
        "workbook",
        body,
        "SELECT establishment_code, coordinate_flag, comuna_mismatch, "
        "(SELECT count(*) FROM staging.health_facilities), "
        "(SELECT value FROM core.observations WHERE indicator_id = 'deis_facilities_count' "
        "AND territory_id = 'comuna:01405') FROM staging.health_facilities WHERE coordinate_flag LIKE '%outside%'",
    )
    require(len(rows) == 1 and rows[0][0] == "102100", f"flagged rows: {rows}")
    code, flag, mismatch, total, pica = rows[0]
    require(total == 25 and pica == 1, f"{total} establishments, Pica counts {pica}: a row was dropped")
    require(mismatch is None, "a point outside Chile was used to locate the establishment")
    return f"row {code} kept: {shown(flag)}; still counted in its stated comuna ({pica}); {total} rows"


@case(
    "E04",
    "content",
    "INDH conflict with no map point and no region field (region only in `regiones`)",
    FLAGGED,
)
def indh_no_point() -> str:
    records = json.loads(conflicts.SAMPLE.read_bytes())
    records[0]["marcaMapa"] = {
        "id": 1,
        "latitud": None,
        "longitud": None,
        "poligono": "",
        "esPoligono": False,
    }
    records[0]["region"] = None
    body = json.dumps(records, ensure_ascii=False, indent=2).encode()
    rows = _published(
        INDH,
        "conflicts",
        body,
        "SELECT conflict_id, location_flag, placed_region_code, located_comuna_code, "
        "(SELECT value FROM core.observations WHERE indicator_id = 'indh_conflicts_count' "
        "AND territory_id = 'region:02'), (SELECT flag FROM core.observations WHERE "
        "indicator_id = 'indh_conflicts_count' AND territory_id = 'region:02') "
        "FROM staging.socioenvironmental_conflicts WHERE location_flag IS NOT NULL",
    )
    require(len(rows) == 1 and rows[0][0] == "9001", f"flagged rows: {rows}")
    cid, flag, region, comuna, count, note = rows[0]
    require(
        region == "02" and comuna is None and count == 4, f"placed {region}/{comuna}, region count {count}"
    )
    require(note and "placed by their stated region" in note, f"the region count does not say so: {note}")
    return f"conflict {cid} kept: {shown(flag)}; counted in region 02 (4, flagged), in no comuna"
