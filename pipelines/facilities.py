"""Facilities family: DEIS health establishments and public hospital beds (state presence).

deis_establishments: the establishments workbook (SAMPLE offline), parsed by
    `sources.deis_establishments`, each comuna code resolved, each point checked against the
    polygon of the comuna it states (mismatches reported, never moved) → raw.deis_establishments,
    raw.deis_public_beds, staging.health_facilities, staging.public_beds;
deis_facility_observations: facilities by level of care and provision, public beds, per-inhabitant
    rates and the distance to the nearest high-complexity hospital → core.observations (see
    `pipelines.facilities_measures`), and marts.health_facilities (the map layer).
"""

import geopandas as gpd
import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from pipelines import facilities_measures as measures
from pipelines import gates
from pipelines.health import health_population
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
from pipelines.settlements import territory_polygons
from pipelines.territories import load_resolver, territories
from sources import deis_establishments as deis
from sources.acquire import SAMPLES_DIR
from sources.base import ValidationError
from sources.endpoints import endpoints
from sources.geometry import locate_points
from warehouse import store
from warehouse.db import SQL_DIR, run_script

FAMILY = "facilities"
SOURCE = deis.SOURCE
SAMPLE = SAMPLES_DIR / "facilities" / "Establecimientos_ChileDEIS_MINSAL(SAMPLE).xlsx"
VIEWS_SQL = SQL_DIR / "views" / "60_facilities.sql"
POPULATION_INDICATOR = "population"

STAGING_COLUMNS = {
    "establishment_code": "VARCHAR: DEIS Código Nuevo",
    "name": "VARCHAR: Nombre Oficial (spaces collapsed)",
    "territory_id": "VARCHAR: the comuna the workbook states",
    "region_code": "VARCHAR: 2-digit region of that comuna",
    "comuna_code": "VARCHAR: 5-digit CUT as stated (lost leading zeros restored)",
    "service": "VARCHAR: SEREMI / Servicio de Salud",
    "snss": "BOOLEAN: belongs to the national health services system (SNSS)",
    "facility_type": "VARCHAR: Tipo Establecimiento",
    "dependency": "VARCHAR: Dependencia as published",
    "provision": "VARCHAR: public, private, other (armed forces, universities, mutuals) or unknown",
    "care_level_published": "VARCHAR: Nivel de Atención as published",
    "care_level": "VARCHAR: primary, secondary, tertiary, not_applicable, pending or NULL",
    "high_complexity": "BOOLEAN: a high-complexity (alta complejidad) hospital or institute",
    "longitude": "DOUBLE: WGS84 degrees; NULL when DEIS has not geocoded it (Pendiente)",
    "latitude": "DOUBLE: WGS84 degrees; NULL when pending",
    "coordinate_flag": "VARCHAR: coordinates pending, or outside Chile (then not used)",
    "located_comuna_code": "VARCHAR: comuna polygon holding the point (NULL: no usable point, or none holds it)",
    "comuna_mismatch": "BOOLEAN: the point lies outside the comuna stated; NULL when not checkable",
    "version": "VARCHAR: release date of the workbook (YYYY-MM-DD)",
    "snapshot_id": "VARCHAR: core.snapshots id of the workbook",
}
BEDS_STAGING_COLUMNS = {
    "establishment_code": "VARCHAR: DEIS Código Establecimiento as written in the beds sheet",
    "name": "VARCHAR: establishment name in the beds sheet",
    "matched_code": "VARCHAR: the establishment it belongs to (by code; by name where the sheet repeats a code)",
    "service": "VARCHAR: Servicio de Salud (padding removed)",
    "complexity_type": "VARCHAR: Establecimiento Alta / Mediana / Baja Complejidad, ...",
    "beds": "DOUBLE: public beds (the establishment's Total row)",
    "area_rows": "DOUBLE: sum of its functional-area rows",
    "beds_flag": "VARCHAR: Total row and areas disagree; a repeated code matched by name, or not placed",
    "comuna_code": "VARCHAR: the establishment's comuna in the establishments sheet (NULL: not listed there)",
    "version": "VARCHAR: release date of the workbook",
    "snapshot_id": "VARCHAR: core.snapshots id of the workbook",
}
STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "establishment_code": pa.Column(str, pa.Check.str_matches(r"^\d+$"), unique=True),
        "territory_id": pa.Column(str, pa.Check.str_matches(r"^comuna:\d{5}$")),
        "provision": pa.Column(str, pa.Check.isin(["public", "private", "other", "unknown"])),
        "longitude": pa.Column(float, pa.Check.in_range(-180, 180), nullable=True),
        "latitude": pa.Column(float, pa.Check.in_range(-90, 90), nullable=True),
    },
    strict=False,
)
BEDS_SCHEMA = pa.DataFrameSchema(
    {
        "establishment_code": pa.Column(str),
        "matched_code": pa.Column(str, nullable=True),
        "beds": pa.Column(float, pa.Check.in_range(0, 5_000)),
    },
    unique=["establishment_code", "name"],
    strict=False,
)
# Doubled, halved or truncated listings are refused against the last accepted ones.
gates.declare(
    "staging.health_facilities",
    gates.TableGates(
        keys=("establishment_code",),
        aggregates=(
            gates.Aggregate(
                "establishments per region", by={"region": "region_code"}, value="1", group="'totals'"
            ),
        ),
    ),
)
gates.declare(
    "staging.public_beds",
    gates.TableGates(
        keys=("establishment_code", "name"),
        aggregates=(
            gates.Aggregate(
                "public beds per health service", by={"service": "service"}, value="beds", group="'totals'"
            ),
        ),
    ),
)


