"""Every table of the lens has as many cells in each row as it has headers, in HTML and Markdown:
a value under the wrong header is a wrong label (a flag read as the trend, a source as the flag)."""

from __future__ import annotations

import re


def test_every_html_table_row_has_one_cell_per_header(sample_env):
    html = (sample_env.folder / "lens.html").read_text(encoding="utf-8")
    tables = re.findall(r"<table[^>]*>.*?</table>", html, flags=re.S)
    assert len(tables) >= 5
    for table in tables:
        headers = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        body = table.split("<tbody>")[1] if "<tbody>" in table else ""
        for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
            assert len(re.findall(r"<td[ >]", row)) == headers, table[:300]


def test_every_markdown_table_row_has_one_cell_per_header(sample_env):
    lines = (sample_env.folder / "lens.md").read_text(encoding="utf-8").splitlines()
    checked = 0
    for i, line in enumerate(lines[:-1]):
        if line.startswith("| ") and re.fullmatch(r"\|(?:---\|)+", lines[i + 1]):
            width = lines[i + 1].count("---")
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = re.split(r"(?<!\\)\|", row)[1:-1]  # an escaped \| is inside a cell
                assert len(cells) == width, (line, row)
                checked += 1
    assert checked >= 10
