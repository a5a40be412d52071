"""Poverty family: the Ministry of Social Development's small-area estimates of poverty by comuna.

mds_poverty: the multidimensional-poverty workbook (SAMPLE offline) and, when its file can be had,
    the income-poverty workbook (optional: no sample stands in for it), validated
    (raw.mds_poverty_sae, staging.mds_poverty_sae);
mds_poverty_observations: the rates with their confidence limits as core.observations, in percent,
    for comunas only (the publisher sends regional and national figures to Casen itself).
"""

import pandas as pd
import pandera.pandas as pa
from dagster import AssetExecutionContext, MaterializeResult, asset

from pipelines.ingest import (
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
from pipelines.territories import load_resolver, territories
from sources import mds_poverty
from sources.acquire import SAMPLES_DIR
from sources.base import FetchError, ValidationError
from sources.endpoints import endpoints
from warehouse import store

FAMILY = "poverty"
SOURCE = mds_poverty.SOURCE
SAMPLE = SAMPLES_DIR / "poverty" / "estimaciones_indice_pobreza_multidimensional_comunas_2022_SAMPLE.xlsx"
INDICATOR = {"multidimensional": "mds_multidimensional_poverty_rate", "income": "mds_income_poverty_rate"}
SYNTHETIC_FLAG = "synthetic estimate (comuna outside the Casen sample or below its inclusion criteria)"
PERSONS_TOLERANCE = 0.005  # poor persons vs population x rate, relative

STAGING_COLUMNS = {
    "kind": "VARCHAR: multidimensional or income poverty",
    "year": "VARCHAR: year of the estimate (Casen round)",
    "territory_id": "VARCHAR: comuna",
    "comuna_name": "VARCHAR: name as written in the workbook",
    "population": "DOUBLE: persons in private dwellings, Censo 2017 projections (as published)",
    "poor_persons": "DOUBLE: population x rate, as published",
    "rate": "DOUBLE: share of persons in poverty, a fraction (0-1) as published",
    "lower": "DOUBLE: lower confidence limit (fraction)",
    "upper": "DOUBLE: upper confidence limit (fraction)",
    "in_casen_sample": "VARCHAR: Sí/No, the comuna is in the Casen sample",
    "estimation": "VARCHAR: Directa y Sintética (Fay-Herriot) or Sintética",
    "snapshot_id": "VARCHAR: core.snapshots id of the workbook",
}
STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "kind": pa.Column(str, pa.Check.isin(list(INDICATOR))),
        "territory_id": pa.Column(str, pa.Check.str_matches(r"^comuna:\d{5}$")),
        "rate": pa.Column(float, pa.Check.in_range(0, 1)),
        "lower": pa.Column(float, pa.Check.in_range(0, 1), nullable=True),
        "upper": pa.Column(float, pa.Check.in_range(0, 1), nullable=True),
        "population": pa.Column(float, pa.Check.gt(0), nullable=True),
    },
    unique=["kind", "year", "territory_id"],
    strict=False,
)


def check_estimates(staging: pd.DataFrame) -> None:
    """The limits bracket the rate, and poor persons equal population x rate (columns not shifted)."""
    snapshots = ", ".join(sorted(staging["snapshot_id"].unique()))
    outside = staging[(staging["lower"] > staging["rate"]) | (staging["upper"] < staging["rate"])]
    if not outside.empty:
        examples = outside[["territory_id", "lower", "rate", "upper"]].head(3).to_dict("records")
        raise ValidationError(
            SOURCE.id, f"{len(outside)} rate(s) outside their own confidence limits: {examples}", snapshots
        )
    known = staging.dropna(subset=["population", "poor_persons"])
    expected = known["population"] * known["rate"]
    off = known[(known["poor_persons"] - expected).abs() > PERSONS_TOLERANCE * expected + 1]
    if not off.empty:
        examples = off[["territory_id", "population", "poor_persons", "rate"]].head(3).to_dict("records")
        raise ValidationError(
            SOURCE.id, f"{len(off)} row(s) where poor persons != population x rate: {examples}", snapshots
        )


