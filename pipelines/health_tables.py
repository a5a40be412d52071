"""Health tables, one declaration each: column descriptions, pandera schemas and value gates.

core.deaths, core.population, core.population_country, staging.population_parsed_totals and
core.mortality_rates, written by the assets of `pipelines.health`.
"""

import pandera.pandas as pa

from methods import mortality
from pipelines import gates
from sources import deis_deaths, ine_population

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
