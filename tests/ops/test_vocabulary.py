"""One vocabulary: family names and source ids are the same words in the catalog, the code,
the Dagster groups, `status`, `refresh --family` and the docs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import lens, ops
from pipelines.definitions import defs
from pipelines.families import CATALOG_PATH, catalog, family_modules

REPO = Path(__file__).resolve().parents[2]
NON_FAMILY_GROUPS = {"lens", "publication"}


def _modules() -> dict:
    return {m.FAMILY: m for m in family_modules()}


def test_the_catalog_names_every_family_and_its_sources():
    listed, modules = catalog(), _modules()
    missing = sorted(set(modules) - set(listed))
    assert not missing, f"{CATALOG_PATH.name} lacks the family(ies) {missing}: add a line " + "; ".join(
        f"{f}: [{', '.join(s.info.id for s in ops.family_sources(modules[f]))}]" for f in missing
    )
    assert sorted(set(listed) - set(modules)) == [], f"{CATALOG_PATH.name} lists families no module sets"
    for family, module in modules.items():
        used = sorted(s.info.id for s in ops.family_sources(module))
        assert listed[family] == used, f"{CATALOG_PATH.name}: {family}: [{', '.join(used)}]"


def test_every_source_of_a_family_says_it_belongs_to_that_family():
    for family, module in _modules().items():
        for source in ops.family_sources(module):
            assert source.info.family == family, (source.info.id, source.info.family, family)


def test_dagster_groups_are_family_names():
    by_key = {key: group for asset in defs.assets for key, group in asset.group_names_by_key.items()}
    for family, module in _modules().items():
        for asset in module.ASSETS:
            assert {by_key[key] for key in asset.keys} == {family}, asset.keys
    assert set(by_key.values()) <= set(catalog()) | NON_FAMILY_GROUPS
    assert all(by_key[a.key] == "lens" for a in lens.ASSETS)


def test_status_and_refresh_use_the_catalog_words(warehouse_env, capsys):
    from pipelines import cli

    assert cli.main(["status", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    listed = catalog()
    assert {r["source"]: r["family"] for r in rows} == {s: f for f, ids in listed.items() for s in ids}
    # Every family status prints is one refresh --family accepts (it fails only on unknown names).
    assert cli.main(["refresh", "--family", "streamflow"]) == 1
    err = capsys.readouterr().err
    assert "unknown family 'streamflow'" in err and all(f in err for f in listed)


def test_docs_speak_of_known_families_only():
    families = set(catalog())
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        named = re.findall(r"family `([a-z_]+)`|family=([a-z_]+)|--family ([a-z_]+)", text)
        for groups in named:
            word = next(g for g in groups if g)
            assert word in families, f"{path.name} names family {word!r}; the families are {sorted(families)}"


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["status"], ["studies", "list"]])
def test_cheap_commands_start_without_dagster(command, warehouse_env):
    """`sql`, `status` and `studies` must not import Dagster (a 2 s import for a 2 ms query)."""
    probe = (
        "import sys; from pipelines import cli\n"
        f"code = cli.main({command!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print('DAGSTER' if loaded else 'CLEAN', code)\n"
    )
    if command[0] == "sql":
        from warehouse import db

        db.connect().close()  # an empty warehouse to query
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "CLEAN 0", done.stdout + done.stderr
