"""The 2024 Census indicators, computed from the staged tables and microdata cubes (no Dagster here).

Every indicator is declared as data (`COUNTS`, `SHARES`, `MICRO_SHARES`) and computed for the
country, regions, provinces and comunas at period `2024`:
- published tables: the country and regions as INE publishes them; provinces as sums over their
  comunas (only when the table has every comuna of the province, else no value);
- microdata cubes: every level summed from the comunas, only when the cube holds every comuna
  the official division gives the level (`sources.division.coverage`); partial levels are
  reported, never published as the territory's value.
A share divides counts of declared answers only ("no declarado" / "no respuesta" leave the
denominator). A count that INE suppressed (P2: 50 people or fewer) stays NULL with a flag, and so
does every share or sum built on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sources import division
from sources.census2024_tables import DWELLINGS, INDIGENOUS, SEWER
from sources.territory_resolver import COUNTRY_ID

PERIOD = "2024"
NOT_ADDITIVE = ("Promedio", "Razón")  # means and ratios: never summed
SUPPRESSED_FLAG = "suppressed by INE (a cell of 50 persons or fewer)"
SUPPRESSED_IN_COMUNA = "suppressed by INE in a comuna of the province (50 persons or fewer)"
UNDEFINED_FLAG = "undefined in the INE table ('-': a total of zero)"


@dataclass(frozen=True)
class Count:
    indicator: str
    table: str
    measure: str


@dataclass(frozen=True)
class Share:
    """100 x numerator / denominator, over counts of one table (or two, for `denominator_table`)."""

    indicator: str
    table: str
    numerator: tuple[str, ...]
    denominator: str
    minus: tuple[str, ...] = ()  # measures taken out of the denominator (undeclared answers)
    complement: bool = False  # numerator = denominator - the listed measures
    denominator_table: str | None = None
    category: str = ""


COUNTS = (
    Count("census_population", "population", "Población censada"),
    Count("census_indigenous_population", "indigenous", INDIGENOUS),
    Count("census_lickanantay_population", "indigenous", "Atacameño o Lickanantay"),
    Count("census_quechua_population", "indigenous", "Quechua"),
    Count("census_aymara_population", "indigenous", "Aymara"),
    Count("census_households", "households", "Hogares censados"),
)
SHARES = (
    Share("census_dwellings_no_public_water_share", "water_source", ("Red pública",), DWELLINGS, ("Fuente de origen del agua no declarado",), complement=True),
    Share("census_dwellings_water_truck_share", "water_source", ("Camión aljibe",), DWELLINGS, ("Fuente de origen del agua no declarado",)),
    Share("census_dwellings_water_carried_share", "water_distribution", ("No tiene sistema, la acarrea",), DWELLINGS, ("Sistema de distribución del agua no declarado",)),
    Share("census_dwellings_no_sewer_share", "sanitation", SEWER[:2], DWELLINGS, (SEWER[2],), complement=True),
    Share("census_dwellings_no_electricity_share", "electricity", ("No tiene energía eléctrica",), DWELLINGS, ("Fuente de energía eléctrica no declarada",)),
    Share("census_dwellings_no_waste_collection_share", "waste", ("La recogen los servicios de aseo",), DWELLINGS, ("Medio de eliminación de basura no declarado",), complement=True),
    Share("census_indigenous_share", "indigenous", (INDIGENOUS,), "Población censada", denominator_table="population"),
    Share("census_lickanantay_share", "indigenous", ("Atacameño o Lickanantay",), "Población censada", denominator_table="population"),
)  # fmt: skip
HOUSEHOLD_SIZE = ("census_household_size_mean", "households", "Promedio de personas por hogar")
INTERNET = "census_households_fixed_internet_share"


def with_provinces(cells: pd.DataFrame) -> pd.DataFrame:
    """Comuna counts summed to provinces, only where the table has every comuna of the province
    (the official division decides which those are)."""
    comunas = cells[(cells["level"] == "comuna") & ~cells["measure"].str.startswith(NOT_ADDITIVE)].copy()
    comunas["code"] = comunas["territory_id"].str.removeprefix("comuna:")
    comunas["province_id"] = "province:" + comunas["code"].str[:3]
    keys = ["table", "province_id", "category", "measure"]
    grouped = comunas.groupby(keys, as_index=False).agg(
        value=("value", lambda v: v.sum(min_count=0)),
        suppressed=("cell_state", lambda s: bool((s == "suppressed").any())),
        codes=("code", lambda c: frozenset(c)),
        snapshot_id=("snapshot_id", "max"),
    )
    complete = [
        division.coverage(p, codes).complete
        for p, codes in zip(grouped["province_id"], grouped["codes"], strict=True)
    ]
    grouped = grouped[complete]
    grouped["cell_state"] = np.where(grouped["suppressed"], "suppressed_comuna", "value")
    grouped.loc[grouped["suppressed"], "value"] = np.nan
    grouped = grouped.rename(columns={"province_id": "territory_id"}).assign(level="province")
    return pd.concat([cells, grouped[cells.columns.intersection(grouped.columns)]], ignore_index=True)


def topic(table: str) -> str:
    """'water_source_comuna' -> 'water_source': the region and comuna tables of one topic share lookups."""
    return table.removesuffix("_region").removesuffix("_comuna")


def _lookup(cells: pd.DataFrame) -> dict:
    return {
        (topic(row.table), row.territory_id, row.category, row.measure): (
            row.value,
            row.cell_state,
            row.snapshot_id,
        )
        for row in cells.itertuples(index=False)
    }


def _flag(states: list[str]) -> str | None:
    if "suppressed" in states:
        return SUPPRESSED_FLAG
    if "suppressed_comuna" in states:
        return SUPPRESSED_IN_COMUNA
    if "undefined" in states:
        return UNDEFINED_FLAG
    return None


def table_observations(cells: pd.DataFrame) -> pd.DataFrame:
    """Every declared table indicator for every territory the tables have."""
    cells = with_provinces(cells)
    found = _lookup(cells)
    territories = sorted(cells["territory_id"].dropna().unique())
    rows: list[dict] = []

    def add(indicator: str, territory: str, inputs: list, compute: Callable) -> None:
        if any(item is None for item in inputs):
            return
        values, states, snapshots = zip(*inputs, strict=True)
        flag = _flag(list(states))
        value = None if flag or any(pd.isna(v) for v in values) else compute(*values)
        rows.append(_row(indicator, territory, value, flag, snapshots, roles))

    roles: tuple[str, ...] = ()

    for territory in territories:
        roles = ()
        for count in COUNTS:
            add(
                count.indicator,
                territory,
                [found.get((count.table, territory, "", count.measure))],
                lambda v: v,
            )
        for share in SHARES:
            inputs, compute = _share_inputs(share, territory, found)
            roles = ("numerator",) * len(share.numerator) + ("denominator",) * (1 + len(share.minus))
            add(share.indicator, territory, inputs, compute)
            roles = ()
        indicator, table, measure = HOUSEHOLD_SIZE
        add(indicator, territory, [found.get((table, territory, "", measure))], lambda v: v)
        answers = [found.get(("ict", territory, answer, "Internet fija")) for answer in ("Sí", "No")]
        add(INTERNET, territory, answers, lambda yes, no: 100 * yes / (yes + no) if yes + no else None)
    return pd.DataFrame(rows)


def _share_inputs(share: Share, territory: str, found: dict) -> tuple[list, Callable]:
    get = lambda table, measure: found.get((table, territory, share.category, measure))  # noqa: E731
    numerator = [get(share.table, m) for m in share.numerator]
    denominator = [get(share.denominator_table or share.table, share.denominator)]
    minus = [get(share.table, m) for m in share.minus]
    n, k = len(numerator), len(minus)

    def compute(*values):
        top, (total,), out = values[:n], values[n : n + 1], values[n + 1 : n + 1 + k]
        base = total - sum(out)
        part = base - sum(top) if share.complement else sum(top)
        return 100 * part / base if base else None

    return numerator + denominator + minus, compute


def _row(indicator: str, territory: str, value, flag, snapshots: tuple, roles: tuple[str, ...]) -> dict:
    """One observation; `inputs` lists every snapshot it was computed from, with its role
    (numerator/denominator of a share, the parts of a province sum, else the value)."""
    if not roles:
        roles = ("parts" if territory.startswith("province:") else "value",) * len(snapshots)
    return {
        "indicator_id": indicator,
        "territory_id": territory,
        "period": PERIOD,
        "value": None if value is None else float(value),
        "flag": flag,
        "snapshot_id": max(snapshots),
        "inputs": sorted(set(zip(roles, snapshots, strict=True))),
    }


# --- microdata --------------------------------------------------------------------------------

WATER_DECLARED = {1, 2, 3, 4}  # p6_fuente_agua codes of a declared source; 1 = red pública
TRUCK = 3
EMPLOYED, UNEMPLOYED = 1, 2
BRANCHES = set("ABCDEFGHIJKLMNOPQRSTU")


def levels(cube: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The comuna cube repeated for its province, region and Chile: (rows, partial levels left out).

    A level is kept only when the cube holds every comuna the official division gives it; a
    partial sum never stands for the territory (it is reported, see `sources.division.coverage`).
    """
    code = cube["territory_id"].str.removeprefix("comuna:")
    parts = [cube.assign(level_id=cube["territory_id"])]
    parts += [
        cube.assign(level_id="province:" + code.str[:3]),
        cube.assign(level_id="region:" + code.str[:2]),
    ]
    parts.append(cube.assign(level_id=COUNTRY_ID))
    stacked = pd.concat(parts, ignore_index=True)
    present = stacked.assign(code=stacked["territory_id"].str.removeprefix("comuna:")).groupby("level_id")[
        "code"
    ]
    partial = {}
    for level, codes in present.agg(frozenset).items():
        if not level.startswith("comuna:"):
            cover = division.coverage(level, codes)
            if not cover.complete:
                partial[level] = cover.describe()
    kept = stacked[~stacked["level_id"].isin(partial)]
    return kept, [f"{level} ({words})" for level, words in sorted(partial.items())]


