"""Lens family: one asset per study file, rebuilding its lens tables, exports and report.

The lens renders whatever indicators the other families have put in core.indicators and
core.observations, grouped by their `lens_section`; it gains a map when core.territories
has polygons (and settlement or gauge layers when such marts exist) and never fails because
a family is missing: the report says what is missing instead.
"""

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipelines import reading
from pipelines.body import conflicts_view
from pipelines.families import observation_asset_keys
from pipelines.map_layers import map_data
from pipelines.paths import lens_dir
from pipelines.report import render, write_report
from pipelines.resources import WarehouseResource
from pipelines.studies import Study, StudyConfigError, study_files
from pipelines.study_check import refuse_unknown_territories
from pipelines.writer import Writer
from warehouse import places
from warehouse.claims import CLAIM_COLUMNS, write_claims
from warehouse.db import SQL_DIR, run_script, table_name, transaction
from warehouse.gaps import gap
from warehouse.lens import (
    KIND_ORDER,
    PEERS,
    ROLE_ORDER,
    Lens,
    LensScope,
    build_lens_tables,
    focus_conflicts,
)
from warehouse.lens_export import export_lens

LENS_VIEWS = SQL_DIR / "views" / "90_lens.sql"
SITE_KINDS = ("comuna", "province", "region", "basin")
# Territories that have a polygon once a boundary source provides one.
GEOMETRY_KINDS = ("country", "region", "province", "comuna", "basin")
LOCATOR = "marts.locate"  # the method recorded per site: `warehouse.places.locate_point`
SITE_COLUMNS = [
    "site",
    "field",
    "lat",
    "lon",
    "comuna_id",
    "region_id",
    "basin_id",
    "method",
    "status",
    "message",
]
# Marts other families publish that the report shows when present: name -> lens section.
MART_TABLES = {"basin_comparison": "structural_constraints"}


# --- sites -----------------------------------------------------------------------------------


def _region_of(conn: duckdb.DuckDBPyConnection, comuna_id: str) -> str:
    """The region enclosing a comuna: up the parent chain in core.territories, else by the CUT code."""
    current = comuna_id
    for _ in range(4):
        row = conn.execute(
            "SELECT parent_id FROM core.territories WHERE territory_id = ?", [current]
        ).fetchone()
        if not row or not row[0]:
            break
        current = row[0]
        if current.startswith("region:"):
            return current
    return f"region:{comuna_id.split(':', 1)[1][:2]}"  # CUT: the region is the first two digits


