"""Bad input for the air family (SINCA), served live after one good live run.

The baseline is a warehouse and raw store after a good live run of the SINCA assets against the
scripted server (the SAMPLE payloads served as if live; territories from their SAMPLE). Each
case serves one broken payload under a new ETag (every other request answers 304) and runs the
family's assets in-process:
- an HTML error page with status 200 where an export was expected: the fetch layer refuses it,
  the earlier live snapshot is served (status stale), every table as it was;
- an export whose validated column is empty (every value moved to preliminary): no annual
  figure is made from preliminary values, so the series' complete year would lose its mean; the
  value gate of staging.sinca_annual (judged per series) refuses that, every table as it was;
- station coordinates outside Chile (latitude and longitude swapped): the station is kept,
  flagged `outside_chile` and not located, the location check fails naming it, and its figures
  leave no comuna silently: the observations' value gate keeps the previous ones.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines import air, territories
from sources import sinca
from sources.base import SourceError
from tests.faults.harness import (
    FaultSources,
    State,
    Workspace,
    capture,
    environment,
    names_source_and_cause,
    require,
    run_asset,
    server,
    shown,
    status,
    tables_intact,
)
from tests.faults.matrix import case
from tests.support.http import Reply

ETAG = '"good"'
SOURCE = sinca.SOURCE.id
FILES = {"stations": air.STATIONS_SAMPLE} | {
    sinca.series_name(s, p): air.SAMPLE_DIR / f"{sinca.series_name(s, p)}_SAMPLE.csv" for s, p in sinca.SERIES
}
_shared: dict[str, object] = {}


def _path(name: str) -> str:
    return f"/air-faults/{name}"


def _serve(bad: dict[str, bytes] | None = None) -> None:
    bad = bad or {}
    for name, sample in FILES.items():
        if name in bad:
            server().script(_path(name), Reply(200, bad[name], {"ETag": '"broken"'}))
            continue
        body = sample.read_bytes()

        def reply(handler, body=body):
            if handler.headers.get("If-None-Match") == ETAG:
                return Reply(304)
            return Reply(200, body, {"ETag": ETAG})

        server().script(_path(name), reply)


def _variables(root: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "CONTEXT_LENS_DB": str(root / "context.duckdb"),
        "CONTEXT_LENS_RAW_DIR": str(root / "raw"),
        "CONTEXT_LENS_OUTPUT": str(root / "output"),
        "CONTEXT_LENS_OFFLINE": None,
    }
    for name in FILES:
        env[f"CONTEXT_LENS_ENDPOINT__{SOURCE.upper()}__{name.upper()}"] = server().url(_path(name))
    return env


def run_family() -> SourceError | None:
    try:
        for asset in air.ASSETS:
            run_asset(asset, FaultSources(max_attempts=1, backoff_seconds=0.01))
    except SourceError as exc:
        return exc
    return None


def _baseline() -> tuple[Path, State]:
    if "baseline" not in _shared:
        root = Path(tempfile.mkdtemp(prefix="faults-air-"))
        atexit.register(shutil.rmtree, root, True)
        _serve()
        with environment(**_variables(root)):
            with environment(CONTEXT_LENS_OFFLINE="1"):
                for asset in territories.ASSETS:
                    run_asset(asset, FaultSources(max_attempts=1, backoff_seconds=0.01))
            error = run_family()
            if error is not None:
                raise RuntimeError(f"the air baseline run failed: {error}")
        _shared["baseline"] = (root, capture(root))
    return _shared["baseline"]  # type: ignore[return-value]


@contextmanager
def workspace() -> Iterator[Workspace]:
    base, _ = _baseline()
    root = Path(tempfile.mkdtemp(prefix="faults-air-case-"))
    try:
        shutil.copytree(base, root, dirs_exist_ok=True)
        _serve()
        with environment(**_variables(root)):
            yield Workspace(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _query(db: Path, sql: str) -> list[tuple]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _observations(db: Path) -> list[tuple]:
    return _query(db, "SELECT * FROM core.observations WHERE source_id = 'sinca' ORDER BY ALL")


SERIES = sinca.series_name("RII/217", "PM25")


@case(
    "S01",
    "content",
    "SINCA export answered as an HTML error page with status 200",
    "fetch refused (HTML where csv was expected); earlier live snapshot served (stale); tables intact",
)
def sinca_html_with_200() -> str:
    body = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Servicio no disponible</body></html>"
    with workspace() as ws:
        _serve({SERIES: body})
        error = run_family()
        require(error is None, f"the run failed instead of serving the earlier snapshot: {error}")
        row = status(ws.db, SOURCE)
        require(row is not None and row[0] == "stale", f"source status is {row}, not stale")
        names_source_and_cause(row[3] or "", r"HTML page", SOURCE)
        before, after = _baseline()[1], capture(ws.root)
        tables_intact(before, after)
        return f"stale: {shown(row[3])}; tables intact"


@case(
    "S02",
    "content",
    "SINCA export with the validated column empty (every value preliminary)",
    "no annual mean from preliminary values: the series' validated year would be blanked, so the value "
    "gate of staging.sinca_annual refuses the publication; every table as it was",
)
def sinca_validated_empty() -> str:
    good = FILES[SERIES].read_bytes().decode("latin-1").splitlines()
    moved = [good[0]]
    for line in good[1:]:
        cells = line.split(";")
        if cells[2]:
            cells[3], cells[2] = cells[2], ""
        moved.append(";".join(cells))
    body = ("\n".join(moved) + "\n").encode("latin-1")
    with workspace() as ws:
        _serve({SERIES: body})
        error = run_family()
        require(error is not None, "the series' validated annual figures were dropped without a word")
        names_source_and_cause(str(error), r"remove or blank.*RII/217 PM25", SOURCE)
        before, after = _baseline()[1], capture(ws.root)
        tables_intact(before, after)
        return f"{error.stage} refused it: {shown(error.problem)}; tables intact"


@case(
    "S03",
    "content",
    "SINCA station list with a station's coordinates outside Chile (latitude and longitude swapped)",
    "station kept, flagged outside_chile and not located; its comuna figures not silently dropped "
    "(value gate keeps the previous observations)",
)
def sinca_coordinates_outside_chile() -> str:
    items = json.loads(FILES["stations"].read_bytes())
    for item in items:
        if item["key"] == "RII/237":
            item["latitud"], item["longitud"] = item["longitud"], item["latitud"]
    body = json.dumps(items, ensure_ascii=False).encode("utf-8")
    with workspace() as ws:
        _serve({"stations": body})
        error = run_family()
        rows = _query(
            ws.db,
            "SELECT outside_chile, located_comuna_code FROM staging.sinca_stations WHERE station_code = 'RII/237'",
        )
        require(rows == [(True, None)], f"RII/237 in staging: {rows}")
        require(error is not None, "the station's comuna figures disappeared without a word")
        names_source_and_cause(str(error), r"remove or blank", SOURCE)
        before = _baseline()[1]
        after = capture(ws.root)
        require(
            before.tables.get("core.observations") == after.tables.get("core.observations"),
            "core.observations changed",
        )
        return f"flagged outside_chile, not located; {error.stage}: {shown(error.problem)}"
