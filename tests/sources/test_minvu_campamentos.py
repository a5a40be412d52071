"""MINVU campamentos: parsers against the real files (read in place), location checks, indicators.

Expected figures are computed here straight from the raw files (json, csv, a small DBF
reader) or taken from PROVENANCE.md section 3; nothing is copied from the parser's output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import struct
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Polygon, box, mapping

from sources import minvu_campamentos as mc
from sources.base import FetchRequest, ParseError, Payload, SourceInfo
from sources.settlements import (
    RATE_COLUMNS,
    SETTLEMENT_COLUMNS,
    catastro_change,
    households_per_1000,
    locate_settlements,
    settlement_totals,
)

SAMPLES = Path(mc.__file__).resolve().parent / "samples" / "campamentos"
SAMPLE_2024 = SAMPLES / "sample_minvu_catastro_campamentos_2024_featureserver.geojson"
SAMPLE_2022_ZIP = SAMPLES / "sample_CNC2022_shp.zip"

FEATURESERVER = "minvu_catastro_campamentos_2024_featureserver.geojson"
HUB_CSV = "minvu_FL_Actualizacion_Campamentos_2024.csv"
SEMICOLON_CSV = "bastianolea_campamentos_chile_2024_semicolon.csv"

# PROVENANCE.md §3a: Antofagasta region, 2024 (comuna codes from the PROVENANCE header).
PROVENANCE_ANTOFAGASTA_2024 = {
    "02101": (87, 7773),  # Antofagasta
    "02201": (8, 366),  # Calama
    "02104": (11, 367),  # Taltal
    "02102": (2, 526),  # Mejillones
    "02203": (2, 217),  # San Pedro de Atacama
    "02301": (5, 78),  # Tocopilla
    "02103": (1, 34),  # Sierra Gorda
}


# --- independent readers of the raw files ----------------------------------------------------


def read_dbf_bytes(data: bytes) -> list[dict[str, str]]:
    """A minimal dBASE III reader: every field as stripped text (enough to count and sum)."""
    records, header_length, record_length = struct.unpack("<IHH", data[4:12])
    fields, offset = [], 32
    while data[offset] != 0x0D:
        name = data[offset : offset + 11].split(b"\0")[0].decode("ascii")
        fields.append((name, data[offset + 16]))
        offset += 32
    rows = []
    for index in range(records):
        start = header_length + index * record_length
        record = data[start : start + record_length]
        if record[:1] == b"*":
            continue
        position, row = 1, {}
        for name, length in fields:
            row[name] = record[position : position + length].decode("utf-8").strip()
            position += length
        rows.append(row)
    return rows


def counts_by(rows, code_of, households_of) -> dict[str, tuple[int, int]]:
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        entry = tally[code_of(row)]
        entry[0] += 1
        entry[1] += households_of(row)
    return {code: (n, households) for code, (n, households) in tally.items()}


def totals_as_dict(frame: pd.DataFrame, level: str, year: int) -> dict[str, tuple[int, int]]:
    totals = settlement_totals(frame, level)
    totals = totals[totals["catastro_year"] == year]
    return {
        code: (int(n), int(households))
        for code, n, households in zip(
            totals["territory_code"], totals["settlements"], totals["households"], strict=True
        )
    }


@pytest.fixture(scope="module")
def campamentos(shared_data: Path) -> Path:
    return shared_data / "campamentos"


@pytest.fixture(scope="module")
def raw_features(campamentos):
    return json.loads((campamentos / FEATURESERVER).read_text(encoding="utf-8"))["features"]


@pytest.fixture(scope="module")
def raw_dbf(campamentos):
    return read_dbf_bytes((campamentos / "CNC2022_shp" / "CNC2022.dbf").read_bytes())


@pytest.fixture(scope="module")
def parsed_2024(campamentos):
    return {
        "featureserver": mc.parse_catastro_2024_geojson(campamentos / FEATURESERVER),
        "hub_csv": mc.parse_catastro_2024_csv(campamentos / HUB_CSV),
        "semicolon_csv": mc.parse_catastro_2024_semicolon_csv(campamentos / SEMICOLON_CSV),
    }


@pytest.fixture(scope="module")
def parsed_2022(campamentos):
    return mc.parse_cnc_2022(campamentos / "CNC2022_shp")


@pytest.fixture(scope="module")
def comunas_r02(shared_data):
    comunas = gpd.read_file(shared_data / "boundaries" / "chilemapas_comunas_r02.geojson")
    return comunas.rename(columns={"codigo_comuna": "comuna_code"})[["comuna_code", "geometry"]]


# --- 2024: the three formats -----------------------------------------------------------------


def test_featureserver_2024_counts_per_comuna_and_region_match_the_raw_geojson(parsed_2024, raw_features):
    frame = parsed_2024["featureserver"]
    properties = [feature["properties"] for feature in raw_features]
    assert len(frame) == len(properties) == 1432
    assert list(frame.columns) == SETTLEMENT_COLUMNS
    assert frame.crs.to_epsg() == 4326
    by_comuna = counts_by(properties, lambda p: str(p["CUT"]).zfill(5), lambda p: p["N_HOG"])
    by_region = counts_by(properties, lambda p: p["CUT_R"], lambda p: p["N_HOG"])
    assert totals_as_dict(frame, "comuna", 2024) == by_comuna
    assert totals_as_dict(frame, "region", 2024) == by_region


def test_hub_csv_2024_counts_and_quirks_match_the_raw_csv(parsed_2024, campamentos):
    frame = parsed_2024["hub_csv"]
    with open(campamentos / HUB_CSV, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_comuna = counts_by(rows, lambda r: r["CUT"].zfill(5), lambda r: int(r["N_HOG"]))
    assert totals_as_dict(frame, "comuna", 2024) == by_comuna
    # AN_CAT " " is a blank, not a catastro name; N_HOG 0 is a count, not a blank.
    blank_origin = sum(1 for r in rows if r["AN_CAT"] == " ")
    zero_households = sum(1 for r in rows if r["N_HOG"] == "0")
    assert blank_origin == 341 and zero_households == 143  # PROVENANCE §3a
    assert frame["catastro_origin"].isna().sum() == blank_origin
    assert (frame["households"] == 0).sum() == zero_households
    assert frame["households"].isna().sum() == 0
    assert frame["source_flag"].isna().sum() == sum(1 for r in rows if r["FUENTE"] == " ")
    assert frame["geometry"].isna().all()


def test_semicolon_csv_2024_counts_match_the_raw_csv(parsed_2024, campamentos):
    frame = parsed_2024["semicolon_csv"]
    with open(campamentos / SEMICOLON_CSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert "" in rows[0]  # the empty first header cell holding R row names
    by_comuna = counts_by(rows, lambda r: r["cut"].zfill(5), lambda r: int(r["hogares"]))
    assert totals_as_dict(frame, "comuna", 2024) == by_comuna
    hectares = sum(float(r["hectareas"].replace(",", ".")) for r in rows)
    assert frame["hectares"].sum() == pytest.approx(hectares)
    assert frame["settlement_id"].isna().all()  # FOLIO was dropped from this file


@pytest.mark.parametrize("fmt", ["featureserver", "hub_csv", "semicolon_csv"])
def test_antofagasta_2024_matches_provenance(parsed_2024, fmt):
    frame = parsed_2024[fmt]
    assert totals_as_dict(frame, "region", 2024)["02"] == (116, 9361)
    by_comuna = {
        code: value for code, value in totals_as_dict(frame, "comuna", 2024).items() if code[:2] == "02"
    }
    assert by_comuna == PROVENANCE_ANTOFAGASTA_2024


def test_the_three_2024_formats_agree(parsed_2024, raw_features, campamentos):
    geo, hub, semi = (parsed_2024[k] for k in ("featureserver", "hub_csv", "semicolon_csv"))
    shared = ["name", "comuna_code", "region_code", "households", "catastro_origin", "observations"]
    for other in (hub, semi):
        pd.testing.assert_frame_equal(
            pd.DataFrame(geo[shared]).reset_index(drop=True),
            pd.DataFrame(other[shared]).reset_index(drop=True),
        )
        assert (geo["hectares"] - other["hectares"]).abs().max() < 1e-6
    assert geo["source_flag"].equals(hub["source_flag"])
    # The Hub export and the FeatureServer disagree on a few FOLIOs: the rows where the raw
    # files differ (matched on OBJECTID_12) must be exactly the rows where the frames differ.
    with open(campamentos / HUB_CSV, encoding="utf-8-sig", newline="") as handle:
        hub_folio = {int(r["OBJECTID_12"]): r["FOLIO"] for r in csv.DictReader(handle)}
    raw_differ = [
        position
        for position, feature in enumerate(raw_features)
        if str(feature["properties"]["FOLIO"]) != hub_folio[feature["properties"]["OBJECTID_12"]]
    ]
    parsed_differ = list(geo.index[geo["folio"] != hub["folio"]])
    assert parsed_differ == raw_differ
    # where they differ, the Hub export reuses another settlement's folio; the layer does not
    assert hub.loc[parsed_differ, "quality_flags"].str.contains("folio_repeated").all()
    assert geo.loc[parsed_differ, "quality_flags"].isna().all()


def test_repeated_folio_empty_and_invalid_polygons_are_flagged_not_hidden(parsed_2024, raw_features):
    frame = parsed_2024["featureserver"]
    folios = Counter(feature["properties"]["FOLIO"] for feature in raw_features)
    repeated = {str(folio) for folio, n in folios.items() if n > 1}
    assert repeated == {"570501"}
    flagged = frame[frame["quality_flags"].fillna("").str.contains("folio_repeated")]
    assert set(flagged["folio"]) == repeated
    assert frame["settlement_id"].is_unique
    assert set(flagged["settlement_id"]) == {"2024-570501", "2024-570501-2"}
    empty = [f["properties"]["FOLIO"] for f in raw_features if not f["geometry"]["coordinates"]]
    missing = frame[frame["quality_flags"] == "geometry_missing"]
    assert [int(folio) for folio in missing["folio"]] == empty
    assert missing["geometry"].isna().all()
    repaired = frame[frame["quality_flags"].fillna("").str.contains("geometry_repaired")]
    assert len(repaired) == 2 and repaired.geometry.is_valid.all()
    assert frame.geometry.dropna().is_valid.all()


def test_geodesic_area_agrees_with_the_servers_shape_area(parsed_2024, raw_features):
    """Shape__Area is the server's true area; HECTAREAS is Web Mercator, so it is larger."""
    frame = parsed_2024["featureserver"]
    shape_area = pd.Series([f["properties"]["Shape__Area"] for f in raw_features], index=frame.index)
    present = frame["hectares_geodesic"].notna() & (shape_area > 0)
    ratio = frame.loc[present, "hectares_geodesic"] * 10_000 / shape_area[present]
    assert ratio.between(0.99, 1.01).all()
    published = sum(f["properties"]["HECTAREAS"] for f in raw_features)
    assert frame["hectares"].sum() == pytest.approx(published)
    assert frame["hectares_geodesic"].sum() < 0.8 * published


