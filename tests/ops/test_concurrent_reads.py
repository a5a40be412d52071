"""Eight readers query `marts.basin_comparison` in a loop during a full build, on each backend.

Embedded: the readers open the published copy (each read a new connection, as a tool opens
it); DuckLake: they attach the lake read-only. Every read must succeed and see a committed
state: its row count and checksum equal to the state before the build or after it (the
offline build republishes the same SAMPLE snapshots, so a half-written table, say basins
deleted and not yet inserted again, would show as a state that was never committed).
Costs one full offline build per backend: about 3 min embedded and 4 min on DuckLake on
2 shared cores (the DuckLake case needs PostgreSQL, as tests/ops/test_ducklake.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from dagster import materialize

from pipelines import cli, territories
from pipelines import water as water_family
from pipelines.resources import SourcesResource, WarehouseResource
from tests.ops.test_ducklake import _use, catalog  # noqa: F401  (catalog: the fixture)
from warehouse import db

READERS = 8
QUERY = "SELECT count(*), sum(hash(b::VARCHAR)) FROM marts.basin_comparison b"
READER = textwrap.dedent(
    """
    import json, os, sys, time
    from warehouse import db
    query, done = sys.argv[1:3]
    states, errors, reads = {}, [], 0
    print("ready", flush=True)
    while not os.path.exists(done):
        try:
            with db.published_reader() as conn:
                state = json.dumps(conn.execute(query).fetchone())
            states[state] = states.get(state, 0) + 1
            reads += 1
        except Exception as exc:  # every error counts, whatever raised it
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)
    print(json.dumps({"reads": reads, "states": states, "errors": errors[:5], "error_count": len(errors)}))
    """
)


def _state() -> list:
    with db.published_reader() as conn:
        return list(conn.execute(QUERY).fetchone())


@pytest.fixture(params=["embedded", "ducklake"])
def backend(request, tmp_path, monkeypatch):
    settings = request.getfixturevalue("catalog")[0] if request.param == "ducklake" else None
    _use(monkeypatch, tmp_path, settings)
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    return request.param


def test_eight_readers_during_a_full_build_see_only_committed_states(backend, tmp_path):
    resources = {"warehouse": WarehouseResource(), "sources": SourcesResource()}
    assert materialize(
        [territories.ine_comuna_boundaries, territories.bna_basin_boundaries, territories.territories]
        + water_family.ASSETS,
        resources=resources,
    ).success
    before = _state()
    assert before[0] > 0, "the seed build gives the basins a state to read"
    done = tmp_path / "readers-done"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, QUERY, str(done)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(READERS)
    ]
    try:
        for reader in readers:
            assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        cli.main(["build", "--offline"])  # exit 1 offline: freshness rules fail on samples
    finally:
        done.touch()
        reports = [
            json.loads(reader.communicate(timeout=120)[0].strip().splitlines()[-1]) for reader in readers
        ]
    after = _state()
    committed = {json.dumps(before), json.dumps(after)}
    assert sum(r["error_count"] for r in reports) == 0, [r["errors"] for r in reports]
    assert all(r["reads"] > 0 for r in reports), [r["reads"] for r in reports]
    seen = {state for r in reports for state in r["states"]}
    assert seen <= committed, f"{backend}: a read saw a state never committed: {seen - committed}"
