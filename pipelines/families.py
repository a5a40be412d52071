"""Discovery of source families: every module in pipelines/ that sets `FAMILY`.

Adding a family is adding its module; nothing else has to be edited. A family module
exposes `ASSETS`, and optionally `CHECKS`, `JOBS`, `SCHEDULES`, `SENSORS`, and
`OBSERVATION_ASSETS` (the assets that write core.observations, which every lens waits for).
"""

import importlib
import pkgutil
from types import ModuleType

import pipelines

# Entry points that import every family themselves; importing them here would be circular.
ENTRY_POINTS = frozenset({"definitions", "cli"})


def family_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(pipelines.__path__), key=lambda i: i.name):
        if info.name in ENTRY_POINTS:
            continue
        module = importlib.import_module(f"pipelines.{info.name}")
        if isinstance(getattr(module, "FAMILY", None), str):
            modules.append(module)
    return modules


def observation_asset_keys() -> list:
    return [a.key for m in family_modules() for a in getattr(m, "OBSERVATION_ASSETS", [])]
