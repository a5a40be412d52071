"""Bad input for provenance (issue 13 items 1 and 2), on a copy of the OECD baseline warehouse.

P01: a value filed under a snapshot of another source that it does not declare as an input
(the old leak of per-inhabitant royalties on SAMPLE population) is refused by the one write
path, naming the source and the snapshot; nothing is written and the source is `failed`.
P02: an INE comuna population file that holds only regions 01-04 (in INE's CSV layout, SAMPLE
figures written here) is published for those comunas and regions, with no Chile total: a sum
of 40 of 346 comunas never stands for the country. Both lose or alter 0 rows already served.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pandas as pd

from pipelines import health
from pipelines.ingest import derived_writer, write_tables
from pipelines.resources import WarehouseResource
from sources import division, ine_population
from sources.base import SourceError, SourceInfo
from sources.rawstore import Sidecar
from tests.faults.harness import (
    FaultSources,
    capture,
    environment,
    names_source_and_cause,
    require,
    run_asset,
    server,
    status,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply
from warehouse import store
from warehouse.db import connect, transaction

SOURCE = SourceInfo(
    id="fault_curated",
    family="faults",
    publisher="context-lens (fault matrix)",
    title="A curated source of the fault matrix (SAMPLE figures)",
    landing_url="https://example.invalid/curated",
    licence="CC-BY-4.0",
    citation="fault matrix",
    cadence=timedelta(days=365),
)
OWN = "fault_curated-20240101000000-aaaaaaaaaaaa"
FOREIGN = "fault_population-20240101000000-bbbbbbbbbbbb"


def _sidecar(snapshot_id: str, source: str, mode: str) -> Sidecar:
    return Sidecar(
        snapshot_id,
        source,
        "p",
        "k",
        "https://example.invalid",
        "GET",
        "2024-01-01 00:00:00",
        "0" * 64,
        1,
        mode,
    )


def _observation(snapshot: str, value: float, inputs=None) -> pd.DataFrame:
    row = {
        "indicator_id": "fault_per_inhabitant",
        "territory_id": "region:02",
        "period": "2024",
        "value": value,
        "lower": float("nan"),
        "upper": float("nan"),
        "flag": None,
        "source_id": SOURCE.id,
        "snapshot_id": snapshot,
    }
    return pd.DataFrame([row | ({"inputs": inputs} if inputs else {})])


@case(
    "P01",
    "content",
    "a derived value filed under another source's SAMPLE snapshot, not declared as its input",
    "refused by the store: error names the source and the snapshot; status failed; tables intact",
)
def undeclared_foreign_snapshot() -> str:
    with workspace() as ws:
        with connect(ws.db) as conn, transaction(conn):
            store.record_source(conn, SOURCE)
            store.record_snapshots(
                conn, [_sidecar(OWN, SOURCE.id, "curated"), _sidecar(FOREIGN, "fault_population", "sample")]
            )
            declared = [("numerator", OWN), ("denominator", FOREIGN)]
            write_tables(conn, SOURCE.id, {("core", "observations"): _observation(OWN, 10.0, declared)})
        before = capture(ws.root)
        warehouse = WarehouseResource()
        try:
            with derived_writer(warehouse, SOURCE) as conn:
                write_tables(conn, SOURCE.id, {("core", "observations"): _observation(FOREIGN, 99.0)})
        except SourceError as exc:
            error = exc
        else:
            raise AssertionError("the value under another source's snapshot was written")
        names_source_and_cause(str(error), r"another source's snapshot", SOURCE.id)
        require(FOREIGN in str(error), f"the error names no snapshot: {error}")
        row = status(ws.db, SOURCE.id)
        require(row is not None and row[0] == "failed", f"source status is {row}, not failed")
        tables_intact(before, capture(ws.root))
        return f"refused: {str(error)[:150]}; status failed; 0 rows lost or altered"


def _four_region_csv() -> bytes:
    """INE's comuna layout (Region..Edad, Poblacion 2002..2035) for every comuna of regions 01-04."""
    header = ["Region", "Nombre Region", "Provincia", "Nombre Provincia", "Comuna", "Nombre Comuna"]
    header += ["Sexo (1=Hombre 2=Mujer)", "Edad", *[f"Poblacion {y}" for y in range(2002, 2036)]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for region in ("01", "02", "03", "04"):
        for comuna in sorted(division.comunas_of(region)):
            for sex in (1, 2):
                for age in (0, 40, 80):
                    figures = [100 + int(comuna) % 97 + age + sex + (y - 2002) for y in range(2002, 2036)]
                    row = [int(region), "R", int(comuna[:3]), "P", int(comuna), f"Comuna {comuna}", sex, age]
                    writer.writerow(row + figures)
    return out.getvalue().encode("utf-8")


@case(
    "P02",
    "content",
    "an INE population file holding only regions 01-04 (40 of 346 comunas), beside INE's national file",
    "published for those comunas and regions; country:CL is the national file's figure, not the 40 comunas' "
    "sum; 0 rows lost",
)
def four_region_population() -> str:
    body = _four_region_csv()
    path, national_path = (
        "/provenance-faults/ine_population/comunas.csv",
        "/provenance-faults/ine_population/pais.csv",
    )
    server().script(path, Reply(200, body, {"ETag": '"four-regions"', "Content-Type": "text/csv"}))
    national = health.NATIONAL_SAMPLE.read_bytes()  # written by us in INE's national layout
    server().script(national_path, Reply(200, national, {"ETag": '"pais"', "Content-Type": "text/csv"}))
    stated = ine_population.parse_national_projection(national).query("sex == 'T' and year == 2024")
    prefix = f"CONTEXT_LENS_ENDPOINT__{ine_population.SOURCE.id.upper()}__"
    variables = {
        f"{prefix}COMUNAS_XLSX": server().url(path),
        f"{prefix}NATIONAL_CSV": server().url(national_path),
    }
    with workspace() as ws, environment(**variables):
        before = capture(ws.root)
        run_asset(health.health_population, FaultSources(max_attempts=1, backoff_seconds=0.01))
        with connect(ws.db, read_only=True) as conn:
            levels = dict(
                conn.execute(
                    "SELECT territory_id, value FROM core.observations "
                    "WHERE indicator_id = 'population' AND period = '2024' AND territory_id NOT LIKE 'comuna:%'"
                ).fetchall()
            )
            comunas = conn.execute(
                "SELECT count(DISTINCT territory_id) FROM core.observations "
                "WHERE indicator_id = 'population' AND territory_id LIKE 'comuna:%'"
            ).fetchone()[0]
        expected = {f"region:{r}" for r in ("01", "02", "03", "04")} | {"country:CL"}
        require(set(levels) == expected, f"population published for {sorted(levels)}, not {sorted(expected)}")
        summed = sum(v for t, v in levels.items() if t.startswith("region:"))
        chile = levels["country:CL"]
        require(
            chile == stated["population"].sum() and chile != summed,
            f"country:CL 2024 is {chile}, not the national file's {stated['population'].sum()} (40 comunas: {summed})",
        )
        require(comunas == 40, f"{comunas} comunas published, not 40")
        old = before.tables.get("core.observations", [])
        new = capture(ws.root).tables.get("core.observations", [])
        lost = sorted(set(map(repr, old)) - set(map(repr, new)))
        require(not lost, f"{len(lost)} observations already served were lost or altered, e.g. {lost[:1]}")
        return (
            f"published: 40 comunas and {', '.join(sorted(levels))}; country:CL {chile:,.0f} as the national "
            f"file states it, not the 40 comunas' {summed:,.0f}; 0 rows lost"
        )


@case(
    "P03",
    "content",
    "a curated royalty row whose verification status is neither checked nor unverified",
    "refused: error names the source, the row and the problem; status failed; tables intact",
)
def curated_row_without_verification() -> str:
    from pipelines import finance
    from sources import royalties

    text = (royalties.CURATED_DIR / "royalty_allocations.csv").read_text(encoding="utf-8")
    body = text.replace(",unverified,", ",verified (we think),", 1).encode("utf-8")
    with workspace() as ws:
        folder = ws.root / "curated"  # the curated files are read from local files only
        folder.mkdir()
        (folder / "royalty_allocations.csv").write_bytes(body)
        stated = royalties.CURATED_DIR / "royalty_stated_totals.csv"
        (folder / stated.name).write_bytes(stated.read_bytes())
        prefix = f"CONTEXT_LENS_ENDPOINT__{royalties.SOURCE.id.upper()}__"
        variables = {
            f"{prefix}ALLOCATIONS": (folder / "royalty_allocations.csv").as_uri(),
            f"{prefix}STATED_TOTALS": (folder / stated.name).as_uri(),
            "CONTEXT_LENS_FILE_ROOTS": str(folder),
        }
        with environment(**variables):
            before = capture(ws.root)
            try:
                run_asset(finance.royalty_allocations, FaultSources(max_attempts=1, backoff_seconds=0.01))
            except SourceError as exc:
                error = exc
            else:
                raise AssertionError("a curated row without a verification status was accepted")
            cause = r"verification 'verified \(we think\)' is not one of"
            names_source_and_cause(str(error), cause, royalties.SOURCE.id)
            row = status(ws.db, royalties.SOURCE.id)
            require(row is not None and row[0] == "failed", f"source status is {row}, not failed")
            tables_intact(before, capture(ws.root), new_source=royalties.SOURCE.id)
        return f"refused: {str(error)[:160]}; status failed; 0 rows lost or altered"
