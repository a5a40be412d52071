"""OECD family: regional GDP per capita, unemployment, inequality and population.

raw.oecd_regional (every SDMX row as parsed) → staging.oecd_regional (the selected
indicator rows, validated) → core.observations (mapped to territories).
"""

from datetime import date

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    asset,
    asset_check,
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
from pipelines.territories import territories
from sources import oecd
from sources.acquire import SAMPLES_DIR
from sources.base import SourceError, ValidationError
from sources.endpoints import endpoints
from warehouse import store

FAMILY = "oecd"
SAMPLE_DIR = SAMPLES_DIR / "oecd"

# Plausible ranges: a value outside them is more likely a unit change than a fact.
PLAUSIBLE = {
    "oecd_gdp_per_capita_usd_ppp": (1_000, 250_000),
    "oecd_unemployment_rate": (0, 60),
    "oecd_gini_disposable_income": (0.1, 0.9),
    "oecd_population": (1_000, 2_000_000_000),
}

STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "indicator": pa.Column(str, pa.Check.isin(list(PLAUSIBLE))),
        "ref_area": pa.Column(str, pa.Check.str_matches(r"^[A-Z0-9_]{2,10}$")),
        "time_period": pa.Column(str, pa.Check.str_matches(r"^\d{4}$")),
        "obs_value": pa.Column(float, nullable=True),
        "obs_status": pa.Column(str, nullable=True),
        "unit_measure": pa.Column(str),
        "snapshot_id": pa.Column(str),
    },
    unique=["indicator", "ref_area", "time_period"],
    strict=False,
    coerce=False,
)

# Each indicator's values against its last accepted values, before anything is written.
gates.declare(
    "staging.oecd_regional",
    gates.TableGates(keys=("indicator", "ref_area", "time_period"), values=("obs_value",), group="indicator"),
)

STAGING_COLUMNS = {
    "indicator": "VARCHAR: indicator id in core.indicators",
    "ref_area": "VARCHAR: OECD area code (CL01-CL16 TL2 regions, CHL, OECD)",
    "ref_area_label": "VARCHAR: OECD's label of the area",
    "time_period": "VARCHAR: year",
    "obs_value": "DOUBLE: value in the indicator's unit, UNIT_MULT applied",
    "obs_status": "VARCHAR: OECD observation status (A normal, P provisional, E estimated, B break)",
    "unit_measure": "VARCHAR: OECD unit code",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}