# --- 2022: the CNC shapefile -----------------------------------------------------------------


def test_cnc_2022_counts_match_the_raw_dbf_and_provenance(parsed_2022, raw_dbf):
    assert len(raw_dbf) == len(parsed_2022) == 1091  # PROVENANCE §3c
    households = lambda r: int(float(r["N_HOG"]))  # noqa: E731
    by_comuna = counts_by(raw_dbf, lambda r: r["CUT_C"], households)
    by_region = counts_by(raw_dbf, lambda r: r["CUT_R"], households)
    assert totals_as_dict(parsed_2022, "comuna", 2022) == by_comuna
    assert totals_as_dict(parsed_2022, "region", 2022) == by_region
    assert by_region["02"][0] == 85  # PROVENANCE §3c
    # SOURCES.md §3: CNC 2022 counted 71,961 households, 7,384 of them in Antofagasta region.
    assert sum(n for _, n in by_region.values()) == 71961 and by_region["02"][1] == 7384


def test_cnc_2022_hectares_are_sup_m2_over_10000(parsed_2022, raw_dbf):
    expected = {row["FOLIO_NUM"]: float(row["SUP_M2"].replace(",", ".")) / 10_000 for row in raw_dbf}
    got = dict(zip(parsed_2022["folio"], parsed_2022["hectares"], strict=True))
    assert got.keys() == expected.keys()
    assert all(got[folio] == pytest.approx(expected[folio]) for folio in expected)


