"""Deterministic xlsx for SAMPLE workbooks: the same rows always give the same bytes.

openpyxl stamps the save time into `docProps/core.xml` and into every zip member's header;
`workbook_bytes` fixes both, so a sample rebuilt later is byte-identical.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import openpyxl

FIXED_TIME = datetime(2025, 1, 1, 0, 0, 0)
_ZIP_TIME = (2025, 1, 1, 0, 0, 0)
_W3CDTF = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def workbook_bytes(sheets: list[tuple[str, list[list]]], creator: str = "context-lens SAMPLE") -> bytes:
    """An xlsx with one sheet per (title, rows); `None` cells stay empty, an empty row stays blank."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for index, row in enumerate(rows, start=1):
            for column, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=index, column=column, value=value)
    book.properties.creator = creator
    book.properties.created = book.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    book.save(buffer)
    return normalized_zip(buffer.getvalue())


def normalized_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed member timestamps and fixed document times, members in their order."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _W3CDTF.sub(rb"\g<1>2025-01-01T00:00:00Z\g<2>", content)
            member = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            target.writestr(member, content)
    return out.getvalue()
