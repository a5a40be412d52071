"""The DuckLake backend: one setting puts the whole warehouse on DuckLake with a PostgreSQL catalog.

The sample study built offline (SAMPLE data) on DuckLake must give the embedded build's
contract: the same tables and views, the same row counts, comments, geometry readable; the
password never printed. Needs PostgreSQL (`.ci/run` starts one; DAGSTER_PG_* name it) and
the `lake` extra; skips saying so otherwise (fails under CI=true).
"""

from __future__ import annotations

import logging
import re
import uuid

import duckdb
import pytest

from pipelines import cli
from pipelines.studies import DEFAULT_STUDY
from tests.support import postgres as pg_support
from warehouse import db, lake

SCHEMAS = ["raw", "staging", "core", "marts", "lens", "ops"]
# What differs between two builds minutes apart: snapshot ids and retrieval times (not values).
_RETRIEVAL = re.compile(
    r"\b[a-z0-9_]+-\d{14}-[0-9a-f]{12}(?:-\d+)?\b|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?"
)


def _lens_tables(output) -> dict[str, str]:
    """The lens's data files (CSV), with snapshot ids and retrieval times masked."""
    folder = output / "lens" / DEFAULT_STUDY / "data"
    return {
        path.name: _RETRIEVAL.sub("<retrieval>", path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.csv"))
        if path.stem != "manifest"  # its content hash covers the snapshot ids
    }


@pytest.fixture()
def catalog(tmp_path, monkeypatch):
    """A fresh PostgreSQL schema for one DuckLake catalog, dropped afterwards; the settings for it."""
    monkeypatch.setenv("CONTEXT_LENS_EXTENSION_CACHE", str(tmp_path / "extensions"))
    for name in ("ducklake", "postgres_scanner"):
        try:
            lake.extension_path(name)
        except lake.LakeConfigError as exc:
            pg_support.unavailable(str(exc))
    pg = pg_support.settings()
    connection = pg_support.connect(pg)
    schema = f"lake_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    dsn = (
        f"dbname={pg['DAGSTER_PG_DB']} host={pg['DAGSTER_PG_HOST']} port={pg['DAGSTER_PG_PORT']} "
        f"user={pg['DAGSTER_PG_USERNAME']}"
    )
    settings = {
        lake.SETTING: f"ducklake:postgres:{dsn} password={pg['DAGSTER_PG_PASSWORD']}",
        lake.DATA_SETTING: str(tmp_path / "lake-data"),
        lake.SCHEMA_SETTING: schema,
        "CONTEXT_LENS_EXTENSION_CACHE": str(tmp_path / "extensions"),
    }
    try:
        yield settings, pg["DAGSTER_PG_PASSWORD"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        connection.close()


def _use(monkeypatch, folder, settings: dict[str, str] | None) -> None:
    monkeypatch.setenv("CONTEXT_LENS_DB", str(folder / "context.duckdb"))
    monkeypatch.setenv("CONTEXT_LENS_RAW_DIR", str(folder / "raw"))
    monkeypatch.setenv("CONTEXT_LENS_OUTPUT", str(folder / "output"))
    for name in (lake.SETTING, lake.DATA_SETTING, lake.SCHEMA_SETTING):
        monkeypatch.delenv(name, raising=False)
    for name, value in (settings or {}).items():
        monkeypatch.setenv(name, value)


def _contract(conn: duckdb.DuckDBPyConnection) -> dict:
    """Tables with row counts, views, and what carries a comment, in the project's schemas."""
    tables = conn.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name IN (SELECT unnest(?)) ORDER BY 1",
        [SCHEMAS],
    ).fetchall()
    counts = {}
    for (name,) in tables:
        schema, table = name.split(".")
        counts[name] = conn.execute(f"SELECT count(*) FROM {db.table_name(schema, table)}").fetchone()[0]  # noqa: S608
    views = conn.execute(
        "SELECT schema_name || '.' || view_name, comment IS NOT NULL FROM duckdb_views() "
        "WHERE NOT internal AND database_name = current_database() AND schema_name IN (SELECT unnest(?)) "
        "ORDER BY 1",
        [SCHEMAS],
    ).fetchall()
    commented_tables = conn.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE comment IS NOT NULL "
        "AND database_name = current_database() AND schema_name IN (SELECT unnest(?)) ORDER BY 1",
        [SCHEMAS],
    ).fetchall()
    commented_columns = conn.execute(
        "SELECT c.schema_name || '.' || c.table_name || '.' || c.column_name FROM duckdb_columns() c "
        "JOIN duckdb_tables() t USING (database_name, schema_name, table_name) "
        "WHERE c.comment IS NOT NULL AND c.database_name = current_database() "
        "AND c.schema_name IN (SELECT unnest(?)) ORDER BY 1",
        [SCHEMAS],
    ).fetchall()
    return {
        "counts": counts,
        "views": dict(views),
        "commented_tables": [r[0] for r in commented_tables],
        "commented_columns": [r[0] for r in commented_columns],
    }


