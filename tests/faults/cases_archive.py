"""Hostile and broken archives and geometries, through the DGA basin parser and the shared mechanics.

Each case serves a zip for the DGA BNA cuencas endpoint, acquires it like a family asset
(`acquire_all`), parses it with `sources.dga_basins.parse_basins` (safe unpacking in
`sources.archives`, geometry checks in `sources.geometry`) and, on a ParseError, calls
`refuse` - the same steps as the boundaries family.
"""

from __future__ import annotations

import functools
import io
import tempfile
import uuid
import zipfile
from pathlib import Path

import geopandas as gpd
from shapely.geometry import Polygon

from pipelines.ingest import acquire_all, refuse
from pipelines.resources import WarehouseResource
from sources import dga_basins
from sources.base import ParseError
from tests.faults import payloads
from tests.faults.harness import (
    CaseFailed,
    FaultSources,
    Workspace,
    baseline,
    capture,
    expect_refused,
    gate,
    quarantine,
    require,
    server,
    short,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply

SOURCE = dga_basins.SOURCE.id
PATH = "/dga/Cuencas_BNA.zip"
REFUSED = "refused: ParseError names the source and the member/feature; nothing written; zip quarantined"


def run_basins(ws: Workspace, archive: bytes) -> tuple[ParseError | None, gpd.GeoDataFrame | None]:
    """Acquire and parse the served zip as the boundaries family does; refuse it on a ParseError."""
    server().script(PATH, Reply(200, archive, {"Content-Type": "application/zip"}))
    requests = dga_basins.basin_requests({"cuencas": f"http://127.0.0.1:{gate().port}{PATH}"})
    acquirer, acquired = acquire_all(
        FaultSources(max_attempts=1), dga_basins.SOURCE, [(r, None) for r in requests]
    )
    try:
        frames = [
            dga_basins.parse_basins(a.payload.content, snapshot=a.payload.snapshot_id) for a in acquired
        ]
    except ParseError as exc:
        refuse(WarehouseResource(), acquirer, dga_basins.SOURCE, acquired, exc)
        return exc, None
    for item in acquired:
        acquirer.accept(item)
    return None, frames[0]


@functools.cache
def _utm_basins() -> gpd.GeoDataFrame:
    return dga_basins.sample_basins_frame()


def _basin_zip(replace_loa: Polygon | None = None) -> bytes:
    """A BNA-shaped zip of the SAMPLE basins (invented polygons), the Loa's optionally replaced."""
    frame = _utm_basins().copy()
    if replace_loa is not None:
        frame.loc[frame["COD_CUEN"] == "021", "geometry"] = replace_loa
    with tempfile.TemporaryDirectory(prefix="faults-bna-") as folder:
        return payloads.basin_zip(frame, Path(folder))


def _loa_bounds() -> tuple[float, float, float, float]:
    return tuple(_utm_basins().loc[_utm_basins()["COD_CUEN"] == "021"].total_bounds)


def _refused(archive: bytes, cause: str) -> str:
    with workspace() as ws:
        error, _ = run_basins(ws, archive)
        return expect_refused(ws, error, cause, archive, SOURCE)


@case("A01", "archive", "corrupt zip (truncated to half)", REFUSED)
def truncated_zip() -> str:
    archive = _basin_zip()
    return _refused(archive[: len(archive) // 2], r"not a readable zip archive")


@case("A02", "archive", "corrupt member (compressed bytes of the .dbf flipped: bad CRC)", REFUSED)
def corrupt_member() -> str:
    return _refused(
        payloads.flip_member_bytes(_basin_zip(), ".dbf"), r"Cuencas_BNA\.dbf.*corrupt|CRC|invalid"
    )


@case(
    "A03",
    "archive",
    "zip-slip member '../../<name>.txt' beside a valid shapefile",
    f"{REFUSED}; no file written outside the extraction folder",
)
def zip_slip() -> str:
    name = f"faults-zipslip-{uuid.uuid4().hex[:8]}.txt"
    members = {**_members(_basin_zip()), f"../../{name}": b"escaped"}
    observed = _refused(payloads.zip_members(members), r"zip-slip|'\.\.'")
    escaped = [p for p in (Path("/") / name, Path(tempfile.gettempdir()) / name) if p.exists()]
    require(not escaped, f"the zip-slip member was written to {escaped}")
    return observed


@case(
    "A04",
    "archive",
    "decompression bomb (32 MB of zeros packed to ~32 kB)",
    f"{REFUSED}; refused from the zip directory, before inflating anything",
)
def decompression_bomb() -> str:
    members = {**_members(_basin_zip()), "Cuencas_BNA_extra.csv": bytes(32 * 1024 * 1024)}
    return _refused(payloads.zip_members(members), r"decompression bomb")


@case(
    "A05",
    "archive",
    "invalid geometry that can be repaired (self-intersecting 'bowtie' Loa basin)",
    "handled: repaired with make_valid, flagged geometry_repaired and listed; area = the two lobes",
)
def repairable_geometry() -> str:
    minx, miny, maxx, maxy = _loa_bounds()
    bowtie = Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy)])
    require(not bowtie.is_valid, "the bowtie is unexpectedly valid")
    with workspace() as ws:
        error, frame = run_basins(ws, _basin_zip(bowtie))
        require(error is None, f"a repairable geometry was refused: {error}")
        loa = frame[frame["basin_code"] == "021"].iloc[0]
        require(bool(loa["geometry_repaired"]), "the repaired basin is not flagged")
        repairs = frame.attrs.get("geometry_repairs", [])
        require([r["feature"] for r in repairs] == ["021"], f"repairs listed: {repairs}")
        # The two lobes are triangles of half the box each way: together width x height / 2 (UTM m2),
        # compared with the parser's equal-area km2 (the projections differ by well under 1 %).
        lobes_km2 = (maxx - minx) * (maxy - miny) / 2 / 1e6
        require(
            abs(loa["area_km2"] / lobes_km2 - 1) < 0.01, f"area {loa['area_km2']:.0f} vs {lobes_km2:.0f} km2"
        )
        tables_intact(baseline().state, capture(ws.root), keep_status=True)
        require(not quarantine(ws.raw, SOURCE), "an accepted archive was quarantined")
        return (
            f"accepted; 021 repaired ({short(repairs[0]['problem'], 60)} -> {repairs[0]['result']}), "
            f"area {loa['area_km2']:.0f} km2 = lobes {lobes_km2:.0f} km2"
        )


