"""Discovery of source families: every module in pipelines/ that sets `FAMILY`.

Adding a family is adding its module and its line in `families.yaml` (the family's name and
its source ids, which `status` and `refresh --family` read without importing Dagster; a test
checks the two agree). A family module exposes `ASSETS`, and optionally `CHECKS`, `JOBS`, `SCHEDULES`, `SENSORS`, and
`OBSERVATION_ASSETS` (the assets that write core.observations, which every lens waits for).
"""

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import yaml

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


CATALOG_PATH = Path(__file__).resolve().parent / "families.yaml"


def catalog() -> dict[str, list[str]]:
    """Family -> the ids of the sources it acquires, from families.yaml (no Dagster, no imports of families)."""
    document = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise ValueError(f"{CATALOG_PATH.name}: expected a mapping of family -> [source ids]")
    return {str(family): [str(s) for s in sources] for family, sources in sorted(document.items())}
