"""Conflicts family offline on the SAMPLE payload; expected counts recomputed from the sample's own rows."""

import pytest
from dagster import materialize

from pipelines import conflicts, map_layers, territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources.samples.facilities import make_samples
from warehouse import db


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conflicts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_LENS_DB", str(tmp / "context.duckdb"))
        mp.setenv("CONTEXT_LENS_RAW_DIR", str(tmp / "raw"))
        mp.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = materialize(
            [*territories.ASSETS, *conflicts.ASSETS],
            resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
            raise_on_error=False,
        )
        with db.reader() as conn:
            observations = conn.execute(
                "SELECT indicator_id, territory_id, value, flag FROM core.observations "
                "WHERE source_id = 'indh_conflicts'"
            ).df()
            mart = conn.execute("SELECT * FROM marts.socioenvironmental_conflicts ORDER BY conflict_id").df()
            label, style = map_layers.POINT_MARTS["socioenvironmental_conflicts"]
            layer = map_layers._point_layer(
                conn, "marts", "socioenvironmental_conflicts", (-76, -56, -66, -17), label, style
            )
    return result, observations.set_index(["indicator_id", "territory_id"]), mart, layer


def test_counts_by_comuna_region_and_status(offline):
    result, observations, mart, layer = offline
    assert result.success
    rows = make_samples.CONFLICT_ROWS
    value = lambda i, t: observations.loc[(i, t), "value"]  # noqa: E731
    assert value("indh_conflicts_count", "country:CL") == len(rows)
    in_02 = [r for r in rows if (r[5] or 2) == 2]  # 9003 has no `region`: its polygon lies in region 02
    assert value("indh_conflicts_count", "region:02") == len(in_02) == 4
    assert value("indh_conflicts_active_count", "region:02") == sum(r[8] == "Activo" for r in in_02)
    assert value("indh_conflicts_mining_count", "region:02") == sum(r[7] == "Minería" for r in in_02)
    assert value("indh_conflicts_count", "comuna:02201") == 1  # the Calama point
    assert value("indh_conflicts_count", "comuna:02203") == 1  # the salar polygon
    assert value("indh_conflicts_count", "comuna:02202") == 0
    assert value("indh_conflicts_indigenous_count", "region:02") == sum(r[4] for r in in_02)
    listed = mart[mart["located_comuna_code"] == "02201"]
    assert listed[["title", "start_year", "status", "url"]].values.tolist() == [
        [
            "Conflicto SAMPLE por agua en Calama",
            2012,
            "active",
            "https://mapaconflictos.indh.cl/conflicto/9001",
        ]
    ]
    assert (mart["mode"] == "sample").all()
    # The map layer: one point per conflict, named by its title.
    assert layer["style"] == "conflict" and len(layer["features"]) == len(rows)
    assert "Conflicto SAMPLE por agua en Calama" in {f["name"] for f in layer["features"]}
