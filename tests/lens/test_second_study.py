"""A new study is a new YAML file: no code changes; and a lens still builds when families are missing."""

from __future__ import annotations

from dagster import materialize

from pipelines import lens
from pipelines import studies as studies_module
from pipelines.lens import build_lens
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.studies import load_study
from tests.lens import sample_warehouse as sw
from warehouse import db


def test_shipped_calama_study_builds_and_places_its_site(sample_env):
    built = build_lens(WarehouseResource(), load_study("calama-loa-2025"))
    sites = built.lens.tables["sites"]
    assert sites[["comuna_id", "region_id", "basin_id", "status"]].values.tolist() == [
        ["comuna:02201", "region:02", "basin:021", "resolved"]
    ]
    territories = built.lens.tables["territories"].set_index("territory_id")
    assert territories.loc["region:02", "role"] == "focus"  # reached through the site and the comuna
    assert set(territories.index[territories["role"] == "peer"]) == {"basin:025", "basin:034", "basin:038"}
    with db.reader() as conn:
        rows = conn.execute("SELECT count(*) FROM lens.calama_loa_2025_indicators").fetchone()[0]
    assert rows == len(built.lens.indicators) > 0
    assert (sample_env.root / "output" / "lens" / "calama-loa-2025" / "lens.html").exists()


def test_a_new_study_file_gets_its_own_asset(sample_env, tmp_path, monkeypatch):
    sw.write_study(tmp_path, "sample-new-study")
    monkeypatch.setattr(studies_module, "STUDIES_DIR", tmp_path)
    monkeypatch.setattr(lens, "_ASSETS", None)  # rebuilt from the folder; restored afterwards
    assets = {a.key.path[-1]: a for a in lens.ASSETS}
    assert set(assets) == {"lens_sample_new_study"}
    result = materialize(
        [assets["lens_sample_new_study"]],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
        raise_on_error=False,
    )
    assert result.success
    metadata = result.asset_materializations_for_node("lens_sample_new_study")[0].metadata
    assert metadata["content_hash"].value and "sample_only_src" in metadata["sources"].value
    assert "SAMPLE lens test" in metadata["preview"].value
    with db.reader() as conn:
        hash_in_table = conn.execute(
            "SELECT value FROM lens.sample_new_study_manifest WHERE key = 'content_hash'"
        ).fetchone()[0]
    assert hash_in_table == metadata["content_hash"].value


def test_empty_warehouse_gives_a_lens_that_says_what_is_missing(warehouse_env):
    with db.writer():
        pass  # creates the contract tables, nothing else: no family has run
    built = build_lens(WarehouseResource(), load_study("calama-loa-2025"))
    site = built.lens.tables["sites"].iloc[0]
    assert site["status"] == "unresolved" and "no comuna polygons are loaded" in site["message"]
    md = (warehouse_env / "output" / "lens" / "calama-loa-2025" / "lens.md").read_text(encoding="utf-8")
    assert md.count("No indicator for this section is in the warehouse yet") == 3
    assert "No map: no boundary polygon of the focus territories is loaded yet" in md
    assert "Site not placed" in md and "no comuna polygons are loaded" in md
