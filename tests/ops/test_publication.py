"""Quality gates and publication: a drifted or collapsed raw payload is refused, the export stays.

The source here is a test stand-in (`ops_gate_sample`) published through the real
`pipelines.ingest.publish` path, so the gate is exercised exactly as every family meets it;
its CSV payloads are SAMPLE data written in this file.
"""

import io
import json
from datetime import timedelta

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetExecutionContext, MaterializeResult, asset, materialize

from pipelines import cli, ops, territories
from pipelines import export as publication
from pipelines import oecd as oecd_family
from pipelines.families import family_modules
from pipelines.ingest import acquire_all, publish
from pipelines.resources import SourcesResource, WarehouseResource
from sources.base import FetchRequest, SourceInfo
from sources.endpoints import endpoint
from tests.support.http import Reply
from warehouse import db

GATE_SOURCE = SourceInfo(
    id="ops_gate_sample",
    publisher="context-lens tests",
    title="SAMPLE comuna table for the drift and volume gate",
    landing_url="http://127.0.0.1/",
    licence="sample data written for this test; not real data",
    citation="context-lens test suite",
    cadence=timedelta(days=7),
    family="opstest",
)
GATE_ENDPOINTS = {"table": "http://127.0.0.1:9/gate.csv"}  # pointed at the test server per test
COMUNAS = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302", "02303"]


def _sample_csv(value_column: str = "value", rows: int = len(COMUNAS)) -> bytes:
    """SAMPLE values (invented) for Antofagasta comunas, `;`-separated as many Chilean files are."""
    lines = [f"comuna_code;year;{value_column}"] + [
        f"{c};2024;{i * 1.5:.1f}" for i, c in enumerate(COMUNAS[:rows])
    ]
    return ("\n".join(lines) + "\n").encode()


