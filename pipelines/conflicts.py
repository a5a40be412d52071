"""Conflicts family: the INDH map of socio-environmental conflicts (governance conditions).

indh_conflicts: the map's API payload (SAMPLE offline), parsed by `sources.indh_conflicts`, each
    conflict placed in a comuna and a basin (coarsest DGA level) by its map point; the stated region
    is kept and a point in another region is reported → raw.indh_conflicts,
    staging.socioenvironmental_conflicts, marts.socioenvironmental_conflicts (list and map layer);
indh_conflict_observations: conflicts by comuna, region, basin and Chile, in total, by status, by
    the two largest sectors and in Indigenous territory → core.observations.

Placement: the payload has no comuna code, so comunas and basins come only from the point; the
region is the located comuna's, else the region the record states (flagged in its observation).
"""

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipelines import gates
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    refusing,
    source_version,
    table_declaration,
    unchanged,
    validate_frame,
    write_tables,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.settlements import coarsest_level, territory_polygons
from pipelines.territories import territories
from sources import indh_conflicts as indh
from sources.acquire import SAMPLES_DIR
from sources.base import ValidationError
from sources.endpoints import endpoints
from sources.geometry import locate_points
from warehouse import store
from warehouse.db import SQL_DIR, run_script

FAMILY = "conflicts"
SOURCE = indh.SOURCE
SAMPLE = SAMPLES_DIR / "facilities" / "indh_conflictos_SAMPLE.json"
VIEWS_SQL = SQL_DIR / "views" / "61_conflicts.sql"
STAGING_COLUMNS = {
    "conflict_id": "VARCHAR: INDH conflict id",
    "title": "VARCHAR: tituloConflicto",
    "start_year": "INTEGER: anyo, the year the conflict started",
    "status": "VARCHAR: active, latent, archived or closed",
    "status_published": "VARCHAR: estadoConflico.glosa as published",
    "sector": "VARCHAR: sectorProductivo (Energía, Minería, ...)",
    "indigenous_territory": "BOOLEAN: esTerritorioIndigena",
    "region_code": "VARCHAR: the single region the record states (NULL: none, or several)",
    "regions_stated": "VARCHAR: every region the record states, comma-separated",
    "longitude": "DOUBLE: map point, or the representative point of the map polygon",
    "latitude": "DOUBLE",
    "location_kind": "VARCHAR: point, polygon or none",
    "location_flag": "VARCHAR: no map point, or a point outside Chile (then not located)",
    "url": "VARCHAR: the conflict's page on the INDH map",
    "located_comuna_code": "VARCHAR: comuna polygon holding the point",
    "located_basin_code": "VARCHAR: basin polygon (coarsest level) holding the point",
    "placed_region_code": "VARCHAR: region counted: the located comuna's, else the stated one",
    "region_mismatch": "BOOLEAN: the point lies in another region than the one stated; NULL when not checkable",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "conflict_id": pa.Column(str, unique=True),
        "status": pa.Column(str, pa.Check.isin(sorted(set(indh.STATUS.values())))),
        "start_year": pa.Column("Int64", pa.Check.in_range(1900, 2100), nullable=True),
    },
    strict=False,
)
gates.declare(
    "staging.socioenvironmental_conflicts",
    gates.TableGates(
        keys=("conflict_id",),
        aggregates=(
            gates.Aggregate("conflicts per status", by={"status": "status"}, value="1", group="'totals'"),
        ),
    ),
)
SECTORS = {"Minería": "mining", "Energía": "energy"}


def locate(conflicts: pd.DataFrame, comunas, basins) -> pd.DataFrame:
    usable = conflicts["longitude"].notna() & conflicts["location_flag"].isna()
    points = conflicts.loc[usable, ["longitude", "latitude"]].rename(
        columns={"longitude": "lon", "latitude": "lat"}
    )
    comuna = pd.Series(None, index=conflicts.index, dtype=object)
    basin = pd.Series(None, index=conflicts.index, dtype=object)
    if not points.empty and not comunas.empty:
        comuna.loc[points.index] = locate_points(points, comunas, "code")
    if not points.empty and not basins.empty:
        basin.loc[points.index] = locate_points(points, basins, "code")
    located_region = comuna.map(lambda c: c[:2] if isinstance(c, str) else None)
    stated = conflicts["regions_stated"].fillna("").str.split(",")
    mismatch = [
        pd.NA if r is None or not s[0] else r not in s for r, s in zip(located_region, stated, strict=True)
    ]
    return conflicts.assign(
        located_comuna_code=comuna,
        located_basin_code=basin,
        placed_region_code=located_region.where(located_region.notna(), conflicts["region_code"]),
        region_mismatch=pd.array(mismatch, dtype="boolean"),
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="INDH socio-environmental conflicts, each placed in a comuna and basin by its map point "
    "(staging.socioenvironmental_conflicts).",
    metadata={
        **table_declaration(STAGING_COLUMNS, "staging.socioenvironmental_conflicts"),
        "source": SOURCE.landing_url,
    },
)
def indh_conflicts(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    request = indh.build_requests(endpoints(SOURCE.id, indh.ENDPOINTS))[0]
    acquirer, acquired = acquire_all(sources, SOURCE, [(request, SAMPLE)], warehouse=warehouse)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired}, metadata)) is not None:
        return same
    payload = acquired[0].payload
    with refusing(warehouse, acquirer, {SOURCE: acquired}):
        raw = indh.parse_conflicts(payload.content, payload.snapshot_id)
        with warehouse.reader() as conn:
            comunas = territory_polygons(conn, "comuna")
            basins = coarsest_level(territory_polygons(conn, "basin"))
        staging = locate(raw, comunas, basins).assign(snapshot_id=payload.snapshot_id)
        staging["start_year"] = staging["start_year"].astype("Int64")
        staging = validate_frame(
            STAGING_SCHEMA, staging[list(STAGING_COLUMNS)], SOURCE.id, payload.snapshot_id
        )
        tables = {
            ("raw", "indh_conflicts"): raw.assign(snapshot_id=payload.snapshot_id),
            ("staging", "socioenvironmental_conflicts"): staging,
        }
    counts = publish(warehouse, acquirer, SOURCE, acquired, tables)
    mismatched = staging[staging["region_mismatch"].fillna(False)]
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            **counts,
            "without_point": int(staging["location_flag"].notna().sum()),
            "not_in_a_comuna": int(staging["located_comuna_code"].isna().sum()),
            "region_mismatches": MetadataValue.json(mismatched["conflict_id"].tolist()),
        },
    )


