"""Mortality rates of the health family: the standard population, the territories and periods
rates are computed for, and the rates of the registered cause groups as observations.

The rate maths (direct standardisation, gamma intervals, rate ratios) is `methods.mortality`;
this module decides what it is applied to.
"""

import pandas as pd
from dagster import Config

from methods import mortality
from pipelines.health_population import COUNTRY
from sources import deis_deaths, division
from sources.base import ValidationError
from warehouse import gates as warehouse_gates
from warehouse import store

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


POPULATION_BY_GROUP_SQL = f"""
SELECT year, comuna_code, region_code, sex, {mortality.sql_age_group("age")} AS age_group,
       sum(population) AS population
FROM core.population GROUP BY ALL
"""  # noqa: S608 - constant SQL from methods.mortality
COUNTRY_BY_GROUP_SQL = f"""
SELECT year, sex, {mortality.sql_age_group("age")} AS age_group, sum(population) AS population
FROM core.population_country GROUP BY ALL
"""  # noqa: S608 - constant SQL from methods.mortality


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


def rate_territories(
    population: pd.DataFrame, whole_only: bool, country: pd.DataFrame | None
) -> tuple[dict, dict, dict, dict | None]:
    """(the country, regions, comunas, the country's stated population) rates are computed for,
    as `rate_table` describes: {territory id: its comuna codes, None for the country}."""
    comunas = {f"comuna:{c}": [c] for c in sorted(population["comuna_code"].unique())}
    regions = {
        f"region:{r}": sorted(rows["comuna_code"].unique()) for r, rows in population.groupby("region_code")
    }
    territory = {COUNTRY: None}
    stated = {COUNTRY: country[country["sex"] != mortality.SEX_TOTAL]} if country is not None else None
    if whole_only:
        regions = {r: codes for r, codes in regions.items() if division.coverage(r, codes).complete}
        territory = territory if stated else {}
    return territory, regions, comunas, stated


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
    territory, regions, comunas, stated = rate_territories(population, whole_only, country)
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
