"""The Dagster code location: each family module (see pipelines/families.py) contributes its definitions.

Operations (pipelines/ops.py: upstream-change sensors, freshness/drift/volume checks) and
publication (pipelines/export.py) are added for whatever families exist.
"""

from dagster import Definitions, define_asset_job, in_process_executor

from pipelines import export, lens, ops, recovery, retired_lenses
from pipelines.families import family_modules
from pipelines.resources import SourcesResource, WarehouseResource

FAMILY_MODULES = family_modules()
FAMILIES = [*FAMILY_MODULES, lens]

retired_lenses_asset = retired_lenses.retired_lenses_asset(lens.usable(lens.ASSETS))
export_asset = export.export_asset(
    [*(a for family in FAMILY_MODULES for a in getattr(family, "ASSETS", [])), retired_lenses_asset]
)
operations = ops.definitions(FAMILY_MODULES, export.EXPORT_KEY)

build_all = define_asset_job("build_all", selection="*", executor_def=in_process_executor)

defs = Definitions(
    assets=[
        *(a for family in FAMILIES for a in getattr(family, "ASSETS", [])),
        retired_lenses_asset,
        export_asset,
    ],
    asset_checks=[*(c for family in FAMILIES for c in getattr(family, "CHECKS", [])), *operations.checks],
    jobs=[build_all, *(j for family in FAMILIES for j in getattr(family, "JOBS", [])), *operations.jobs],
    schedules=[s for family in FAMILIES for s in getattr(family, "SCHEDULES", [])],
    sensors=[
        *(s for family in FAMILIES for s in getattr(family, "SENSORS", [])),
        *operations.sensors,
        *recovery.SENSORS,
    ],
    resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
    executor=in_process_executor,
)