def _selections(frame: pd.DataFrame) -> dict[str, pd.Series]:
    chosen = {"indh_conflicts_count": pd.Series(True, index=frame.index)}
    for status in sorted(set(indh.STATUS.values())):
        chosen[f"indh_conflicts_{status}_count"] = frame["status"] == status
    for sector, word in SECTORS.items():
        chosen[f"indh_conflicts_{word}_count"] = frame["sector"] == sector
    chosen["indh_conflicts_indigenous_count"] = frame["indigenous_territory"].astype(bool)
    return chosen


def conflict_observations(
    frame: pd.DataFrame, comunas: list[str], basins: list[str], period: str
) -> pd.DataFrame:
    """Counts per territory (zeros where the national map lists none), with placement flags."""
    regions = sorted({c[:2] for c in comunas})
    levels = {
        "comuna": (frame["located_comuna_code"], comunas, None),
        "region": (frame["placed_region_code"], regions, "by_region"),
        "basin": (
            frame["located_basin_code"],
            basins,
            "located by map point; conflicts without a point not counted",
        ),
    }
    rows = []
    for indicator, selected in _selections(frame).items():
        subset = frame[selected]
        for level, (keys, known, note) in levels.items():
            counts = keys[selected].dropna().value_counts()
            for code in sorted(set(known) | set(counts.index)):
                flag = note
                if note == "by_region":
                    by_stated = subset[
                        (subset["placed_region_code"] == code) & subset["located_comuna_code"].isna()
                    ]
                    flag = (
                        f"{len(by_stated)} conflict(s) without a usable point placed by their stated region"
                        if len(by_stated)
                        else None
                    )
                rows.append((indicator, f"{level}:{code}", float(counts.get(code, 0)), flag))
        unplaced = int(subset["placed_region_code"].isna().sum())
        flag = (
            f"{unplaced} conflict(s) in several or no stated region, with no usable point"
            if unplaced
            else None
        )
        rows.append((indicator, "country:CL", float(len(subset)), flag))
    out = pd.DataFrame(rows, columns=["indicator_id", "territory_id", "value", "flag"])
    return out.assign(period=period, lower=float("nan"), upper=float("nan"), source_id=SOURCE.id)


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[indh_conflicts, territories],
    description="INDH conflicts by comuna, region, basin and Chile: total, by status, mining, energy and in "
    "Indigenous territory (core.observations); marts.socioenvironmental_conflicts.",
)
def indh_conflict_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        frame = conn.execute("SELECT * FROM staging.socioenvironmental_conflicts ORDER BY conflict_id").df()
        if frame.empty:
            raise ValidationError(
                SOURCE.id, "staging.socioenvironmental_conflicts is empty: materialize indh_conflicts"
            )
        comunas = [
            r[0] for r in conn.execute("SELECT code FROM core.territories WHERE kind = 'comuna'").fetchall()
        ]
        basins = list(coarsest_level(territory_polygons(conn, "basin"))["code"])
        retrieved = conn.execute(
            "SELECT retrieved_at FROM core.snapshots WHERE snapshot_id = ?", [frame["snapshot_id"].iloc[0]]
        ).fetchone()[0]
        period = str(retrieved)[:4]
        observations = conflict_observations(frame, comunas, basins, period)
        snapshot = frame["snapshot_id"].iloc[0]
        observations = observations.assign(
            snapshot_id=snapshot, inputs=[[("value", snapshot)]] * len(observations)
        )
        store.record_indicators(conn, load_indicators(FAMILY))
        tables = {("core", "observations"): observations[[*store.OBSERVATION_COLUMNS, "inputs"]]}
        rows = write_tables(conn, SOURCE.id, tables)["core.observations"]
        run_script(conn, VIEWS_SQL)
    return MaterializeResult(metadata={"observations": rows, "period": period})


conflicts_job = refresh_job(
    "conflicts_refresh",
    [indh_conflicts, indh_conflict_observations],
    "the INDH map of socio-environmental conflicts",
)
conflicts_schedule = refresh_schedule(
    conflicts_job, "0 5 15 */3 *", "conflicts_quarterly", "the INDH updates its map a few times a year"
)

ASSETS = [indh_conflicts, indh_conflict_observations]
CHECKS: list = []
JOBS = [conflicts_job]
SCHEDULES = [conflicts_schedule]
OBSERVATION_ASSETS = [indh_conflict_observations]
