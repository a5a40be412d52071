"""Health family: DEIS deaths and INE population to age-standardised death rates.

health_deaths: the DEIS deaths zip streamed through DuckDB into deaths by year x comuna of
    residence x sex x 5-year age group x cause group (core.deaths). The official-figures zip
    is the series; the newest weekly preliminary zip (discovered on the DEIS page) only adds
    the years after it.
health_population: INE comuna population by sex and single age (core.population), INE's own
    national projection (core.population_country) and the `population` indicator for every
    comuna, region and the country (core.observations): Chile is the figure INE states for it,
    the sum of comunas only a cross-check.
health_rates: crude and directly standardised rates with 95% gamma intervals, rate ratios
    against the country (core.mortality_rates, marts.mortality_rates) and the rates of the
    registered cause groups as core.observations.
"""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from methods import mortality
from pipelines.health_mortality import (
    POPULATION_BY_GROUP_SQL,
    HealthConfig,
    country_population,
    rate_observations,
    rate_table,
    standard_population,
)
from pipelines.health_population import COUNTRY, population_tables
from pipelines.health_tables import (
    COUNTRY_POPULATION_COLUMNS,
    COUNTRY_POPULATION_SCHEMA,
    DEATHS_COLUMNS,
    DEATHS_SCHEMA,
    PARSED_TOTAL_COLUMNS,
    POPULATION_COLUMNS,
    POPULATION_SCHEMA,
    RATE_COLUMNS,
)
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    payload_file,
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
from sources import deis_deaths, division, ine_population
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import FetchError, FetchRequest
from sources.endpoints import endpoints
from sources.icd_groups import load_cause_groups
from warehouse import store
from warehouse.db import SQL_DIR, run_script, scan

FAMILY = "health"
SAMPLE_DIR = SAMPLES_DIR / "health"
DEATHS_SAMPLE = SAMPLE_DIR / "DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.zip"
POPULATION_SAMPLE = SAMPLE_DIR / "ine_proyecciones_comunas_SAMPLE_2002-2035.csv"
NATIONAL_SAMPLE = SAMPLE_DIR / "ine_proyecciones_pais_SAMPLE_1992-2050.csv"
# Largest relative gap allowed between Chile as INE states it and the sum of all 346 comunas
# (the real files agree exactly: 20,086,377 in 2024).
COUNTRY_SUM_TOLERANCE = 1e-3
VIEWS_SQL = SQL_DIR / "views" / "50_health.sql"


# --- deaths --------------------------------------------------------------------------------


def acquire_deaths(
    sources: SourcesResource, warehouse: WarehouseResource
) -> tuple[Acquirer, Acquired, Acquired | None, str | None]:
    """(acquirer, official zip, newest weekly zip or None, why not). The weekly file is optional:
    it has no sample, and without it the official series simply ends at its last year."""
    urls = endpoints(deis_deaths.SOURCE.id, deis_deaths.ENDPOINTS)
    acquirer, (official,) = acquire_all(
        sources,
        deis_deaths.SOURCE,
        [(deis_deaths.official_request(urls), DEATHS_SAMPLE)],
        warehouse=warehouse,
    )
    anchor = FetchRequest(name="deaths-weekly", url=urls["open_data_page"], expect="zip")
    try:
        weekly = acquirer.acquire_walk(
            deis_deaths.SOURCE,
            lambda fetcher: [fetcher.fetch(deis_deaths.SOURCE, deis_deaths.weekly_request(fetcher, urls))],
            None,
            anchor,
        )[-1]
    except FetchError as exc:
        return acquirer, official, None, str(exc)
    return acquirer, official, weekly, None


