"""Health-facility indicators from the located DEIS establishments (pure pandas, no warehouse).

- counts by comuna: every establishment in force, public and private provision, each level of care
  (primary, secondary, tertiary), and public hospital beds; zeros for the comunas of every region
  the listing covers (a national register that lists nothing in a comuna counted none there);
- regions and Chile: sums over comunas, published only when every comuna of the territory is
  present (`sources.division.sum_over_comunas`); a region the listing does not cover at all is
  not a zero, so Chile is then not published either;
- rates: facilities per 10,000 and beds per 1,000 inhabitants, with the INE population of the
  workbook's version year (the denominator's snapshot is an input of the rate);
- distance: for each comuna, the lower median over its own establishments (those whose point lies
  in the comuna they state) of the geodesic distance to the nearest high-complexity hospital with
  an emergency service; where a comuna has none, from a point inside its polygon (flagged).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Geod

from sources import division
from sources.base import fold_name

LEVELS = ("primary", "secondary", "tertiary")
COUNTS = {
    "deis_facilities_count": lambda f: pd.Series(True, index=f.index),
    "deis_facilities_public_count": lambda f: f["provision"] == "public",
    "deis_facilities_private_count": lambda f: f["provision"] == "private",
    **{f"deis_facilities_{level}_count": (lambda f, lv=level: f["care_level"] == lv) for level in LEVELS},
}
RATES = {f"deis_facilities_{level}_per_10000": (f"deis_facilities_{level}_count", 10_000) for level in LEVELS}
RATES["deis_public_beds_per_1000"] = ("deis_public_beds", 1_000)
DISTANCE = "deis_high_complexity_hospital_distance_km"
NO_EMERGENCY = "sin atencion de ugencia"  # sic in DEIS: institutes without an emergency service
_GEOD = Geod(ellps="WGS84")


def comuna_counts(facilities: pd.DataFrame, beds: pd.DataFrame, known_comunas: list[str]) -> pd.DataFrame:
    """(indicator_id, comuna_code, value) for `COUNTS` and public beds, zeros for covered comunas."""
    covered_regions = set(facilities["region_code"])
    comunas = sorted(c for c in known_comunas if c[:2] in covered_regions)
    parts = []
    for indicator, select in COUNTS.items():
        counts = facilities[select(facilities)].groupby("comuna_code").size()
        parts.append(_filled(indicator, counts, comunas))
    placed = beds.dropna(subset=["comuna_code"])
    parts.append(_filled("deis_public_beds", placed.groupby("comuna_code")["beds"].sum(), comunas))
    return pd.concat(parts, ignore_index=True)


def _filled(indicator: str, counts: pd.Series, comunas: list[str]) -> pd.DataFrame:
    index = sorted(set(comunas) | set(counts.index))
    values = counts.reindex(index, fill_value=0).astype(float)
    return pd.DataFrame({"indicator_id": indicator, "comuna_code": index, "value": values.to_numpy()})


def territory_counts(counts: pd.DataFrame, snapshot: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comuna, region and Chile rows with territory_id and roles, partial totals not published)."""
    frame = counts.assign(snapshot_id=snapshot)
    totals, partial = division.sum_over_comunas(frame, ["indicator_id"])
    comunas = frame.assign(territory_id="comuna:" + frame["comuna_code"], role="value")
    rows = pd.concat(
        [comunas[["indicator_id", "territory_id", "value", "role"]], totals.assign(role="parts")],
        ignore_index=True,
    )
    return rows[["indicator_id", "territory_id", "value", "role"]], partial


def rates(counts: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    """Per-inhabitant rates where population (territory_id, value, snapshot_id) is known and > 0."""
    denominators = population.rename(columns={"value": "population", "snapshot_id": "population_snapshot"})
    parts = []
    for indicator, (count, per) in RATES.items():
        joined = counts[counts["indicator_id"] == count].merge(denominators, on="territory_id")
        joined = joined[joined["population"] > 0]
        parts.append(
            joined.assign(indicator_id=indicator, value=per * joined["value"] / joined["population"])[
                ["indicator_id", "territory_id", "value", "population_snapshot"]
            ]
        )
    return pd.concat(parts, ignore_index=True)


def high_complexity_hospitals(facilities: pd.DataFrame) -> pd.DataFrame:
    """High-complexity hospitals with an emergency service and coordinates that can be used."""
    usable = facilities["longitude"].notna() & facilities["coordinate_flag"].isna()
    emergency = ~facilities["facility_type"].map(fold_name).str.contains(NO_EMERGENCY)
    return facilities[facilities["high_complexity"] & emergency & usable]


def nearest(lon: np.ndarray, lat: np.ndarray, hospitals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(km to the nearest hospital, its row position) for each point (geodesic on WGS84)."""
    hx, hy = hospitals["longitude"].to_numpy(float), hospitals["latitude"].to_numpy(float)
    px, qx = np.meshgrid(lon, hx, indexing="ij")
    py, qy = np.meshgrid(lat, hy, indexing="ij")
    _, _, metres = _GEOD.inv(px.ravel(), py.ravel(), qx.ravel(), qy.ravel())
    metres = metres.reshape(len(lon), len(hx))
    position = metres.argmin(axis=1)
    return metres[np.arange(len(lon)), position] / 1000.0, position


def distances(facilities: pd.DataFrame, anchors: pd.DataFrame) -> pd.DataFrame:
    """(comuna_code, value km, flag) per comuna; `anchors` has comuna_code, lon, lat of a polygon point.

    Establishments count as a comuna's own when their point lies in the comuna they state
    (`comuna_mismatch` False). The lower median is an actual establishment's distance, so the
    hospital named in the flag is the one that distance goes to.
    """
    hospitals = high_complexity_hospitals(facilities)
    if hospitals.empty:
        return pd.DataFrame(columns=["comuna_code", "value", "flag"])
    own = facilities[(facilities["comuna_mismatch"] == False) & facilities["longitude"].notna()]  # noqa: E712
    km, where = nearest(own["longitude"].to_numpy(float), own["latitude"].to_numpy(float), hospitals)
    own = own.assign(km=km, hospital=hospitals["name"].to_numpy()[where])
    rows = []
    for comuna, group in own.groupby("comuna_code"):
        ordered = group.sort_values(["km", "establishment_code"])
        pick = ordered.iloc[(len(ordered) - 1) // 2]
        flag = (
            f"straight-line km, lower median over the comuna's {len(ordered)} located establishment(s); "
            f"nearest high-complexity hospital: {pick['hospital']}"
        )
        rows.append((comuna, float(pick["km"]), flag))
    missing = anchors[~anchors["comuna_code"].isin(own["comuna_code"])]
    if not missing.empty:
        km, where = nearest(missing["lon"].to_numpy(float), missing["lat"].to_numpy(float), hospitals)
        for comuna, value, position in zip(missing["comuna_code"], km, where, strict=True):
            flag = (
                "straight-line km from a point inside the comuna polygon (no located establishment of its "
                f"own); nearest high-complexity hospital: {hospitals['name'].iloc[position]}"
            )
            rows.append((comuna, float(value), flag))
    return pd.DataFrame(rows, columns=["comuna_code", "value", "flag"]).sort_values("comuna_code")
