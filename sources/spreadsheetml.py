"""Excel 2003 SpreadsheetML (XML workbooks published with an .xls name): the rows of the first sheet.

SINIM's "datos municipales" downloads use it. No DOCTYPE or ENTITY is accepted, so the standard
library's parser is safe here without defusedxml.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from sources.base import ParseError

SS = "urn:schemas-microsoft-com:office:spreadsheet"
_UNSAFE_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)


def read_spreadsheetml_rows(
    source: str, content: bytes, snapshot: str | None = None
) -> list[list[tuple[str | None, str]]]:
    """Rows of the first worksheet as lists of (ss:Type, text), honouring `ss:Index` skips.

    Refuses any DOCTYPE/ENTITY declaration before parsing: SpreadsheetML never needs one,
    and refusing it rules out entity-expansion and external-entity tricks (no defusedxml here).
    """
    if _UNSAFE_XML.search(content):
        raise ParseError(source, "spreadsheet export declares a DOCTYPE/ENTITY; refused for safety", snapshot)
    try:  # SINIM's downloads start with a newline before the XML declaration, which expat refuses
        root = ET.fromstring(content.removeprefix(b"\xef\xbb\xbf").lstrip())
    except ET.ParseError as exc:
        raise ParseError(source, f"spreadsheet export is not well-formed XML ({exc})", snapshot) from exc
    if root.tag != f"{{{SS}}}Workbook":
        raise ParseError(source, f"not a SpreadsheetML workbook (root element {root.tag!r})", snapshot)
    table = root.find(f"{{{SS}}}Worksheet/{{{SS}}}Table")
    if table is None:
        raise ParseError(source, "spreadsheet export has no Worksheet/Table", snapshot)
    rows = []
    for row in table.iter(f"{{{SS}}}Row"):
        cells: list[tuple[str | None, str]] = []
        for cell in row.findall(f"{{{SS}}}Cell"):
            index = cell.get(f"{{{SS}}}Index")
            if index is not None:  # 1-based column of this cell; the columns before it are empty
                while len(cells) < int(index) - 1:
                    cells.append((None, ""))
            data = cell.find(f"{{{SS}}}Data")
            cells.append(
                (None, "") if data is None else (data.get(f"{{{SS}}}Type"), "".join(data.itertext()))
            )
        rows.append(cells)
    return rows
