"""DGA BNA basin parsing, on the shipped SAMPLE zip (approximate polygons) and on zips built here."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box

from sources import dga_basins
from sources.base import ParseError
from sources.geometry import locate_points

SAMPLE = dga_basins.SAMPLE_DIR / dga_basins.SAMPLE_ARCHIVE_NAME


@pytest.fixture(scope="module")
def sample_basins():
    return dga_basins.parse_basins(SAMPLE)


def shapefile_zip(tmp_path, frame: gpd.GeoDataFrame, layer: str, drop: tuple[str, ...] = ()) -> bytes:
    """Write `frame` as a shapefile and zip its parts, leaving out the suffixes in `drop`."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    frame.to_file(folder / f"{layer}.shp", engine="pyogrio")
    path = tmp_path / f"{folder.name}-{layer}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for part in sorted(folder.iterdir()):
            if part.suffix.lower() not in drop:
                zf.write(part, part.name)
    return path.read_bytes()


def test_sample_is_labelled_and_stored_in_utm_19s():
    with zipfile.ZipFile(SAMPLE) as zf:
        names = zf.namelist()
        prj = zf.read("SAMPLE_Cuencas_BNA.prj").decode()
    assert all(name.startswith("SAMPLE_") for name in names)
    assert "UTM_Zone_19S" in prj
    raw = pyogrio.read_dataframe(f"/vsizip/{SAMPLE}/SAMPLE_Cuencas_BNA.shp")
    assert raw.crs.to_epsg() == 32719
    assert raw.total_bounds[0] > 1e5  # metres, not degrees
    assert set(raw["NOTA"]) == {dga_basins.SAMPLE_NOTE}
    assert "SAMPLE" in (dga_basins.SAMPLE_DIR / "README.md").read_text(encoding="utf-8")


def test_sample_parses_to_wgs84_basins(sample_basins):
    assert list(sample_basins.columns) == dga_basins.OUTPUT_COLUMNS
    assert list(sample_basins["basin_code"]) == ["021", "025", "034", "038", "043", "045", "057"]
    assert sample_basins.crs.to_epsg() == 4326
    assert set(sample_basins["level"]) == {"cuenca"}
    assert sample_basins["subcuenca_code"].isna().all()
    assert sample_basins.geometry.is_valid.all() and (sample_basins["area_km2"] > 0).all()
    loa = sample_basins.set_index("basin_code").geometry["021"]
    # the documented extent of the sample Loa: about -21.0..-22.6 S, -70.2..-68.0 W
    assert loa.bounds == pytest.approx((-70.2, -22.6, -68.0, -21.0), abs=0.01)


def test_sample_basins_overlap_nowhere(sample_basins):
    shapes = sample_basins.geometry.to_list()
    for i, first in enumerate(shapes):
        for second in shapes[i + 1 :]:
            assert first.intersection(second).area < 1e-9


def test_calama_and_loa_gauges_fall_in_sample_basin_021(sample_basins):
    points = pd.DataFrame(
        {"lon": [-68.926, -68.662, -70.05, -68.20], "lat": [-22.456, -21.656, -21.43, -23.5]},
        index=["Calama", "2101001", "2120001", "Salar"],
    )
    assert locate_points(points, sample_basins, "basin_code").to_dict() == {
        "Calama": "021",
        "2101001": "021",
        "2120001": "021",
        "Salar": "025",
    }


def test_sample_regenerates_deterministically(tmp_path, sample_basins):
    first = dga_basins.write_sample_archive(tmp_path / "a.zip").read_bytes()
    second = dga_basins.write_sample_archive(tmp_path / "b.zip").read_bytes()
    assert first == second
    regenerated = dga_basins.parse_basins(first)
    assert list(regenerated["basin_code"]) == list(sample_basins["basin_code"])
    for mine, shipped in zip(regenerated.geometry, sample_basins.geometry, strict=True):
        assert mine.equals_exact(shipped, tolerance=1e-9)


def test_missing_prj_is_refused(tmp_path):
    frame = gpd.GeoDataFrame(
        {"COD_CUEN": ["021"], "NOM_CUEN": ["Rio Loa"]},
        geometry=[box(400000, 7500000, 450000, 7550000)],
        crs=32719,
    )
    data = shapefile_zip(tmp_path, frame, "Cuencas_BNA", drop=(".prj",))
    with pytest.raises(ParseError, match=r"Cuencas_BNA\.shp has no \.prj"):
        dga_basins.parse_basins(data)


def test_missing_field_is_named(tmp_path):
    frame = gpd.GeoDataFrame(
        {"CODIGO": ["021"], "NOM_CUEN": ["Rio Loa"]}, geometry=[box(-70, -22, -69, -21)], crs=4326
    )
    with pytest.raises(ParseError, match="required field COD_CUEN missing"):
        dga_basins.parse_basins(shapefile_zip(tmp_path, frame, "Cuencas_BNA"))


def test_subcuencas_pad_numeric_codes_and_check_parents(tmp_path):
    frame = gpd.GeoDataFrame(
        {"COD_CUEN": [21, 21], "COD_SUBC": [211, 212], "NOM_SUBC": ["Rio Loa Alto", "Rio Salado"]},
        geometry=[box(-69, -22, -68, -21), box(-68.5, -22.5, -68, -22)],
        crs=4326,
    )
    subcuencas = dga_basins.parse_basins(shapefile_zip(tmp_path, frame, "Subcuencas_BNA"), level="subcuenca")
    assert subcuencas[["basin_code", "cuenca_code", "level"]].values.tolist() == [
        ["0211", "021", "subcuenca"],
        ["0212", "021", "subcuenca"],
    ]
    wrong = frame.assign(COD_CUEN=[21, 25])
    with pytest.raises(ParseError, match="COD_SUBC 0212 does not belong to COD_CUEN 025"):
        dga_basins.parse_basins(shapefile_zip(tmp_path, wrong, "Subcuencas_BNA"), level="subcuenca")


def test_split_basin_rows_are_merged(tmp_path):
    frame = gpd.GeoDataFrame(
        {"COD_CUEN": ["021", "021"], "NOM_CUEN": ["Rio Loa", "Rio Loa"]},
        geometry=[box(-70, -22, -69, -21), box(-69, -22, -68, -21)],
        crs=4326,
    )
    basins = dga_basins.parse_basins(shapefile_zip(tmp_path, frame, "Cuencas_BNA"))
    assert list(basins["basin_code"]) == ["021"] and basins.attrs["merged_codes"] == ["021"]
    assert basins.geometry.iloc[0].equals(box(-70, -22, -68, -21))


def test_hostile_archive_is_refused_before_reading(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../Cuencas_BNA.shp", b"x")
    with pytest.raises(ParseError, match="zip-slip"):
        dga_basins.parse_basins(path)


def test_requests_come_from_the_endpoints_passed_in():
    requests = dga_basins.basin_requests(
        {"cuencas": "file:///mirror/c.zip", "subsubcuencas": "file:///mirror/s.zip"}
    )
    assert [(r.name, r.url, r.expect) for r in requests] == [
        ("bna-cuencas", "file:///mirror/c.zip", "zip"),
        ("bna-subsubcuencas", "file:///mirror/s.zip", "zip"),
    ]
