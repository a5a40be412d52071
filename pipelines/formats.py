"""Query results as text: an aligned table, CSV, JSON or Markdown (for `context-lens sql`).

No column is ever dropped or cut short. A table wider than the terminal is printed in
blocks of columns, each block a table of its own with the row numbers, and the footer says
so; long values wrap inside their cell. CSV, JSON and Markdown write every row and column.
Nothing here imports Dagster or opens DuckDB: rows arrive as Python values.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TextIO

FORMATS = ("table", "csv", "json", "markdown")
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}
NUMERIC_PREFIXES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "U", "FLOAT", "DOUBLE", "DECIMAL")
NULL_TEXT = "NULL"


def text(value) -> str:
    """One value as text: ISO dates, shortest round-trip floats, JSON for lists and structs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(value)


def json_value(value):
    """A value JSON can hold: NaN and infinities become null, dates ISO text, decimals numbers."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, timedelta):
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return text(value)


def write_csv(out: TextIO, columns: list[str], rows: Iterable[tuple]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([text(v) for v in row])
        count += 1
    return count


def write_json(out: TextIO, columns: list[str], rows: Iterable[tuple]) -> int:
    """A JSON array of objects, one per row, written as the rows arrive."""
    count = 0
    out.write("[")
    for row in rows:
        record = {c: json_value(v) for c, v in zip(columns, row, strict=True)}
        out.write(("\n" if count == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _markdown_cell(value) -> str:
    return text(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def write_markdown(out: TextIO, columns: list[str], types: list[str], rows: Iterable[tuple]) -> int:
    align = ["---:" if _is_numeric(t) else "---" for t in types]
    out.write("| " + " | ".join(_markdown_cell(c) for c in columns) + " |\n")
    out.write("| " + " | ".join(align) + " |\n")
    count = 0
    for row in rows:
        out.write("| " + " | ".join(_markdown_cell(v) for v in row) + " |\n")
        count += 1
    return count


def _is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.upper().startswith(NUMERIC_PREFIXES) and not duckdb_type.endswith("]")


def _cell_lines(value, width: int) -> list[str]:
    shown = NULL_TEXT if value is None else text(value)
    lines = []
    for line in shown.splitlines() or [""]:
        lines += textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _blocks(widths: list[int], available: int | None) -> list[list[int]]:
    """Column indexes grouped so each group's table fits `available` characters (None: one group)."""
    if available is None:
        return [list(range(len(widths)))]
    blocks, current, used = [], [], 0
    for index, width in enumerate(widths):
        if current and used + width + 3 > available:
            blocks.append(current)
            current, used = [], 0
        current.append(index)
        used += width + 3
    return blocks + ([current] if current else [])


def _render_block(columns, types, rows, numbers, widths, block) -> Iterator[str]:
    number_width = max(len("#"), *(len(n) for n in numbers)) if numbers else 1
    cells = [[_cell_lines(row[i], widths[i]) for i in block] for row in rows]
    rule = "+-" + "-" * number_width + "-+" + "+".join("-" * (widths[i] + 2) for i in block) + "+"
    yield rule
    yield (
        "| " + "#".rjust(number_width) + " |" + "|".join(f" {columns[i]:<{widths[i]}} " for i in block) + "|"
    )
    yield (
        "| " + " " * number_width + " |" + "|".join(f" {types[i].lower():<{widths[i]}} " for i in block) + "|"
    )
    yield rule
    for number, row_cells in zip(numbers, cells, strict=True):
        height = max(len(c) for c in row_cells)
        for line in range(height):
            label = number if line == 0 else ""
            parts = []
            for i, lines in zip(block, row_cells, strict=True):
                piece = lines[line] if line < len(lines) else ""
                parts.append(
                    f" {piece:>{widths[i]}} " if _is_numeric(types[i]) else f" {piece:<{widths[i]}} "
                )
            yield "| " + label.rjust(number_width) + " |" + "|".join(parts) + "|"
    yield rule


def write_table(
    out: TextIO,
    columns: list[str],
    types: list[str],
    rows: Iterable[tuple],
    *,
    width: int | None,
    max_cell: int = 48,
    max_rows: int = 0,
) -> int:
    """An aligned table; `width` is the terminal's (None when writing to a file or a pipe)."""
    shown, more = [], 0
    for row in rows:
        if max_rows and len(shown) >= max_rows:
            more += 1
        else:
            shown.append(row)
    widths = []
    for index, (column, kind) in enumerate(zip(columns, types, strict=True)):
        longest = max((len(line) for row in shown for line in _cell_lines(row[index], 10**9)), default=0)
        widths.append(max(len(column), len(kind), min(longest, max_cell), 1))
    numbers = [f"{i + 1}" for i in range(len(shown))]
    blocks = _blocks(widths, None if width is None else width - (len(str(len(shown))) + 4))
    for position, block in enumerate(blocks):
        if len(blocks) > 1:
            out.write(f"columns {block[0] + 1}-{block[-1] + 1} of {len(columns)}:\n")
        for line in _render_block(columns, types, shown, numbers, widths, block):
            out.write(line + "\n")
        if position < len(blocks) - 1:
            out.write("\n")
    total = len(shown) + more
    notes = [
        f"{total} row{'s' if total != 1 else ''}, {len(columns)} column{'s' if len(columns) != 1 else ''}"
    ]
    if more:
        notes.append(
            f"first {len(shown)} shown (--max-rows 0 shows all; --format csv or --output FILE for every row)"
        )
    if len(blocks) > 1:
        notes.append(
            f"wider than the terminal, so shown in {len(blocks)} blocks of columns "
            "(--format csv|json|markdown or --output FILE keep one line per row)"
        )
    out.write("(" + "; ".join(notes) + ")\n")
    return total
