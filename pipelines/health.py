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
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)

from pipelines import gates
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    payload_file,
    publish,
    refusing,
    table_declaration,
    validate_frame,
    write_tables,
)
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.territories import load_resolver, territories
from sources import deis_deaths, division, ine_population, mortality
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import FetchError, FetchRequest, ValidationError
from sources.endpoints import endpoints
from sources.icd_groups import load_cause_groups
from warehouse import gates as warehouse_gates
from warehouse import store
from warehouse.db import SQL_DIR

FAMILY = "health"
SAMPLE_DIR = SAMPLES_DIR / "health"
DEATHS_SAMPLE = SAMPLE_DIR / "DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.zip"
POPULATION_SAMPLE = SAMPLE_DIR / "ine_proyecciones_comunas_SAMPLE_2002-2035.csv"
NATIONAL_SAMPLE = SAMPLE_DIR / "ine_proyecciones_pais_SAMPLE_1992-2050.csv"
# Largest relative gap allowed between Chile as INE states it and the sum of all 346 comunas
# (the real files agree exactly: 20,086,377 in 2024).
COUNTRY_SUM_TOLERANCE = 1e-3
VIEWS_SQL = SQL_DIR / "views" / "50_health.sql"

# Cause groups published as indicators (ids as in sources/reference/icd_cause_groups.yaml).
INDICATOR_GROUPS = (
    "all_causes",
    "neoplasms_malignant",
    "respiratory",
    "circulatory",
    "external",
    "lung_cancer",
    "pneumoconiosis",
)
COUNTRY = "country:CL"

DEATHS_COLUMNS = {
    "year": "BIGINT: year of death",
    "comuna_code": "VARCHAR: 5-digit comuna of residence, '99999' unknown residence",
    "sex": "VARCHAR: M, F or U (Indeterminado)",
    "age_group": "VARCHAR: 0-4 .. 80+ or 'unknown'",
    "cause_group": "VARCHAR: all_causes, a chapter group, 'unmapped' or a specific group",
    "deaths": "BIGINT: deaths",
    "series": "VARCHAR: official (CIFRAS_OFICIALES) or preliminary (weekly file, years after the official)",
    "cause_groups_version": "VARCHAR: version of the cause-group reference file",
    "snapshot_id": "VARCHAR: core.snapshots id of the deaths payload",
}
PARSED_TOTAL_COLUMNS = {
    "year": "BIGINT: projection year",
    "parsed_total": "DOUBLE: population summed over every row parsed from the file, all comunas",
    "snapshot_id": "VARCHAR: core.snapshots id of the file",
}
POPULATION_COLUMNS = {
    "region_code": "VARCHAR: 2-digit region",
    "comuna_code": "VARCHAR: 5-digit comuna",
    "sex": "VARCHAR: M or F",
    "age": "BIGINT: completed years, 80 = 80 and over",
    "year": "BIGINT: year (INE estimates and projections base 2017)",
    "population": "BIGINT: persons at 30 June",
    "snapshot_id": "VARCHAR: core.snapshots id of the population payload",
}
COUNTRY_POPULATION_COLUMNS = {
    "sex": "VARCHAR: T (both sexes, as INE states it), M or F",
    "age": "BIGINT: completed years, 100 = 100 and over",
    "year": "BIGINT: year (INE estimates and projections 1992-2050, base 2017)",
    "population": "BIGINT: persons at 30 June, all of Chile",
    "snapshot_id": "VARCHAR: core.snapshots id of the national projection payload",
}
RATE_COLUMNS = {
    "territory_id": "VARCHAR: comuna:<code>, region:<code> or country:CL",
    "period": "VARCHAR: '2016-2020' (pooled) or a single year",
    "cause_group": "VARCHAR: cause group id",
    "sex": "VARCHAR: T (both), M, F",
    "deaths": "BIGINT: deaths in the period (unknown age included)",
    "deaths_unknown_age": "BIGINT: deaths that could not be standardised",
    "population": "DOUBLE: person-years (sum of yearly populations)",
    "crude_rate": "DOUBLE: deaths per 100,000 person-years",
    "asr": "DOUBLE: directly age-standardised rate per 100,000",
    "asr_lower": "DOUBLE: 95% gamma (Fay-Feuer) lower bound",
    "asr_upper": "DOUBLE: 95% gamma upper bound",
    "rate_ratio": "DOUBLE: ASR / ASR of the country, same period, cause and sex",
    "rr_lower": "DOUBLE: 95% lower bound of the rate ratio (log-normal)",
    "rr_upper": "DOUBLE: 95% upper bound",
    "standard": "VARCHAR: standard population used",
    "cause_groups_version": "VARCHAR: cause-group reference version",
    "flag": "VARCHAR: ok, few_deaths, no_population, deaths_without_population",
    "min_deaths": "BIGINT: threshold of the few_deaths flag",
    "snapshot_id": "VARCHAR: deaths snapshot",
    "population_snapshot_id": "VARCHAR: population snapshot (for the country: the national projection)",
}