def test_cnc_2022_is_reprojected_and_lands_in_its_comunas(parsed_2022, comunas_r02):
    assert parsed_2022.crs.to_epsg() == 4326
    west, south, east, north = parsed_2022.total_bounds
    assert -76 < west < east < -66 and -56 < south < north < -17  # degrees, not metres
    located = locate_settlements(parsed_2022[parsed_2022["region_code"] == "02"], comunas_r02)
    mismatches = located[located["cut_mismatch"].fillna(True)]
    listing = mismatches[["settlement_id", "name", "comuna_code", "located_comuna_code"]].to_string()
    assert len(located) == 85
    assert len(mismatches) <= 0.05 * len(located), f"2022 polygons outside their CUT_C comuna:\n{listing}"


def test_2024_antofagasta_polygons_land_in_their_comunas(parsed_2024, comunas_r02):
    frame = parsed_2024["featureserver"]
    located = locate_settlements(frame[frame["region_code"] == "02"], comunas_r02)
    mismatches = located[located["cut_mismatch"].fillna(True)]
    listing = mismatches[["settlement_id", "name", "comuna_code", "located_comuna_code"]].to_string()
    assert len(mismatches) <= 0.05 * len(located), f"2024 polygons outside their CUT comuna:\n{listing}"


def test_national_location_with_overlapping_simplified_comunas_keeps_one_row_per_settlement(
    parsed_2022, shared_data
):
    comunas = gpd.read_file(shared_data / "boundaries" / "fcortes_comunas.geojson")
    comunas["comuna_code"] = [str(int(code)).zfill(5) for code in comunas["cod_comuna"]]
    located = locate_settlements(parsed_2022, comunas)
    assert located.index.equals(parsed_2022.index)
    known = located["cut_mismatch"].notna()
    assert known.all()  # every attributed comuna is covered by the national file
    agree = (~located["cut_mismatch"].astype(bool)).sum()
    assert agree >= 0.9 * len(located), f"only {agree} of {len(located)} polygons in their comuna"


