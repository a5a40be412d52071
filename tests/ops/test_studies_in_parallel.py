"""Two studies built at once on one DuckLake, with a family rebuilt meanwhile: as if run one by one.

On a lake built one command at a time (`build --study antofagasta-2025`, then the OECD family
and what it feeds, both studies' lenses among them: the one-by-one run), three processes start together:
`build --study antofagasta-2025`, `build --study calama-loa-2025` and the OECD family run
again (what `refresh --family oecd` selects, offline: tests never reach the internet). They
publish the same sources and replace the same rows of `core.observations` at once, which
DuckLake refuses to commit (docs/operations.md, Parallel writers on DuckLake); the writers of
one lake take turns (`warehouse.lake.one_writer`), so every command must end as it ends alone,
no step failed, and every table holds what the one-by-one run left, compared by content
hash with what names a run masked: snapshot ids, retrieval times and fingerprints over them
(columns and quoted text). Tables that gain rows at every publication (snapshots, histories,
the raw-schema record) are compared by their distinct rows; lens manifests (a hash over the
snapshot ids) by their row count. Those are the tables that differ when the same commands
merely run again one by one (checked once: an OECD family run repeated on a built lake).
Needs PostgreSQL (as tests/ops/test_ducklake.py: skipped saying why, failing under CI=true).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.ops.test_ducklake import catalog  # noqa: F401  (the fixture)
from warehouse import db

STUDIES = ("antofagasta-2025", "calama-loa-2025")
FAMILY = "oecd"
TIMEOUT = 2400  # seconds, per phase
# Columns that name a run rather than its content, and run-specific text inside other columns.
RUN_SPECIFIC = re.compile(r"snapshot|retrieved|generated|vintage|freshness|fingerprint|_at$")
RUN_TEXT = r"[a-z0-9_]+-\d{14}-[0-9a-f]{12}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?"
# What every publication appends to (one row per snapshot, or per replaced observation): a
# second round of publications adds rows there by design, so only their distinct rows (run-specific
# parts masked) are compared.
ACCUMULATING = {
    "core.snapshots",
    "core.raw_schemas",
    "core.observation_history",
    "core.observation_input_history",
}
# A lens manifest holds the hash of the lens tables with their snapshot ids, so it differs between
# any two builds; the lens tables it covers are compared themselves. Its rows are counted.
MANIFEST = re.compile(r"^lens\..*_manifest$")
FAMILY_RUN = """
import sys
from dagster import AssetSelection
from pipelines import cli, ops
from pipelines.families import family_modules
family = {m.FAMILY: m for m in family_modules()}[sys.argv[1]]
try:
    cli._materialize(AssetSelection.assets(*ops.family_asset_keys(family)).downstream())
except cli.CommandError as exc:
    sys.exit(f"context-lens: family run failed: {exc}")
"""


def _commands() -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "pipelines.cli", "build", "--offline", "--study"]
    return {
        **{study: [*cli, study] for study in STUDIES},
        FAMILY: [sys.executable, "-c", FAMILY_RUN, FAMILY],
    }


def _run(folder: Path, names: list[str], together: bool) -> dict[str, tuple[int, str]]:
    """Run the commands (each with its own raw store and output folder), at once or one by one:
    {name: (exit status, its last line on stderr)}; no step of any may have failed."""
    commands, processes, outcomes = _commands(), {}, {}
    for name in names:
        home = folder / name
        home.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            CONTEXT_LENS_OFFLINE="1",
            CONTEXT_LENS_DB=str(home / "context.duckdb"),
            CONTEXT_LENS_RAW_DIR=str(home / "raw"),
            CONTEXT_LENS_OUTPUT=str(home / "output"),
        )
        log = (home / "out.log").open("w", encoding="utf-8")
        processes[name] = subprocess.Popen(
            commands[name], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.PIPE, text=True
        )
        if not together:
            processes[name].wait(timeout=TIMEOUT)
    for name, process in processes.items():
        _, err = process.communicate(timeout=TIMEOUT)
        lines = [line for line in err.splitlines() if line.startswith("context-lens:")]
        outcomes[name] = (process.returncode, lines[-1] if lines else "")
        out = (folder / name / "out.log").read_text(encoding="utf-8")
        failed = [line for line in out.splitlines() if "FAILED" in line]
        assert failed == [], f"{name}: {failed}\n{err[-3000:]}"
    return outcomes


def _content() -> dict[str, tuple]:
    """{table: (rows, hash of its rows)} for every table of the lake, run-specific parts masked."""
    found = {}
    with db.reader() as conn:
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            columns = conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, table],
            ).fetchall()
            kept = [db.quote_ident(c) for (c,) in columns if not RUN_SPECIFIC.search(c)]
            masked = ", ".join(f"regexp_replace({c}::VARCHAR, ?, '<run>', 'g')" for c in kept)
            name = f"{schema}.{table}"
            found[name] = conn.execute(
                f"SELECT count(*), coalesce(sum(hash(row({masked}))), 0)::VARCHAR, "  # noqa: S608
                f"count(DISTINCT row({masked})) FROM {db.table_name(schema, table)}",
                [RUN_TEXT] * (2 * len(kept)),
            ).fetchone()
    return found


def _compared(content: dict[str, tuple]) -> dict[str, tuple]:
    """What must be equal: every table's rows and hash; the distinct rows only where history accumulates."""
    return {
        name: (value[2],) if name in ACCUMULATING else (value[0],) if MANIFEST.match(name) else value
        for name, value in content.items()
    }


def test_two_studies_and_a_family_at_once_end_as_one_by_one(catalog, tmp_path, monkeypatch):  # noqa: F811
    settings, _ = catalog
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    alone = _run(tmp_path / "one-by-one", [STUDIES[0], FAMILY], together=False)
    one_by_one = _content()
    sequential = time.monotonic() - started
    assert one_by_one["core.observations"][0] > 1000 and one_by_one["lens.calama_loa_2025_indicators"][0] > 0

    started = time.monotonic()
    together = _run(tmp_path / "together", [*STUDIES, FAMILY], together=True)
    parallel = time.monotonic() - started
    print(f"one by one {sequential:.0f}s, together {parallel:.0f}s")  # shown with -s
    alone[STUDIES[1]] = (alone[STUDIES[0]][0], alone[STUDIES[0]][1].replace(*STUDIES))
    assert together == alone, "each command ends as it ends alone (the two builds alike)"
    after = _content()
    assert sorted(after) == sorted(one_by_one)
    expected, found = _compared(one_by_one), _compared(after)
    differing = sorted(name for name in found if found[name] != expected[name])
    assert differing == [], "differ from the one-by-one run (rows, hash, distinct rows): " + "; ".join(
        f"{name} {one_by_one[name]} then {after[name]}" for name in differing
    )