@dataclass(frozen=True)
class MicroShare:
    indicator: str
    cube: str
    numerator: Callable[[pd.DataFrame], pd.Series]
    denominator: Callable[[pd.DataFrame], pd.Series]


def _area(code: int) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda f: f["area"] == code


def _employed_in_mining(f: pd.DataFrame) -> pd.Series:
    return (f["labour_status"] == EMPLOYED) & (f["branch"] == "B")


def _labour_force(f: pd.DataFrame) -> pd.Series:
    return f["labour_status"].isin([EMPLOYED, UNEMPLOYED])


def _water(f: pd.DataFrame) -> pd.Series:
    return f["water_source"].isin(WATER_DECLARED)


def _not_public(f: pd.DataFrame) -> pd.Series:
    return _water(f) & (f["water_source"] != 1)


MICRO_SHARES = (
    MicroShare("census_dwellings_no_public_water_share_urban", "dwellings", lambda f: _not_public(f) & _area(1)(f), lambda f: _water(f) & _area(1)(f)),
    MicroShare("census_dwellings_no_public_water_share_rural", "dwellings", lambda f: _not_public(f) & _area(2)(f), lambda f: _water(f) & _area(2)(f)),
    MicroShare("census_dwellings_water_truck_share_rural", "dwellings", lambda f: (f["water_source"] == TRUCK) & _area(2)(f), lambda f: _water(f) & _area(2)(f)),
    MicroShare("census_unemployment_rate", "persons", lambda f: f["labour_status"] == UNEMPLOYED, _labour_force),
    MicroShare("census_unemployment_rate_women", "persons", lambda f: (f["labour_status"] == UNEMPLOYED) & (f["sex"] == "F"), lambda f: _labour_force(f) & (f["sex"] == "F")),
    MicroShare("census_unemployment_rate_men", "persons", lambda f: (f["labour_status"] == UNEMPLOYED) & (f["sex"] == "M"), lambda f: _labour_force(f) & (f["sex"] == "M")),
    MicroShare("census_mining_women_share", "persons", lambda f: _employed_in_mining(f) & (f["sex"] == "F"), _employed_in_mining),
    MicroShare("census_mining_employment_share", "persons", _employed_in_mining, lambda f: (f["labour_status"] == EMPLOYED) & f["branch"].isin(BRANCHES)),
)  # fmt: skip
MICRO_COUNTS = (("census_mining_employed", "persons", _employed_in_mining),)


