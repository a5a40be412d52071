"""DGA BNA river basins (cuencas, subcuencas, subsubcuencas) from the DGA Mapoteca shapefile zips.

Basin membership must come from these polygons, not from gauge-code prefixes (the CR2
station list files the Loa under two basin codes). The zip is unpacked with the safe
extractor, read with pyogrio, and reprojected explicitly from what its `.prj` says to
EPSG:4326; a shapefile without `.prj` is refused, since guessing UTM 19S vs WGS84 silently
misplaces everything.

Output (`parse_basins`): basin_code (str: 3 digits for a cuenca, 4 subcuenca, 5
subsubcuenca), basin_name, level, cuenca_code (3), subcuenca_code (4 or <NA>),
geometry_repaired, area_km2 (equal-area CRS), geometry (EPSG:4326).

No real BNA file is available to the project's tests: `write_sample_archive` writes a
clearly labelled SAMPLE with approximate polygons (`sources/samples/boundaries/`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from shapely.geometry import Polygon

from sources import specs
from sources.archives import DEFAULT_LIMITS, Archive, ArchiveLimits, extract_archive
from sources.base import FetchRequest, ParseError, is_missing
from sources.geometry import WGS84, area_km2, repair_polygons

SOURCE = specs.source("dga_bna_basins")

# Only the cuencas zip has a default URL; `subcuencas` and `subsubcuencas` are optional (see the spec).
ENDPOINTS = specs.endpoints("dga_bna_basins")


@dataclass(frozen=True)
class Level:
    code: str
    name: str
    width: int
    parent: str | None
    endpoint: str
    layer: str


LEVELS = {
    "cuenca": Level("COD_CUEN", "NOM_CUEN", 3, None, "cuencas", "cuencas_bna"),
    "subcuenca": Level("COD_SUBC", "NOM_SUBC", 4, "COD_CUEN", "subcuencas", "subcuencas_bna"),
    "subsubcuenca": Level("COD_SSUBC", "NOM_SSUBC", 5, "COD_SUBC", "subsubcuencas", "subsubcuencas_bna"),
}
OUTPUT_COLUMNS = [
    "basin_code",
    "basin_name",
    "level",
    "cuenca_code",
    "subcuenca_code",
    "geometry_repaired",
    "area_km2",
    "geometry",
]


def basin_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    """One zip request per configured level endpoint."""
    return [
        FetchRequest(name=f"bna-{level.endpoint}", url=endpoints[level.endpoint], expect="zip")
        for level in LEVELS.values()
        if level.endpoint in endpoints
    ]


def _pick_shapefile(files: list[Path], level: Level, snapshot: str | None) -> Path:
    shapefiles = [path for path in files if path.suffix.lower() == ".shp"]
    if len(shapefiles) > 1:
        named = [path for path in shapefiles if level.layer in path.stem.lower()]
        # 'cuencas_bna' is also inside 'subcuencas_bna': prefer the exact layer name.
        exact = [
            path
            for path in named
            if path.stem.lower().endswith(level.layer) and not path.stem.lower().endswith("sub" + level.layer)
        ]
        shapefiles = exact or named
    if len(shapefiles) != 1:
        raise ParseError(
            SOURCE.id,
            f"expected one {level.layer} shapefile in the archive, found {[p.name for p in shapefiles]} "
            f"(members: {sorted(p.name for p in files)})",
            snapshot,
        )
    shp = shapefiles[0]
    if not any(
        path.parent == shp.parent and path.stem == shp.stem and path.suffix.lower() == ".prj"
        for path in files
    ):
        raise ParseError(
            SOURCE.id,
            f"shapefile {shp.name} has no .prj: its coordinate system is unknown, refusing to guess",
            snapshot,
        )
    return shp


def _codes(values: pd.Series, column: str, width: int, snapshot: str | None) -> list[str]:
    codes = []
    for value in values:
        text = "" if is_missing(value) else str(value).strip()
        if text.endswith(".0"):
            text = text[:-2]
        if not text.isdigit() or len(text) > width:
            raise ParseError(
                SOURCE.id, f"field {column} holds {value!r}, not a code of up to {width} digits", snapshot
            )
        codes.append(text.zfill(width))
    return codes


def _field(frame: pd.DataFrame, name: str, snapshot: str | None) -> str:
    """The actual field name matching `name` case-insensitively (DBF writers vary in case)."""
    for column in frame.columns:
        if column.upper() == name:
            return column
    raise ParseError(SOURCE.id, f"required field {name} missing (fields are {list(frame.columns)})", snapshot)


def read_basin_shapefile(shp: Path, level: str = "cuenca", snapshot: str | None = None) -> gpd.GeoDataFrame:
    """A BNA basin shapefile already on disk -> the basin frame (see module docstring)."""
    spec = LEVELS[level]
    try:
        raw = gpd.read_file(shp, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise ParseError(SOURCE.id, f"shapefile {shp.name} cannot be read ({exc})", snapshot) from exc
    if raw.crs is None:
        raise ParseError(
            SOURCE.id, f"shapefile {shp.name} has an unreadable .prj; refusing to guess its CRS", snapshot
        )
    codes = _codes(raw[_field(raw, spec.code, snapshot)], spec.code, spec.width, snapshot)
    names = raw[_field(raw, spec.name, snapshot)].astype("string").str.strip()
    if spec.parent is None:
        cuencas, subcuencas = codes, [None] * len(codes)
    else:
        parent_width = LEVELS["cuenca"].width if spec.parent == "COD_CUEN" else LEVELS["subcuenca"].width
        parents = _codes(raw[_field(raw, spec.parent, snapshot)], spec.parent, parent_width, snapshot)
        for code, parent in zip(codes, parents, strict=True):
            if not code.startswith(parent):
                raise ParseError(
                    SOURCE.id, f"{spec.code} {code} does not belong to {spec.parent} {parent}", snapshot
                )
        subcuencas = parents if spec.parent == "COD_SUBC" else [None] * len(codes)
        cuencas = [code[:3] for code in codes]
    frame = gpd.GeoDataFrame(
        {
            "basin_code": codes,
            "basin_name": names.to_numpy(),
            "level": level,
            "cuenca_code": cuencas,
            "subcuenca_code": pd.array(subcuencas, dtype="string"),
        },
        geometry=raw.geometry.to_numpy(),
        crs=raw.crs,
    )
    # Validity is judged in the file's own CRS: reprojecting first can turn a degenerate
    # shape (a zero-area sliver in UTM) into a 'valid' polygon with an invented area.
    checked = repair_polygons(SOURCE.id, frame, "basin_code", snapshot)
    frame = _merge_split_basins(checked.to_crs(WGS84), snapshot)
    reprojected = repair_polygons(SOURCE.id, frame, "basin_code", snapshot)
    repaired_codes = set(checked.loc[checked["geometry_repaired"], "basin_code"])
    reprojected["geometry_repaired"] |= reprojected["basin_code"].isin(repaired_codes)
    reprojected.attrs["geometry_repairs"] = (
        checked.attrs["geometry_repairs"] + reprojected.attrs["geometry_repairs"]
    )
    reprojected.attrs["merged_codes"] = frame.attrs.get("merged_codes", [])
    frame = reprojected
    frame["area_km2"] = area_km2(frame.geometry)
    result = frame[OUTPUT_COLUMNS].sort_values("basin_code", ignore_index=True)
    result.attrs = dict(frame.attrs)
    return result


def _merge_split_basins(frame: gpd.GeoDataFrame, snapshot: str | None) -> gpd.GeoDataFrame:
    """Union records that share a code (a basin stored as several rows); their names must agree."""
    repeated = frame["basin_code"][frame["basin_code"].duplicated()].unique()
    if not len(repeated):
        frame.attrs["merged_codes"] = []
        return frame
    for code in repeated:
        names = set(frame.loc[frame["basin_code"] == code, "basin_name"].dropna())
        if len(names) > 1:
            raise ParseError(
                SOURCE.id, f"basin code {code} carries different names {sorted(names)}", snapshot
            )
    merged = frame.dissolve(by="basin_code", as_index=False, sort=True)
    merged.attrs["merged_codes"] = sorted(repeated)
    return merged


def parse_basins(
    archive: Archive,
    level: str = "cuenca",
    snapshot: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> gpd.GeoDataFrame:
    """A BNA zip (bytes or path) -> the basin frame, after safe extraction into a temporary directory."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, not {level!r}")
    with tempfile.TemporaryDirectory(prefix="bna-") as tmp:
        files = extract_archive(SOURCE.id, archive, Path(tmp), limits, snapshot)
        return read_basin_shapefile(_pick_shapefile(files, LEVELS[level], snapshot), level, snapshot)


