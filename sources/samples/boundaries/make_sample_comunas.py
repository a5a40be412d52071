"""Write the SAMPLE INE comuna layer: invented rough polygons in the ArcGIS `f=geojson` wire format.

The CUT codes, names, provinces and regions are real; every polygon is a hand-drawn block on
a coarse lon/lat grid, NOT the INE boundary. The 9 Antofagasta comunas tile their block of
the grid edge to edge (so region 02 is their union); the comparison comunas are isolated
blocks near their real places. It exists so `make run` and the tests can build territories
and the comuna × basin crosswalk offline.

    .venv/bin/python sources/samples/boundaries/make_sample_comunas.py

writes `SAMPLE_ine_censo2024_comunas.geojson` next to this file, byte for byte the same on
every run (fixed order, two-decimal coordinates, sorted keys).
"""

from __future__ import annotations

import json
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "SAMPLE_ine_censo2024_comunas.geojson"
NOTE = "SAMPLE: invented rough polygon, not the INE boundary"

# Grid lines of the Antofagasta block (degrees). Columns west -> east, rows north -> south;
# the south of the block stops further west (Taltal at -68.30, Antofagasta at -67.60).
A, B, C, D, E, F, G = -70.60, -70.30, -69.85, -69.20, -68.40, -67.90, -67.00
TALTAL_EAST, ANTOFAGASTA_EAST = -68.30, -67.60
R0, R1, R2, R3, R4, R3B, R5, R6, R7 = -21.00, -21.40, -22.00, -22.60, -22.90, -23.30, -24.00, -25.00, -26.05


def box(west: float, south: float, east: float, north: float) -> list[tuple[float, float]]:
    return [(west, south), (east, south), (east, north), (west, north)]


# (CUT, REGION, PROVINCIA, COMUNA, exterior ring without the closing vertex, counter-clockwise)
COMUNAS: list[tuple[str, str, str, str, list[tuple[float, float]]]] = [
    (
        "02101",
        "Antofagasta",
        "Antofagasta",
        "Antofagasta",
        [(A, R6), (ANTOFAGASTA_EAST, R6), (ANTOFAGASTA_EAST, R5), (C, R5), (C, R3B), (A, R3B)],
    ),
    ("02102", "Antofagasta", "Antofagasta", "Mejillones", box(A, R3B, C, R3)),
    (
        "02103",
        "Antofagasta",
        "Antofagasta",
        "Sierra Gorda",
        [(C, R5), (E, R5), (E, R4), (D, R4), (D, R3), (C, R3)],
    ),
    ("02104", "Antofagasta", "Antofagasta", "Taltal", box(A, R7, TALTAL_EAST, R6)),
    ("02201", "Antofagasta", "El Loa", "Calama", box(D, R4, E, R0)),
    ("02202", "Antofagasta", "El Loa", "Ollagüe", box(E, R2, F, R0)),
    ("02203", "Antofagasta", "El Loa", "San Pedro de Atacama", box(E, R5, G, R2)),
    ("02301", "Antofagasta", "Tocopilla", "Tocopilla", box(B, R3, C, R1)),
    ("02302", "Antofagasta", "Tocopilla", "María Elena", box(C, R3, D, R1)),
    # comparison comunas: Pica borders the block on the north; the others stand alone
    (
        "01405",
        "Tarapacá",
        "Tamarugal",
        "Pica",
        [(C, R1), (D, R1), (D, R0), (F, R0), (F, -20.40), (C, -20.40)],
    ),
    ("03101", "Atacama", "Copiapó", "Copiapó", box(-70.80, -27.90, -69.30, -26.90)),
    ("05101", "Valparaíso", "Valparaíso", "Valparaíso", box(-71.75, -33.00, -71.55, -32.85)),
    ("08101", "Biobío", "Concepción", "Concepción", box(-73.10, -36.90, -72.95, -36.75)),
    ("13101", "Metropolitana de Santiago", "Santiago", "Santiago", box(-70.69, -33.47, -70.63, -33.43)),
]


def feature(object_id: int, cut: str, region: str, province: str, comuna: str, ring) -> dict:
    closed = [[round(x, 2), round(y, 2)] for x, y in [*ring, ring[0]]]
    return {
        "type": "Feature",
        "id": object_id,
        "geometry": {"type": "Polygon", "coordinates": [closed]},
        "properties": {
            "OBJECTID": object_id,
            "CUT": cut,
            "REGION": region,
            "PROVINCIA": province,
            "COMUNA": comuna,
            "NOTA": NOTE,
        },
    }


def sample_layer() -> dict:
    """One `f=geojson` page holding the whole SAMPLE layer (no `exceededTransferLimit`: it is the last page)."""
    return {
        "type": "FeatureCollection",
        "features": [feature(number, *row) for number, row in enumerate(COMUNAS, start=1)],
    }


def write(path: Path = OUTPUT) -> Path:
    path.write_text(json.dumps(sample_layer(), ensure_ascii=False, sort_keys=True, indent=1) + "\n", "utf-8")
    return path


if __name__ == "__main__":
    print(write())