def aggregate_deaths(acquirer: Acquirer, official: Acquired, weekly: Acquired | None) -> pd.DataFrame:
    """Both zips aggregated by DuckDB on a scan connection of their own (no warehouse lock held while
    100 MB of records stream); weekly rows only for years after the official ones."""
    groups = load_cause_groups()
    with tempfile.TemporaryDirectory(prefix="deis-") as tmp, scan(temp_directory=tmp) as conn:
        frame = deis_deaths.aggregate_deaths_zip(
            conn,
            payload_file(acquirer, official),
            groups,
            work_dir=Path(tmp),
            snapshot=official.payload.snapshot_id,
        )
        frame["series"], frame["snapshot_id"] = "official", official.payload.snapshot_id
        if weekly is not None:
            extra = deis_deaths.aggregate_deaths_zip(
                conn,
                payload_file(acquirer, weekly),
                groups,
                work_dir=Path(tmp),
                snapshot=weekly.payload.snapshot_id,
            )
            extra = extra[extra["year"] > frame["year"].max()]
            extra["series"], extra["snapshot_id"] = "preliminary", weekly.payload.snapshot_id
            frame = pd.concat([frame, extra], ignore_index=True)
    frame["cause_groups_version"] = groups.version
    return frame[list(DEATHS_COLUMNS)]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="DEIS deaths streamed in DuckDB to deaths by year x comuna of residence x sex x age group x "
    "cause group (core.deaths); unknown residence kept as comuna 99999, a comuna that is not a code refused; "
    "totals per year and region, per cause group and the unknown-residence share gated against the last "
    "accepted snapshot.",
    metadata={
        **table_declaration(DEATHS_COLUMNS, "core.deaths"),
        "source": deis_deaths.SOURCE.landing_url,
    },
)
def health_deaths(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer, official, weekly, weekly_error = acquire_deaths(sources, warehouse)
    acquired = [official] + ([weekly] if weekly else [])
    metadata = log_acquisitions(context, acquired)
    if (
        same := unchanged(context, warehouse, acquirer, {deis_deaths.SOURCE: acquired}, metadata)
    ) is not None:
        return same
    if weekly is None:
        context.log.warning(f"no weekly DEIS file, the official series only: {weekly_error}")
    with refusing(warehouse, acquirer, {deis_deaths.SOURCE: acquired}):
        frame = aggregate_deaths(acquirer, official, weekly)
        validate_frame(DEATHS_SCHEMA, frame, deis_deaths.SOURCE.id, official.payload.snapshot_id)
        with warehouse.reader() as conn:
            # Every comuna of residence must be a known territory (99999 is the explicit unknown).
            load_resolver(conn, deis_deaths.SOURCE.id).resolve(
                frame["comuna_code"].unique(), "comuna", snapshot=official.payload.snapshot_id
            )
    rows = publish(warehouse, acquirer, deis_deaths.SOURCE, acquired, {("core", "deaths"): frame})[
        "core.deaths"
    ]
    total = frame[frame["cause_group"] == "all_causes"]
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            "core.deaths": rows,
            "deaths_all_causes": int(total["deaths"].sum()),
            "years": f"{frame['year'].min()}-{frame['year'].max()}",
            "unknown_residence_deaths": int(
                total.loc[total["comuna_code"] == deis_deaths.UNKNOWN_COMUNA, "deaths"].sum()
            ),
        },
    )


# --- population ----------------------------------------------------------------------------


