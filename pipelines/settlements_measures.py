"""The settlement indicators as observation rows, computed from core.settlements frames (no Dagster here).

Per territory level and catastro year: counts, households, both areas, the change between the
catastros, and households per 1,000 inhabitants where population is loaded. Every row knows the
snapshots it rests on (`observation_lineage`): the catastro year's payloads, the population under
a rate, and a basin's polygon (basins are located by polygon, not by the catastro's attribution).
"""

from __future__ import annotations

import pandas as pd

from sources.settlements import TOTAL_COLUMNS, catastro_change, households_per_1000, settlement_totals

CATASTRO_YEARS = (2022, 2024)
OBSERVATION_COLUMNS = ["indicator_id", "territory_id", "period", "value", "flag", "snapshot_id"]


def complete_totals(
    settlements_frame: pd.DataFrame, level: str, known_codes: list[str], years: list[int]
) -> pd.DataFrame:
    """`settlement_totals` plus zero rows for known territories with no settlement in a year.

    A catastro is national: a comuna, region or basin it does not list had none counted.
    Also adds `without_polygon`, the settlements whose area the geodesic sum lacks.
    """
    totals = settlement_totals(settlements_frame, level)
    key = {"comuna": "comuna_code", "region": "region_code", "basin": "located_basin_code"}[level]
    missing_polygon = (
        settlements_frame.assign(without_polygon=settlements_frame["hectares_geodesic"].isna())
        .groupby([key, "catastro_year"])["without_polygon"]
        .sum()
        .rename_axis(["territory_code", "catastro_year"])
        .reset_index()
    )
    totals = totals.merge(missing_polygon, on=["territory_code", "catastro_year"], how="left")
    present = set(zip(totals["territory_code"], totals["catastro_year"], strict=True))
    zeros = [
        {
            "territory_level": level,
            "territory_code": code,
            "catastro_year": year,
            "settlements": 0,
            "households": 0,
            "settlements_without_households": 0,
            "area_ha": 0.0,
            "area_ha_geodesic": 0.0,
            "without_polygon": 0,
        }
        for code in known_codes
        for year in years
        if (code, year) not in present
    ]
    if zeros:
        totals = pd.concat([totals, pd.DataFrame(zeros)], ignore_index=True)
    totals["households"] = totals["households"].astype("Int64")
    totals["without_polygon"] = totals["without_polygon"].fillna(0).astype("int64")
    return totals.sort_values(["territory_code", "catastro_year"], ignore_index=True)


def _flag(*parts: str) -> str | None:
    return "; ".join(part for part in parts if part) or None


def _located_note(level: str) -> str:
    return "located by polygon; settlements without polygon not counted" if level == "basin" else ""


def _year_rows(totals: pd.DataFrame, level: str, snapshots: dict[int, str]) -> list[tuple]:
    """Counts, households and both areas per territory and catastro year."""
    note, rows = _located_note(level), []
    for t in totals.itertuples(index=False):
        territory, period, snapshot = (
            f"{level}:{t.territory_code}",
            str(t.catastro_year),
            snapshots[t.catastro_year],
        )
        missing_households = (
            f"{t.settlements_without_households} settlements without household count"
            if t.settlements_without_households
            else ""
        )
        no_polygon = (
            f"{t.without_polygon} settlements without polygon (area not counted)" if t.without_polygon else ""
        )
        values = [
            ("settlements_count", t.settlements, _flag(note)),
            (
                "settlement_households",
                None if pd.isna(t.households) else t.households,
                _flag(note, missing_households),
            ),
            ("settlement_area_ha_geodesic", t.area_ha_geodesic, _flag(note, no_polygon)),
            ("settlement_area_ha_published", t.area_ha, _flag(note)),
        ]
        rows += [(indicator, territory, period, value, flag, snapshot) for indicator, value, flag in values]
    return rows