def parse_payloads(acquired) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw rows, selected indicator rows) over every payload, each tagged with its snapshot."""
    raw_frames, selected_frames = [], []
    queries = {q.indicator: q for q in oecd.QUERIES}
    for item in acquired:
        payload = item.payload
        frame = oecd.parse_sdmx_csv(payload.content, oecd.SOURCE.id, payload.snapshot_id)
        frame["snapshot_id"] = payload.snapshot_id
        raw_frames.append(frame)
        selected_frames.append(
            oecd.select_indicator(frame, queries[payload.name], oecd.SOURCE.id, payload.snapshot_id)
        )
    return pd.concat(raw_frames, ignore_index=True), pd.concat(selected_frames, ignore_index=True)


def validate_staging(frame: pd.DataFrame, known_areas: set[str]) -> pd.DataFrame:
    """Schema, then the rules that keep a wrong payload out of core.observations.

    Run before anything is written: an implausible value (a unit change such as UNIT_MULT 3)
    or an area code with no territory refuses the whole payload.
    """
    staging = validate_frame(STAGING_SCHEMA, frame, oecd.SOURCE.id)
    unknown = sorted(set(staging["ref_area"]) - known_areas)
    if unknown:
        raise ValidationError(oecd.SOURCE.id, f"OECD area codes with no territory: {', '.join(unknown)}")
    chilean = staging["ref_area"].str.startswith(("CL", "CHL"))
    without = sorted(set(staging["indicator"]) - set(staging.loc[chilean, "indicator"]))
    if without:  # the queries ask for Chile's regions and Chile: a payload without them is not ours
        raise ValidationError(
            oecd.SOURCE.id,
            f"no Chilean rows (CL01-CL16 or CHL) for {', '.join(without)}: "
            f"areas present {sorted(set(staging.loc[staging['indicator'].isin(without), 'ref_area']))}",
            _snapshots_of(staging, without),
        )
    bounds = staging["indicator"].map(PLAUSIBLE)
    low, high = bounds.str[0], bounds.str[1]
    outside = staging[
        staging["obs_value"].notna() & ((staging["obs_value"] < low) | (staging["obs_value"] > high))
    ]
    if not outside.empty:
        examples = outside[["indicator", "ref_area", "time_period", "obs_value"]].head(5).to_dict("records")
        raise ValidationError(
            oecd.SOURCE.id, f"{len(outside)} value(s) outside plausible ranges (unit change?): {examples}"
        )
    return staging


def _snapshots_of(staging: pd.DataFrame, indicators: list[str]) -> str | None:
    snapshots = sorted(set(staging.loc[staging["indicator"].isin(indicators), "snapshot_id"].dropna()))
    return ", ".join(snapshots) or None


def known_oecd_areas(warehouse: WarehouseResource) -> set[str]:
    """OECD area codes that map to a territory (scheme 'oecd' in core.territory_aliases)."""
    with warehouse.reader() as conn:
        rows = conn.execute("SELECT alias FROM core.territory_aliases WHERE scheme = 'oecd'").fetchall()
    return {row[0] for row in rows}


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="OECD regional statistics for Chile's TL2 regions, Chile and the OECD: raw SDMX rows and "
    "the validated indicator rows (raw.oecd_regional, staging.oecd_regional).",
    metadata={
        **table_declaration(STAGING_COLUMNS, "staging.oecd_regional"),
        "source": oecd.SOURCE.landing_url,
    },
    deps=[territories],
)
def oecd_regional(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(oecd.SOURCE.id, oecd.ENDPOINTS)
    requests = [(r, SAMPLE_DIR / f"{r.name}_SAMPLE.csv") for r in oecd.build_requests(urls)]
    acquirer, acquired = acquire_all(sources, oecd.SOURCE, requests, oecd.REQUESTS_PER_HOUR, warehouse)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {oecd.SOURCE: acquired}, metadata)) is not None:
        return same
    known_areas = known_oecd_areas(warehouse)
    with refusing(warehouse, acquirer, {oecd.SOURCE: acquired}):
        raw, selected = parse_payloads(acquired)
        staging = validate_staging(selected[list(STAGING_COLUMNS)], known_areas)
    counts = publish(
        warehouse,
        acquirer,
        oecd.SOURCE,
        acquired,
        {("raw", "oecd_regional"): raw, ("staging", "oecd_regional"): staging},
    )
    return MaterializeResult(data_version=source_version(context, acquired), metadata={**metadata, **counts})


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[oecd_regional, territories],
    description="OECD indicators as core.observations, mapped to territories through OECD area aliases.",
)
def oecd_observations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, oecd.SOURCE) as conn:
        unknown = conn.execute(
            """
            SELECT DISTINCT s.ref_area FROM staging.oecd_regional s
            LEFT JOIN core.territory_aliases a ON a.scheme = 'oecd' AND a.alias = s.ref_area
            WHERE a.territory_id IS NULL ORDER BY 1
            """
        ).fetchall()
        if unknown:
            raise ValidationError(
                oecd.SOURCE.id, f"OECD area codes with no territory: {', '.join(r[0] for r in unknown)}"
            )
        frame = conn.execute(
            """
            SELECT s.indicator AS indicator_id, a.territory_id, s.time_period AS period, s.obs_value AS value,
                   NULL::DOUBLE AS lower, NULL::DOUBLE AS upper,
                   CASE s.obs_status WHEN 'P' THEN 'provisional' WHEN 'E' THEN 'estimated'
                                     WHEN 'B' THEN 'series break' END AS flag,
                   ? AS source_id, s.snapshot_id
            FROM staging.oecd_regional s
            JOIN core.territory_aliases a ON a.scheme = 'oecd' AND a.alias = s.ref_area
            WHERE s.obs_value IS NOT NULL
            """,
            [oecd.SOURCE.id],
        ).df()
        store.record_indicators(conn, load_indicators(FAMILY))
        rows = write_tables(conn, oecd.SOURCE.id, {("core", "observations"): frame})["core.observations"]
    return MaterializeResult(metadata={"observations": rows})


@asset_check(asset=oecd_regional, description="Every OECD area code maps to a known territory.")
def oecd_areas_known(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        unknown = conn.execute(
            """
            SELECT DISTINCT ref_area FROM staging.oecd_regional
            WHERE ref_area NOT IN (SELECT alias FROM core.territory_aliases WHERE scheme = 'oecd') ORDER BY 1
            """
        ).fetchall()
    return AssetCheckResult(passed=not unknown, metadata={"unknown_areas": [r[0] for r in unknown]})


@asset_check(
    asset=oecd_regional, description="Periods fall between 1990 and next year; values in plausible ranges."
)
def oecd_values_plausible(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            "SELECT indicator, ref_area, time_period, obs_value FROM staging.oecd_regional"
        ).df()
    years = frame["time_period"].astype(int)
    bad_period = frame[(years < 1990) | (years > date.today().year + 1)]
    bounds = frame["indicator"].map(PLAUSIBLE)
    low, high = bounds.str[0], bounds.str[1]
    bad_value = frame[frame["obs_value"].notna() & ((frame["obs_value"] < low) | (frame["obs_value"] > high))]
    return AssetCheckResult(
        passed=bad_period.empty and bad_value.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "implausible_periods": len(bad_period),
            "implausible_values": len(bad_value),
            "examples": bad_value.head(5).astype(str).to_dict("records"),
        },
    )


@asset_check(asset=oecd_regional, description="No duplicate (indicator, area, period) keys.")
def oecd_keys_unique(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        duplicates = conn.execute(
            """
            SELECT count(*) FROM (SELECT indicator, ref_area, time_period FROM staging.oecd_regional
                                  GROUP BY ALL HAVING count(*) > 1)
            """
        ).fetchone()[0]
    return AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates})


oecd_job = refresh_job("oecd_refresh", [oecd_regional, oecd_observations], "the OECD regional series")
oecd_schedule = refresh_schedule(
    oecd_job,
    "0 6 * * 1",
    "oecd_weekly",
    "OECD dataflows are revised without notice; unchanged answers cost little",
)

ASSETS = [oecd_regional, oecd_observations]
CHECKS = [oecd_areas_known, oecd_values_plausible, oecd_keys_unique]
JOBS = [oecd_job]
SCHEDULES = [oecd_schedule]
OBSERVATION_ASSETS = [oecd_observations]
__all__ = ["ASSETS", "CHECKS", "JOBS", "SCHEDULES", "SourceError"]
