"""The Dagster code location: each family module (see pipelines/families.py) contributes its definitions."""

from dagster import Definitions, define_asset_job, in_process_executor

from pipelines import lens
from pipelines.families import family_modules
from pipelines.resources import SourcesResource, WarehouseResource

FAMILIES = [*family_modules(), lens]

build_all = define_asset_job("build_all", selection="*", executor_def=in_process_executor)

defs = Definitions(
    assets=[a for family in FAMILIES for a in getattr(family, "ASSETS", [])],
    asset_checks=[c for family in FAMILIES for c in getattr(family, "CHECKS", [])],
    jobs=[build_all, *(j for family in FAMILIES for j in getattr(family, "JOBS", []))],
    schedules=[s for family in FAMILIES for s in getattr(family, "SCHEDULES", [])],
    sensors=[s for family in FAMILIES for s in getattr(family, "SENSORS", [])],
    resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
    executor=in_process_executor,
)
