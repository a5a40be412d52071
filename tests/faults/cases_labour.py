"""Bad input for the labour, census and poverty families, served live after one good live run of each.

The baseline here is a warehouse and raw store after a good run of the ENE, Census 2024 (tables
and microdata), poverty, DEIS establishments and INDH conflicts assets against the scripted server
(territories from their SAMPLE); the facilities and conflicts cases are in cases_facilities.py.
Each case serves one broken payload under a new ETag (every other request still answers 304),
runs the family's assets in-process, and checks: the error names the source, the snapshot of the
broken payload and the problem; the source's status is `failed`; every data table and raw-store
file is as it was; the broken payload is in quarantine and was never promoted.
"""

from __future__ import annotations

import atexit
import csv
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openpyxl

from pipelines import census2024, conflicts, facilities, labour, poverty, territories
from pipelines.resources import SourcesResource
from sources import (
    census2024_microdata,
    census2024_tables,
    deis_establishments,
    indh_conflicts,
    ine_ene,
    mds_poverty,
)
from sources.base import SourceError
from tests.faults.harness import (
    FaultSources,
    State,
    Workspace,
    capture,
    environment,
    files_intact,
    names_source_and_cause,
    quarantine,
    require,
    run_asset,
    server,
    sha,
    shown,
    status,
    tables_intact,
)
from tests.faults.matrix import case
from tests.support.http import Reply

ETAG = '"good"'
FAMILIES = {
    ine_ene.SOURCE.id: (
        labour.ASSETS,
        {flow.id: labour.SAMPLE_DIR / f"{flow.id}_SAMPLE.csv" for flow in ine_ene.DATAFLOWS},
    ),
    census2024_tables.SOURCE.id: (
        census2024.ASSETS[::2],
        {name: census2024.SAMPLES[name] for name in census2024_tables.WORKBOOKS},
    ),
    census2024_microdata.SOURCE.id: (
        census2024.ASSETS[1::2],
        {name: census2024.SAMPLES[name] for name in ("dictionary", "viviendas", "personas")},
    ),
    mds_poverty.SOURCE.id: (poverty.ASSETS, {"multidimensional_2022": poverty.SAMPLE, "income_2022": None}),
    deis_establishments.SOURCE.id: (facilities.ASSETS, {"workbook": facilities.SAMPLE}),
    indh_conflicts.SOURCE.id: (conflicts.ASSETS, {"conflicts": conflicts.SAMPLE}),
}
REFUSED = (
    "refused: error names source, snapshot and problem; status failed; tables intact; payload quarantined"
)
_shared: dict[str, object] = {}


def _path(source: str, name: str) -> str:
    return f"/labour-faults/{source}/{name}"


def _serve(bad: dict[tuple[str, str], bytes] | None = None) -> None:
    """Every request of the sources: the good payload (304 when unchanged), or the given bad one."""
    bad = bad or {}
    for source, (_, files) in FAMILIES.items():
        for name, sample in files.items():
            if (source, name) in bad:
                server().script(_path(source, name), Reply(200, bad[(source, name)], {"ETag": '"broken"'}))
            elif sample is None:
                server().script(_path(source, name), Reply(404, b"not found"))
            else:
                body = sample.read_bytes()

                def reply(handler, body=body):
                    if handler.headers.get("If-None-Match") == ETAG:
                        return Reply(304)
                    return Reply(200, body, {"ETag": ETAG})

                server().script(_path(source, name), reply)


def _variables(root: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "CONTEXT_LENS_DB": str(root / "context.duckdb"),
        "CONTEXT_LENS_RAW_DIR": str(root / "raw"),
        "CONTEXT_LENS_OUTPUT": str(root / "output"),
        "CONTEXT_LENS_OFFLINE": None,
    }
    for source, (_, files) in FAMILIES.items():
        for name in files:
            env[f"CONTEXT_LENS_ENDPOINT__{source.upper()}__{name.upper()}"] = server().url(
                _path(source, name)
            )
    return env


def _sources() -> SourcesResource:
    return FaultSources(max_attempts=1, backoff_seconds=0.01)


def run_family(source: str) -> SourceError | None:
    try:
        for asset in FAMILIES[source][0]:
            run_asset(asset, _sources())
    except SourceError as exc:
        return exc
    return None


def _baseline() -> tuple[Path, State]:
    if "baseline" not in _shared:
        root = Path(tempfile.mkdtemp(prefix="faults-labour-"))
        atexit.register(shutil.rmtree, root, True)
        _serve()
        with environment(**_variables(root)):
            with environment(CONTEXT_LENS_OFFLINE="1"):
                for asset in territories.ASSETS:
                    run_asset(asset, _sources())
            for source in FAMILIES:
                error = run_family(source)
                if error is not None:
                    raise RuntimeError(f"the labour baseline run of {source} failed: {error}")
        _shared["baseline"] = (root, capture(root))
    return _shared["baseline"]  # type: ignore[return-value]