def acquire(context, sources: SourcesResource):
    """The multidimensional workbook (sample offline) and the income one when it can be had."""
    requests = mds_poverty.build_requests(endpoints(SOURCE.id, mds_poverty.ENDPOINTS))
    acquirer = sources.acquirer()
    acquired = [acquirer.acquire(SOURCE, requests["multidimensional_2022"], SAMPLE)]
    try:
        acquired.append(acquirer.acquire(SOURCE, requests["income_2022"], None))
    except FetchError as exc:
        context.log.warning(f"income-poverty estimates not loaded (optional, no sample stands in): {exc}")
    return acquirer, acquired


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="MDSF small-area poverty estimates by comuna (multidimensional 2022; income when available), "
    "validated (staging.mds_poverty_sae).",
    metadata={**table_declaration(STAGING_COLUMNS, "staging.mds_poverty_sae"), "source": SOURCE.landing_url},
)
def mds_poverty_estimates(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer, acquired = acquire(context, sources)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {SOURCE: acquired}):
        frames = []
        for item in acquired:
            payload = item.payload
            frame = mds_poverty.parse_workbook(
                payload.content, mds_poverty.estimate(payload.name), payload.snapshot_id
            )
            frames.append(frame.assign(snapshot_id=payload.snapshot_id))
        raw = pd.concat(frames, ignore_index=True)
        with warehouse.reader() as conn:
            resolver = load_resolver(conn, SOURCE.id)
        staging = raw.assign(
            territory_id=resolver.resolve_series(
                raw["comuna_code"],
                "comuna",
                source=SOURCE.id,
                snapshot=", ".join(raw["snapshot_id"].unique()),
            ).to_numpy()
        )[list(STAGING_COLUMNS)]
        staging = validate_frame(STAGING_SCHEMA, staging, SOURCE.id, ", ".join(raw["snapshot_id"].unique()))
        check_estimates(staging)
    counts = publish(
        warehouse,
        acquirer,
        SOURCE,
        acquired,
        {("raw", "mds_poverty_sae"): raw, ("staging", "mds_poverty_sae"): staging},
    )
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "kinds": sorted(staging["kind"].unique())},
    )


def poverty_observations(staging: pd.DataFrame) -> pd.DataFrame:
    """Rates and limits in percent; synthetic estimates flagged."""
    frame = pd.DataFrame(
        {
            "indicator_id": staging["kind"].map(INDICATOR),
            "territory_id": staging["territory_id"],
            "period": staging["year"],
            "value": 100 * staging["rate"],
            "lower": 100 * staging["lower"],
            "upper": 100 * staging["upper"],
            "flag": staging["estimation"].map(
                lambda e: SYNTHETIC_FLAG if e == mds_poverty.SYNTHETIC else None
            ),
            "source_id": SOURCE.id,
            "snapshot_id": staging["snapshot_id"],
        }
    )
    return frame[store.OBSERVATION_COLUMNS]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[mds_poverty_estimates, territories],
    description="Comuna poverty rates (percent, with 95% confidence limits) as core.observations.",
)
def mds_poverty_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        staging = conn.execute("SELECT * FROM staging.mds_poverty_sae").df()
        frame = poverty_observations(staging)
        store.record_indicators(conn, load_indicators(FAMILY))
        rows = write_tables(conn, SOURCE.id, {("core", "observations"): frame})["core.observations"]
    return MaterializeResult(metadata={"observations": rows})


poverty_job = refresh_job(
    "poverty_refresh", [mds_poverty_estimates, mds_poverty_observations], "MDS's comuna poverty estimates"
)
poverty_schedule = refresh_schedule(
    poverty_job, "0 4 1 3,9 *", "poverty_twice_yearly", "MDS publishes small-area estimates about once a year"
)

ASSETS = [mds_poverty_estimates, mds_poverty_observations]
CHECKS: list = []
JOBS = [poverty_job]
SCHEDULES = [poverty_schedule]
OBSERVATION_ASSETS = [mds_poverty_observations]
