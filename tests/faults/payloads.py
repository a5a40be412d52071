"""Faulty payloads built from the shipped OECD SAMPLE files (SAMPLE data: invented figures).

Every mutation goes through the csv module, so each one changes exactly what it says.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd

from sources import dga_basins

Table = tuple[list[str], list[list[str]]]


def read_table(content: bytes, encoding: str = "utf-8-sig") -> Table:
    rows = list(csv.reader(io.StringIO(content.decode(encoding))))
    return rows[0], [row for row in rows[1:] if row]


def write_table(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _number(value: float) -> str:
    return format(round(value, 4), "f").rstrip("0").rstrip(".")


def scale_values(content: bytes, factor: float) -> bytes:
    """Every OBS_VALUE multiplied by `factor`: a payload whose data differs from the SAMPLE."""
    header, rows = read_table(content)
    at = header.index("OBS_VALUE")
    for row in rows:
        row[at] = _number(float(row[at]) * factor)
    return write_table(header, rows)


def rename_column(content: bytes, old: str, new: str) -> bytes:
    header, rows = read_table(content)
    header[header.index(old)] = new
    return write_table(header, rows)


def drop_column(content: bytes, code: str) -> bytes:
    """Drop a code column and the label column that follows it."""
    header, rows = read_table(content)
    at = header.index(code)
    keep = [i for i in range(len(header)) if i not in (at, at + 1)]
    return write_table([header[i] for i in keep], [[row[i] for i in keep] for row in rows])


def add_column(content: bytes, code: str, label: str, value: str) -> bytes:
    header, rows = read_table(content)
    return write_table([*header, code, label], [[*row, value, value.title()] for row in rows])


def edit_rows(content: bytes, where: Callable[[dict], bool], changes: dict[str, str]) -> bytes:
    """Set `changes` (column -> value) on the rows for which `where(row as dict)` holds."""
    header, rows = read_table(content)
    edited = 0
    for row in rows:
        if where(dict(zip(header, row, strict=True))):
            for column, value in changes.items():
                row[header.index(column)] = value
            edited += 1
    if not edited:
        raise ValueError("no row matched: the mutation would change nothing")
    return write_table(header, rows)


def duplicate_row(content: bytes, where: Callable[[dict], bool]) -> bytes:
    header, rows = read_table(content)
    extra = [row for row in rows if where(dict(zip(header, row, strict=True)))][:1]
    if not extra:
        raise ValueError("no row matched")
    return write_table(header, rows + extra)


def area_year(area: str, year: str) -> Callable[[dict], bool]:
    return lambda row: row["REF_AREA"] == area and row["TIME_PERIOD"] == year


def area(code: str) -> Callable[[dict], bool]:
    return lambda row: row["REF_AREA"] == code


# --- archives -----------------------------------------------------------------------------------


# Every archive built here has the same member dates and order, so building it twice gives
# the same bytes (no wall clock in a fixture).
ZIP_DATE = (2024, 7, 1, 0, 0, 0)


def zip_members(members: dict[str, bytes]) -> bytes:
    """A zip of `members` (name -> bytes), in name order, with a fixed date on every member."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return out.getvalue()


def fixed_dbf_date(dbf: bytes) -> bytes:
    """A .dbf with its header's last-update date (bytes 1-3, written by the driver as today) fixed."""
    year, month, day = ZIP_DATE[:3]
    return dbf[:1] + bytes([year - 1900, month, day]) + dbf[4:]


def basin_zip(frame: gpd.GeoDataFrame, folder: Path) -> bytes:
    """A BNA-shaped shapefile zip (with the DGA .prj) of `frame`, written the way the DGA ships it."""
    layer = folder / "Cuencas_BNA.shp"
    frame.to_file(layer, driver="ESRI Shapefile", engine="pyogrio")
    layer.with_suffix(".prj").write_text(dga_basins.SAMPLE_PRJ, encoding="ascii")
    members = {path.name: path.read_bytes() for path in sorted(folder.glob("Cuencas_BNA.*"))}
    members["Cuencas_BNA.dbf"] = fixed_dbf_date(members["Cuencas_BNA.dbf"])
    return zip_members(members)


def flip_member_bytes(archive: bytes, member_suffix: str) -> bytes:
    """Corrupt the compressed data of one member in place (its CRC no longer matches)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
    header = archive[info.header_offset : info.header_offset + 30]
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    middle = start + info.compress_size // 2
    damaged = bytearray(archive)
    for offset in range(middle, min(middle + 16, start + info.compress_size)):
        damaged[offset] ^= 0xFF
    return bytes(damaged)
