"""Dagster run, event-log and schedule storage in a real PostgreSQL, from deploy/dagster.postgres.yaml.

Needs a server on 127.0.0.1 (`.ci/run` installs and starts one). Connection settings come
from the same environment variables the YAML reads; the defaults match `.ci/run`. Without
a reachable server the test is skipped, except in CI (`CI=true`), where that is a failure.
"""

import os
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from pipelines import territories
from pipelines.resources import SourcesResource, WarehouseResource

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "context_lens",
    "DAGSTER_PG_PASSWORD": "context_lens",
    "DAGSTER_PG_DB": "context_lens_dagster",
}


@pytest.fixture()
def postgres(monkeypatch):
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install -e '.[postgres]'")
    settings = {name: os.environ.get(name, default) for name, default in SETTINGS.items()}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    try:
        connection = psycopg2.connect(
            host=settings["DAGSTER_PG_HOST"],
            port=int(settings["DAGSTER_PG_PORT"]),
            user=settings["DAGSTER_PG_USERNAME"],
            password=settings["DAGSTER_PG_PASSWORD"],
            dbname=settings["DAGSTER_PG_DB"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError as exc:
        reason = (
            f"no PostgreSQL reachable at {settings['DAGSTER_PG_HOST']}:{settings['DAGSTER_PG_PORT']} "
            f"as {settings['DAGSTER_PG_USERNAME']}/{settings['DAGSTER_PG_DB']} "
            f"({str(exc).strip().splitlines()[0]}); `.ci/run --setup-only` starts one"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    connection.autocommit = True
    yield connection
    connection.close()


def test_materialization_is_stored_in_postgres(postgres, warehouse_env, monkeypatch):
    home = warehouse_env / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = DagsterInstance.get()
    try:
        storages = {
            type(instance.run_storage).__name__,
            type(instance.event_log_storage).__name__,
            type(instance.schedule_storage).__name__,
        }
        assert storages == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        result = materialize(
            [territories.territories],
            instance=instance,
            resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
        )
        assert result.success
    finally:
        instance.dispose()

    with postgres.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [result.run_id],
        )
        assert [row[0] for row in cursor.fetchall()] == ['["territories"]']
    # The run is not in any SQLite file under DAGSTER_HOME: storage really is PostgreSQL.
    assert not list(home.rglob("*.db"))
