"""Every asset keeps the contract: a description, a column schema, at least one check (pipelines.contract)."""

from __future__ import annotations

import pytest

from pipelines import contract
from pipelines.resources import WarehouseResource
from warehouse import db


@pytest.fixture(scope="module")
def graph():
    from pipelines.definitions import defs

    return defs.get_repository_def().asset_graph


def test_every_asset_has_a_description_a_column_schema_and_a_check(graph):
    checked = {key.asset_key for key in graph.asset_check_keys}
    assets = [graph.get(key) for key in graph.get_all_asset_keys() if graph.get(key).is_materializable]
    assert len(assets) > 30
    assert [a.key.to_user_string() for a in assets if not a.description] == []
    assert [a.key.to_user_string() for a in assets if "dagster/column_schema" not in (a.metadata or {})] == []
    assert [a.key.to_user_string() for a in assets if a.key not in checked] == []


def test_observation_assets_take_the_one_declaration_of_core_observations(graph):
    from pipelines.families import observation_asset_keys

    declared = contract.comments.typed_columns("core.observations")
    for key in observation_asset_keys():
        metadata = graph.get(key).metadata
        schema = metadata["dagster/column_schema"].schema
        if metadata.get("dagster/table_name") != "core.observations":
            continue  # a family that declares its own main table (finance: core.finance_amounts)
        assert [c.name for c in schema.columns] == list(declared)
        assert schema.columns[0].description == "indicator (core.indicators)"


def _observation(conn, snapshot: str, with_lineage: bool) -> None:
    conn.execute(
        "INSERT INTO core.observations VALUES ('population', 'region:02', '2024', 1.0, NULL, NULL, NULL, 's', ?)",
        [snapshot],
    )
    if with_lineage:
        conn.execute(
            "INSERT INTO core.observation_inputs BY NAME SELECT 'population' AS indicator_id, "
            "'region:02' AS territory_id, '2024' AS period, 's' AS source_id, 'value' AS role, "
            "? AS input_snapshot_id",
            [snapshot],
        )


@pytest.mark.parametrize(
    ("snapshot_known", "with_lineage", "passed"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_the_lineage_check_fails_without_lineage_or_with_an_unknown_snapshot(
    warehouse_env, snapshot_known, with_lineage, passed
):
    from pipelines import health

    with db.writer() as conn:
        if snapshot_known:
            conn.execute(
                "INSERT INTO core.snapshots (snapshot_id, source_id, name, request_url, method, retrieved_at, "
                "sha256, bytes, mode, licence) VALUES ('snap-1', 's', 'all', 'x', 'GET', now(), 'x', 0, 'live', 'l')"
            )
        _observation(conn, "snap-1", with_lineage)
    check = contract.lineage_check(health.health_population, "health")
    result = check(warehouse=WarehouseResource())
    assert result.passed is passed
    assert result.metadata["observations"].value == 1


def test_the_tables_check_names_a_missing_table_and_orphan_snapshots(warehouse_env):
    from pipelines import territories

    with db.writer() as conn:
        conn.execute(
            "INSERT INTO core.territories (territory_id, kind, code, name, snapshot_id) "
            "VALUES ('comuna:02101', 'comuna', '02101', 'Antofagasta', 'no-such-snapshot')"
        )
    check = contract.tables_check(territories.territories, ["core.territories", "staging.nowhere"])
    result = check(warehouse=WarehouseResource())
    tables = result.metadata["tables"].value
    assert result.passed is False
    assert tables["core.territories"] == {"present": True, "rows": 1, "unknown_snapshots": 1}
    assert tables["staging.nowhere"] == {"present": False}


def test_every_job_schedule_and_sensor_says_what_it_does():
    from pipelines.definitions import defs

    repo = defs.get_repository_def()
    jobs = [j for j in repo.get_all_jobs() if not j.name.startswith("__")]
    assert len(jobs) > 10
    assert [j.name for j in jobs if not j.description] == []
    assert [s.name for s in repo.schedule_defs if not s.description] == []
    assert [s.name for s in repo.sensor_defs if not s.description] == []


def test_every_asset_of_a_family_is_in_one_of_its_refresh_jobs():
    """A source added to a family later (the CAMELS-CL macro-basins) is refreshed with the rest."""
    from pipelines.definitions import FAMILY_MODULES, defs

    repo = defs.get_repository_def()
    for module in FAMILY_MODULES:
        refreshed = {
            key
            for job in getattr(module, "JOBS", [])
            for key in repo.get_job(job.name).asset_layer.selected_asset_keys
        }
        assets = {key for asset in module.ASSETS for key in asset.keys}
        assert assets <= refreshed, (
            f"{module.FAMILY}: {sorted(k.to_user_string() for k in assets - refreshed)}"
        )
