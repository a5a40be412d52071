"""Territories family: the places every observation belongs to.

`territories` seeds the reference places (Chile, its 16 regions with their OECD TL2
codes, the OECD area, the explicit unknown) from the project's reference list.
"""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, asset

from pipelines.ingest import column_schema
from pipelines.resources import WarehouseResource
from sources.base import fold_name
from warehouse.db import transaction

FAMILY = "territories"
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "sources" / "reference"


def reference_territories() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(territories, aliases) for the country, regions, OECD area and unknown residence."""
    regions = pd.read_csv(REFERENCE_DIR / "regions.csv", dtype=str, keep_default_na=False)
    places = [
        ("country:CL", "country", "CL", "Chile", None),
        ("oecd:OECD", "oecd_area", "OECD", "OECD member countries", None),
        ("unknown:99999", "unknown", "99999", "Ignorada (unknown residence)", "country:CL"),
    ]
    places += [
        (f"region:{r.region_code}", "region", r.region_code, r.name, "country:CL")
        for r in regions.itertuples()
    ]
    territories = pd.DataFrame(places, columns=["territory_id", "kind", "code", "name", "parent_id"])
    aliases = [("country:CL", "oecd", "CHL"), ("oecd:OECD", "oecd", "OECD"), ("country:CL", "iso3166", "CL")]
    for r in regions.itertuples():
        aliases.append((f"region:{r.region_code}", "oecd", r.oecd_tl2))
        for name in [r.name, *filter(None, r.alternative_names.split("|"))]:
            aliases.append((f"region:{r.region_code}", "name", fold_name(name)))
    return territories, pd.DataFrame(aliases, columns=["territory_id", "scheme", "alias"]).drop_duplicates(
        ["scheme", "alias"]
    )


@asset(
    group_name="territories",
    pool="duckdb_writer",
    description="Reference places: Chile, its 16 regions (with OECD TL2 aliases), the OECD area, unknown residence.",
    metadata={
        "dagster/column_schema": column_schema(
            {
                "territory_id": "VARCHAR: '<kind>:<code>'",
                "kind": "VARCHAR: country, region, oecd_area, unknown, ...",
                "code": "VARCHAR: official code",
                "name": "VARCHAR: official name",
                "parent_id": "VARCHAR: enclosing territory",
            }
        )
    },
)
def territories(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    places, aliases = reference_territories()
    with warehouse.writer() as conn, transaction(conn):
        ids = places["territory_id"].tolist()
        conn.execute("DELETE FROM core.territory_aliases WHERE territory_id IN (SELECT unnest(?))", [ids])
        conn.execute("DELETE FROM core.territories WHERE territory_id IN (SELECT unnest(?))", [ids])
        conn.register("_places", places)
        conn.register("_aliases", aliases)
        conn.execute(
            "INSERT INTO core.territories (territory_id, kind, code, name, parent_id) "
            "SELECT territory_id, kind, code, name, parent_id FROM _places"
        )
        conn.execute("INSERT INTO core.territory_aliases SELECT territory_id, scheme, alias FROM _aliases")
    return MaterializeResult(metadata={"territories": len(places), "aliases": len(aliases)})


ASSETS = [territories]