def microdata_observations(cubes: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Every microdata indicator for every comuna the cubes hold and their complete provinces,
    regions and Chile; plus the levels left out because the cubes cover only part of them."""
    leveled = {name: levels(cube) for name, cube in cubes.items()}
    stacked = {name: rows for name, (rows, _) in leveled.items()}
    partial = sorted({level for _, missing in leveled.values() for level in missing})
    out = []
    for share in MICRO_SHARES:
        frame = stacked[share.cube]
        weight = frame["records"]
        grouped = (
            pd.DataFrame(
                {
                    "top": weight.where(share.numerator(frame), 0),
                    "base": weight.where(share.denominator(frame), 0),
                    "level_id": frame["level_id"],
                    "snapshot_id": frame["snapshot_id"],
                }
            )
            .groupby("level_id", as_index=False)
            .agg(top=("top", "sum"), base=("base", "sum"), snapshot_id=("snapshot_id", "max"))
        )
        grouped = grouped[grouped["base"] > 0]
        out.append(grouped.assign(indicator_id=share.indicator, value=100 * grouped["top"] / grouped["base"]))
    for indicator, cube, select in MICRO_COUNTS:
        frame = stacked[cube]
        grouped = (
            frame[select(frame)]
            .groupby("level_id", as_index=False)
            .agg(value=("records", "sum"), snapshot_id=("snapshot_id", "max"))
        )
        out.append(grouped.assign(indicator_id=indicator))
    frame = pd.concat(out, ignore_index=True).rename(columns={"level_id": "territory_id"})
    frame["period"], frame["flag"] = PERIOD, None
    frame["value"] = frame["value"].astype(float)
    return frame[["indicator_id", "territory_id", "period", "value", "flag", "snapshot_id"]], partial
