"""The lenses of deleted study files leave the warehouse, the export and output/lens/.

A study is its file: when `studies/<id>.yaml` is gone, the next build drops the study's
`lens.<prefix>_*` tables (so the export, which copies the lens schema, no longer carries
them) and removes `output/lens/<id>/`. This asset runs before the export.
"""

import shutil
from collections.abc import Sequence

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipelines import studies
from pipelines.paths import output_dir
from pipelines.resources import WarehouseResource
from warehouse.db import transaction
from warehouse.lens_prune import drop_retired_lenses


def current_prefixes() -> set[str]:
    """The table prefixes of every study file present, valid or not (a broken file keeps its lens)."""
    return {path.stem.replace("-", "_") for path in studies.studies_dir().glob("*.yaml")}


def retire(warehouse: WarehouseResource) -> dict[str, list[str]]:
    with warehouse.writer() as conn, transaction(conn):
        dropped = drop_retired_lenses(conn, current_prefixes())
    for prefix in dropped:
        folder = output_dir() / "lens" / prefix.replace("_", "-")  # ids use '-', prefixes '_'
        shutil.rmtree(folder, ignore_errors=True)
    return dropped


def retired_lenses_asset(lens_assets: Sequence):
    @asset(
        name="retired_lenses",
        group_name="lens",
        pool="duckdb_writer",
        deps=list(lens_assets),
        description="Drops the lens tables and output/lens/<id>/ of studies whose file was deleted, "
        "before the export copies the lens schema.",
    )
    def _retired(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        dropped = retire(warehouse)
        for prefix, tables in dropped.items():
            context.log.info(f"study file of '{prefix}' is gone: dropped {len(tables)} lens tables")
        return MaterializeResult(metadata={"dropped": MetadataValue.json(dropped)})

    return _retired