def test_the_sample_study_on_ducklake_has_the_embedded_contract(
    catalog, tmp_path, monkeypatch, capsys, caplog
):
    settings, password = catalog
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    _use(monkeypatch, tmp_path / "embedded", None)
    cli.main(["build", "--offline"])  # exit 1 expected offline: freshness rules fail on samples
    with db.published_reader() as conn:
        embedded = _contract(conn)
    capsys.readouterr()
    caplog.clear()

    _use(monkeypatch, tmp_path / "lake", settings)
    with caplog.at_level(logging.INFO):
        cli.main(["build", "--offline"])
    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert f"password={password}" not in logged and "password=***" in logged
    assert not (tmp_path / "lake" / "context.duckdb").exists(), "the embedded file was not used"
    with db.published_reader() as conn:
        assert lake.is_lake(conn)
        on_lake = _contract(conn)
        shape = conn.execute(
            "SELECT ST_GeometryType(geometry), ST_IsValid(geometry) FROM core.territories "
            "WHERE kind = 'comuna' AND geometry IS NOT NULL LIMIT 1"
        ).fetchone()
    assert embedded["counts"] and len(embedded["counts"]) > 40
    assert on_lake["counts"] == embedded["counts"]
    assert list(on_lake["views"]) == list(embedded["views"])
    assert on_lake["views"] == embedded["views"], "every view commented as on the embedded file"
    assert on_lake["commented_tables"] == embedded["commented_tables"]
    assert on_lake["commented_columns"] == embedded["commented_columns"]
    assert shape is not None and shape[0] in ("POLYGON", "MULTIPOLYGON") and shape[1]
    embedded_lens = _lens_tables(tmp_path / "embedded" / "output")
    assert len(embedded_lens) >= 5 and _lens_tables(tmp_path / "lake" / "output") == embedded_lens


def test_the_adapted_ddl_declares_the_same_columns_without_constraints():
    """schema.sql, as DuckLake gets it: the same tables, columns, types and NOT NULLs, no keys or checks."""

    def columns(sql: str) -> list[tuple]:
        conn = duckdb.connect()
        db.load_spatial(conn)
        conn.execute(sql)
        found = conn.execute(
            "SELECT schema_name, table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE schema_name <> 'main' ORDER BY ALL"
        ).fetchall()
        kinds = conn.execute(
            "SELECT DISTINCT constraint_type FROM duckdb_constraints() WHERE schema_name <> 'main'"
        ).fetchall()
        conn.close()
        return found, {k for (k,) in kinds}

    text = (db.SQL_DIR / "schema.sql").read_text()
    original, original_kinds = columns(text)
    adapted, adapted_kinds = columns(lake.adapt_ddl(text))
    assert {"PRIMARY KEY", "CHECK"} <= original_kinds
    assert adapted == original and len(adapted) > 60
    assert adapted_kinds <= {"NOT NULL"}


@pytest.mark.parametrize(
    ("setting", "data", "named"),
    [
        ("ducklake:sqlite:/tmp/x.db", "/tmp/lake", "CONTEXT_LENS_WAREHOUSE"),
        ("ducklake:postgres:dbname=x password=hunter2-secret", "", "CONTEXT_LENS_LAKE_DATA"),
        ("postgres://u:hunter2-secret@h/db", "/tmp/lake", "CONTEXT_LENS_WAREHOUSE"),
    ],
)
def test_a_wrong_setting_names_it_and_never_falls_back_to_the_embedded_file(
    warehouse_env, monkeypatch, capsys, setting, data, named
):
    monkeypatch.setenv(lake.SETTING, setting)
    monkeypatch.setenv(lake.DATA_SETTING, data)
    assert cli.main(["sql", "SELECT 1"]) != 0
    err = capsys.readouterr().err
    assert named in err and "hunter2-secret" not in err
    assert not (warehouse_env / "context.duckdb").exists()


def test_an_unreachable_catalog_is_a_clear_error_without_the_password(catalog, monkeypatch, capsys):
    settings, _ = catalog
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        lake.SETTING, "ducklake:postgres:host=127.0.0.1 port=1 dbname=x user=u password=hunter2-secret"
    )
    with pytest.raises(lake.LakeConfigError) as raised:
        db.connect()
    message = str(raised.value)
    assert "CONTEXT_LENS_WAREHOUSE" in message and "hunter2-secret" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_data_path_that_cannot_be_written_names_the_setting(catalog, tmp_path, monkeypatch):
    settings, _ = catalog
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(lake.DATA_SETTING, str(blocker / "lake"))
    with pytest.raises(lake.LakeConfigError, match="CONTEXT_LENS_LAKE_DATA=.*cannot create the data folder"):
        db.connect()


def test_a_catalog_written_by_a_newer_ducklake_is_refused_without_writes(
    catalog, tmp_path, monkeypatch, capsys
):
    settings, _ = catalog
    _use(monkeypatch, tmp_path, settings)
    with db.writer() as conn:
        conn.execute("CREATE TABLE core.probe AS SELECT 1 AS n")
    schema = settings[lake.SCHEMA_SETTING]
    connection = pg_support.connect(pg_support.settings())
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {schema}.ducklake_metadata SET value = '9.9' WHERE key = 'version'")  # noqa: S608
            cursor.execute(f"SELECT count(*) FROM {schema}.ducklake_snapshot")  # noqa: S608
            (snapshots,) = cursor.fetchone()
        with pytest.raises(lake.LakeConfigError) as raised:
            db.connect()
        message = str(raised.value)
        assert "CONTEXT_LENS_WAREHOUSE" in message and "version 9.9" in message and "newer" in message
        assert "AUTOMATIC_MIGRATION" not in message, "a newer catalog cannot be migrated down"
        assert cli.main(["sql", "SELECT count(*) FROM core.probe"]) != 0
        assert "newer DuckLake" in capsys.readouterr().err
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {schema}.ducklake_snapshot")  # noqa: S608
            assert cursor.fetchone()[0] == snapshots, "nothing was written to the catalog"
    finally:
        connection.close()
    assert not (tmp_path / "context.duckdb").exists(), "the embedded default was not used instead"
