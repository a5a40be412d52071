"""The Dagster code location: each family module (see pipelines/families.py) contributes its definitions.

Operations (pipelines/ops.py: upstream-change sensors, freshness/drift/volume checks) and
publication (pipelines/export.py) are added for whatever families exist.
"""

import hashlib
import os
import sys
from pathlib import Path
from types import ModuleType

from dagster import AssetsDefinition, Definitions, define_asset_job, in_process_executor

from pipelines import contract, export, lens, ops, recovery, retired_lenses, studies
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


# Packages whose modules make up an asset's code: its family module and, transitively, every project
# module it uses (imported as a module, or a function or class taken from one).
PROJECT_PACKAGES = ("sources.", "methods.", "pipelines.", "warehouse.")


def _project_modules(module: ModuleType) -> set[ModuleType]:
    """`module` and every project module it reaches through its names."""
    seen: set[ModuleType] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for value in vars(current).values():
            name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
            if isinstance(name, str) and name.startswith(PROJECT_PACKAGES) and name in sys.modules:
                todo.append(sys.modules[name])
    return seen


def _code_version(assets_def: AssetsDefinition) -> str:
    """The code an asset runs: its module and every project module it uses.

    A lens also depends on the study files and the reader's language. Dagster compares it with
    the code version of the last materialization: a change makes the asset and what depends
    on it stale (issue 20: unchanged payloads skip, unless the code changed).
    """
    module = sys.modules[assets_def.op.compute_fn.decorated_fn.__module__]
    files = [Path(m.__file__) for m in _project_modules(module) if getattr(m, "__file__", None)]
    if module is lens:
        files += sorted(studies.studies_dir().glob("*.yaml"))
    digest = hashlib.sha256(os.environ.get("CONTEXT_LENS_LANG", "").encode())
    for path in sorted(set(files)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _versioned(assets_def: AssetsDefinition) -> AssetsDefinition:
    version = _code_version(assets_def)
    return assets_def.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version))


all_assets = [_versioned(a) for a in all_assets]
# The assets that acquire payloads and return at once when they are unchanged (`ingest.unchanged`):
# the CLI runs them first, then only what Dagster finds stale downstream of them.
SOURCE_ASSET_KEYS = frozenset(
    key for a in all_assets if "unchanged" in a.op.compute_fn.decorated_fn.__code__.co_names for key in a.keys
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