@contextmanager
def workspace() -> Iterator[Workspace]:
    base, _ = _baseline()
    root = Path(tempfile.mkdtemp(prefix="faults-labour-case-"))
    try:
        shutil.copytree(base, root, dirs_exist_ok=True)
        _serve()
        with environment(**_variables(root)):
            yield Workspace(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def refused(source: str, name: str, body: bytes, cause: str) -> str:
    """Serve `body` for one request, run the source's family, and check the refusal end to end."""
    with workspace() as ws:
        _serve({(source, name): body})
        return check_refused(ws, source, body, run_family(source), cause)


def check_refused(ws: Workspace, source: str, body: bytes, error: SourceError | None, cause: str) -> str:
    """The refusal of `body` end to end: error, status failed, tables and raw store intact, quarantine."""
    require(error is not None, "the broken payload was accepted and published")
    names_source_and_cause(str(error), cause, source)
    require(error.snapshot and error.snapshot in str(error), f"the error names no snapshot: {error}")
    row = status(ws.db, source)
    require(row is not None and row[0] == "failed", f"source status is {row}, not failed")
    names_source_and_cause(f"{source} {row[3]}", cause, source)
    before, after = _baseline()[1], capture(ws.root)
    tables_intact(before, after)
    kept = [meta for meta, content in quarantine(ws.raw, source) if content == body]
    require(kept, f"the refused payload is not in quarantine ({len(quarantine(ws.raw, source))} kept)")
    files_intact(before, after, ws.raw, frozenset({sha(body)}))
    return f"{error.stage} error ({error.source}, snapshot named): {shown(error.problem)}; {REFUSED[9:]}"


# --- payload edits ----------------------------------------------------------------------------


def _workbook(path: Path, edit) -> bytes:
    book = openpyxl.load_workbook(path)
    edit(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rezip(path: Path, member: str, edit) -> bytes:
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.reader(io.StringIO(archive.read(member).decode("ascii"), newline=""), delimiter=";"))
    rows = edit(rows)
    text = io.StringIO(newline="")
    csv.writer(text, delimiter=";", lineterminator="\n").writerows(rows)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, text.getvalue())
    return out.getvalue()


def _set_cell(rows: list[list[str]], column: str, value: str, where) -> list[list[str]]:
    at = rows[0].index(column)
    index = next(i for i, row in enumerate(rows[1:], start=1) if where(dict(zip(rows[0], row, strict=True))))
    rows[index][at] = value
    return rows


TABLES = census2024_tables.SOURCE.id
MICRODATA = census2024_microdata.SOURCE.id


@case("L01", "content", "census workbook: the water-source sheet's title changed", REFUSED)
def census_title_changed() -> str:
    def edit(book):
        sheet = book["2"]
        sheet["A3"] = sheet["A3"].value.replace("fuente de origen del agua", "procedencia del agua")

    return refused(
        TABLES, "V4", _workbook(census2024.SAMPLES["V4"], edit), r"no sheet titled .*fuente de origen"
    )


@case("L02", "content", "census workbook: a header cell changed ('Camión aljibe' renamed)", REFUSED)
def census_header_changed() -> str:
    def edit(book):
        for sheet in (book["1"], book["2"]):
            for cell in sheet[4]:
                if cell.value == "Camión aljibe":
                    cell.value = "Camión cisterna"

    return refused(
        TABLES, "V4", _workbook(census2024.SAMPLES["V4"], edit), r"header lacks \['Camión aljibe'\]"
    )


@case("L03", "content", "census workbook: a comuna count changed so the comunas no longer add up", REFUSED)
def census_totals_broken() -> str:
    def edit(book):
        sheet = book["2"]
        row = next(r for r in sheet.iter_rows(min_row=5) if r[4].value == 2201)
        row[7].value = row[7].value * 10  # Calama's public-network dwellings x10

    return refused(TABLES, "V4", _workbook(census2024.SAMPLES["V4"], edit), "do not add up to the País row")


@case(
    "L04",
    "content",
    "ENE dataflow answers with another structure (DF_TP_SEXO served for DF_TDES_SEXO)",
    REFUSED,
)
def ene_other_structure() -> str:
    body = (labour.SAMPLE_DIR / "DF_TP_SEXO_SAMPLE.csv").read_bytes()
    return refused(ine_ene.SOURCE.id, "DF_TDES_SEXO", body, r"not dataflow CL01:DF_TDES_SEXO")


