"""INE population as the `population` indicator: comunas, regions where the file holds every
comuna of them, and Chile as INE's national projection states it (the comunas' sum only a
cross-check)."""

import pandas as pd

from methods import mortality
from pipelines.health_tables import COUNTRY_POPULATION_COLUMNS, POPULATION_COLUMNS
from sources import division, ine_population

COUNTRY = "country:CL"


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


def population_tables(
    frame: pd.DataFrame, country: pd.DataFrame, snapshot_id: str, country_snapshot_id: str
) -> tuple[dict, dict[str, str], pd.DataFrame]:
    """What health_population publishes from the parsed comuna file (`frame`) and national
    projection (`country`): (tables, {territory: coverage} of the levels left out, Chile as INE
    states it vs the sum of its comunas)."""
    frame["snapshot_id"] = snapshot_id
    # What the payload itself adds up to per year, kept to check the loaded tables against.
    totals = (
        frame.groupby("year", as_index=False)["population"]
        .sum()
        .rename(columns={"population": "parsed_total"})
    )
    totals["snapshot_id"] = snapshot_id
    population = frame[list(POPULATION_COLUMNS)]
    country["snapshot_id"] = country_snapshot_id
    country = country[list(COUNTRY_POPULATION_COLUMNS)]
    observations, partial = population_observations(
        population, ine_population.SOURCE.id, snapshot_id, country, country_snapshot_id
    )
    tables = {
        ("core", "population"): population,
        ("core", "population_country"): country,
        ("staging", "population_parsed_totals"): totals,
        ("core", "observations"): observations,
    }
    return tables, partial, country_cross_check(population, country)
