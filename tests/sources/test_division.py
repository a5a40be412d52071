"""The official territorial division we ship, against the real code tables in ../shared/data/boundaries."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from sources import division
from sources.base import fold_name
from sources.territory_resolver import division_resolver


@pytest.fixture(scope="module")
def files(shared_data):
    return shared_data / "boundaries"


def _chilemapas(files) -> list[dict[str, str]]:
    with (files / "chilemapas_codigos_territoriales.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sixteen_regions_56_provinces_346_comunas_nested_by_code():
    table = division.load_division()
    assert table["kind"].value_counts().to_dict() == {"comuna": 346, "province": 56, "region": 16}
    parents = dict(zip(table["territory_id"], table["parent_id"], strict=True))
    for row in table.itertuples():
        if row.kind == "comuna":
            assert parents[row.territory_id] == f"province:{row.code[:3]}"
            assert parents[f"province:{row.code[:3]}"] == f"region:{row.code[:2]}"
    assert sum(len(c) for c in division.comunas_by_region().values()) == 346
    assert division.comunas_of("02") == {
        "02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"
    }  # fmt: skip
    assert table["name"].str.len().min() > 0 and not table["name"].str.contains(r"\?").any()


def test_codes_and_names_agree_with_the_chilemapas_code_table(files):
    rows = _chilemapas(files)
    table = division.load_division().set_index("territory_id")
    comunas = {r["commune_id"]: r["commune_name"] for r in rows}
    provinces = {r["province_id"]: r["province_name"] for r in rows}
    assert set(comunas) == division.all_comunas()
    assert {f"province:{p}" for p in provinces} == set(table.index[table["kind"] == "province"])
    for kind, published in (("comuna", comunas), ("province", provinces)):
        for code, name in published.items():
            row = table.loc[f"{kind}:{code}"]
            spellings = {fold_name(n).replace(" ", "") for n in [row["name"], *row["alternative_names"]]}
            # chilemapas drops accents and the apostrophe (OHiggins)
            assert fold_name(name).replace(" ", "") in spellings, (kind, code, name, row["name"])


def test_names_with_accents_agree_with_the_bcn_layer_and_the_bastianolea_list(files):
    table = division.load_division().set_index("territory_id")
    layer = json.loads((files / "fcortes_comunas.geojson").read_text(encoding="utf-8"))
    bcn = {
        f"comuna:{f['properties']['cod_comuna']:05d}": f["properties"]["Comuna"]
        for f in layer["features"]
        if f["properties"]["codregion"] != 0
    }
    with (files / "bastianolea_comunas_chile_cut.csv").open(encoding="utf-8") as handle:
        listed = {
            f"comuna:{int(r['cut_comuna']):05d}": r["comuna"] for r in csv.DictReader(handle, delimiter=";")
        }
    assert len(bcn) == 345 and len(listed) == 345  # both lack Antártica (12202)
    for published in (bcn, listed):
        differ = {
            tid: (name, table.loc[tid, "name"])
            for tid, name in published.items()
            if name != table.loc[tid, "name"] and name not in table.loc[tid, "alternative_names"]
        }
        # Only accents and the capital of a particle differ (Los Alamos, Llaillay, Ranquil, Calera)
        assert all(fold_name(a) == fold_name(b) for a, b in differ.values()), differ
        assert len(differ) <= 5, differ


def test_the_resolver_knows_every_comuna_without_any_polygon():
    resolver = division_resolver()
    codes = sorted(division.all_comunas())
    assert resolver.resolve([int(c) for c in codes], "comuna") == [f"comuna:{c}" for c in codes]
    assert resolver.resolve(["Paihuano", "Coihaique", "Aisén", "Marchigüe"], "comuna") == [
        "comuna:04105", "comuna:11101", "comuna:11201", "comuna:06204"
    ]  # fmt: skip


def test_coverage_of_a_sum_over_comunas():
    four_regions = [c for c in sorted(division.all_comunas()) if c[:2] in {"01", "02", "03", "04"}]
    assert len(four_regions) == 40
    cover = division.coverage("country:CL", four_regions)
    assert not cover.complete and cover.describe() == "40 of 346 comunas"
    assert division.coverage("region:02", division.comunas_of("02")).complete
    frame = pd.DataFrame({"comuna_code": four_regions, "year": 2024, "value": 1.0, "snapshot_id": "s1"})
    frame = frame[frame["comuna_code"] != "04105"]
    totals, partial = division.sum_over_comunas(frame, ["year"])
    assert sorted(totals["territory_id"]) == ["region:01", "region:02", "region:03"]
    assert totals.set_index("territory_id").loc["region:02", "value"] == 9.0
    partial = partial.set_index("territory_id")
    assert partial.loc["country:CL", "coverage"] == "39 of 346 comunas"
    assert partial.loc["region:04", "coverage"] == "14 of 15 comunas"
    assert list(totals["snapshots"].iloc[0]) == ["s1"]
