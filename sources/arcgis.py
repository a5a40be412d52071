"""Paging through an ArcGIS FeatureServer layer, shared by the INE and MINVU layers.

ArcGIS caps a page at `maxRecordCount` (1,000–2,000 records) and signals that more remain
with `exceededTransferLimit` (or `properties.exceededTransferLimit` in GeoJSON). It also
answers errors as JSON with HTTP 200, which must never be read as an empty layer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from sources.base import Fetcher, FetchRequest, ParseError, Payload, SourceInfo

MAX_PAGES = 500


def query_request(layer_url: str, offset: int, page_size: int, name: str, out_sr: int = 4326) -> FetchRequest:
    """The `/query` request for one page of a layer, as GeoJSON in `out_sr`."""
    return FetchRequest(
        name=f"{name}-offset-{offset}",
        url=layer_url.rstrip("/") + "/query",
        expect="geojson",
        params={
            "where": "1=1",
            "outFields": "*",
            "outSR": out_sr,
            "f": "geojson",
            "orderByFields": "OBJECTID",
            "resultOffset": offset,
            "resultRecordCount": page_size,
        },
    )


def parse_page(source: str, payload: bytes, snapshot: str | None = None) -> dict:
    """Decode one page and refuse ArcGIS's error-with-200 answers."""
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise ParseError(source, f"ArcGIS page is not JSON ({exc})", snapshot) from exc
    if not isinstance(document, dict):
        raise ParseError(source, "ArcGIS page is not a JSON object", snapshot)
    if "error" in document:
        error = document["error"] or {}
        raise ParseError(
            source,
            f"ArcGIS answered an error with HTTP 200: code {error.get('code')}: {error.get('message')}",
            snapshot,
        )
    if document.get("type") != "FeatureCollection" or not isinstance(document.get("features"), list):
        raise ParseError(source, "ArcGIS page is not a GeoJSON FeatureCollection", snapshot)
    return document


def exceeded_transfer_limit(page: dict) -> bool:
    return bool(
        page.get("exceededTransferLimit") or (page.get("properties") or {}).get("exceededTransferLimit")
    )


def fetch_layer(
    fetcher: Fetcher, source: SourceInfo, layer_url: str, name: str, page_size: int = 1000
) -> Iterator[tuple[Payload, dict]]:
    """Yield (payload, decoded page) for every page of a layer, following `resultOffset`."""
    offset = 0
    for _ in range(MAX_PAGES):
        payload = fetcher.fetch(source, query_request(layer_url, offset, page_size, name))
        page = parse_page(source.id, payload.content, payload.snapshot_id)
        yield payload, page
        count = len(page["features"])
        if count == 0 or not exceeded_transfer_limit(page) and count < page_size:
            return
        offset += count
    raise ParseError(source.id, f"layer {layer_url} did not end within {MAX_PAGES} pages")
