"""A tiny independent xlsx reader for tests: sheet rows straight from the workbook XML (no openpyxl).

Tests compare what the parsers computed with values read this way, so a bug shared by the parser
and openpyxl cannot hide itself.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _column(reference: str) -> int:
    letters = re.match(r"[A-Z]+", reference).group(0)
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number - 1


def sheet_rows(path: Path, sheet_name: str) -> list[list]:
    """Every row of one sheet as a list (None for empty cells): numbers as float, text as str."""
    with zipfile.ZipFile(path) as archive:
        strings = []
        if "xl/sharedStrings.xml" in archive.namelist():
            root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
            strings = [
                "".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")) for si in root.findall("m:si", NS)
            ]
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        targets = {rel.get("Id"): rel.get("Target") for rel in rels}
        sheet = next(s for s in book.find("m:sheets", NS) if s.get("name") == sheet_name)
        target = targets[sheet.get(REL)].lstrip("/")
        target = target if target.startswith("xl/") else f"xl/{target}"
        root = ElementTree.fromstring(archive.read(target))
    rows = []
    for row in root.find("m:sheetData", NS):
        index = int(row.get("r")) - 1
        while len(rows) < index:
            rows.append([])
        cells: list = []
        for cell in row:
            position = _column(cell.get("r"))
            cells.extend([None] * (position + 1 - len(cells)))
            kind, value = cell.get("t"), cell.find("m:v", NS)
            if kind == "s":
                cells[position] = strings[int(value.text)]
            elif kind == "inlineStr":
                cells[position] = "".join(t.text or "" for t in cell.iter(f"{{{NS['m']}}}t"))
            elif kind == "str":
                cells[position] = value.text if value is not None else None
            elif value is not None:
                cells[position] = float(value.text)
        rows.append(cells)
    return rows
