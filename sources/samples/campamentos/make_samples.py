"""Write the SAMPLE campamento snapshots: invented settlements in the real MINVU wire formats.

Run `python sources/samples/campamentos/make_samples.py [OUT_DIR]`. The output is
deterministic (fixed coordinates, fixed DBF and zip dates), so a test can regenerate it and
compare bytes. Every settlement here is invented; names start with "SAMPLE".
"""

from __future__ import annotations

import io
import json
import math
import sys
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import Polygon, mapping

HERE = Path(__file__).resolve().parent
FEATURESERVER_2024 = "sample_minvu_catastro_campamentos_2024_featureserver.geojson"
CNC_2022_ZIP = "sample_CNC2022_shp.zip"
FIXED_DATE = (2022, 10, 28, 0, 0, 0)
SAMPLE_NOTE = "SAMPLE DATA: invented settlement for tests, not a real campamento"

COMUNAS = {
    "02101": ("Antofagasta", "021", "Antofagasta"),
    "02104": ("Taltal", "021", "Antofagasta"),
    "02201": ("Calama", "022", "El Loa"),
    "02301": ("Tocopilla", "023", "Tocopilla"),
}

# folio, name, comuna, centre (lat, lon), radius (degrees), AN_CAT, FUENTE,
# households in 2024 (None: gone by 2024), households in 2022 (None: new in 2024)
SETTLEMENTS = [
    (
        2101901,
        "SAMPLE Campamento Alto Norte",
        "02101",
        (-23.595, -70.375),
        0.0016,
        "CATASTRO_2019",
        "MINVU",
        120,
        95,
    ),
    (
        2101902,
        "SAMPLE Campamento Quebrada Sur",
        "02101",
        (-23.660, -70.385),
        0.0010,
        "CATASTRO_2022",
        "MUNICIPALIDAD",
        45,
        40,
    ),
    (2101903, "SAMPLE Toma Nueva", "02101", (-23.550, -70.370), 0.0006, " ", " ", 0, None),
    (
        2201901,
        "SAMPLE Campamento Oasis",
        "02201",
        (-22.450, -68.920),
        0.0012,
        "CATASTRO_2022",
        "TECHO",
        60,
        52,
    ),
    (2201902, "SAMPLE Campamento Ribera del Loa", "02201", (-22.470, -68.950), 0.0008, " ", "INE", 25, None),
    (
        2104901,
        "SAMPLE Campamento Caleta",
        "02104",
        (-25.410, -70.475),
        0.0007,
        "CATASTRO_2011",
        "MINVU",
        18,
        18,
    ),
    (
        2301901,
        "SAMPLE Campamento Costanera",
        "02301",
        (-22.085, -70.185),
        0.0006,
        "CATASTRO_2019",
        "MUNICIPALIDAD",
        12,
        14,
    ),
    (
        2301902,
        "SAMPLE Campamento Cerro Alto",
        "02301",
        (-22.100, -70.190),
        0.0005,
        "CATASTRO_2019",
        "MINVU",
        None,
        9,
    ),
]

_GEOD = Geod(ellps="WGS84")
_TO_WEB_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def settlement_polygon(centre: tuple[float, float], radius: float) -> Polygon:
    """An irregular hexagon around the centre, so polygons do not look machine-made squares."""
    lat, lon = centre
    stretch = (1.0, 0.8, 1.1, 0.9, 1.2, 0.85)
    ring = []
    for step, factor in enumerate(stretch):
        angle = math.radians(30 + 60 * step)
        ring.append(
            (
                round(lon + radius * factor * math.cos(angle), 7),
                round(lat + radius * factor * math.sin(angle), 7),
            )
        )
    return Polygon(ring)


def web_mercator(polygon: Polygon) -> Polygon:
    return shapely.transform(polygon, _TO_WEB_MERCATOR.transform, interleaved=False)


def featureserver_2024() -> dict:
    """The layer as `/query?f=geojson` answers it: one page, top-level ids, no crs member."""
    features = []
    rows = [row for row in SETTLEMENTS if row[7] is not None]
    for object_id, (folio, name, cut, centre, radius, an_cat, fuente, households, _) in enumerate(rows, 1):
        comuna, cut_p, provincia = COMUNAS[cut]
        polygon = settlement_polygon(centre, radius)
        planar = web_mercator(polygon)
        area, perimeter = _GEOD.geometry_area_perimeter(polygon)
        properties = {
            "OBJECTID_12": object_id,
            "OBJECTID": object_id,
            "OBJECTID_1": object_id,
            "FOLIO": folio,
            "NOMBRE": name,
            "REGION": "Antofagasta",
            "CUT_R": "02",
            "PROVINCIA": provincia,
            "CUT_P": cut_p,
            "CUT": int(cut),
            "COMUNA": comuna,
            "AN_CAT": an_cat,
            "N_HOG": households,
            "FUENTE": fuente,
            "OBS": SAMPLE_NOTE,
            "HECTAREAS": round(planar.area / 10_000, 8),
            "Shape_Leng": round(planar.length, 8),
            "Shape__Area": round(abs(area), 8),
            "Shape__Length": round(perimeter, 8),
        }
        features.append(
            {"type": "Feature", "id": object_id, "geometry": mapping(polygon), "properties": properties}
        )
    return {"type": "FeatureCollection", "features": features}


def cnc_2022_frame() -> gpd.GeoDataFrame:
    """The CNC 2022 attribute layout, geometry in Web Mercator as the published shapefile."""
    records, geometries = [], []
    for folio, name, cut, centre, radius, an_cat, _fuente, _households_2024, households in SETTLEMENTS:
        if households is None:
            continue
        comuna, cut_p, provincia = COMUNAS[cut]
        planar = web_mercator(settlement_polygon(centre, radius))
        records.append(
            {
                "FOLIO_NUM": folio,
                "FOLIO": float(folio),
                "NOMBRE": name,
                "REGION": "Antofagasta",
                "CUT_R": "02",
                "PROVINCIA": provincia,
                "CUT_P": cut_p,
                "COMUNA": comuna,
                "CUT_C": cut,
                "AN_CAT": an_cat,
                "N_HOG": float(households),
                "SUP_M2": f"{planar.area:.7f}".replace(".", ","),
                "Shape_Leng": round(planar.length, 6),
                "Shape_Area": round(planar.area, 6),
            }
        )
        geometries.append(planar)
    return gpd.GeoDataFrame(records, geometry=geometries, crs="EPSG:3857")


def cnc_2022_zip() -> bytes:
    """A zip of the shapefile parts, with the DBF update date and zip times pinned."""
    with tempfile.TemporaryDirectory() as directory:
        shp = Path(directory) / "SAMPLE_CNC2022.shp"
        pyogrio.write_dataframe(cnc_2022_frame(), shp, driver="ESRI Shapefile", encoding="UTF-8")
        dbf = shp.with_suffix(".dbf")
        header = bytearray(dbf.read_bytes())
        header[1:4] = bytes((FIXED_DATE[0] - 1900, FIXED_DATE[1], FIXED_DATE[2]))
        dbf.write_bytes(bytes(header))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(directory).iterdir()):
                info = zipfile.ZipInfo(part.name, date_time=FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, part.read_bytes())
        return buffer.getvalue()


def main(out_dir: Path = HERE) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    geojson = out_dir / FEATURESERVER_2024
    geojson.write_text(json.dumps(featureserver_2024(), ensure_ascii=False) + "\n", encoding="utf-8")
    archive = out_dir / CNC_2022_ZIP
    archive.write_bytes(cnc_2022_zip())
    return [geojson, archive]


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(written)