# --- the SAMPLE archive ------------------------------------------------------------------------------
# Invented, approximate polygons, NOT the official DGA boundaries: they exist so the parser
# and the basin joins can be exercised without the real file. Vertices are lon/lat.

SAMPLE_NOTE = "SAMPLE: approximate polygon, not official DGA data"
SAMPLE_ARCHIVE_NAME = "SAMPLE_Cuencas_BNA.zip"
SAMPLE_LAYER = "SAMPLE_Cuencas_BNA"
SAMPLE_CRS = "EPSG:32719"  # UTM 19S, as the DGA files
SAMPLE_DBF_DATE = (
    124,
    7,
    1,
)  # DBF header 'last update' (years since 1900, month, day), fixed for determinism
# The ESRI WKT the DGA files carry; written verbatim so the sample does not depend on the GDAL version.
SAMPLE_PRJ = (
    'PROJCS["WGS_1984_UTM_Zone_19S",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
    '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",10000000.0],PARAMETER["Central_Meridian",-69.0],'
    'PARAMETER["Scale_Factor",0.9996],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)


def _box(west: float, south: float, east: float, north: float) -> list[tuple[float, float]]:
    return [(west, south), (east, south), (east, north), (west, north)]


SAMPLE_BASINS: list[tuple[str, str, list[tuple[float, float]]]] = [
    # Loa: from the Altiplano near Ollagüe south to Calama, then west and north to the mouth.
    (
        "021",
        "Rio Loa",
        [
            (-70.20, -21.30),
            (-70.00, -21.20),
            (-69.50, -21.05),
            (-68.90, -21.00),
            (-68.40, -21.00),
            (-68.05, -21.30),
            (-68.00, -21.90),
            (-68.05, -22.30),
            (-68.30, -22.60),
            (-68.80, -22.60),
            (-69.20, -22.45),
            (-69.50, -22.20),
            (-69.70, -21.90),
            (-70.00, -21.65),
            (-70.20, -21.50),
        ],
    ),
    (
        "025",
        "Salar de Atacama",
        [
            (-68.80, -22.62),
            (-68.30, -22.62),
            (-68.05, -22.32),
            (-67.60, -22.50),
            (-67.30, -23.00),
            (-67.50, -24.00),
            (-68.20, -24.30),
            (-68.70, -23.80),
            (-68.90, -23.20),
        ],
    ),
    ("034", "Rio Copiapo", _box(-70.40, -28.35, -69.00, -26.90)),
    ("038", "Rio Huasco", _box(-71.20, -29.40, -69.80, -28.45)),
    ("043", "Rio Elqui", _box(-71.30, -30.45, -69.90, -29.50)),
    ("045", "Rio Limari", _box(-71.60, -31.40, -70.20, -30.50)),
    ("057", "Rio Maipo", _box(-71.70, -34.30, -69.80, -33.00)),
]


def sample_basins_frame() -> gpd.GeoDataFrame:
    """The SAMPLE basins in UTM 19S, coordinates rounded to whole metres so every machine writes the same."""
    lonlat = gpd.GeoDataFrame(
        {
            "COD_CUEN": [code for code, _, _ in SAMPLE_BASINS],
            "NOM_CUEN": [name for _, name, _ in SAMPLE_BASINS],
            "NOTA": SAMPLE_NOTE,
        },
        geometry=[Polygon(ring) for _, _, ring in SAMPLE_BASINS],
        crs=WGS84,
    )
    utm = lonlat.set_geometry(lonlat.geometry.segmentize(0.05)).to_crs(SAMPLE_CRS)
    rounded = [
        Polygon([(round(x), round(y)) for x, y in polygon.exterior.coords]) for polygon in utm.geometry
    ]
    return utm.set_geometry(gpd.GeoSeries(rounded, index=utm.index, crs=SAMPLE_CRS))


def write_sample_archive(path: Path) -> Path:
    """Write the SAMPLE basin shapefile zip deterministically (fixed dates, order and .prj)."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="bna-sample-") as tmp:
        shp = Path(tmp) / f"{SAMPLE_LAYER}.shp"
        sample_basins_frame().to_file(
            shp, driver="ESRI Shapefile", engine="pyogrio", layer_options={"ENCODING": "UTF-8"}
        )
        Path(tmp, f"{SAMPLE_LAYER}.prj").write_text(SAMPLE_PRJ, encoding="ascii")
        dbf = Path(tmp, f"{SAMPLE_LAYER}.dbf")
        header = bytearray(dbf.read_bytes())
        header[1:4] = bytes(SAMPLE_DBF_DATE)
        dbf.write_bytes(bytes(header))
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                info = zipfile.ZipInfo(part.name, date_time=(2024, 7, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, part.read_bytes())
        shutil.move(partial, path)
    return path


SAMPLE_DIR = Path(__file__).resolve().parent / "samples" / "boundaries"

if __name__ == "__main__":  # python -m sources.dga_basins [output.zip]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE_DIR / SAMPLE_ARCHIVE_NAME
    print(write_sample_archive(target))
