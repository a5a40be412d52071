"""`context-lens studies list | check | new`, unknown places refused with the nearest valid
names (by `check` and by the lens build), and a deleted study's lens leaving the warehouse."""

from __future__ import annotations

import json

import pytest
from dagster import materialize

from pipelines import cli, retired_lenses
from pipelines import export as publication
from pipelines import studies as studies_module
from pipelines.lens import build_lens
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.studies import StudyConfigError, parse_study
from tests.lens import sample_warehouse
from warehouse import db

BAD_PLACES = {'comunas: ["02201", "02101"]': 'comunas: ["02201", "02299"]', '"025", "034"': '"999", "025"'}


def _bad_study(folder):
    path = sample_warehouse.write_study(folder, "bad-places")
    text = path.read_text()
    for old, new in BAD_PLACES.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return path


def test_list_shows_every_shipped_study(capsys):
    assert cli.main(["studies", "list"]) == 0
    out = capsys.readouterr().out
    for path in studies_module.STUDIES_DIR.glob("*.yaml"):
        assert any(line.startswith(path.stem) and "  ok  " in line for line in out.splitlines()), out


def test_check_resolves_every_code_of_the_shipped_studies(sample_build_env, capsys):
    ids = sorted(p.stem for p in studies_module.STUDIES_DIR.glob("*.yaml"))
    assert cli.main(["studies", "check", *ids]) == 0
    out = capsys.readouterr().out
    assert all(f"{i}.yaml: ok: " in out for i in ids)
    assert "comuna:02201 Calama" in out and "in basin:021" in out  # the Calama site is placed


def test_unknown_comunas_and_peer_basins_are_errors_with_the_nearest_names(
    sample_build_env, tmp_path, capsys
):
    assert cli.main(["studies", "check", str(_bad_study(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "field 'focus.comunas': error: comuna:02299 is not a comuna of Chile's official division" in err
    assert "nearest: 02301 Tocopilla" in err
    assert "field 'comparison.peer_basins': error: basin:999 is not a basin of the warehouse" in err
    assert "nearest: 057 " in err


def test_without_a_warehouse_comunas_are_still_checked_and_basins_said_unchecked(
    warehouse_env, tmp_path, capsys
):
    assert cli.main(["studies", "check", str(_bad_study(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert "comuna:02299 is not a comuna" in captured.err
    assert "warning: basin:999 not checked: the DGA basin layer is not in the warehouse yet" in captured.out


def test_the_basin_source_id_is_the_dga_layer():
    from pipelines.study_check import BASIN_SOURCE
    from sources.dga_basins import SOURCE

    assert BASIN_SOURCE == SOURCE.id


def test_the_lens_build_refuses_a_place_that_does_not_exist(sample_build_env, tmp_path):
    with pytest.raises(StudyConfigError) as refused:
        build_lens(WarehouseResource(), parse_study(_bad_study(tmp_path)))
    message = str(refused.value)
    assert "bad-places.yaml: field 'comparison.peer_basins': error: basin:999" in message
    assert "nearest: 057 Rio Maipo" in message and "comuna:02299" in message
    with db.reader() as conn:
        assert not conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'bad_places%'"
        ).fetchone()[0]


def test_new_writes_a_valid_study_from_codes_names_and_sites(warehouse_env, tmp_path, capsys):
    folder = tmp_path / "studies"
    argv = ["studies", "new", "loa-sites", "--folder", str(folder), "--comunas", "2201,Ollague"]
    assert cli.main([*argv, "--site=-22.40,-68.90,Mine X", "--peer-basins", "025"]) == 0
    study = parse_study(folder / "loa-sites.yaml")
    assert study.comunas == ["02201", "02202"] and study.peer_basins == ["025"]
    assert [(s.name, s.lat, s.lon) for s in study.sites] == [("Mine X", -22.4, -68.9)]
    assert study.title == "Context lens: Calama, Ollagüe"
    assert cli.main(["studies", "check", str(folder / "loa-sites.yaml")]) == 0
    assert cli.main(["studies", "new", "by-region", "--folder", str(folder), "--region", "Antofagasta"]) == 0
    assert parse_study(folder / "by-region.yaml").regions == ["02"]
    capsys.readouterr()
    assert cli.main(argv) == 1  # the file exists
    assert "exists" in capsys.readouterr().err
    assert cli.main(["studies", "new", "typo", "--folder", str(folder), "--comunas", "Calma"]) == 1
    assert "nearest: 02201 Calama" in capsys.readouterr().err
    assert not (folder / "typo.yaml").exists()


def test_deleting_a_study_file_and_rebuilding_removes_its_lens_and_exports(
    warehouse_env, tmp_path, monkeypatch
):
    folder = tmp_path / "studies"
    folder.mkdir()
    with db.writer() as conn, db.transaction(conn):
        sample_warehouse.seed(conn)
    kept, gone = (parse_study(sample_warehouse.write_study(folder, i)) for i in ("kept-study", "gone-study"))
    for study in (kept, gone):
        build_lens(WarehouseResource(), study)
    monkeypatch.setattr(studies_module, "STUDIES_DIR", folder)
    (folder / "gone-study.yaml").unlink()
    retire = retired_lenses.retired_lenses_asset([])
    resources = {"warehouse": WarehouseResource(), "sources": SourcesResource()}
    assert materialize([retire, publication.export_asset([retire])], resources=resources).success
    with db.reader() as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert not {t for t in tables if t.startswith("gone_study_")}
    assert "kept_study_indicators" in tables
    manifest = json.loads((warehouse_env / "output" / "export" / "manifest.json").read_text())
    assert not [t for t in manifest["tables"] if t.startswith("lens.gone_study_")]
    assert "lens.kept_study_indicators" in manifest["tables"]
    assert not (warehouse_env / "output" / "lens" / "gone-study").exists()
    assert (warehouse_env / "output" / "lens" / "kept-study" / "lens.html").exists()