# core.deaths holds counts too small to judge cell by cell: its totals are judged instead, per year
# and region of residence, per year and cause group, and the share of unknown residence per year.
_ALL_CAUSES = "cause_group = 'all_causes'"
gates.declare(
    "core.deaths",
    gates.TableGates(
        keys=("year", "comuna_code", "sex", "age_group", "cause_group"),
        aggregates=(
            gates.Aggregate(
                "deaths per year and region of residence",
                by={"year": "year", "region": "left(comuna_code, 2)"},
                value="deaths",
                where=_ALL_CAUSES,
                group="series",
            ),
            gates.Aggregate(
                "deaths per year and cause group",
                by={"year": "year", "cause_group": "cause_group"},
                value="deaths",
                group="series",
            ),
            gates.Aggregate(
                "share of deaths with unknown residence per year",
                by={"year": "year"},
                value="deaths",
                where=_ALL_CAUSES,
                share_of=f"comuna_code = '{deis_deaths.UNKNOWN_COMUNA}'",
                group="series",
            ),
        ),
    ),
)
gates.declare(
    "core.population",
    gates.TableGates(
        keys=("comuna_code", "sex", "age", "year"),
        aggregates=(
            gates.Aggregate(
                "population per year and region",
                by={"year": "year", "region": "region_code"},
                value="population",
            ),
        ),
    ),
)
gates.declare(
    "core.population_country",
    gates.TableGates(
        keys=("sex", "age", "year"),
        aggregates=(
            gates.Aggregate(
                "population per year and sex", by={"year": "year", "sex": "sex"}, value="population"
            ),
        ),
    ),
)
gates.declare("staging.population_parsed_totals", gates.TableGates(keys=("year",), values=("parsed_total",)))
gates.declare(
    "core.mortality_rates",
    gates.TableGates(
        keys=("territory_id", "period", "cause_group", "sex"),
        values=("asr", "crude_rate"),
        group="cause_group",
        snapshot_columns=("snapshot_id", "population_snapshot_id"),
    ),
)

DEATHS_SCHEMA = pa.DataFrameSchema(
    {
        "year": pa.Column(int, pa.Check.in_range(1990, 2100)),
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "sex": pa.Column(str, pa.Check.isin(["M", "F", "U"])),
        "age_group": pa.Column(str, pa.Check.isin([*mortality.AGE_GROUPS, mortality.UNKNOWN_AGE])),
        "cause_group": pa.Column(str),
        "deaths": pa.Column(int, pa.Check.gt(0)),
    },
    unique=["year", "comuna_code", "sex", "age_group", "cause_group"],
    strict=False,
)
POPULATION_SCHEMA = pa.DataFrameSchema(
    {
        "region_code": pa.Column(str, pa.Check.str_matches(r"^\d{2}$")),
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "sex": pa.Column(str, pa.Check.isin(["M", "F"])),
        "age": pa.Column(int, pa.Check.in_range(0, ine_population.COMUNAS_TOP_AGE)),
        "year": pa.Column(int, pa.Check.in_range(1990, 2100)),
        "population": pa.Column(int, pa.Check.ge(0)),
    },
    unique=["comuna_code", "sex", "age", "year"],
    strict=False,
)
COUNTRY_POPULATION_SCHEMA = pa.DataFrameSchema(
    {
        "sex": pa.Column(str, pa.Check.isin([mortality.SEX_TOTAL, "M", "F"])),
        "age": pa.Column(int, pa.Check.in_range(0, 100)),
        "year": pa.Column(int, pa.Check.in_range(1950, 2100)),
        "population": pa.Column(int, pa.Check.ge(0)),
    },
    unique=["sex", "age", "year"],
    strict=False,
)


class HealthConfig(Config):
    """Rate settings. The default standard is Chile's population in `standard_year` as the INE
    national projection states it; give `standard_counts` (17 counts, 0-4 .. 80+) and
    `standard_name` to use another."""

    pooled_window_end: int = 2020
    pooled_window_years: int = 5
    min_deaths: int = 20
    standard_year: int = 2017
    standard_name: str = ""
    standard_counts: list[float] = []


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


