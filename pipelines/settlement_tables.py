"""The settlements family's tables, declared once: staging and core columns, value bounds and gates."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from pipelines import gates
from pipelines.settlements_measures import CATASTRO_YEARS

KNOWN_FLAGS = frozenset({"geometry_missing", "geometry_repaired", "folio_repeated", "folio_missing"})
# Largest campamentos hold a few thousand households on tens of hectares: beyond these
# bounds a value is more likely a unit change or a typo than a settlement.
MAX_HOUSEHOLDS = 20_000
MAX_HECTARES = 2_000.0
# Geodesic / (published × cos² latitude) should be 1 when HECTAREAS is Web Mercator area.
AREA_RATIO_TOLERANCE = 0.1


def _flags_known(flags: pd.Series) -> pd.Series:
    return flags.str.split(";").map(lambda parts: set(parts) <= KNOWN_FLAGS)


STAGING_COLUMNS = {
    "settlement_id": "VARCHAR: '<catastro_year>-<folio>' ('-2' … for a folio repeated in one file)",
    "catastro_year": "BIGINT: 2024 (GeoIDE update) or 2022 (CNC)",
    "folio": "VARCHAR: MINVU folio",
    "name": "VARCHAR: settlement name",
    "comuna_code": "VARCHAR: 5-digit CUT as the catastro attributes it",
    "region_code": "VARCHAR: 2-digit region CUT",
    "households": "BIGINT: N_HOG (0 is a count, NULL unknown)",
    "hectares": "DOUBLE: area as published (planar Web Mercator, inflated by 1/cos² latitude)",
    "hectares_geodesic": "DOUBLE: true ground area of the polygon (equal-area CRS)",
    "catastro_origin": "VARCHAR: AN_CAT, the catastro that first listed it",
    "source_flag": "VARCHAR: FUENTE, who reported it",
    "observations": "VARCHAR: OBS",
    "quality_flags": "VARCHAR: ';'-joined geometry_missing, geometry_repaired, folio_repeated, folio_missing",
    "geometry_wkb": "BLOB: polygon as WKB, EPSG:4326 (NULL when missing or empty)",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload the row came from",
}

STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "settlement_id": pa.Column(str, unique=True),
        "catastro_year": pa.Column("int64", pa.Check.isin(CATASTRO_YEARS)),
        "folio": pa.Column(str, pa.Check.str_matches(r"^\d+$"), nullable=True),
        "name": pa.Column(str, nullable=True),
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "region_code": pa.Column(str, pa.Check.str_matches(r"^\d{2}$")),
        "households": pa.Column("Int64", pa.Check.in_range(0, MAX_HOUSEHOLDS), nullable=True),
        "hectares": pa.Column(float, pa.Check.in_range(0, MAX_HECTARES), nullable=True),
        "hectares_geodesic": pa.Column(float, pa.Check.in_range(0, MAX_HECTARES), nullable=True),
        "quality_flags": pa.Column(str, pa.Check(_flags_known, error="unknown quality flag"), nullable=True),
        "geometry_wkb": pa.Column(object, nullable=True),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda frame: frame["comuna_code"].str[:2] == frame["region_code"],
            error="region_code is not the comuna code's first two digits",
        )
    ],
    strict=False,
    coerce=False,
)


CORE_COLUMNS = {
    "settlement_id": "VARCHAR: '<catastro_year>-<folio>'",
    "catastro_year": "INTEGER: 2024 or 2022",
    "name": "VARCHAR: settlement name",
    "comuna_code": "VARCHAR: 5-digit CUT as the catastro attributes it",
    "households": "BIGINT: households (N_HOG)",
    "hectares": "DOUBLE: area as MINVU publishes it (planar Web Mercator, inflated)",
    "hectares_geodesic": "DOUBLE: true ground area of the polygon",
    "catastro_origin": "VARCHAR: AN_CAT",
    "source_flag": "VARCHAR: FUENTE",
    "located_comuna_code": "VARCHAR: comuna polygon holding the settlement's representative point",
    "located_basin_code": "VARCHAR: basin polygon (coarsest level) holding it",
    "cut_mismatch": "BOOLEAN: attributed CUT differs from the location; NULL when not checkable",
    "quality_flags": "VARCHAR: geometry_missing, geometry_repaired, folio_repeated, folio_missing",
    "geometry": "GEOMETRY: polygon, EPSG:4326",
    "snapshot_id": "VARCHAR: snapshot the row came from",
}


# core.settlements keeps its DDL (40_settlements.sql): refilled, not replaced. Single settlements are
# edited upstream all the time; the counts of settlements and households per catastro year and region
# are judged against the last accepted catastro instead.
_PER_REGION = {"year": "catastro_year", "region": "left(comuna_code, 2)"}
SETTLEMENT_TOTALS = (
    gates.Aggregate("settlements per catastro year and region", by=_PER_REGION, value="1"),
    gates.Aggregate(
        "households per catastro year and region", by=_PER_REGION, value="coalesce(households, 0)"
    ),
)
gates.declare(
    "core.settlements", gates.TableGates(keys=("settlement_id",), aggregates=SETTLEMENT_TOTALS, refill=True)
)
gates.declare("staging.settlements", gates.TableGates(keys=("settlement_id",), aggregates=SETTLEMENT_TOTALS))
