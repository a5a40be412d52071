"""INE Censo 2024 comuna layer through ArcGIS paging, with a fake Fetcher serving pages written here.

The pages below are SAMPLE data in the ArcGIS `f=geojson` wire format: the CUT codes and
names are real, the polygons are invented rough boxes and not the INE boundaries.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from sources import ine_territories
from sources.base import FetchRequest, ParseError, Payload, SourceInfo

ENDPOINT = "https://mirror.example/arcgis/rest/services/CENSO2024_V2_gdb/FeatureServer"


def sample_feature(object_id, cut, region, province, comuna, west, south):
    ring = [[west, south], [west + 0.5, south], [west + 0.5, south + 0.5], [west, south + 0.5], [west, south]]
    return {
        "type": "Feature",
        "id": object_id,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "OBJECTID": object_id,
            "CUT": cut,
            "REGION": region,
            "PROVINCIA": province,
            "COMUNA": comuna,
        },
    }


def page(features, more):
    document = {"type": "FeatureCollection", "features": features}
    if more:
        document["properties"] = {"exceededTransferLimit": True}
    return json.dumps(document).encode()


SAMPLE_PAGES = {
    0: page(
        [
            sample_feature(1, "02101", "Antofagasta", "Antofagasta", "Antofagasta", -70.5, -24.0),
            sample_feature(2, 2201, "Antofagasta", "El Loa", "Calama", -69.0, -22.6),
        ],
        more=True,
    ),
    2: page(
        [
            sample_feature(3, "02202", "Antofagasta", "El Loa", "Ollagüe", -68.3, -21.5),
            sample_feature(4, "02203", "Antofagasta", "El Loa", "San Pedro de Atacama", -68.3, -23.2),
        ],
        more=True,
    ),
    4: page([sample_feature(5, "02301", "Antofagasta", "Tocopilla", "Tocopilla", -70.2, -22.3)], more=False),
}


class FakeFetcher:
    """Serves the page for the request's resultOffset and records what was asked."""

    def __init__(self, pages: dict[int, bytes]):
        self.pages = pages
        self.requests: list[FetchRequest] = []

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        self.requests.append(request)
        content = self.pages[request.params["resultOffset"]]
        return Payload(
            source=source.id,
            name=request.name,
            url=request.url,
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            retrieved_at="2026-11-27T00:00:00Z",
            mode="sample",
            snapshot_id=f"snap-{request.params['resultOffset']}",
        )


def test_pages_are_followed_and_parsed_to_the_comuna_frame():
    fetcher = FakeFetcher(SAMPLE_PAGES)
    comunas, payloads = ine_territories.load_comunas(fetcher, ENDPOINT, page_size=2)
    assert [r.params["resultOffset"] for r in fetcher.requests] == [0, 2, 4]
    assert {r.url for r in fetcher.requests} == {ENDPOINT + "/0/query"}
    assert len(payloads) == 3
    assert list(comunas["comuna_code"]) == ["02101", "02201", "02202", "02203", "02301"]
    assert list(comunas["province_code"]) == ["021", "022", "022", "022", "023"]
    assert set(comunas["region_code"]) == {"02"}
    assert comunas.set_index("comuna_code").loc["02202", "name"] == "Ollagüe"
    assert set(comunas["region_label"]) == {"Antofagasta"}
    assert comunas.crs.to_epsg() == 4326 and comunas.geometry.is_valid.all()
    assert (comunas["area_km2"] > 2000).all()  # half-degree boxes near 22–24 °S are about 2,800 km²


def test_error_json_with_http_200_is_a_parse_error():
    error = json.dumps(
        {"error": {"code": 400, "message": "Invalid or missing input parameters.", "details": []}}
    )
    fetcher = FakeFetcher({0: SAMPLE_PAGES[0], 2: error.encode()})
    with pytest.raises(ParseError, match="error with HTTP 200: code 400: Invalid or missing input") as caught:
        ine_territories.load_comunas(fetcher, ENDPOINT, page_size=2)
    assert caught.value.snapshot == "snap-2"


def test_raw_error_page_bytes_are_refused_too():
    error = json.dumps({"error": {"code": 498, "message": "Invalid token."}}).encode()
    with pytest.raises(ParseError, match="Invalid token"):
        ine_territories.parse_comuna_pages([error])


def test_comuna_repeated_across_pages_is_refused():
    with pytest.raises(ParseError, match=r"\['02101', '02201'\] appear more than once"):
        ine_territories.parse_comuna_pages([SAMPLE_PAGES[0], SAMPLE_PAGES[0]])


def test_missing_field_is_named():
    document = json.loads(SAMPLE_PAGES[4])
    del document["features"][0]["properties"]["CUT"]
    with pytest.raises(ParseError, match=r"\['CUT'\] missing"):
        ine_territories.parse_comuna_pages([json.dumps(document).encode()])


def test_numeric_region_codes_are_checked_against_the_cut():
    document = json.loads(SAMPLE_PAGES[4])
    document["features"][0]["properties"].update({"REGION": 3, "PROVINCIA": 23})
    with pytest.raises(ParseError, match="'REGION' says '03' but the comuna code implies '02'"):
        ine_territories.parse_comuna_pages([json.dumps(document).encode()])