def aggregate_deaths(conn, acquirer: Acquirer, official: Acquired, weekly: Acquired | None) -> pd.DataFrame:
    """Both zips aggregated in DuckDB; weekly rows only for years after the official ones."""
    groups = load_cause_groups()
    with tempfile.TemporaryDirectory(prefix="deis-") as tmp:
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
    if weekly is None:
        context.log.warning(f"no weekly DEIS file, the official series only: {weekly_error}")
    with refusing(warehouse, acquirer, {deis_deaths.SOURCE: acquired}):
        with warehouse.writer() as conn:  # the zips are scanned by DuckDB; nothing is written here
            frame = aggregate_deaths(conn, acquirer, official, weekly)
            validate_frame(DEATHS_SCHEMA, frame, deis_deaths.SOURCE.id, official.payload.snapshot_id)
            # Every comuna of residence must be a known territory (99999 is the explicit unknown).
            load_resolver(conn, deis_deaths.SOURCE.id).resolve(
                frame["comuna_code"].unique(), "comuna", snapshot=official.payload.snapshot_id
            )
    rows = publish(warehouse, acquirer, deis_deaths.SOURCE, acquired, {("core", "deaths"): frame})[
        "core.deaths"
    ]
    total = frame[frame["cause_group"] == "all_causes"]
    return MaterializeResult(
        metadata={
            **metadata,
            "core.deaths": rows,
            "deaths_all_causes": int(total["deaths"].sum()),
            "years": f"{frame['year'].min()}-{frame['year'].max()}",
            "unknown_residence_deaths": int(
                total.loc[total["comuna_code"] == deis_deaths.UNKNOWN_COMUNA, "deaths"].sum()
            ),
        }
    )


# --- population ----------------------------------------------------------------------------


def country_totals(country: pd.DataFrame) -> pd.DataFrame:
    """Chile per year as INE states it: the both-sexes block of the national projection."""
    rows = country[country["sex"] == mortality.SEX_TOTAL]
    totals = rows.groupby("year", as_index=False)["population"].sum()
    return totals.rename(columns={"population": "value"})


def country_cross_check(population: pd.DataFrame, country: pd.DataFrame) -> pd.DataFrame:
    """Chile as INE states it vs the sum of its comunas, per year both files hold; empty unless
    the comuna file holds every comuna (a sum of part of Chile is no check of Chile)."""
    columns = ["year", "stated", "comunas_sum", "relative_gap"]
    if not division.coverage(COUNTRY, population["comuna_code"].unique()).complete:
        return pd.DataFrame(columns=columns)
    summed = population.groupby("year", as_index=False)["population"].sum()
    both = country_totals(country).merge(summed, on="year")
    both = both.rename(columns={"value": "stated", "population": "comunas_sum"})
    both["relative_gap"] = (both["comunas_sum"] - both["stated"]).abs() / both["stated"]
    return both[columns]


