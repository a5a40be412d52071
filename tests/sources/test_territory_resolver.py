"""The territory resolver against the spellings and codings found in the real files, read in place."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from sources import boundaries
from sources.base import ValidationError
from sources.territory_resolver import (
    UNKNOWN_ID,
    TerritoryResolver,
    UnresolvedTerritoriesError,
    build_resolver,
    chile_territory_tables,
    load_regions,
    name_aliases,
)

# PROVENANCE.md: "Region 02 is Antofagasta, with 9 comunas"
ANTOFAGASTA_COMUNAS = {"02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"}


@pytest.fixture(scope="module")
def files(shared_data):
    return shared_data / "boundaries"


@pytest.fixture(scope="module")
def code_table(files):
    return boundaries.parse_chilemapas_code_table(files / "chilemapas_codigos_territoriales.csv")


@pytest.fixture(scope="module")
def resolver(code_table):
    return build_resolver(code_table)


def read_csv_rows(path, delimiter=","):
    with path.open(encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def fcortes_properties(files, name):
    document = json.loads((files / name).read_text(encoding="utf-8"))
    return [
        feature["properties"] for feature in document["features"] if feature["properties"]["codregion"] != 0
    ]


def test_antofagasta_region_has_exactly_its_nine_comunas(files, resolver):
    chilemapas = json.loads((files / "chilemapas_comunas_r02.geojson").read_text(encoding="utf-8"))
    from_chilemapas = {f["properties"]["codigo_comuna"] for f in chilemapas["features"]}
    from_fcortes = {
        p["cod_comuna"] for p in fcortes_properties(files, "fcortes_comunas.geojson") if p["codregion"] == 2
    }
    expected = {f"comuna:{code}" for code in ANTOFAGASTA_COMUNAS}
    assert set(resolver.children("region:02", "comuna")) == expected
    assert set(resolver.resolve(from_chilemapas, "comuna")) == expected
    assert set(resolver.resolve(from_fcortes, "comuna")) == expected  # unpadded integers, 2201
    assert resolver.children("province:022") == ["comuna:02201", "comuna:02202", "comuna:02203"]


def test_padded_and_unpadded_codes_resolve_alike(resolver):
    assert (
        resolver.resolve([2201, "2201", 2201.0, "02201", " 2201 ", "2201.0"], "comuna")
        == ["comuna:02201"] * 6
    )
    assert resolver.resolve(["00002", 2, "02", 2.0], "region") == ["region:02"] * 4
    assert resolver.resolve([22, "022"], "province") == ["province:022"] * 2
    assert resolver.resolve(["country:CL", "Chile"], "country") == ["country:CL"] * 2


def test_chilemapas_unaccented_names_resolve_to_their_codes(files, resolver):
    rows = read_csv_rows(files / "chilemapas_codigos_territoriales.csv")
    assert resolver.resolve([r["commune_name"] for r in rows], "comuna") == resolver.resolve(
        [r["commune_id"] for r in rows], "comuna"
    )
    assert resolver.resolve([r["province_name"] for r in rows], "province") == [
        f"province:{r['province_id']}" for r in rows
    ]
    assert resolver.resolve([r["region_name"] for r in rows], "region") == [
        f"region:{r['region_id']}" for r in rows
    ]


def test_fcortes_accented_names_and_region_labels_resolve_to_their_codes(files, resolver):
    comunas = fcortes_properties(files, "fcortes_comunas.geojson")
    assert resolver.resolve([p["Comuna"] for p in comunas], "comuna") == resolver.resolve(
        [p["cod_comuna"] for p in comunas], "comuna"
    )
    regions = fcortes_properties(files, "fcortes_Regional.geojson")
    # 'Región de Antofagasta', 'Región de Aysén del Gral.Ibañez del Campo', 'Región del Bío-Bío', ...
    assert resolver.resolve([p["Region"] for p in regions], "region") == [
        f"region:{p['codregion']:02d}" for p in regions
    ]


def test_bastianolea_table_resolves_and_its_gap_is_visible(files, resolver):
    rows = read_csv_rows(files / "bastianolea_comunas_chile_cut.csv", delimiter=";")
    by_code = resolver.resolve([int(r["cut_comuna"]) for r in rows], "comuna")
    assert resolver.resolve([r["comuna"] for r in rows], "comuna") == by_code
    assert resolver.resolve([r["region"] for r in rows], "region") == [
        f"region:{int(r['cut_region']):02d}" for r in rows
    ]
    assert "comuna:12202" in set(resolver.children("region:12", "comuna")) - set(by_code)


def test_deis_spellings_and_unknown_residence(shared_data, resolver):
    rows = read_csv_rows(shared_data / "health" / "deis_defunciones_solo_causa_covid_2020-08-06.csv")
    distinct = sorted({(r["comuna_código"], r["comuna"], r["región"]) for r in rows})
    codes = resolver.resolve([code for code, _, _ in distinct], "comuna")
    assert resolver.resolve([name for _, name, _ in distinct], "comuna") == codes
    regions = resolver.resolve(
        [region for _, _, region in distinct], "region"
    )  # 'De Antofagasta', 'Del Bíobío'
    for code, region in zip(codes, regions, strict=True):
        assert region == UNKNOWN_ID if code == UNKNOWN_ID else region == f"region:{code.split(':')[1][:2]}"
    assert ("99999", "Ignorada", "Ignorada") in distinct
    assert resolver.resolve([99999, "99999", "Ignorada"], "comuna") == [UNKNOWN_ID] * 3


@pytest.mark.parametrize(
    ("variant", "region"),
    [
        ("De Antofagasta", "02"),
        ("Región de Antofagasta", "02"),
        ("Region de Antofagasta", "02"),
        ("ANTOFAGASTA", "02"),
        ("Metropolitana de Santiago", "13"),
        ("Región Metropolitana de Santiago", "13"),
        ("Aysén del General Carlos Ibáñez del Campo", "11"),
        ("Libertador General Bernardo O'Higgins", "06"),
        ("Libertador General Bernardo OHiggins", "06"),
        ("Del Libertador B. O'Higgins", "06"),
        ("CL02", "02"),
        ("oecd_tl2:CL16", "16"),
        ("region:02", "02"),
    ],
)
def test_region_spellings(resolver, variant, region):
    assert resolver.resolve([variant], "region") == [f"region:{region}"]


def test_unresolved_values_are_all_listed_not_dropped(resolver):
    with pytest.raises(UnresolvedTerritoriesError) as caught:
        resolver.resolve(["Atlantis", 2201, "Atlantis", 88888, None, "Calama"], "comuna", source="deis")
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.values == ["Atlantis", 88888, None]
    assert "'Atlantis'" in str(error) and "88888" in str(error) and "source 'deis'" in str(error)
    with pytest.raises(UnresolvedTerritoriesError, match="'02201'"):
        resolver.resolve(["02201"], "region")  # a comuna code is not a region
    with pytest.raises(ValueError, match="no territories of kind 'comunas'"):
        resolver.resolve([2201], "comunas")


def test_resolve_series_keeps_the_index(resolver):
    series = pd.Series([2201, "Antofagasta", 2201], index=[10, 20, 30], name="cut")
    resolved = resolver.resolve_series(series, "comuna")
    assert resolved.to_dict() == {10: "comuna:02201", 20: "comuna:02101", 30: "comuna:02201"}
    assert resolved.name == "cut"


def test_regions_reference_table(files):
    regions = load_regions()
    assert list(regions["region_code"]) == [f"{i:02d}" for i in range(1, 17)]
    assert list(regions["oecd_tl2"]) == [f"CL{i:02d}" for i in range(1, 17)]
    # official names agree with the bastianolea table, whose names carry accents
    published = {
        f"{int(r['cut_region']):02d}": r["region"]
        for r in read_csv_rows(files / "bastianolea_comunas_chile_cut.csv", ";")
    }
    differing = {
        code
        for code, name in zip(regions["region_code"], regions["name"], strict=True)
        if published[code] != name
    }
    assert differing == {"06"}  # bastianolea abbreviates 'Libertador Gral. Bernardo O'Higgins'


def test_publisher_aliases_and_basins(code_table):
    basins = pd.DataFrame({"basin_code": ["021"], "basin_name": ["Rio Loa"]})
    extra = name_aliases(
        pd.DataFrame({"cod": [2201], "nombre": ["Calama (ciudad)"]}), "comuna", "cod", "nombre", "x"
    )
    resolver = build_resolver(code_table, basins=basins, extra_aliases=[extra])
    assert resolver.resolve(["Calama (ciudad)", "x:Calama (ciudad)"], "comuna") == ["comuna:02201"] * 2
    assert resolver.resolve([21, "021", "Rio Loa", "Río Loa"], "basin") == ["basin:021"] * 4


def test_table_errors_are_loud(code_table):
    territories, aliases = chile_territory_tables(code_table)
    with pytest.raises(ValidationError, match="repeat"):
        TerritoryResolver(pd.concat([territories, territories.head(1)]), aliases)
    with pytest.raises(ValidationError, match="unknown territories"):
        TerritoryResolver(
            territories, pd.DataFrame({"territory_id": ["comuna:77777"], "scheme": ["x"], "alias": ["y"]})
        )
    twins = pd.DataFrame(
        {
            "id": ["comuna:01101", "comuna:01107"],
            "kind": "comuna",
            "code": ["01101", "01107"],
            "name": ["Same Name", "Same Name"],
            "parent_id": None,
        }
    )
    with pytest.raises(UnresolvedTerritoriesError, match="ambiguous"):
        TerritoryResolver(twins).resolve(["same name"], "comuna")