def _log_population_coverage(
    context: AssetExecutionContext, partial: dict, cross_check: pd.DataFrame
) -> None:
    """Say how far Chile as INE states it is from the sum of its comunas, and which levels get no
    value because the file does not hold all their comunas."""
    if not cross_check.empty:
        context.log.info(
            f"population: Chile as INE states it vs the sum of its 346 comunas, largest relative gap "
            f"{cross_check['relative_gap'].max():.2e} over {len(cross_check)} years"
        )
    if partial:
        context.log.warning(
            f"population: no value for {', '.join(f'{t} ({c})' for t, c in partial.items())}: "
            "the file does not hold every comuna of the official division"
        )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="INE comuna population by sex and single age, 2002-2035 (core.population), INE's national "
    "projection 1992-2050 (core.population_country), and the `population` indicator for every comuna, "
    "region and the country (core.observations); Chile's figure is the one INE states for it.",
    metadata={
        **table_declaration(
            POPULATION_COLUMNS,
            "core.population",
            extra={
                "core.population_country": COUNTRY_POPULATION_COLUMNS,
                "staging.population_parsed_totals": PARSED_TOTAL_COLUMNS,
            },
        ),
        "source": ine_population.SOURCE.landing_url,
    },
)
def health_population(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(ine_population.SOURCE.id, ine_population.ENDPOINTS)
    acquirer, acquired = acquire_all(
        sources,
        ine_population.SOURCE,
        [
            (ine_population.comunas_request(urls), POPULATION_SAMPLE),
            (ine_population.national_request(urls), NATIONAL_SAMPLE),
        ],
        warehouse=warehouse,
    )
    metadata = log_acquisitions(context, acquired)
    if (
        same := unchanged(context, warehouse, acquirer, {ine_population.SOURCE: acquired}, metadata)
    ) is not None:
        return same
    payload, national = acquired[0].payload, acquired[1].payload
    with refusing(warehouse, acquirer, {ine_population.SOURCE: acquired}):
        frame = ine_population.parse_comunas(payload.content, payload.snapshot_id)
        validate_frame(POPULATION_SCHEMA, frame, ine_population.SOURCE.id, payload.snapshot_id)
        country = ine_population.parse_national_projection(national.content, national.snapshot_id)
        validate_frame(COUNTRY_POPULATION_SCHEMA, country, ine_population.SOURCE.id, national.snapshot_id)
        with warehouse.reader() as conn:
            load_resolver(conn, ine_population.SOURCE.id).resolve(
                frame["comuna_code"].unique(), "comuna", snapshot=payload.snapshot_id
            )
        tables, partial, cross_check = population_tables(
            frame, country, payload.snapshot_id, national.snapshot_id
        )
        _log_population_coverage(context, partial, cross_check)
    counts = publish(warehouse, acquirer, ine_population.SOURCE, acquired, tables)
    rows, written = counts["core.population"], counts["core.observations"]
    with warehouse.writer() as conn:
        store.record_indicators(
            conn, [i for i in load_indicators(FAMILY) if i["source_id"] == ine_population.SOURCE.id]
        )
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            "core.population": rows,
            "comunas": int(frame["comuna_code"].nunique()),
            "years": f"{frame['year'].min()}-{frame['year'].max()}",
            "observations": written,
            "partial_levels_not_published": MetadataValue.json(partial),
            "country_source": f"INE national projection, snapshot {national.snapshot_id} ({national.mode})",
            **(
                {"country_vs_comunas_max_relative_gap": float(cross_check["relative_gap"].max())}
                if not cross_check.empty
                else {}
            ),
        },
    )