def locate_facilities(facilities: pd.DataFrame, comunas: gpd.GeoDataFrame) -> pd.DataFrame:
    """Add located_comuna_code and comuna_mismatch; coordinates are reported, never moved."""
    usable = facilities["longitude"].notna() & facilities["coordinate_flag"].isna()
    points = facilities.loc[usable, ["longitude", "latitude"]].rename(
        columns={"longitude": "lon", "latitude": "lat"}
    )
    located = pd.Series(None, index=facilities.index, dtype=object)
    if not comunas.empty and not points.empty:
        located.loc[points.index] = locate_points(points, comunas, "code")
    covered = set(comunas["code"])
    mismatch = []
    for ok, stated, placed in zip(usable, facilities["comuna_code"], located, strict=True):
        if not ok or (placed is None and stated not in covered):
            mismatch.append(pd.NA)
        else:
            mismatch.append(placed != stated)
    return facilities.assign(located_comuna_code=located, comuna_mismatch=pd.array(mismatch, dtype="boolean"))


def staged_tables(payload, resolver, comunas: gpd.GeoDataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Parse, resolve, locate and validate one workbook into its raw and staging tables."""
    snapshot = payload.snapshot_id
    facilities = deis.parse_establishments(payload.content, snapshot)
    beds = deis.parse_public_beds(payload.content, snapshot)
    version = deis.workbook_version(payload.content, payload.url, snapshot).isoformat()
    resolved = resolver.resolve_series(
        facilities["comuna_code"], "comuna", source=SOURCE.id, snapshot=snapshot
    )
    staging = locate_facilities(facilities.assign(territory_id=resolved.to_numpy()), comunas)
    staging = staging.assign(version=version, snapshot_id=snapshot)[list(STAGING_COLUMNS)]
    staging = validate_frame(STAGING_SCHEMA, staging, SOURCE.id, snapshot)
    beds_staging = deis.place_beds(beds, facilities).assign(version=version, snapshot_id=snapshot)[
        list(BEDS_STAGING_COLUMNS)
    ]
    beds_staging = validate_frame(BEDS_SCHEMA, beds_staging, SOURCE.id, snapshot)
    return {
        ("raw", "deis_establishments"): facilities.assign(snapshot_id=snapshot),
        ("raw", "deis_public_beds"): beds.assign(snapshot_id=snapshot),
        ("staging", "health_facilities"): staging,
        ("staging", "public_beds"): beds_staging,
    }


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="DEIS establishments in force and public hospital beds, each point checked against the "
    "polygon of its stated comuna (staging.health_facilities, staging.public_beds).",
    metadata={
        **table_declaration(
            STAGING_COLUMNS, "staging.health_facilities", extra={"staging.public_beds": BEDS_STAGING_COLUMNS}
        ),
        "source": SOURCE.landing_url,
    },
)
def deis_establishments(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    request = deis.build_requests(endpoints(SOURCE.id, deis.ENDPOINTS))[0]
    acquirer, acquired = acquire_all(sources, SOURCE, [(request, SAMPLE)], warehouse=warehouse)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {SOURCE: acquired}):
        with warehouse.reader() as conn:
            resolver = load_resolver(conn, SOURCE.id)
            comunas = territory_polygons(conn, "comuna")
        tables = staged_tables(acquired[0].payload, resolver, comunas)
    counts = publish(warehouse, acquirer, SOURCE, acquired, tables)
    staging = tables[("staging", "health_facilities")]
    mismatched = staging[staging["comuna_mismatch"].fillna(False)]
    if not mismatched.empty:
        context.log.warning(
            f"{len(mismatched)} establishment(s) whose point lies outside the comuna they state "
            f"(kept where DEIS puts them): {mismatched['establishment_code'].head(10).tolist()}"
        )
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            **counts,
            "version": staging["version"].iloc[0],
            "coordinates_pending": int(
                staging["coordinate_flag"].str.startswith("coordinates pending").sum()
            ),
            "coordinates_outside_chile": int(staging["coordinate_flag"].str.contains("outside Chile").sum()),
            "comuna_mismatches": len(mismatched),
            "not_checkable": int(staging["comuna_mismatch"].isna().sum()),
        },
    )


def _population(conn, year: str) -> pd.DataFrame:
    return conn.execute(
        "SELECT territory_id, value, snapshot_id FROM core.observations "
        "WHERE indicator_id = ? AND period = ? AND value IS NOT NULL",
        [POPULATION_INDICATOR, year],
    ).df()


def _anchors(comunas: gpd.GeoDataFrame) -> pd.DataFrame:
    points = comunas.geometry.representative_point()
    return pd.DataFrame({"comuna_code": comunas["code"], "lon": points.x, "lat": points.y})


def facility_observations(
    facilities: pd.DataFrame,
    beds: pd.DataFrame,
    known: list[str],
    population: pd.DataFrame,
    anchors: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(core.observations rows with their inputs, partial totals left out)."""
    snapshot, year = facilities["snapshot_id"].iloc[0], facilities["version"].iloc[0][:4]
    counts, partial = measures.territory_counts(measures.comuna_counts(facilities, beds, known), snapshot)
    counts = counts.assign(flag=None, inputs=[[(role, snapshot)] for role in counts["role"]])
    unplaced = beds[beds["comuna_code"].isna()]
    if not unplaced.empty:
        note = f"{len(unplaced)} establishment(s) of the beds sheet not placed in a comuna (not counted)"
        counts.loc[counts["indicator_id"] == "deis_public_beds", "flag"] = note
    rates = measures.rates(counts, population)
    rates = rates.assign(
        flag=f"INE population {year}",
        inputs=[[("denominator", p), ("numerator", snapshot)] for p in rates["population_snapshot"]],
    )
    distance = measures.distances(facilities, anchors)
    distance = distance.assign(
        indicator_id=measures.DISTANCE,
        territory_id="comuna:" + distance["comuna_code"],
        inputs=[[("value", snapshot)]] * len(distance),
    )
    columns = ["indicator_id", "territory_id", "value", "flag", "inputs"]
    frame = pd.concat([counts[columns], rates[columns], distance[columns]], ignore_index=True)
    frame = frame.assign(
        period=year, lower=float("nan"), upper=float("nan"), source_id=SOURCE.id, snapshot_id=snapshot
    )
    frame["inputs"] = frame["inputs"].map(lambda pairs: sorted(set(pairs)))
    return frame[[*store.OBSERVATION_COLUMNS, "inputs"]], partial


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[deis_establishments, health_population, territories],
    description="Facilities by level of care and provision, public beds, facilities per 10,000 and beds per "
    "1,000 inhabitants (comuna; region and Chile only with every comuna), distance to the nearest "
    "high-complexity hospital (core.observations); marts.health_facilities.",
)
def deis_facility_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        facilities = conn.execute("SELECT * FROM staging.health_facilities ORDER BY establishment_code").df()
        beds = conn.execute("SELECT * FROM staging.public_beds ORDER BY establishment_code").df()
        if facilities.empty:
            raise ValidationError(
                SOURCE.id, "staging.health_facilities is empty: materialize deis_establishments"
            )
        known = [
            r[0] for r in conn.execute("SELECT code FROM core.territories WHERE kind = 'comuna'").fetchall()
        ]
        population = _population(conn, facilities["version"].iloc[0][:4])
        anchors = _anchors(territory_polygons(conn, "comuna"))
        frame, partial = facility_observations(facilities, beds, known, population, anchors)
        store.record_indicators(conn, load_indicators(FAMILY))
        rows = write_tables(conn, SOURCE.id, {("core", "observations"): frame})["core.observations"]
        run_script(conn, VIEWS_SQL)
    left_out = sorted(set(partial["territory_id"])) if not partial.empty else []
    if left_out:
        context.log.info(f"totals not published (comunas missing): {left_out}")
    return MaterializeResult(
        metadata={
            "observations": rows,
            "partial_totals_left_out": MetadataValue.json(left_out),
            "rates": int(frame["indicator_id"].isin(list(measures.RATES)).sum()),
        }
    )


@asset_check(
    asset=deis_establishments, description="Every geocoded establishment lies in the comuna it states."
)
def deis_establishments_in_stated_comuna(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        rows = conn.execute(
            "SELECT establishment_code, name, comuna_code, located_comuna_code FROM staging.health_facilities "
            "WHERE comuna_mismatch ORDER BY establishment_code"
        ).fetchall()
        checked = conn.execute(
            "SELECT count(*) FROM staging.health_facilities WHERE comuna_mismatch IS NOT NULL"
        ).fetchone()[0]
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "checked": checked,
            "mismatches": len(rows),
            "examples": MetadataValue.json([list(map(str, r)) for r in rows[:20]]),
        },
    )


facilities_job = refresh_job(
    "facilities_refresh", [deis_establishments, deis_facility_observations], "DEIS's establishments and beds"
)
facilities_schedule = refresh_schedule(
    facilities_job,
    "0 5 1 */3 *",
    "facilities_quarterly",
    "DEIS revises its establishment list every few months",
)

ASSETS = [deis_establishments, deis_facility_observations]
CHECKS = [deis_establishments_in_stated_comuna]
JOBS = [facilities_job]
SCHEDULES = [facilities_schedule]
OBSERVATION_ASSETS = [deis_facility_observations]
