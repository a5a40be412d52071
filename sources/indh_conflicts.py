"""INDH map of socio-environmental conflicts (Mapa de Conflictos Socioambientales): the API payload.

A JSON array, one object per conflict with the same keys (PROVENANCE_new_families.md 2). Quirks
handled: misspelled keys (`estadoConflico`, `confictoAmbitoDerechos`); `region` is null in some
records while `regiones` still lists the region (INDH ids: 1-15 are the official region numbers,
`Ñuble` has its own id and roman numeral XVI, `Interregional` is no region); there is no comuna
code at all, so the comuna and basin come from the map point; a point is `marcaMapa.latitud/longitud`,
or for a polygon (`esPoligono`) the string `"lat, lon,lat, lon,..."`, whose representative point is
used. A conflict with neither, or with a point outside Chile, is kept and flagged, never dropped.
"""

from __future__ import annotations

import json

import pandas as pd
import shapely
from shapely.geometry import Point, Polygon

from sources import specs
from sources.base import FetchRequest, ParseError, fold_name
from sources.geometry import outside_chile

SOURCE = specs.source("indh_conflicts")
ENDPOINTS = specs.endpoints("indh_conflicts")
# The map's page of one conflict, as users' code links it (not an API guarantee).
CONFLICT_URL = "https://mapaconflictos.indh.cl/conflicto/{id}"
ROMAN = {
    "I": "01", "II": "02", "III": "03", "IV": "04", "V": "05", "VI": "06", "VII": "07", "VIII": "08",
    "IX": "09", "X": "10", "XI": "11", "XII": "12", "XIII": "13", "XIV": "14", "XV": "15", "XVI": "16",
}  # fmt: skip
STATUS = {"activo": "active", "latente": "latent", "archivado": "archived", "cerrado": "closed"}
CONFLICT_COLUMNS = [
    "conflict_id",
    "title",
    "start_year",
    "status",
    "status_published",
    "sector",
    "indigenous_territory",
    "region_code",
    "regions_stated",
    "longitude",
    "latitude",
    "location_kind",
    "location_flag",
    "url",
]
REQUIRED_KEYS = (
    "id",
    "tituloConflicto",
    "anyo",
    "marcaMapa",
    "estadoConflico",
    "sectorProductivo",
    "regiones",
)


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    return [FetchRequest(name="conflicts", url=endpoints["conflicts"], expect="json")]


def _regions(record: dict) -> list[str]:
    """Official 2-digit codes of the regions the record names (`region`, else `regiones`)."""
    listed = [record["region"]] if record.get("region") else list(record.get("regiones") or [])
    codes = []
    for region in listed:
        roman = (region.get("romano") or "").strip().upper()
        if roman in ROMAN:
            codes.append(ROMAN[roman])
        elif fold_name(region.get("nombreRegion") or "") != "interregional":
            raise ValueError(f"region {region!r} is neither a numbered region nor 'Interregional'")
    return sorted(set(codes))


def _polygon_point(text: str) -> Point:
    numbers = [float(part) for part in text.replace(" ", "").split(",") if part]
    if len(numbers) < 6 or len(numbers) % 2:
        raise ValueError(f"polygon string with {len(numbers)} numbers, not lat,lon pairs")
    ring = [(numbers[i + 1], numbers[i]) for i in range(0, len(numbers), 2)]  # (lon, lat)
    polygon = Polygon(ring)
    if not polygon.is_valid:
        polygon = shapely.make_valid(polygon)
    return polygon.representative_point()


def _location(mark: dict | None) -> tuple[float | None, float | None, str, str | None]:
    """(lon, lat, kind, flag) of a map mark: a point, a polygon's representative point, or none."""
    mark = mark or {}
    lat, lon = mark.get("latitud"), mark.get("longitud")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        lon, lat, kind = float(lon), float(lat), "point"
    elif mark.get("esPoligono") and (mark.get("poligono") or "").strip():
        point = _polygon_point(mark["poligono"])
        lon, lat, kind = point.x, point.y, "polygon"
    else:
        return None, None, "none", "no map point: placed by its stated region only"
    if outside_chile(lon, lat):
        return lon, lat, kind, f"map point outside Chile ({lon}, {lat}): placed by its stated region only"
    return lon, lat, kind, None


def _record(record: dict, snapshot: str | None) -> dict:
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ParseError(SOURCE.id, f"conflict {record.get('id')!r} lacks {missing}", snapshot)
    try:
        regions = _regions(record)
        lon, lat, kind, flag = _location(record["marcaMapa"])
    except ValueError as exc:
        raise ParseError(SOURCE.id, f"conflict {record['id']}: {exc}", snapshot) from exc
    status = (record["estadoConflico"] or {}).get("glosa")
    if fold_name(status or "") not in STATUS:
        raise ParseError(
            SOURCE.id, f"conflict {record['id']}: status {status!r} is not one of {sorted(STATUS)}", snapshot
        )
    year = record["anyo"]
    return {
        "conflict_id": str(int(record["id"])),
        "title": " ".join(str(record["tituloConflicto"]).split()),
        "start_year": int(year) if isinstance(year, int) and not isinstance(year, bool) else None,
        "status": STATUS[fold_name(status)],
        "status_published": status,
        "sector": ((record["sectorProductivo"] or {}).get("nombreSector") or "").strip() or None,
        "indigenous_territory": bool(record.get("esTerritorioIndigena")),
        "region_code": regions[0] if len(regions) == 1 else None,
        "regions_stated": ",".join(regions) or None,
        "longitude": lon,
        "latitude": lat,
        "location_kind": kind,
        "location_flag": flag,
        "url": CONFLICT_URL.format(id=int(record["id"])),
    }


def parse_conflicts(content: bytes, snapshot: str | None = None) -> pd.DataFrame:
    """Every conflict of the payload (`CONFLICT_COLUMNS`), none dropped: odd ones are flagged."""
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(SOURCE.id, f"not JSON ({exc})", snapshot) from exc
    if not isinstance(document, list) or not document or not all(isinstance(r, dict) for r in document):
        raise ParseError(SOURCE.id, "expected a non-empty JSON array of conflict objects", snapshot)
    frame = pd.DataFrame([_record(record, snapshot) for record in document])[CONFLICT_COLUMNS]
    repeated = frame.loc[frame["conflict_id"].duplicated(), "conflict_id"]
    if not repeated.empty:
        raise ParseError(SOURCE.id, f"conflict ids repeated: {sorted(set(repeated))[:5]}", snapshot)
    return frame