@case(
    "A06",
    "archive",
    "invalid geometry that cannot be repaired (Loa basin collapsed to one point)",
    REFUSED,
)
def unrepairable_geometry() -> str:
    minx, miny, _, _ = _loa_bounds()
    point = Polygon([(minx, miny)] * 4)
    return _refused(_basin_zip(point), r"'021'.*invalid geometry.*cannot be repaired")


@case(
    "A07",
    "archive",
    "invalid geometry that cannot be repaired (Loa basin collapsed to a straight line in UTM 19S)",
    REFUSED,
)
def collapsed_in_source_crs() -> str:
    minx, miny, maxx, maxy = _loa_bounds()
    line = Polygon([(minx, miny), (maxx, maxy), ((minx + maxx) / 2, (miny + maxy) / 2)])
    require(line.area == 0 and not line.is_valid, "the collapsed polygon is not degenerate")
    archive = _basin_zip(line)  # built once: the served payload is the one looked for in quarantine
    with workspace() as ws:
        error, frame = run_basins(ws, archive)
        if error is None:
            loa = frame[frame["basin_code"] == "021"].iloc[0]
            raise CaseFailed(
                f"accepted: the zero-area Loa came out valid with {loa['area_km2']:.0f} km2 "
                f"(geometry_repaired={bool(loa['geometry_repaired'])})"
            )
        return expect_refused(ws, error, r"'021'.*invalid geometry", archive, SOURCE)


def _members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}