@asset(name="ops_gate_sample_table", group_name="opstest", pool="duckdb_writer")
def gate_asset(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    """Acquire the CSV and publish it as raw.ops_gate_sample, columns as the file has them."""
    url = endpoint(GATE_SOURCE.id, "table", GATE_ENDPOINTS)
    acquirer, acquired = acquire_all(sources, GATE_SOURCE, [(FetchRequest("table", url, expect="csv"), None)])
    frame = pd.read_csv(io.BytesIO(acquired[0].payload.content), sep=";", dtype={"comuna_code": str})
    return MaterializeResult(
        metadata=publish(warehouse, acquirer, GATE_SOURCE, acquired, {("raw", "ops_gate_sample"): frame})
    )


EXPORT = publication.export_asset([gate_asset])
RESOURCES = {"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)}


def _serve(server, body: bytes, etag: str) -> None:
    server.script("/gate.csv", Reply(200, body, {"ETag": etag, "Content-Type": "text/csv"}))


def _run():
    return materialize([gate_asset, EXPORT], resources=RESOURCES, raise_on_error=False)


def _failure(result) -> str:
    error = result.get_step_failure_events()[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


def _export_state(root):
    link = root / "export"
    manifest = json.loads((link / "manifest.json").read_text())
    with duckdb.connect() as conn:
        snapshots = conn.execute(
            "SELECT snapshot_id FROM read_parquet(?) WHERE source_id = ? ORDER BY 1",
            [str(link / "core" / "snapshots.parquet"), GATE_SOURCE.id],
        ).fetchall()
    return link.resolve(), manifest, snapshots


def test_drift_and_volume_block_publication_and_the_previous_export_stays(
    warehouse_env, http_server, monkeypatch
):
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__OPS_GATE_SAMPLE__TABLE", http_server.url("/gate.csv"))
    output = warehouse_env / "output"
    _serve(http_server, _sample_csv(), '"v1"')
    assert _run().success
    first_folder, first_manifest, first_snapshots = _export_state(output)
    assert first_manifest["tables"]["core.sources"]["rows"] >= 1 and len(first_snapshots) == 1
    with db.reader() as conn:
        recorded = conn.execute(
            "SELECT columns, row_count FROM core.raw_schemas WHERE table_name = 'raw.ops_gate_sample'"
        ).fetchall()
    assert [c[0] for c in json.loads(recorded[0][0])] == ["comuna_code", "year", "value"]
    assert recorded[0][1] == len(COMUNAS)

    # Upstream renames a column: refused before any write, previous tables and export untouched.
    _serve(http_server, _sample_csv("valor"), '"v2"')
    result = _run()
    assert not result.success
    message = _failure(result)
    assert "schema drift in raw.ops_gate_sample" in message
    assert "missing column(s) value" in message and "new column(s) valor" in message
    with db.reader() as conn:
        columns = [r[0] for r in conn.execute("DESCRIBE raw.ops_gate_sample").fetchall()]
        status = conn.execute(
            "SELECT status, error FROM core.source_status WHERE source_id = ?", [GATE_SOURCE.id]
        ).fetchone()
    assert columns == ["comuna_code", "year", "value"]
    assert status[0] == "failed" and "schema drift" in status[1]
    assert list((warehouse_env / "raw" / "quarantine" / GATE_SOURCE.id).glob("*.bin"))
    assert _export_state(output) == (first_folder, first_manifest, first_snapshots)
    assert len(list((output / ".exports").iterdir())) == 1
    # The export's asset checks say so, with the configured (blocking) severity.
    with db.reader() as conn:
        checks = {
            r.check_name: r
            for r in ops.source_check_results(conn, GATE_SOURCE.id, ops.load_config(), publication.EXPORT_KEY)
        }
    assert not checks["drift_ops_gate_sample"].passed
    assert checks["drift_ops_gate_sample"].severity == AssetCheckSeverity.ERROR
    assert checks["volume_ops_gate_sample"].passed and checks["freshness_ops_gate_sample"].passed

    # Upstream loses nine rows in ten: beyond the 50% volume tolerance, refused the same way.
    _serve(http_server, _sample_csv(rows=1), '"v3"')
    result = _run()
    assert not result.success
    assert "row count of raw.ops_gate_sample moved from 10 to 1 (-90%)" in _failure(result)
    assert _export_state(output) == (first_folder, first_manifest, first_snapshots)


def test_drift_with_severity_warn_is_published(warehouse_env, http_server, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__OPS_GATE_SAMPLE__TABLE", http_server.url("/gate.csv"))
    config = warehouse_env / "ops.yaml"
    config.write_text("sources:\n  ops_gate_sample:\n    drift: {severity: warn}\n", encoding="utf-8")
    monkeypatch.setenv("CONTEXT_LENS_OPS_CONFIG", str(config))
    _serve(http_server, _sample_csv(), '"v1"')
    assert _run().success
    first = json.loads((warehouse_env / "output" / "export" / "manifest.json").read_text())
    _serve(http_server, _sample_csv("valor"), '"v2"')
    assert _run().success
    second = json.loads((warehouse_env / "output" / "export" / "manifest.json").read_text())
    assert second["content_hash"] != first["content_hash"]
    with db.reader() as conn:
        assert "valor" in [r[0] for r in conn.execute("DESCRIBE raw.ops_gate_sample").fetchall()]
        history = ops.accepted_schemas(conn, "raw.ops_gate_sample", sample=False, limit=2)
        drift = ops.compare_columns(history[1].columns, history[0].columns)
    assert drift.missing == ["value"] and drift.new == ["valor"]


def test_export_package_describes_tables_units_and_sources(warehouse_env, monkeypatch, capsys):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    oecd_export = publication.export_asset(oecd_family.ASSETS)
    result = materialize([territories.territories, *oecd_family.ASSETS, oecd_export], resources=RESOURCES)
    assert result.success
    folder = warehouse_env / "output" / "export"
    package = json.loads((folder / "datapackage.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    resources = {r["name"]: r for r in package["resources"]}
    observations = resources["core.observations"]
    with db.reader() as conn:
        expected_rows = conn.execute("SELECT count(*) FROM core.observations").fetchone()[0]
        units = dict(conn.execute("SELECT indicator_id, unit FROM core.indicators").fetchall())
        snapshot = conn.execute(
            "SELECT last_snapshot_id FROM core.source_status WHERE source_id = 'oecd_regional'"
        ).fetchone()[0]
    with duckdb.connect() as conn:
        exported_rows = conn.execute(
            "SELECT count(*) FROM read_parquet(?)", [str(folder / observations["path"])]
        ).fetchone()[0]
    assert observations["rows"] == exported_rows == expected_rows > 0
    assert {f["name"]: f["type"] for f in observations["schema"]["fields"]}["value"] == "number"
    assert observations["indicatorUnits"] == {i: units[i] for i in observations["indicatorUnits"]}
    assert set(observations["indicatorUnits"]) == {i for i in units if i.startswith("oecd_")}
    assert any(s["id"] == "oecd_regional" and s["path"].startswith("https://") for s in package["sources"])
    assert manifest["sources"]["oecd_regional"]["last_snapshot_id"] == snapshot
    assert manifest["sources"]["oecd_regional"]["mode"] == "sample"
    for name, table in manifest["tables"].items():
        assert (folder / table["path"]).exists(), name
    capsys.readouterr()
    assert cli.main(["sql", "--export", "SELECT count(*) AS exported FROM core.observations"]) == 0
    assert str(expected_rows) in capsys.readouterr().out


def test_status_after_an_offline_build_lists_every_source_with_mode_and_reason(
    warehouse_env, monkeypatch, capsys
):
    """Offline build of the OECD family (the others are not built here): every source is listed."""
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert materialize([territories.territories, *oecd_family.ASSETS], resources=RESOURCES).success
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    lines = {
        line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()
        if not line.startswith("export:")
    }
    known = {s.info.id for m in family_modules() for s in ops.family_sources(m)}
    assert known <= set(lines)
    assert (
        "mode=sample" in lines["oecd_regional"]
        and "reason: offline run: live fetch skipped" in lines["oecd_regional"]
    )
    assert "freshness=SAMPLE data" in lines["oecd_regional"]
    for source_id in known - {"oecd_regional"}:
        assert "status=never run" in lines[source_id] and "reason: not built yet" in lines[source_id]
    assert cli.main(["status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["source"] for r in rows} >= known


def test_cli_fails_with_one_line_reason(warehouse_env, capsys):
    assert cli.main(["refresh", "--family", "no_such_family"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown family 'no_such_family'" in err[0]
    assert cli.main(["sql", "SELECT 1"]) == 2  # no warehouse yet
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no warehouse" in err[0]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("defaults:\n  drift: {severity: fatal}\n", "'defaults.drift.severity' must be 'error' or 'warn'"),
        (
            "sources:\n  oecd_regional:\n    volume: {tolerance: -1}\n",
            "'sources.oecd_regional.volume.tolerance'",
        ),
        ("defaults:\n  speed: {severity: warn}\n", "'defaults.speed': unknown check"),
    ],
)
def test_ops_config_errors_name_the_field(tmp_path, document, problem):
    path = tmp_path / "ops.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ops.OpsConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        ops.load_config(path)


def test_type_families_and_drift_rules():
    previous = [["code", "VARCHAR", True], ["n", "BIGINT", True], ["flag", "INTEGER", False]]
    # int -> double (a missing value appeared) is not drift; an all-null column has no type.
    assert not ops.compare_columns(
        previous, [["code", "VARCHAR", True], ["n", "DOUBLE", True], ["flag", "VARCHAR", True]]
    )
    drift = ops.compare_columns(previous, [["code", "BIGINT", True], ["n", "BIGINT", True]])
    assert drift.retyped == [("code", "VARCHAR", "BIGINT")] and drift.missing == ["flag"]
    assert ops.volume_change(10, 1) == pytest.approx(-0.9) and ops.volume_change(0, 5) is None


def test_repository_ops_yaml_loads():
    config = ops.load_config(ops.CONFIG_PATH)
    assert config.rule("oecd_regional", "drift").blocks
    assert config.rule("mindicador", "freshness").grace == 3
