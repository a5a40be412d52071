"""Chile's official territorial division, and whether a set of parts covers a territory.

The division is reference data this project maintains (`sources/reference/`, see its
README): the 16 regions (`regions.csv`), 56 provinces and 346 comunas
(`territorial_division.csv`), with their Código Único Territorial (CUT) codes and official
names, citing SUBDERE/INE. It defines which places exist: a comuna with no polygon is still
a comuna, and a region is "covered" by a set of comuna values only when every one of its
comunas is in the set.

`coverage` is the one rule every family applies before it sums parts into a whole (comunas
into a region, regions into Chile): a sum over some of the parts is no value of the whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REGIONS_CSV = REFERENCE_DIR / "regions.csv"
DIVISION_CSV = REFERENCE_DIR / "territorial_division.csv"
COUNTRY_ID = "country:CL"
CITATION = (
    "Subsecretaría de Desarrollo Regional y Administrativo (SUBDERE) and Instituto Nacional de "
    "Estadísticas (INE): Código Único Territorial (CUT), division político-administrativa de Chile "
    "(16 regiones, 56 provincias, 346 comunas; Ley 21.033 creating the Región de Ñuble, 2018)"
)
LEVELS = ("region", "province", "comuna")
EXPECTED_COUNTS = {"region": 16, "province": 56, "comuna": 346}


def _names(text: str) -> list[str]:
    return [name for name in text.split("|") if name]


@functools.cache
def _division() -> pd.DataFrame:
    regions = pd.read_csv(REGIONS_CSV, dtype=str, keep_default_na=False, encoding="utf-8")
    rest = pd.read_csv(DIVISION_CSV, dtype=str, keep_default_na=False, encoding="utf-8")
    region_rows = pd.DataFrame(
        {
            "kind": "region",
            "code": regions["region_code"],
            "name": regions["name"],
            "parent_id": COUNTRY_ID,
            "alternative_names": regions["alternative_names"].map(_names),
        }
    )
    parent_kind = {"province": "region", "comuna": "province"}
    other_rows = pd.DataFrame(
        {
            "kind": rest["level"],
            "code": rest["cut"],
            "name": rest["name"],
            "parent_id": rest["level"].map(parent_kind) + ":" + rest["parent_cut"],
            "alternative_names": rest["alternative_names"].map(_names),
        }
    )
    table = pd.concat([region_rows, other_rows], ignore_index=True)
    table.insert(0, "territory_id", table["kind"] + ":" + table["code"])
    counts = table["kind"].value_counts().to_dict()
    if counts != EXPECTED_COUNTS or table["territory_id"].duplicated().any():
        raise ValueError(f"{DIVISION_CSV.name}: expected {EXPECTED_COUNTS} distinct units, found {counts}")
    return table


def load_division() -> pd.DataFrame:
    """Regions, provinces and comunas: territory_id, kind, code, name, parent_id, alternative_names."""
    return _division().copy()


@functools.cache
def comunas_by_region() -> dict[str, frozenset[str]]:
    """Region code -> the CUT codes of all its comunas."""
    comunas = _division()
    comunas = comunas[comunas["kind"] == "comuna"]
    return {
        region: frozenset(group)
        for region, group in comunas["code"].groupby(comunas["code"].str[:2], sort=True)
    }


def comunas_of(region_code: str) -> frozenset[str]:
    return comunas_by_region().get(region_code, frozenset())


def all_comunas() -> frozenset[str]:
    return frozenset().union(*comunas_by_region().values())


def region_codes() -> list[str]:
    return sorted(comunas_by_region())


@dataclass(frozen=True)
class Coverage:
    """How many of a territory's parts a set of values covers."""

    territory_id: str
    part_kind: str  # comuna | region
    present: int
    expected: int
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.expected > 0 and self.present == self.expected and not self.missing

    def describe(self) -> str:
        """'29 of 346 comunas' (the explicit flag of a sum that is not the territory's value)."""
        return f"{self.present} of {self.expected} {self.part_kind}s"


def _parts_of(territory_id: str) -> tuple[str, frozenset[str]]:
    kind, _, code = territory_id.partition(":")
    if territory_id == COUNTRY_ID:
        return "comuna", all_comunas()
    if kind == "region":
        return "comuna", comunas_of(code)
    if kind == "province":
        return "comuna", frozenset(c for c in comunas_of(code[:2]) if c.startswith(code))
    raise ValueError(
        f"no official parts for {territory_id!r}: only Chile, regions and provinces have comunas"
    )


def coverage(territory_id: str, comuna_codes: Iterable[str]) -> Coverage:
    """Which of the territory's comunas `comuna_codes` holds (codes outside it are ignored)."""
    part_kind, expected = _parts_of(territory_id)
    present = expected & frozenset(comuna_codes)
    return Coverage(territory_id, part_kind, len(present), len(expected), tuple(sorted(expected - present)))


def parents_of_comunas(comuna_codes: Iterable[str]) -> dict[str, list[str]]:
    """{region and country territory id: its comunas among `comuna_codes`}, whatever their coverage."""
    codes = sorted(set(comuna_codes))
    groups: dict[str, list[str]] = {COUNTRY_ID: codes} if codes else {}
    for code in codes:
        groups.setdefault(f"region:{code[:2]}", []).append(code)
    return groups


def sum_over_comunas(
    frame: pd.DataFrame,
    keys: list[str],
    value: str = "value",
    comuna: str = "comuna_code",
    levels: tuple[str, ...] = ("region", "country"),
    snapshot: str | None = "snapshot_id",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum `value` from comunas up to their regions and Chile, per combination of `keys`.

    Returns (totals, partial): a total only where the comunas present cover the whole
    territory (every comuna of the region; all 346 for Chile), with `parts`; every other
    group goes to `partial`, with `present`, `expected` and the `coverage` words
    ('29 of 346 comunas'), so it can be reported but never stands for the territory.
    Rows with a missing value are not parts. With `snapshot`, both frames carry `snapshots`,
    the sorted snapshot ids of the parts (the lineage of the sum).
    """
    rows = frame[frame[value].notna()]
    totals, partial = [], []
    groups = rows.groupby(keys, sort=True) if keys else [((), rows)]
    for group_key, group in groups:
        group_key = group_key if isinstance(group_key, tuple) else (group_key,)
        for territory_id, codes in sorted(parents_of_comunas(group[comuna]).items()):
            if territory_id.split(":", 1)[0] not in levels:
                continue
            cover = coverage(territory_id, codes)
            parts = group[group[comuna].isin(codes)]
            lineage = (tuple(sorted(set(parts[snapshot]))),) if snapshot else ()
            total = float(parts[value].sum())
            if cover.complete:
                totals.append((territory_id, *group_key, total, cover.present, *lineage))
            else:
                described = (cover.present, cover.expected, cover.describe())
                partial.append((territory_id, *group_key, total, *described, *lineage))
    extra = ["snapshots"] if snapshot else []
    return (
        pd.DataFrame(totals, columns=["territory_id", *keys, "value", "parts", *extra]),
        pd.DataFrame(
            partial, columns=["territory_id", *keys, "value", "present", "expected", "coverage", *extra]
        ),
    )
