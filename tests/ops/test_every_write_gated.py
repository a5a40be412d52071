"""Every asset that writes the warehouse writes through the gates.

The whole code location is built offline, one asset at a time in dependency order, with a
warehouse resource that checks, each time a writer connection is given back, that every
table holding a source's data is exactly what the gated path (`pipelines.ingest.write_tables`)
last published (`pipelines.gates.unpublished`). An asset that writes a table any other way,
today or added later, fails this test by name. A deliberately ungated asset proves the
check sees a bypass.
"""

from contextlib import contextmanager

import pandas as pd
import pytest
from dagster import AssetExecutionContext, DagsterInstance, asset, materialize

from pipelines import gates
from pipelines.resources import SourcesResource, WarehouseResource
from warehouse import db, store
from warehouse.db import transaction

FOUND: list[str] = []


class CheckedWarehouse(WarehouseResource):
    """The real warehouse; every writer unit of work is checked when it ends."""

    @contextmanager
    def writer(self):
        with db.writer(self.db_path) as conn:
            yield conn
            FOUND.extend(gates.unpublished(conn))


def _build_one_by_one(assets, checks, keys, resources) -> dict[str, list[str]]:
    """{asset: tables it left ungated} for each key, materialized alone in the given order."""
    instance = DagsterInstance.ephemeral()
    left, seen = {}, set()
    for key in keys:
        FOUND.clear()
        result = materialize([*assets, *checks], selection=[key], instance=instance, resources=resources)
        assert result.success, f"{key.to_user_string()} failed"
        new = sorted(set(FOUND) - seen)
        seen |= set(FOUND)
        left[key.to_user_string()] = new
    return left


@pytest.fixture()
def offline(warehouse_env, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    return warehouse_env


def test_every_asset_of_the_code_location_writes_through_the_gates(offline):
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = [key for key in graph.toposorted_asset_keys if graph.get(key).is_materializable]
    resources = {"warehouse": CheckedWarehouse(), "sources": SourcesResource(backoff_seconds=0.01)}
    left = _build_one_by_one(list(defs.assets), [], keys, resources)
    bypasses = {asset_key: tables for asset_key, tables in left.items() if tables}
    assert not bypasses, f"assets that wrote the warehouse outside the gated path: {bypasses}"
    with db.reader() as conn:
        published = conn.execute(
            "SELECT table_name, partition_id, row_count FROM ops.publications ORDER BY ALL"
        ).fetchall()
        data_tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema IN ('raw', 'staging', 'core')"
        ).fetchall()
    recorded = {table for table, _, _ in published}
    exempt = {t for t in gates.UNGATED if not t.endswith(".*")}
    assert {t for (t,) in data_tables} - exempt <= recorded, "a data table has no publication record"
    # The families that publish observations all went through the gate of core.observations.
    observation_sources = {part for table, part, rows in published if table == "core.observations" and rows}
    assert {"oecd_regional", "deis_deaths", "ine_population", "minvu_campamentos"} <= observation_sources


def test_an_asset_that_writes_around_the_gates_is_caught(offline):
    from pipelines.definitions import defs

    @asset(name="ungated_writer", deps=[key for key in defs.resolve_asset_graph().toposorted_asset_keys][:1])
    def ungated_writer(context: AssetExecutionContext, warehouse: WarehouseResource) -> None:
        with warehouse.writer() as conn, transaction(conn):
            store.replace_table(conn, "core", "ungated_numbers", pd.DataFrame({"value": [1.0, 2.0]}))

    resources = {"warehouse": CheckedWarehouse(), "sources": SourcesResource(backoff_seconds=0.01)}
    first = defs.resolve_asset_graph().toposorted_asset_keys[0]
    left = _build_one_by_one([*defs.assets, ungated_writer], [], [first, ungated_writer.key], resources)
    assert left["ungated_writer"] == ["core.ungated_numbers (never published)"]
