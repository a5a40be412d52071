"""The export and the lens data are valid Frictionless data packages (0 errors), with the
marts in the export and `sql --export` reading them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from frictionless import Package

from pipelines import cli
from warehouse import db


def _errors(descriptor: Path) -> list[str]:
    report = Package(str(descriptor)).validate()
    return [
        f"{task.name}: {error.type}: {error.message}" for task in report.tasks for error in task.errors
    ] + [f"package: {error.message}" for error in report.errors]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("package", ["export", "lens_data"])
def test_frictionless_finds_no_error(sample_build, package):
    descriptor = getattr(sample_build, package) / "datapackage.json"
    errors = _errors(descriptor)
    assert errors == [], "\n".join(errors[:40])
    resources = json.loads(descriptor.read_text())["resources"]
    assert resources and all(r["profile"] == "tabular-data-resource" for r in resources)


@pytest.mark.parametrize("package", ["export", "lens_data"])
def test_hashes_rows_and_bytes_are_those_of_the_files(sample_build, package):
    folder = getattr(sample_build, package)
    resources = json.loads((folder / "datapackage.json").read_text())["resources"]
    with duckdb.connect() as conn:
        for resource in resources:
            path = folder / resource["path"]
            assert resource["hash"] == f"sha256:{_sha256(path)}", resource["name"]
            reader = "read_parquet" if resource["format"] == "parquet" else "read_csv"
            count = conn.execute(f"SELECT count(*) FROM {reader}(?)", [str(path)]).fetchone()[0]  # noqa: S608
            assert resource["rows"] == count, resource["name"]
            if resource["format"] == "csv":
                assert resource["bytes"] == path.stat().st_size, resource["name"]
    if package == "export":
        manifest = json.loads((folder / "manifest.json").read_text())
        for table in manifest["tables"].values():
            assert table["bytes"] == (folder / table["path"]).stat().st_size
            assert table["sha256"] == _sha256(folder / table["path"])


def test_declared_types_are_the_data_types(sample_build):
    """Nullable integers are integers, lists are arrays; the rows that make them hard are present."""
    folder = sample_build.export
    resources = {r["name"]: r for r in json.loads((folder / "datapackage.json").read_text())["resources"]}
    fields = {(name, f["name"]): f for name, r in resources.items() for f in r["schema"]["fields"]}
    assert fields[("core.raw_schemas", "snapshot_ids")]["type"] == "array"
    assert fields[("marts.territory_lineage", "ancestors")]["type"] == "array"
    assert fields[("core.observations", "value")]["type"] == "number"
    lens_indicators = next(n for n in resources if n.startswith("lens.") and n.endswith("_indicators"))
    assert fields[(lens_indicators, "comparison_count")]["type"] == "integer"
    with duckdb.connect() as conn:
        nulls = conn.execute(
            "SELECT count(*) FILTER (WHERE comparison_count IS NULL), count(comparison_count) FROM read_parquet(?)",
            [str(folder / resources[lens_indicators]["path"])],
        ).fetchone()
    assert nulls[0] > 0 and nulls[1] > 0  # both NULL and integer values were validated
    assert fields[("core.territories", "geometry")]["type"] == "any"


def test_the_export_has_every_mart_and_sql_export_reads_them(sample_build_env, capsys):
    manifest = json.loads((sample_build_env.export / "manifest.json").read_text())
    with db.reader() as conn:
        marts = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' ORDER BY 1"
        ).fetchall()
        expected = {
            f"marts.{m}": conn.sql(f"SELECT count(*) FROM {db.table_name('marts', m)}").fetchone()[0]  # noqa: S608
            for (m,) in marts
        }
    assert (
        expected
        and {k: v["rows"] for k, v in manifest["tables"].items() if k.startswith("marts.")} == expected
    )
    assert "not_exported" not in manifest
    capsys.readouterr()
    assert cli.main(["sql", "--export", "--format", "json", "SELECT * FROM marts.basin_comparison"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == expected["marts.basin_comparison"] > 0
    query = "SELECT typeof(ancestors) AS t FROM marts.territory_lineage WHERE ancestors IS NOT NULL LIMIT 1"
    assert cli.main(["sql", "--export", "--format", "csv", query]) == 0
    assert capsys.readouterr().out == "t\nVARCHAR[]\n"  # the JSON text in Parquet is a list again
