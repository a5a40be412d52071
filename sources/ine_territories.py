"""INE Censo 2024 comunas from the official ArcGIS FeatureServer: the live boundary layer.

Layer 0 holds one polygon per comuna (346) with `CUT, REGION, PROVINCIA, COMUNA` and census
indicators. It is paged through `sources.arcgis.fetch_layer` (GeoJSON, EPSG:4326) and parsed
into the same comuna frame as the curated mirrors (`sources.boundaries.COMUNA_COLUMNS`), plus
`region_label` and `province_label` holding REGION and PROVINCIA as published (the docs do not
say whether they are names or codes; numeric values are also checked against the CUT).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import geopandas as gpd
import pandas as pd

from sources import specs
from sources.arcgis import fetch_layer, parse_page
from sources.base import Fetcher, ParseError, Payload
from sources.boundaries import comuna_frame, features_frame

SOURCE = specs.source("ine_censo2024_territories")

ENDPOINTS = specs.endpoints("ine_censo2024_territories")
COMUNA_LAYER = 0
REQUIRED_FIELDS = ("CUT", "REGION", "PROVINCIA", "COMUNA")


def layer_url(featureserver: str, layer: int = COMUNA_LAYER) -> str:
    return f"{featureserver.rstrip('/')}/{layer}"


def fetch_comuna_pages(
    fetcher: Fetcher, featureserver: str, layer: int = COMUNA_LAYER, page_size: int = 1000
) -> list[tuple[Payload, dict]]:
    """Every page of the comuna layer as (payload, decoded GeoJSON page)."""
    return list(
        fetch_layer(fetcher, SOURCE, layer_url(featureserver, layer), "ine-censo2024-comunas", page_size)
    )


def _is_code_column(values: pd.Series) -> bool:
    return bool(values.map(lambda v: re.fullmatch(r"\s*\d+(\.0+)?\s*", str(v)) is not None).all())


def parse_comuna_pages(pages: Iterable[dict | bytes], snapshot: str | None = None) -> gpd.GeoDataFrame:
    """GeoJSON pages of layer 0 -> the comuna frame (+ region_label, province_label).

    Raw bytes are checked for ArcGIS's error-with-HTTP-200 answers. A comuna repeated across
    pages (a paging bug upstream) is a ParseError, as is a missing field.
    """
    features: list[dict] = []
    for page in pages:
        document = parse_page(SOURCE.id, page, snapshot) if isinstance(page, bytes) else page
        features.extend(document["features"])
    if not features:
        raise ParseError(SOURCE.id, "the comuna layer returned no features", snapshot)
    raw = features_frame(SOURCE.id, features, snapshot=snapshot)
    missing = [field for field in REQUIRED_FIELDS if field not in raw.columns]
    if missing:
        raise ParseError(
            SOURCE.id, f"required field(s) {missing} missing (fields are {list(raw.columns)})", snapshot
        )
    return comuna_frame(
        SOURCE.id,
        raw,
        comuna="CUT",
        name="COMUNA",
        province="PROVINCIA" if _is_code_column(raw["PROVINCIA"]) else None,
        region="REGION" if _is_code_column(raw["REGION"]) else None,
        extra={"region_label": "REGION", "province_label": "PROVINCIA"},
        snapshot=snapshot,
    )


def load_comunas(
    fetcher: Fetcher, featureserver: str, layer: int = COMUNA_LAYER, page_size: int = 1000
) -> tuple[gpd.GeoDataFrame, list[Payload]]:
    """Fetch and parse the comuna layer; the payloads are returned for provenance."""
    fetched = fetch_comuna_pages(fetcher, featureserver, layer, page_size)
    snapshot = fetched[-1][0].snapshot_id if fetched else None
    comunas = parse_comuna_pages([page for _, page in fetched], snapshot)
    return comunas, [payload for payload, _ in fetched]