def population_observations(
    population: pd.DataFrame,
    source_id: str,
    snapshot_id: str,
    country: pd.DataFrame | None = None,
    country_snapshot_id: str | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The `population` indicator by comuna, by region where the file holds every comuna of it
    (`sources.division`), and for Chile the figure INE states in its national projection
    (`country`, filed under `country_snapshot_id`), never a sum of comunas. Without a national
    projection Chile is published only as the sum of all 346 comunas.

    Returns (observations, {territory: coverage}) for the levels left out ('29 of 346 comunas'),
    reported, never published as the territory's value.
    """
    comunas = population.groupby(["comuna_code", "year"], as_index=False)["population"].sum()
    totals, partial = division.sum_over_comunas(comunas, ["year"], value="population", snapshot=None)
    totals["snapshot_id"] = snapshot_id
    if country is not None:
        stated = country_totals(country).assign(territory_id=COUNTRY, snapshot_id=country_snapshot_id)
        totals = pd.concat([totals[totals["territory_id"] != COUNTRY], stated], ignore_index=True)
        partial = partial[partial["territory_id"] != COUNTRY]
    levels = pd.concat(
        [
            pd.DataFrame(
                {
                    "territory_id": "comuna:" + comunas["comuna_code"],
                    "year": comunas["year"],
                    "value": comunas["population"],
                    "snapshot_id": snapshot_id,
                }
            ),
            totals[["territory_id", "year", "value", "snapshot_id"]],
        ],
        ignore_index=True,
    )
    frame = pd.DataFrame(
        {
            "indicator_id": "population",
            "territory_id": levels["territory_id"],
            "period": levels["year"].astype(int).astype(str),
            "value": levels["value"].astype("float64"),
            "lower": float("nan"),
            "upper": float("nan"),
            "flag": None,
            "source_id": source_id,
            "snapshot_id": levels["snapshot_id"],
        }
    )
    left_out = dict(zip(partial["territory_id"], partial["coverage"], strict=True))
    frame = frame.astype({"flag": "object"}).sort_values(["territory_id", "period"], ignore_index=True)
    return frame, dict(sorted(left_out.items()))


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
        frame["snapshot_id"] = payload.snapshot_id
        # What the payload itself adds up to per year, kept to check the loaded tables against.
        totals = (
            frame.groupby("year", as_index=False)["population"]
            .sum()
            .rename(columns={"population": "parsed_total"})
        )
        totals["snapshot_id"] = payload.snapshot_id
        population = frame[list(POPULATION_COLUMNS)]
        country["snapshot_id"] = national.snapshot_id
        country = country[list(COUNTRY_POPULATION_COLUMNS)]
        observations, partial = population_observations(
            population, ine_population.SOURCE.id, payload.snapshot_id, country, national.snapshot_id
        )
        cross_check = country_cross_check(population, country)
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
        tables = {
            ("core", "population"): population,
            ("core", "population_country"): country,
            ("staging", "population_parsed_totals"): totals,
            ("core", "observations"): observations,
        }
    counts = publish(warehouse, acquirer, ine_population.SOURCE, acquired, tables)
    rows, written = counts["core.population"], counts["core.observations"]
    with warehouse.writer() as conn:
        store.record_indicators(
            conn, [i for i in load_indicators(FAMILY) if i["source_id"] == ine_population.SOURCE.id]
        )
    return MaterializeResult(
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
        }
    )


# --- rates ---------------------------------------------------------------------------------

POPULATION_BY_GROUP_SQL = f"""
SELECT year, comuna_code, region_code, sex, {mortality.sql_age_group("age")} AS age_group,
       sum(population) AS population
FROM core.population GROUP BY ALL
"""  # noqa: S608 - constant SQL from sources.mortality
COUNTRY_BY_GROUP_SQL = f"""
SELECT year, sex, {mortality.sql_age_group("age")} AS age_group, sum(population) AS population
FROM core.population_country GROUP BY ALL
"""  # noqa: S608 - constant SQL from sources.mortality


def country_population(conn) -> tuple[pd.DataFrame, str, str] | None:
    """(Chile by year x sex (T, M, F) x age group, its snapshot, its mode) from INE's national
    projection, or None when the warehouse holds none (a warehouse loaded before it was read)."""
    if not warehouse_gates.exists(conn, "core.population_country"):
        return None
    found = conn.execute(
        "SELECT p.snapshot_id, s.mode FROM core.population_country p JOIN core.snapshots s USING (snapshot_id) "
        "LIMIT 1"
    ).fetchone()
    if found is None:
        return None
    return conn.execute(COUNTRY_BY_GROUP_SQL).df(), found[0], found[1]


def standard_population(
    config: HealthConfig,
    population: pd.DataFrame,
    sample: bool,
    partial: str | None = None,
    country: pd.DataFrame | None = None,
) -> mortality.StandardPopulation:
    """The configured standard, else Chile's population in `standard_year`: as INE's national
    projection states it (`country`), else summed over the comunas; `partial` ('40 of 346
    comunas') names a comuna file that does not hold all of Chile, so the name says so."""
    if config.standard_counts:
        return mortality.StandardPopulation(
            config.standard_name or "configured standard", tuple(config.standard_counts)
        )
    if country is not None:
        if sample:
            name = (
                f"SAMPLE country {config.standard_year} (the sample national projection), both sexes, "
                "0-4..80+"
            )
            return mortality.standard_from_population(
                country, config.standard_year, config.standard_name or name
            )
        standard = mortality.chile_standard(country, config.standard_year)
        return mortality.StandardPopulation(config.standard_name or standard.name, standard.counts)
    name = f"Chile {config.standard_year}, INE comuna estimates base 2017 summed over all comunas, both sexes, 0-4..80+"
    if sample:
        name = f"SAMPLE country {config.standard_year} (sum of the sample comunas), both sexes, 0-4..80+"
    elif partial:
        name = f"INE {config.standard_year} summed over {partial} (not all of Chile), both sexes, 0-4..80+"
    return mortality.standard_from_population(population, config.standard_year, config.standard_name or name)


def rate_table(
    deaths: pd.DataFrame,
    population: pd.DataFrame,
    config: HealthConfig,
    standard,
    version: str,
    whole_only: bool = False,
    country: pd.DataFrame | None = None,
):
    """Pooled windows for every comuna, region and the country; single years for regions and the country.

    The country's denominator is `country` (year, sex M/F, age group, population: INE's
    national projection) when given, else the sum of every comuna. With `whole_only` (a live
    comuna file that does not hold all of Chile), the regions, and the country when it has no
    stated population, are computed only where the file holds every comuna of the official
    division: national deaths over the population of four regions is not Chile's rate.
    """
    comunas = {f"comuna:{c}": [c] for c in sorted(population["comuna_code"].unique())}
    regions = {
        f"region:{r}": sorted(rows["comuna_code"].unique()) for r, rows in population.groupby("region_code")
    }
    territory = {COUNTRY: None}
    stated = {COUNTRY: country[country["sex"] != mortality.SEX_TOTAL]} if country is not None else None
    if whole_only:
        regions = {r: codes for r, codes in regions.items() if division.coverage(r, codes).complete}
        territory = territory if stated else {}
    years = sorted(set(deaths["year"]) & set(population["year"]))
    if not years:
        raise ValidationError(deis_deaths.SOURCE.id, "no year has both deaths and population")
    end = min(config.pooled_window_end, years[-1])
    pooled = mortality.pooled_periods(years[0], end, config.pooled_window_years)
    common = {
        "standard": standard,
        "reference": COUNTRY if territory else None,
        "min_deaths": config.min_deaths,
        "cause_groups_version": version,
        "stated_populations": stated,
    }
    parts = []
    if pooled:
        parts.append(
            mortality.mortality_table(
                deaths,
                population,
                territories={**territory, **regions, **comunas},
                periods=pooled,
                **common,
            )
        )
    parts.append(
        mortality.mortality_table(
            deaths,
            population,
            territories={**territory, **regions},
            periods=[(y, y) for y in years],
            **common,
        )
    )
    table = pd.concat(parts, ignore_index=True).rename(columns={"territory": "territory_id"})
    table["min_deaths"] = config.min_deaths
    return table, pooled


def rate_observations(
    table: pd.DataFrame, snapshot_id: str, inputs: list[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """ASR and rate-ratio rows (both sexes) of the registered cause groups; `inputs` is the
    lineage every row shares (deaths, standard population), else the deaths snapshot. Each row
    adds its own `population_snapshot_id` as denominator, and a rate ratio the country's too."""
    rows = table[(table["sex"] == mortality.SEX_TOTAL) & table["cause_group"].isin(INDICATOR_GROUPS)]
    flag = rows["flag"].where(rows["flag"] != mortality.FLAG_OK)
    base = {"territory_id": rows["territory_id"], "period": rows["period"], "flag": flag}
    asr = pd.DataFrame(
        {
            "indicator_id": "health_asr_" + rows["cause_group"],
            **base,
            "value": rows["asr"],
            "lower": rows["asr_lower"],
            "upper": rows["asr_upper"],
        }
    )
    ratio = pd.DataFrame(
        {
            "indicator_id": "health_asr_ratio_" + rows["cause_group"],
            **base,
            "value": rows["rate_ratio"],
            "lower": rows["rr_lower"],
            "upper": rows["rr_upper"],
        }
    )
    ratio = ratio[rows["territory_id"] != COUNTRY]
    shared = list(inputs or [("value", snapshot_id)])
    denominators = rows.get("population_snapshot_id", pd.Series(None, index=rows.index))
    reference = set(denominators[rows["territory_id"] == COUNTRY].dropna())
    asr["inputs"] = [sorted({*shared, *([("denominator", d)] if d else [])}) for d in denominators]
    ratio["inputs"] = [
        sorted({*shared, *(("denominator", r) for r in reference), *([("denominator", d)] if d else [])})
        for d in denominators[ratio.index]
    ]
    frame = pd.concat([asr, ratio], ignore_index=True)
    frame = frame[frame["value"].notna()].copy()
    frame["source_id"], frame["snapshot_id"] = deis_deaths.SOURCE.id, snapshot_id
    return frame[[*store.OBSERVATION_COLUMNS, "inputs"]].reset_index(drop=True)


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
        conn.execute(VIEWS_SQL.read_text())
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


health_job = define_asset_job("health_refresh", selection=[health_deaths, health_population, health_rates])
# DEIS republishes the preliminary deaths file every week.
health_schedule = ScheduleDefinition(job=health_job, cron_schedule="0 4 * * 2", name="health_weekly")

ASSETS = [health_deaths, health_population, health_rates]
CHECKS = [health_deaths_reconcile, health_population_totals, health_comunas_resolve]
JOBS = [health_job]
SCHEDULES = [health_schedule]
OBSERVATION_ASSETS = [health_population, health_rates]