# --- rates ---------------------------------------------------------------------------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[health_deaths, health_population],
    description="Crude and directly age-standardised death rates with 95% gamma intervals and rate ratios "
    "against the country, pooled over 5-year windows for every comuna and by year for regions and the "
    "country (core.mortality_rates, marts.mortality_rates); ASRs and ratios of the registered cause groups "
    "as core.observations.",
    metadata={**table_declaration(RATE_COLUMNS, "core.mortality_rates")},
)
def health_rates(
    context: AssetExecutionContext, warehouse: WarehouseResource, config: HealthConfig
) -> MaterializeResult:
    with derived_writer(warehouse, deis_deaths.SOURCE) as conn:
        deaths = conn.execute("SELECT * FROM core.deaths").df()
        population = conn.execute(POPULATION_BY_GROUP_SQL).df()
        pop_snapshot, pop_mode = conn.execute(
            "SELECT p.snapshot_id, s.mode FROM core.population p JOIN core.snapshots s USING (snapshot_id) LIMIT 1"
        ).fetchone()
        deaths_snapshot = conn.execute(
            "SELECT snapshot_id FROM core.deaths WHERE series = 'official' LIMIT 1"
        ).fetchone()[0]
        cover = division.coverage(COUNTRY, population["comuna_code"].unique())
        partial = None if cover.complete else cover.describe()
        stated = country_population(conn)  # Chile as INE states it, when the warehouse holds it
        country, country_snapshot, country_mode = stated if stated else (None, pop_snapshot, pop_mode)
        standard = standard_population(config, population, country_mode == "sample", partial, country)
        version = deaths["cause_groups_version"].iloc[0]
        context.log.info(f"standard population: {standard.name}; few_deaths below {config.min_deaths}")
        whole_only = (
            partial is not None and pop_mode != "sample"
        )  # SAMPLE stand-ins keep their sample regions
        table, pooled = rate_table(deaths, population, config, standard, version, whole_only, country)
        table["snapshot_id"] = deaths_snapshot
        table["population_snapshot_id"] = pop_snapshot
        table.loc[table["territory_id"] == COUNTRY, "population_snapshot_id"] = country_snapshot
        table = table[list(RATE_COLUMNS)]
        lineage = [("numerator", s) for s in sorted(deaths["snapshot_id"].unique())]
        if not config.standard_counts:  # the standard is Chile's population of that snapshot
            lineage.append(("standard_population", country_snapshot))
        observations = rate_observations(table, deaths_snapshot, lineage)
        counts = write_tables(
            conn,
            deis_deaths.SOURCE.id,
            {("core", "mortality_rates"): table, ("core", "observations"): observations},
            snapshot_ids=sorted({*deaths["snapshot_id"].unique(), pop_snapshot, country_snapshot}),
        )
        run_script(conn, VIEWS_SQL)
        store.record_indicators(
            conn, [i for i in load_indicators(FAMILY) if i["source_id"] == deis_deaths.SOURCE.id]
        )
        written = counts["core.observations"]
    return MaterializeResult(
        metadata={
            "core.mortality_rates": len(table),
            "observations": written,
            "standard": standard.name,
            "pooled_windows": [mortality.period_label(p) for p in pooled],
            "min_deaths": config.min_deaths,
            "few_deaths_rows": int((table["flag"] == mortality.FLAG_FEW_DEATHS).sum()),
        }
    )


# --- checks --------------------------------------------------------------------------------


@asset_check(
    asset=health_deaths,
    description="Deaths reconcile: for every year x comuna x sex x age group, the partition groups "
    "(chapters + unmapped) add up to all causes.",
)
def health_deaths_reconcile(warehouse: WarehouseResource) -> AssetCheckResult:
    partition = list(load_cause_groups().partition_ids)
    with warehouse.reader() as conn:
        bad, cells, total = conn.execute(
            """
            WITH sums AS (
                SELECT year, comuna_code, sex, age_group,
                       sum(deaths) FILTER (cause_group = 'all_causes') AS all_causes,
                       coalesce(sum(deaths) FILTER (cause_group IN (SELECT unnest(?::VARCHAR[]))), 0) AS parts
                FROM core.deaths GROUP BY ALL)
            SELECT count(*) FILTER (all_causes IS DISTINCT FROM parts), count(*), sum(all_causes) FROM sums
            """,
            [partition],
        ).fetchone()
    return AssetCheckResult(
        passed=bad == 0,
        metadata={"cells": cells, "cells_not_reconciled": bad, "deaths_all_causes": int(total or 0)},
    )


def _country_coverage(conn) -> division.Coverage:
    codes = [r[0] for r in conn.execute("SELECT DISTINCT comuna_code FROM core.population").fetchall()]
    return division.coverage(division.COUNTRY_ID, codes)


