"""Only warehouse/ opens DuckDB: no module under sources/ or pipelines/ calls `duckdb.connect`,
and no module under sources/ imports duckdb outside a TYPE_CHECKING block.

Read from the syntax tree, so an alias (`import duckdb as db`, `from duckdb import connect`)
is caught too. Planted modules prove each rule sees a breach.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def breaches(source: str, *, imports_allowed: bool) -> list[str]:
    """`line: what` for each DuckDB connection opened (and, where not allowed, each duckdb import)."""
    tree = ast.parse(source)
    typing_only = _type_checking_lines(tree)
    modules, connects, found = set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "duckdb":
                    modules.add(alias.asname or alias.name)
                    if not imports_allowed and node.lineno not in typing_only:
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "duckdb":
            connects.update(a.asname or a.name for a in node.names if a.name == "connect")
            if not imports_allowed and node.lineno not in typing_only:
                found.append(f"{node.lineno}: from {node.module} import ...")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute) and func.attr == "connect" and isinstance(func.value, ast.Name)
        ) and (func.value.id in modules):
            found.append(f"{node.lineno}: {func.value.id}.connect(...)")
        elif isinstance(func, ast.Name) and func.id in connects:
            found.append(f"{node.lineno}: {func.id}(...)")
    return sorted(found)


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(("folder", "imports_allowed"), [("sources", False), ("pipelines", True)])
def test_no_module_outside_warehouse_opens_duckdb(folder, imports_allowed):
    modules = _modules(folder)
    assert len(modules) > 10, f"{folder}/ holds {len(modules)} modules: wrong root?"
    found = {
        str(path.relative_to(ROOT)): hits
        for path in modules
        if (hits := breaches(path.read_text(encoding="utf-8"), imports_allowed=imports_allowed))
    }
    assert found == {}, (
        f"DuckDB is opened outside warehouse/ (go through warehouse.db / warehouse.long_rows): {found}"
    )


@pytest.mark.parametrize(
    ("planted", "imports_allowed", "expected"),
    [
        ("import duckdb\nconn = duckdb.connect()\n", True, ["2: duckdb.connect(...)"]),
        ("import duckdb as d\nd.connect(':memory:')\n", True, ["2: d.connect(...)"]),
        ("from duckdb import connect as c\nc()\n", True, ["2: c(...)"]),
        ("import duckdb\n", False, ["1: import duckdb"]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from duckdb import DuckDBPyConnection\n",
            False,
            [],
        ),
        ("import sqlite3\nsqlite3.connect('x')\n", True, []),
    ],
)
def test_the_rule_sees_a_planted_breach(planted, imports_allowed, expected):
    assert breaches(planted, imports_allowed=imports_allowed) == expected
