"""Dagster run, event-log and schedule storage in a real PostgreSQL, from deploy/dagster.postgres.yaml.

Needs a server on 127.0.0.1 (`.ci/run` installs and starts one). Connection settings come
from the same environment variables the YAML reads; the defaults match `.ci/run`. Without
a reachable server the test is skipped, except in CI (`CI=true`), where that is a failure.
"""

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from pipelines import territories
from pipelines.resources import SourcesResource, WarehouseResource
from tests.support import postgres as pg_support

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def postgres(monkeypatch):
    settings = pg_support.settings()
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    connection = pg_support.connect(settings)
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