@asset_check(
    asset=health_population,
    description="Population totals match the payload's own totals per year (the comuna file has no total row, "
    "so the totals summed at parse time); the country observation is the figure INE's national projection "
    "states (its both-sexes block), and when the comuna file holds every comuna of the official division, "
    "the comunas' sum agrees with it within COUNTRY_SUM_TOLERANCE (a cross-check, never the published value).",
)
def health_population_totals(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        mismatches = conn.execute(
            """
            WITH loaded AS (SELECT year, sum(population) AS loaded FROM core.population GROUP BY year)
            SELECT t.year, t.parsed_total, l.loaded FROM staging.population_parsed_totals t
            LEFT JOIN loaded l USING (year) WHERE l.loaded IS DISTINCT FROM t.parsed_total
            """
        ).fetchall()
        years = conn.execute("SELECT count(*) FROM staging.population_parsed_totals").fetchone()[0]
        country = conn.execute(
            """
            WITH stated AS (SELECT CAST(year AS VARCHAR) AS period, sum(population) AS stated
                            FROM core.population_country WHERE sex = ? GROUP BY year),
            published AS (SELECT period, value FROM core.observations
                          WHERE indicator_id = 'population' AND territory_id = ?)
            SELECT s.period, s.stated, p.value FROM stated s FULL JOIN published p USING (period)
            WHERE p.value IS DISTINCT FROM s.stated ORDER BY 1
            """,
            [mortality.SEX_TOTAL, COUNTRY],
        ).fetchall()
        complete = _country_coverage(conn).complete
        gaps = conn.execute(
            """
            WITH summed AS (SELECT year, sum(population) AS summed FROM core.population GROUP BY year),
            stated AS (SELECT year, sum(population) AS stated FROM core.population_country
                       WHERE sex = ? GROUP BY year)
            SELECT year, stated, summed, abs(summed - stated) / stated AS gap
            FROM stated JOIN summed USING (year) WHERE ? ORDER BY gap DESC
            """,
            [mortality.SEX_TOTAL, complete],
        ).fetchall()
    worst = gaps[0][3] if gaps else None
    return AssetCheckResult(
        passed=not mismatches
        and not country
        and years > 0
        and (worst is None or worst <= COUNTRY_SUM_TOLERANCE),
        metadata={
            "years": years,
            "mismatches": MetadataValue.json([list(map(float, m)) for m in mismatches[:10]]),
            "country_not_as_stated": MetadataValue.json([[p, s, v] for p, s, v in country[:10]]),
            "comuna_file_complete": complete,
            "country_vs_comunas_max_relative_gap": MetadataValue.json(
                None
                if worst is None
                else {"year": gaps[0][0], "stated": gaps[0][1], "comunas": gaps[0][2], "gap": worst}
            ),
        },
    )


@asset_check(
    asset=health_deaths,
    additional_deps=[health_population],
    description="Every comuna of residence resolves to a comuna of the INE population file; deaths of unknown "
    "residence (99999) are counted, not dropped.",
)
def health_comunas_resolve(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        unresolved = conn.execute(
            """
            SELECT comuna_code, sum(deaths) FROM core.deaths
            WHERE cause_group = 'all_causes' AND comuna_code <> ?
              AND comuna_code NOT IN (SELECT DISTINCT comuna_code FROM core.population)
            GROUP BY ALL ORDER BY 1
            """,
            [deis_deaths.UNKNOWN_COMUNA],
        ).fetchall()
        unknown, total = conn.execute(
            "SELECT coalesce(sum(deaths) FILTER (comuna_code = ?), 0), sum(deaths) FROM core.deaths "
            "WHERE cause_group = 'all_causes'",
            [deis_deaths.UNKNOWN_COMUNA],
        ).fetchone()
    return AssetCheckResult(
        passed=not unresolved,
        metadata={
            "unknown_residence_deaths": int(unknown),
            "deaths_all_causes": int(total),
            "unresolved_comunas": MetadataValue.json({code: int(n) for code, n in unresolved[:50]}),
        },
    )


health_job = refresh_job(
    "health_refresh", [health_deaths, health_population, health_rates], "DEIS deaths and INE population"
)
health_schedule = refresh_schedule(
    health_job, "0 4 * * 2", "health_weekly", "DEIS republishes the preliminary deaths file every week"
)

ASSETS = [health_deaths, health_population, health_rates]
CHECKS = [health_deaths_reconcile, health_population_totals, health_comunas_resolve]
JOBS = [health_job]
SCHEDULES = [health_schedule]
OBSERVATION_ASSETS = [health_population, health_rates]