def _change_rows(totals: pd.DataFrame, level: str, snapshots: dict[int, str]) -> list[tuple]:
    """The change between the two catastros, where both are loaded."""
    if not set(CATASTRO_YEARS) <= set(totals["catastro_year"]):
        return []
    note, rows = _flag(_located_note(level)), []
    period, snapshot = f"{CATASTRO_YEARS[0]}-{CATASTRO_YEARS[1]}", snapshots[CATASTRO_YEARS[1]]
    for c in catastro_change(totals[TOTAL_COLUMNS], *CATASTRO_YEARS).itertuples(index=False):
        territory = f"{level}:{c.territory_code}"
        households = None if pd.isna(c.households_change) else c.households_change
        rows.append(("settlements_count_change", territory, period, c.settlements_change, note, snapshot))
        rows.append(("settlement_households_change", territory, period, households, note, snapshot))
    return rows


def _rate_rows(
    totals: pd.DataFrame, level: str, snapshots: dict[int, str], population: pd.DataFrame | None
) -> list[tuple]:
    """Households per 1,000 inhabitants (not for basins: population is by comuna and region)."""
    rates = households_per_1000(totals[TOTAL_COLUMNS], population) if level != "basin" else None
    if rates is None or rates.empty:
        return []
    without_households = totals.set_index(["territory_code", "catastro_year"])[
        "settlements_without_households"
    ]
    rows = []
    for r in rates.itertuples(index=False):
        missing = int(without_households.get((r.territory_code, r.catastro_year), 0))
        rows.append(
            (
                "settlement_households_per_1000",
                f"{level}:{r.territory_code}",
                str(r.catastro_year),
                r.households_per_1000_inhabitants,
                f"{missing} settlements without household count (a lower bound)" if missing else None,
                snapshots[r.catastro_year],
            )
        )
    return rows


def observation_rows(
    totals: pd.DataFrame, snapshots: dict[int, str], population: pd.DataFrame | None
) -> tuple[pd.DataFrame, int]:
    """core.observations rows for one territory level; also the number of per-1,000 rows."""
    level = totals["territory_level"].iloc[0]
    rates = _rate_rows(totals, level, snapshots, population)
    rows = _year_rows(totals, level, snapshots) + _change_rows(totals, level, snapshots) + rates
    frame = pd.DataFrame(rows, columns=OBSERVATION_COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype("float64")
    return frame, len(rates)


def observation_lineage(
    observations: pd.DataFrame,
    settlements_frame: pd.DataFrame,
    population: pd.DataFrame,
    boundaries: dict[str, str] | None = None,
) -> list[list[tuple[str, str]]]:
    """Every snapshot each observation was computed from: the catastro year's payloads (both
    years' for a change), for the per-1,000 rate the population value under it, and for a basin
    (located by polygon, not by the catastro's attribution) the snapshot of its `boundaries`."""
    boundaries = boundaries or {}
    by_year = {
        str(int(y)): sorted(set(group))
        for y, group in settlements_frame.groupby("catastro_year")["snapshot_id"]
    }
    people = (
        {
            (f"{'comuna' if len(str(t)) == 5 else 'region'}:{t}", str(int(y))): snapshot
            for t, y, snapshot in population[["territory", "year", "snapshot_id"]].itertuples(index=False)
        }
        if not population.empty
        else {}
    )
    lineage = []
    for indicator, territory, period in observations[["indicator_id", "territory_id", "period"]].itertuples(
        index=False
    ):
        years = period.split("-") if "-" in period else [period]
        if indicator == "settlement_households_per_1000":
            inputs = [("numerator", s) for s in by_year.get(period, [])]
            inputs += [("denominator", people[(territory, period)])] if (territory, period) in people else []
        else:
            inputs = [("value", s) for year in years for s in by_year.get(year, [])]
        if territory in boundaries:
            inputs.append(("boundary", boundaries[territory]))
        lineage.append(sorted(set(inputs)))
    return lineage
