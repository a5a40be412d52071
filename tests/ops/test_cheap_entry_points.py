"""`context-lens sql` and `context-lens status` start without Dagster, pandera or pandas (issue 20, item 4).

Each command runs in a fresh interpreter, as the console script does; the interpreter then reports which
of the heavy packages it had imported. Importing Dagster alone costs about two seconds on this machine,
for a query that takes milliseconds.
"""

import json
import os
import subprocess
import sys

import pytest

from warehouse import db

HEAVY = ("dagster", "pandera", "pandas", "geopandas")

PROBE = (
    "import json, sys\n"
    "from pipelines.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print(json.dumps({{'code': code, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)\n"
)


def _run_fresh(*argv: str) -> tuple[dict, str]:
    """The command in a new interpreter: (its exit code and heavy modules, its stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report, done.stdout


@pytest.fixture()
def built_warehouse(warehouse_env):
    """A warehouse with its schema, published as a build leaves it (the writer publishes on close)."""
    with db.writer() as conn:
        conn.execute("SELECT 1")
    return warehouse_env


def test_sql_runs_a_query_without_importing_dagster(built_warehouse):
    report, out = _run_fresh("sql", "--format", "csv", "SELECT 41 + 1 AS answer")
    assert report["code"] == 0 and out.splitlines() == ["answer", "42"]
    assert report["loaded"] == []


def test_status_lists_the_sources_without_importing_dagster(built_warehouse):
    report, out = _run_fresh("status", "--json")
    rows = json.loads(out)
    assert report["code"] == 0 and {"camels_cl", "deis_deaths"} <= {row["source"] for row in rows}
    assert report["loaded"] == []


def test_the_probe_would_see_dagster_if_a_command_imported_it(built_warehouse):
    """The check is not vacuous: a command that runs assets does import Dagster in the same probe."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE.replace("code = main(sys.argv[1:])", "import pipelines.definitions; code = 0"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "dagster" in json.loads(done.stderr.strip().splitlines()[-1])["loaded"]
