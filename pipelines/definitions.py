"""The Dagster code location: each family module (see pipelines/families.py) contributes its definitions.

Operations (pipelines/ops.py: upstream-change sensors, freshness/drift/volume checks) and
publication (pipelines/export.py) are added for whatever families exist.
"""

from dagster import Definitions, define_asset_job, in_process_executor

from pipelines import contract, export, lens, ops, recovery, retired_lenses
from pipelines.families import family_modules
from pipelines.resources import SourcesResource, WarehouseResource

FAMILY_MODULES = family_modules()
FAMILIES = [*FAMILY_MODULES, lens]

retired_lenses_asset = retired_lenses.retired_lenses_asset(lens.usable(lens.ASSETS))
export_asset = export.export_asset(
    [*(a for family in FAMILY_MODULES for a in getattr(family, "ASSETS", [])), retired_lenses_asset]
)
operations = ops.definitions(FAMILY_MODULES, export.EXPORT_KEY)

# The contract every asset keeps (pipelines.contract): a column schema and at least one check.
observation_families = {a.key: m.FAMILY for m in FAMILY_MODULES for a in getattr(m, "OBSERVATION_ASSETS", [])}
lens_prefixes = contract.lens_prefixes(lens.ASSETS)
special = {"export": export.EXPORT_KEY, "retired": retired_lenses_asset.key}
all_assets = contract.declared(
    [
        *(a for family in FAMILIES for a in getattr(family, "ASSETS", [])),
        retired_lenses_asset,
        export_asset,
    ],
    set(observation_families),
    lens_prefixes,
    special,
)
shared_checks = contract.checks(
    all_assets, observation_families, lens_prefixes, special, retired_lenses.current_prefixes
)

build_all = define_asset_job(
    "build_all",
    selection="*",
    executor_def=in_process_executor,
    description="Every asset: acquire every source, rebuild every family, every lens and the export.",
)

defs = Definitions(
    assets=all_assets,
    asset_checks=[
        *(c for family in FAMILIES for c in getattr(family, "CHECKS", [])),
        *operations.checks,
        *shared_checks,
    ],
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