@case("L05", "content", "ENE dataflow with a renamed dimension (SEXO -> GENERO)", REFUSED)
def ene_renamed_dimension() -> str:
    body = (labour.SAMPLE_DIR / "DF_TDES_SEXO_SAMPLE.csv").read_bytes().replace(b",SEXO,", b",GENERO,", 1)
    return refused(ine_ene.SOURCE.id, "DF_TDES_SEXO", body, r"another structure: dimension\(s\) \['SEXO'\]")


@case("L06", "content", "SDMX error message answered with HTTP 200", REFUSED)
def ene_error_with_200() -> str:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><message:Error xmlns:message="http://www.sdmx.org/resources/sdmxml/'
        b'schemas/v2_1/message"><message:ErrorMessage code="500"><common:Text xmlns:common="c">Could not find '
        b"Dataflow and/or DSD related with this data request</common:Text></message:ErrorMessage></message:Error>"
    )
    return refused(
        ine_ene.SOURCE.id, "DF_OCURAMA_RAMA_SEXO", body, r"SDMX error message \(code 500\): Could not find"
    )


@case(
    "L07", "content", "ENE employed persons published in persons with MULT still 3 (a unit change)", REFUSED
)
def ene_unit_change() -> str:
    text = (labour.SAMPLE_DIR / "DF_OCURAMA_RAMA_SEXO_SAMPLE.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    value = rows[0].index("OBS_VALUE")
    for row in rows[1:]:
        row[value] = repr(float(row[value]) * 1000)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return refused(
        ine_ene.SOURCE.id, "DF_OCURAMA_RAMA_SEXO", out.getvalue().encode(), r"plausible|unit change"
    )


@case("L08", "content", "ENE women's employment doubled: women + men no longer equal both sexes", REFUSED)
def ene_sexes_disagree() -> str:
    text = (labour.SAMPLE_DIR / "DF_OCURAMA_RAMA_SEXO_SAMPLE.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    sex, value = rows[0].index("SEXO"), rows[0].index("OBS_VALUE")
    for row in rows[1:]:
        if row[sex] == "F":
            row[value] = repr(float(row[value]) * 2)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return refused(
        ine_ene.SOURCE.id, "DF_OCURAMA_RAMA_SEXO", out.getvalue().encode(), "women, men and both sexes"
    )


@case(
    "L09",
    "content",
    "census microdata: a labour-force code outside the dictionary (sit_fuerza_trabajo 7)",
    REFUSED,
)
def microdata_code_outside_dictionary() -> str:
    body = _rezip(
        census2024.SAMPLES["personas"],
        "personas_censo2024.csv",
        lambda rows: _set_cell(rows, "sit_fuerza_trabajo", "7", lambda r: r["sit_fuerza_trabajo"] == "1"),
    )
    return refused(
        MICRODATA, "personas", body, r"sit_fuerza_trabajo code\(s\) \{'7': 1\}.*outside the dictionary"
    )


@case(
    "L10",
    "content",
    "census microdata: a comuna code that is not in the territorial division (2209)",
    REFUSED,
)
def microdata_unknown_comuna() -> str:
    def edit(rows):
        return _set_cell(rows, "comuna", "2209", lambda r: r["comuna"] == "2201")

    body = _rezip(census2024.SAMPLES["viviendas"], "viviendas_censo2024.csv", edit)
    return refused(MICRODATA, "viviendas", body, r"comuna value.*2209.*no comuna with this code")


@case("L11", "content", "census microdata: the dwelling file's rows doubled", REFUSED)
def microdata_doubled_rows() -> str:
    body = _rezip(census2024.SAMPLES["viviendas"], "viviendas_censo2024.csv", lambda rows: rows + rows[1:])
    return refused(MICRODATA, "viviendas", body, r"differ from the dictionary's Conteo")


@case("L12", "content", "census table: a comuna code that is not in the territorial division", REFUSED)
def table_unknown_comuna() -> str:
    def edit(book):
        for row in book["2"].iter_rows(min_row=5):
            if row[4].value == 2202:
                row[4].value = 2209

    return refused(TABLES, "V4", _workbook(census2024.SAMPLES["V4"], edit), r"2209.*no comuna with this code")


@case("L13", "content", "poverty workbook in percent instead of fractions", REFUSED)
def poverty_in_percent() -> str:
    def edit(book):
        sheet = book.worksheets[0]
        for row in sheet.iter_rows(min_row=4):
            if isinstance(row[0].value, int):
                for cell in row[5:8]:
                    cell.value = cell.value * 100

    body = _workbook(poverty.SAMPLE, edit)
    return refused(mds_poverty.SOURCE.id, "multidimensional_2022", body, r"rate.*in_range\(0, 1\)")