# --- indicators --------------------------------------------------------------------------------


def test_change_2022_to_2024_matches_the_raw_files(parsed_2024, parsed_2022, raw_features, raw_dbf):
    both = pd.concat([parsed_2022, parsed_2024["featureserver"]], ignore_index=True)
    change = catastro_change(settlement_totals(both, "comuna"), 2022, 2024).set_index("territory_code")
    before = counts_by(raw_dbf, lambda r: r["CUT_C"], lambda r: int(float(r["N_HOG"])))
    after = counts_by(
        [f["properties"] for f in raw_features], lambda p: str(p["CUT"]).zfill(5), lambda p: p["N_HOG"]
    )
    assert set(change.index) == set(before) | set(after)
    for code in set(before) | set(after):
        n0, h0 = before.get(code, (0, 0))
        n1, h1 = after.get(code, (0, 0))
        row = change.loc[code]
        assert (row["settlements_change"], row["households_change"]) == (n1 - n0, h1 - h0), code
    region = catastro_change(settlement_totals(both, "region")).set_index("territory_code").loc["02"]
    assert (region["settlements_from"], region["settlements_to"]) == (85, 116)
    assert (region["households_from"], region["households_to"]) == (7384, 9361)


def test_change_refuses_a_missing_catastro(parsed_2022):
    with pytest.raises(ValueError, match="2024"):
        catastro_change(settlement_totals(parsed_2022, "region"), 2022, 2024)


def test_households_per_1000_uses_the_population_given(parsed_2024, raw_features, shared_data):
    population: dict[str, int] = defaultdict(int)
    path = shared_data / "health" / "ine_proyecciones_comunas_2002-2035_regiones01-04.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Region"] == "2":
                population[row["Comuna"].zfill(5)] += int(row["Poblacion 2024"])
    assert sum(population.values()) == 718232  # PROVENANCE §4b, region 2 in 2024
    frame = pd.DataFrame(
        {"territory": list(population), "year": 2024, "population": list(population.values())}
    )
    rates = households_per_1000(settlement_totals(parsed_2024["featureserver"], "comuna"), frame)
    assert list(rates.columns) == RATE_COLUMNS
    households = counts_by(
        [f["properties"] for f in raw_features], lambda p: str(p["CUT"]).zfill(5), lambda p: p["N_HOG"]
    )
    expected = {
        code: households[code][1] / population[code] * 1000 for code in population if code in households
    }
    got = dict(zip(rates["territory_code"], rates["households_per_1000_inhabitants"], strict=True))
    assert got == pytest.approx(expected)
    assert got["02101"] == pytest.approx(7773 / population["02101"] * 1000)