def resolve_sites(
    conn: duckdb.DuckDBPyConnection, study: Study
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Place each site in its comuna, region and basin; ([site rows], [(territory_id, origin)]).

    `warehouse.places.locate_point` places every site. Without polygons the site is reported
    unresolved (not an error); a point that lies in no polygon at all while polygons exist is a
    configuration error.
    """
    if not study.sites:
        return pd.DataFrame(columns=SITE_COLUMNS), []
    polygons = places.polygon_counts(conn)
    rows, added = [], []
    for site in study.sites:
        # Polygons come with the territories family, which also declares marts.locate.
        placed = places.locate_point(conn, site.lon, site.lat) if polygons else {}
        by_kind = {kind: placed[kind] for kind in SITE_KINDS if placed.get(kind)}
        problems = [
            f"the point lies in no {kind} polygon of the loaded boundaries"
            if polygons.get(kind)
            else f"no {kind} polygons are loaded yet (territories family)"
            for kind in ("comuna", "basin")
            if kind not in by_kind
        ]
        if not by_kind and any(polygons.get(k) for k in SITE_KINDS):
            raise StudyConfigError(
                f"{study.id}.yaml: field '{site.field}' ({site.name}): the point lat {site.lat}, lon {site.lon} "
                "lies in no comuna, region or basin of core.territories; check the coordinates "
                "(decimal degrees, south and west negative; lat and lon not swapped?)"
            )
        status = "unresolved" if not by_kind else ("resolved" if not problems else "partial")
        rows.append(
            {
                "site": site.name,
                "field": site.field,
                "lat": site.lat,
                "lon": site.lon,
                "comuna_id": by_kind.get("comuna"),
                "region_id": by_kind.get("region"),
                "basin_id": by_kind.get("basin"),
                "method": LOCATOR,
                "status": status,
                "message": "; ".join(problems) or "placed in its comuna, region and basin",
            }
        )
        added += [(by_kind[k], f"site: {site.name}") for k in ("region", "comuna", "basin") if k in by_kind]
    return pd.DataFrame(rows, columns=SITE_COLUMNS), added


# --- scope -----------------------------------------------------------------------------------


def _known_territories(conn: duckdb.DuckDBPyConnection, ids: list[str]) -> pd.DataFrame:
    return conn.execute(
        """
        SELECT territory_id, name, kind, geometry IS NOT NULL AS has_geometry FROM core.territories
        WHERE territory_id IN (SELECT unnest(?::VARCHAR[]))
        """,
        [ids],
    ).df()


def _default_peers(conn: duckdb.DuckDBPyConnection, focus: set[str]) -> list[str]:
    """Without configured peer basins: every other basin with a value in the warehouse."""
    rows = conn.execute(
        "SELECT DISTINCT territory_id FROM core.observation_history WHERE territory_id LIKE 'basin:%' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in focus]


def _reference(territory_id: str, comparisons: list[str]) -> str | None:
    """Basins are compared with their peers; everything else with the first country compared with."""
    if territory_id.startswith("basin:"):
        return PEERS
    countries = [c for c in comparisons if c.startswith("country:")]
    return (countries or comparisons or [None])[0]


def _scope_entries(
    conn: duckdb.DuckDBPyConnection, study: Study, from_sites
) -> tuple[pd.DataFrame, set[str]]:
    """(territory_id, role, origin) of every focus, comparison and peer territory; and the focus ids."""
    entries = [(t, "focus", "configured") for t in study.focus_territories]
    entries += [(t, "focus", origin) for t, origin in from_sites]
    regions = sorted({_region_of(conn, t) for t, _, _ in entries if t.startswith("comuna:")})
    entries += [(region, "focus", "region of the focus comunas") for region in regions]
    focus_ids = {t for t, _, _ in entries}
    entries += [(t, "comparison", "configured") for t in study.comparison if t not in focus_ids]
    peers = study.peer_basin_territories or _default_peers(conn, focus_ids)
    origin = "configured peer basin" if study.peer_basins else "other basin with data (default peers)"
    entries += [(t, "peer", origin) for t in peers if t not in focus_ids]
    frame = pd.DataFrame(entries, columns=["territory_id", "role", "origin"])
    frame = frame.groupby(["territory_id", "role"], as_index=False, sort=False).agg(
        origin=("origin", lambda o: "; ".join(dict.fromkeys(o)))
    )
    return frame, focus_ids


def _with_places(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """The scope's territories with their names, kinds and polygons, in reading order."""
    known = _known_territories(conn, frame["territory_id"].tolist())
    frame = frame.merge(known, on="territory_id", how="left")
    frame["in_warehouse"] = frame["kind"].notna()
    frame["kind"] = frame["kind"].fillna(frame["territory_id"].str.split(":").str[0])
    # Names as readers know them: basins with their accents ('Rio Loa' is published, 'Río Loa' shown).
    basins = frame["kind"].isin(reading.BASIN_KINDS)
    frame["name"] = frame["name"].where(~basins, frame["name"].map(reading.accented))
    frame["name"] = frame["name"].fillna(frame["territory_id"])
    frame["has_geometry"] = frame["has_geometry"].astype("boolean").fillna(False).astype(bool)
    frame["role_order"] = frame["role"].map(ROLE_ORDER)
    frame["kind_order"] = frame["kind"].map(KIND_ORDER).fillna(9)
    frame = frame.sort_values(["role_order", "kind_order", "territory_id"], ignore_index=True)
    return frame.drop(columns=["role_order", "kind_order"])


def _scope_notes(frame: pd.DataFrame, sites: pd.DataFrame) -> list[tuple[str, str, dict]]:
    """What the reader must know about the scope: unknown territories, missing polygons, unplaced sites."""
    notes = []
    unknown = frame[~frame["in_warehouse"]]
    for kind, group in unknown.groupby("kind", sort=True):
        ids = list(group["territory_id"])
        notes.append(gap("unknown_territory", kind, count=len(ids), territory_kind=kind, territories=ids))
    shapeless = frame[frame["in_warehouse"] & ~frame["has_geometry"] & frame["kind"].isin(GEOMETRY_KINDS)]
    for kind, group in shapeless.groupby("kind", sort=True):
        ids = list(group["territory_id"])
        notes.append(gap("no_geometry", kind, count=len(ids), territory_kind=kind, territories=ids))
    for s in sites.itertuples():
        if s.status != "resolved":
            notes.append(
                gap("site_" + s.status, s.site, site=s.site, lat=s.lat, lon=s.lon, message=s.message)
            )
    return notes


def study_scope(conn: duckdb.DuckDBPyConnection, study: Study) -> LensScope:
    """The study's territories (sites placed, each comuna's region added), comparisons and peers."""
    sites, from_sites = resolve_sites(conn, study)
    entries, focus_ids = _scope_entries(conn, study, from_sites)
    frame = _with_places(conn, entries)
    references = {
        t: _reference(t, study.comparison) for t in frame.loc[frame["role"] == "focus", "territory_id"]
    }
    return LensScope(
        prefix=study.table_prefix,
        territories=frame,
        references={k: v for k, v in references.items() if v},
        comparisons=[t for t in study.comparison if t not in focus_ids],
        periods=study.periods,
        sites=sites,
        as_of=study.as_of,
        notes=_scope_notes(frame, sites),
    )


def mart_extras(conn: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Marts of other families the report shows as tables when they exist (e.g. marts.basin_comparison)."""
    present = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        ).fetchall()
    }
    extras = {}
    for name in sorted(set(MART_TABLES) & present):
        try:
            query = f"SELECT * FROM {table_name('marts', name)} ORDER BY ALL LIMIT 200"  # noqa: S608 (quoted)
            extras[name] = conn.execute(query).df()
        except duckdb.Error:
            continue
    return extras


# --- the asset -------------------------------------------------------------------------------


@dataclass
class LensBuild:
    lens: Lens
    markdown: str
    folder: object


def as_of_override() -> date | None:
    """The date of `context-lens build --as-of` (CONTEXT_LENS_AS_OF), if one was given."""
    text = os.environ.get("CONTEXT_LENS_AS_OF")
    return date.fromisoformat(text) if text else None


def effective_study(study: Study) -> Study:
    """The study with the as-of date of `context-lens build --as-of`, if given."""
    override = as_of_override()
    return replace(study, as_of=override) if override else study


def lens_folder(study: Study) -> Path:
    """Where a lens is written: output/lens/<study>/, or as-of-<date>/ inside it for `--as-of`."""
    override = as_of_override()
    folder = lens_dir(study.id)
    return folder / f"as-of-{override.isoformat()}" if override else folder


@contextmanager
def _lens_transaction(conn: duckdb.DuckDBPyConnection, keep: bool):
    """One transaction for the lens tables; rolled back (nothing kept) for an `--as-of` lens."""
    if keep:
        with transaction(conn):
            yield conn
        return
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")


def build_lens(warehouse: WarehouseResource, study: Study) -> LensBuild:
    """Rebuild the study's lens tables, export them, and write the report.

    An `--as-of` lens never touches the present: its tables are computed inside a transaction
    that is rolled back (the current lens tables stay), and its files go to as-of-<date>/.
    """
    present = as_of_override() is None
    study = effective_study(study)
    folder = lens_folder(study)
    with warehouse.writer() as conn:
        with _lens_transaction(conn, keep=present):
            run_script(conn, LENS_VIEWS)
            refuse_unknown_territories(conn, study)  # a peer basin '999' fails, naming the nearest
            scope = study_scope(conn, study)
            lens = build_lens_tables(conn, scope)
            claims = write_claims(conn, scope.prefix, study.claims, lens.indicators, study.end.year)
            lens.tables["claims"] = claims
            geo = map_data(conn, scope)
            extras = mart_extras(conn)
            roles = scope.territories
            conflicts = focus_conflicts(conn, list(roles.loc[roles["role"] == "focus", "territory_id"]))
            profile = conn.execute(
                "SELECT * FROM marts.territory_profile WHERE territory_id IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY territory_id, indicator_id",
                [scope.territories["territory_id"].tolist()],
            ).df()
            exports = {"territory_profile": (profile, {})} | {
                name: (frame, {}) for name, frame in extras.items()
            }
            exports["claims"] = (claims, CLAIM_COLUMNS)
            if not present:  # the as-of tables exist only inside this transaction
                export_lens(conn, lens, folder / "data", study.id, study.title, exports)
        if present:
            export_lens(conn, lens, folder / "data", study.id, study.title, exports)
    front = reading.context(study, lens, scope, reading.language())
    if conflicts is not None:  # listed in the lens, not exported: the mart itself is in output/export
        extras = extras | {"focus_conflicts": conflicts}
    markdown, page = render(study, lens, scope, geo, extras, front)
    write_report(study, markdown, page, folder)
    listed = extras.get("focus_conflicts")
    conflicts_list = (
        None if listed is None else conflicts_view(Writer.for_lens(lens, scope, front["lang"]), listed)
    )
    reading.write_pdf(front | {"focus_conflicts": conflicts_list}, folder / "lens.pdf")
    return LensBuild(lens, markdown, folder)


def _sources_markdown(sources: pd.DataFrame) -> str:
    lines = ["| source | licence | mode | freshness | vintage |", "|---|---|---|---|---|"]
    for s in sources.itertuples():
        lines.append(
            f"| {s.source_id} | {s.licence} | {s.mode or '–'} | {s.freshness} | {s.vintage or '–'} |"
        )
    return "\n".join(lines)


def lens_asset(study: Study, deps: list):
    @asset(
        name=f"lens_{study.table_prefix}",
        group_name="lens",
        pool="duckdb_writer",
        deps=deps,
        description=f"Context lens for study '{study.id}': lens.{study.table_prefix}_* tables, "
        f"output/lens/{study.id}/lens.md|html and data/ (CSV, Parquet, datapackage.json).",
    )
    def _lens(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        built = build_lens(warehouse, study)
        lens = built.lens
        sources = lens.tables["sources"]
        for s in sources[sources["freshness"].isin(["sample", "stale"])].itertuples():
            context.log.warning(f"lens {study.id}: source {s.source_id} is {s.freshness.upper()} data")
        return MaterializeResult(
            metadata={
                "content_hash": lens.content_hash,
                "as_of": lens.as_of.isoformat() if lens.as_of else "latest snapshots",
                "reference_date": lens.reference_date.isoformat(),
                **{f"rows_{name}": len(frame) for name, frame in lens.tables.items()},
                "sources": MetadataValue.md(_sources_markdown(sources)),
                "preview": MetadataValue.md(built.markdown[:30000]),
                "report": MetadataValue.path(str(built.folder / "lens.html")),
                "data": MetadataValue.path(str(built.folder / "data" / "datapackage.json")),
            }
        )

    return _lens


UNUSABLE_PREFIX = "lens_unusable_"


def usable(assets: list) -> list:
    """The lens assets of usable study files: what the export waits for (a broken file must not stop it)."""
    return [a for a in assets if not a.key.path[-1].startswith(UNUSABLE_PREFIX)]


def broken_lens_asset(stem: str, error: StudyConfigError, deps: list):
    """The lens asset of a study file that cannot be used: it fails alone, saying why."""
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower())[:60] or "unnamed"

    @asset(
        name=f"{UNUSABLE_PREFIX}{name}",
        group_name="lens",
        deps=deps,
        description=f"Context lens for the study file {stem}.yaml, which cannot be used: {error}",
    )
    def _broken() -> MaterializeResult:
        raise error

    return _broken


_ASSETS: list | None = None


def _assets() -> list:
    """One lens asset per study file, built on first use.

    Building them needs every family's observation assets, and discovering the families
    imports pipelines.definitions, which asks this module for ASSETS in turn; building lazily
    (and keeping the first list built) gives one set of assets whichever module loads first.
    """
    global _ASSETS
    if _ASSETS is None:
        deps = observation_asset_keys()
        if _ASSETS is None:
            _ASSETS = [
                broken_lens_asset(path.stem, study, deps)
                if isinstance(study, StudyConfigError)
                else lens_asset(study, deps)
                for path, study in study_files()
            ]
    return _ASSETS


def __getattr__(name: str):
    if name == "ASSETS":
        return _assets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
