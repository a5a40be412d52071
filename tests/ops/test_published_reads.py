"""Readers are never blocked: they read the published copy while a build writes the working file.

A reader process holds a connection open on the published warehouse and queries it in a loop
while a real Dagster run (the OECD family, offline, SAMPLE data) writes and publishes. The run
must succeed, the reader must never meet a lock error, it must see one committed state per
connection (the old one, while it holds the old copy), and after reconnecting the new data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import duckdb
from dagster import materialize

from pipelines import cli, territories
from pipelines import oecd as oecd_family
from pipelines.resources import SourcesResource, WarehouseResource
from warehouse import db

RESOURCES = {"warehouse": WarehouseResource(), "sources": SourcesResource()}

READER = textwrap.dedent(
    """
    import json, os, sys, time
    import duckdb
    published, done = sys.argv[1:3]
    query = "SELECT count(*) FROM core.observations WHERE source_id = 'oecd_regional'"
    seen, errors, reads = set(), [], 0
    conn = duckdb.connect(published, read_only=True)
    print("ready", flush=True)
    while not os.path.exists(done):
        try:
            seen.add(conn.execute(query).fetchone()[0])
            reads += 1
        except duckdb.Error as exc:
            errors.append(str(exc))
        time.sleep(0.005)
    conn.close()
    try:
        conn = duckdb.connect(published, read_only=True)
        after = conn.execute(query).fetchone()[0]
        conn.close()
    except duckdb.Error as exc:
        errors.append(str(exc))
        after = None
    print(json.dumps({"reads": reads, "seen": sorted(seen), "errors": errors, "after": after}), flush=True)
    """
)


def test_a_reader_holding_the_published_file_never_blocks_a_build(warehouse_env, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert materialize([territories.territories], resources=RESOURCES).success
    published = db.published_path()
    assert published.exists() and published != db.db_path()
    done = warehouse_env / "done"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published), str(done)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        result = materialize([territories.territories, *oecd_family.ASSETS], resources=RESOURCES)
    finally:
        done.touch()
        out, err = reader.communicate(timeout=60)
    assert result.success
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == [], report["errors"]
    assert report["reads"] > 0
    assert report["seen"] == [0], "a held connection keeps the copy it opened"
    with db.reader(db.db_path()) as conn:
        built = conn.execute(
            "SELECT count(*) FROM core.observations WHERE source_id = 'oecd_regional'"
        ).fetchone()[0]
    assert built > 0 and report["after"] == built, "after reconnecting the reader sees the run's data"
    assert not list(published.parent.glob("*.tmp")), "no temporary copy is left behind"


def test_the_working_file_stays_writable_while_a_reader_holds_the_published_copy(warehouse_env):
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe AS SELECT 1 AS n")
    held = duckdb.connect(str(db.published_path()), read_only=True)
    try:
        with db.writer() as conn:  # publishes again on leaving, under the open reader
            conn.execute("INSERT INTO core.probe VALUES (2)")
        assert held.execute("SELECT count(*) FROM core.probe").fetchone()[0] == 1
    finally:
        held.close()
    with db.published_reader() as conn:
        assert conn.execute("SELECT count(*) FROM core.probe").fetchone()[0] == 2


def test_sql_reads_the_published_copy(warehouse_env, capsys):
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe AS SELECT 7 AS n")
    os.environ.pop("CONTEXT_LENS_PUBLISHED_DB", None)
    # a write connection held on the working file (a build in progress) does not block `sql`
    holder = duckdb.connect(str(db.db_path()))
    try:
        holder.execute("INSERT INTO core.probe VALUES (8)")  # not yet published
        capsys.readouterr()
        assert cli.main(["sql", "--format", "csv", "SELECT sum(n) AS total FROM core.probe"]) == 0
    finally:
        holder.close()
    assert capsys.readouterr().out.splitlines() == ["total", "7"]


def test_the_published_location_is_configurable(warehouse_env, monkeypatch):
    target = warehouse_env / "elsewhere" / "readers.duckdb"
    monkeypatch.setenv("CONTEXT_LENS_PUBLISHED_DB", str(target))
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe AS SELECT 1 AS n")
    assert target.exists() and db.reader_path() == target