def test_households_per_1000_waits_for_population(parsed_2024):
    totals = settlement_totals(parsed_2024["featureserver"], "region")
    assert households_per_1000(totals, None).empty
    assert list(households_per_1000(totals, None).columns) == RATE_COLUMNS


# --- fetching through a fake Fetcher -----------------------------------------------------------


class PagedFakeFetcher:
    """Serves FeatureServer pages keyed by `resultOffset`, recording what was asked."""

    def __init__(self, pages: dict[int, bytes]):
        self.pages = pages
        self.requests: list[FetchRequest] = []

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        self.requests.append(request)
        return fake_payload(source, request, self.pages[request.params["resultOffset"]])


class FileFakeFetcher:
    """Serves whole files by URL (the CNC 2022 parts or archive)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[FetchRequest] = []

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        self.requests.append(request)
        return fake_payload(source, request, self.files[request.url])


def fake_payload(source: SourceInfo, request: FetchRequest, content: bytes) -> Payload:
    digest = hashlib.sha256(content).hexdigest()
    return Payload(
        source=source.id,
        name=request.name,
        url=request.url,
        content=content,
        sha256=digest,
        retrieved_at="2026-11-27T00:00:00Z",
        mode="sample",
        snapshot_id=f"fake-{digest[:8]}",
    )


def sample_pages(page_size: int) -> dict[int, bytes]:
    """The SAMPLE layer cut into ArcGIS GeoJSON pages, flagging every full page as truncated."""
    features = json.loads(SAMPLE_2024.read_text(encoding="utf-8"))["features"]
    pages = {}
    for offset in range(0, len(features), page_size):
        chunk = features[offset : offset + page_size]
        page = {"type": "FeatureCollection", "features": chunk}
        if len(chunk) == page_size:
            page["properties"] = {"exceededTransferLimit": True}
        pages[offset] = json.dumps(page).encode()
    return pages


LAYER_URL = "https://mirror.example/arcgis/rest/services/Catastros/Actualizacion_Catastro_Campamentos_2024/FeatureServer/0"


def test_fetch_2024_pages_through_the_fetcher_and_parse_them():
    fetcher = PagedFakeFetcher(sample_pages(3))
    payloads = mc.fetch_catastro_2024(fetcher, LAYER_URL, page_size=3)
    assert [r.params["resultOffset"] for r in fetcher.requests] == [0, 3, 6]
    assert all(r.url == LAYER_URL + "/query" and r.params["outSR"] == 4326 for r in fetcher.requests)
    paged = mc.parse_catastro_2024_pages(payloads)
    whole = mc.parse_catastro_2024_geojson(SAMPLE_2024)
    expected_folios = [str(f["properties"]["FOLIO"]) for f in json.loads(SAMPLE_2024.read_text())["features"]]
    assert list(paged["folio"]) == list(whole["folio"]) == expected_folios
    assert paged.drop(columns="geometry").equals(whole.drop(columns="geometry"))


def test_an_arcgis_error_served_with_http_200_is_a_clear_error():
    pages = sample_pages(3)
    pages[3] = json.dumps(
        {"error": {"code": 400, "message": "Invalid or missing input parameters.", "details": []}}
    ).encode()
    with pytest.raises(ParseError, match="HTTP 200.*400.*Invalid or missing input parameters"):
        mc.fetch_catastro_2024(PagedFakeFetcher(pages), LAYER_URL, page_size=3)


def test_an_error_page_is_refused_by_the_parser_too():
    error = b'{"error":{"code":498,"message":"Invalid token.","details":[]}}'
    with pytest.raises(ParseError, match="498"):
        mc.parse_catastro_2024_pages([sample_pages(3)[0], error])


def test_overlapping_pages_are_refused():
    pages = sample_pages(3)
    with pytest.raises(ParseError, match="appears twice"):
        mc.parse_catastro_2024_pages([pages[0], pages[0]])


def test_an_empty_layer_is_an_error_not_an_empty_table():
    with pytest.raises(ParseError, match="no settlements"):
        mc.parse_catastro_2024_pages([b'{"type":"FeatureCollection","features":[]}'])


def _sample_document() -> dict:
    return json.loads(SAMPLE_2024.read_text(encoding="utf-8"))


def test_a_missing_column_is_named():
    document = _sample_document()
    for feature in document["features"]:
        del feature["properties"]["N_HOG"]
    with pytest.raises(ParseError, match="N_HOG"):
        mc.parse_catastro_2024_geojson(json.dumps(document).encode())


def test_a_renamed_csv_column_is_named():
    header = "OBJECTID,FOLIO,NOMBRE,REGION,CUT_R,PROVINCIA,CUT_P,CUT_COMUNA,COMUNA,AN_CAT,N_HOG,FUENTE,OBS,HECTAREAS"
    row = "1,2101901,SAMPLE Toma,Antofagasta,02,Antofagasta,021,2101,Antofagasta, ,0, ,SAMPLE,0.5"
    with pytest.raises(ParseError, match="'CUT'"):
        mc.parse_catastro_2024_csv(("\ufeff" + header + "\n" + row + "\n").encode())


def test_a_bad_household_count_names_row_and_column():
    document = _sample_document()
    document["features"][1]["properties"]["N_HOG"] = 12.5
    with pytest.raises(ParseError, match="row 2, column N_HOG"):
        mc.parse_catastro_2024_geojson(json.dumps(document).encode())


def test_a_self_intersecting_polygon_is_repaired_and_flagged():
    document = _sample_document()
    bowtie = Polygon([(-70.380, -23.600), (-70.370, -23.590), (-70.370, -23.600), (-70.380, -23.590)])
    assert not bowtie.is_valid
    document["features"][0]["geometry"] = mapping(bowtie)
    frame = mc.parse_catastro_2024_geojson(json.dumps(document).encode())
    assert frame.loc[0, "quality_flags"] == "geometry_repaired"
    assert frame.loc[0, "geometry"].is_valid and frame.loc[0, "geometry"].geom_type in (
        "Polygon",
        "MultiPolygon",
    )
    # make_valid keeps both lobes: two triangles of base 0.01 and height 0.005 degrees
    assert frame.loc[0, "geometry"].area == pytest.approx(2 * 0.5 * 0.01 * 0.005)


def test_an_unrepairable_or_non_polygon_geometry_is_refused():
    document = _sample_document()
    document["features"][0]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[-70.38, -23.60], [-70.38, -23.59], [-70.38, -23.58], [-70.38, -23.60]]],
    }
    with pytest.raises(ParseError, match="cannot be repaired"):
        mc.parse_catastro_2024_geojson(json.dumps(document).encode())
    document["features"][0]["geometry"] = {"type": "Point", "coordinates": [-70.38, -23.60]}
    with pytest.raises(ParseError, match="is a Point"):
        mc.parse_catastro_2024_geojson(json.dumps(document).encode())


# --- CNC 2022 archive and parts ------------------------------------------------------------------


def _sample_members() -> dict[str, bytes]:
    with zipfile.ZipFile(SAMPLE_2022_ZIP) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _sample_dbf_rows() -> list[dict[str, str]]:
    return read_dbf_bytes(_sample_members()["SAMPLE_CNC2022.dbf"])


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_cnc_2022_requests_follow_the_endpoint_given():
    zipped = mc.cnc_2022_requests("file:///mirror/cnc2022.zip")
    assert [(r.url, r.expect) for r in zipped] == [("file:///mirror/cnc2022.zip", "zip")]
    parts = mc.cnc_2022_requests("https://mirror.example/CNC2022")
    assert [r.url for r in parts] == [f"https://mirror.example/CNC2022{p}" for p in mc.SHAPEFILE_PARTS]
    assert mc.cnc_2022_requests(mc.ENDPOINTS["cnc_2022_shapefile"])[0].url.endswith("/CNC2022.shp")


def test_cnc_2022_sample_reads_alike_from_zip_path_bytes_and_fetched_parts():
    from_path = mc.parse_cnc_2022(SAMPLE_2022_ZIP)
    from_bytes = mc.parse_cnc_2022(SAMPLE_2022_ZIP.read_bytes())
    members = _sample_members()
    stem = "https://mirror.example/SAMPLE_CNC2022"
    fetcher = FileFakeFetcher(
        {stem + part: members[f"SAMPLE_CNC2022{part.lower()}"] for part in mc.SHAPEFILE_PARTS}
    )
    from_parts = mc.parse_cnc_2022(mc.fetch_cnc_2022(fetcher, stem))
    zip_fetcher = FileFakeFetcher({"file:///mirror/sample.zip": SAMPLE_2022_ZIP.read_bytes()})
    from_zip_payload = mc.parse_cnc_2022(mc.fetch_cnc_2022(zip_fetcher, "file:///mirror/sample.zip"))
    for other in (from_bytes, from_parts, from_zip_payload):
        pd.testing.assert_frame_equal(from_path, other)
    records = {row["FOLIO_NUM"] for row in _sample_dbf_rows()}
    assert from_path.crs.to_epsg() == 4326 and set(from_path["folio"]) == records
    assert from_path["name"].str.startswith("SAMPLE").all()


def test_a_shapefile_without_prj_is_refused():
    members = {name: content for name, content in _sample_members().items() if not name.endswith(".prj")}
    with pytest.raises(ParseError, match="no CRS"):
        mc.parse_cnc_2022(_zip(members))


def test_metres_declared_as_degrees_are_caught():
    members = _sample_members()
    members["SAMPLE_CNC2022.prj"] = (
        b'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
        b'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
    )
    with pytest.raises(ParseError, match="outside Chile"):
        mc.parse_cnc_2022(_zip(members))


def test_a_zip_slip_archive_is_refused():
    members = _sample_members()
    members["../evil.shp"] = members.pop("SAMPLE_CNC2022.shp")
    with pytest.raises(ParseError, match="zip-slip"):
        mc.parse_cnc_2022(_zip(members))


# --- the SAMPLE snapshot -------------------------------------------------------------------------


def test_samples_are_what_the_generator_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(tmp_path)
    for path in written:
        assert "sample" in path.name.lower()
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes(), path.name


def test_sample_settlements_land_inside_their_comunas_and_change_is_nontrivial(comunas_r02):
    sample_2024 = mc.parse_catastro_2024_geojson(SAMPLE_2024)
    sample_2022 = mc.parse_cnc_2022(SAMPLE_2022_ZIP)
    calama_basin = gpd.GeoDataFrame(  # an invented box, only to exercise basin location
        {"basin_code": ["SAMPLE-LOA"]}, geometry=[box(-69.0, -22.55, -68.85, -22.40)], crs="EPSG:4326"
    )
    both = pd.concat([sample_2022, sample_2024], ignore_index=True)
    located = locate_settlements(both, comunas_r02, calama_basin)
    assert not located["cut_mismatch"].any()
    assert located["cut_mismatch"].notna().all()
    assert set(located["comuna_code"]) == {"02101", "02104", "02201", "02301"}
    in_basin = located[located["located_basin_code"] == "SAMPLE-LOA"]
    assert set(in_basin["comuna_code"]) == {"02201"}
    basin_totals = settlement_totals(located, "basin").set_index("catastro_year")
    calama = {
        year: int((both["comuna_code"] == "02201")[both["catastro_year"] == year].sum())
        for year in (2022, 2024)
    }
    assert basin_totals["settlements"].to_dict() == calama
    change = catastro_change(settlement_totals(both, "comuna")).set_index("territory_code")
    before = Counter(row["CUT_C"] for row in _sample_dbf_rows())
    after = Counter(str(f["properties"]["CUT"]).zfill(5) for f in _sample_document()["features"])
    expected = {code: after[code] - before[code] for code in before | after}
    assert change["settlements_change"].to_dict() == expected
    assert any(expected.values())  # one settlement is new in 2024, one gone
