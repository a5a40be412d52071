"""`context-lens sql`: formats, no silent truncation, files and stdin, parameters, spatial on demand."""

import csv
import io
import json

import pytest

from pipelines import cli, formats
from warehouse import db

WIDE_COLUMNS = [f"column_number_{i:02d}" for i in range(19)]


@pytest.fixture()
def small_warehouse(warehouse_env):
    """A warehouse with a wide table, a list, a NULL, a NaN, a long text and a spatial view."""
    with db.writer() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        columns = ", ".join(f"{i} AS {name}" for i, name in enumerate(WIDE_COLUMNS))
        conn.execute(f"CREATE TABLE core.wide AS SELECT {columns}")  # noqa: S608 (test literal)
        conn.execute(
            "CREATE TABLE core.kinds AS SELECT * FROM (VALUES "
            "(1, 'Calama', [1, 2], 2.5::DOUBLE, DATE '2024-03-01', repeat('long text ', 30)), "
            "(2, NULL, NULL, 'NaN'::DOUBLE, NULL, 'short')) t(id, name, list, x, day, note)"
        )
        conn.execute(
            "CREATE VIEW marts.points AS SELECT 'calama' AS name, ST_Point(-68.93, -22.46) AS geometry, "
            "ST_AsGeoJSON(ST_Point(-68.93, -22.46)) AS geojson"
        )
    return warehouse_env


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["sql", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_json_and_markdown_carry_every_row_and_column(small_warehouse, capsys):
    query = "SELECT * FROM core.kinds ORDER BY id"
    code, out, _ = _run(capsys, "--format", "csv", query)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2
    assert rows[0]["list"] == "[1, 2]" and rows[0]["day"] == "2024-03-01" and rows[1]["name"] == ""
    assert rows[0]["note"] == "long text " * 30
    code, out, _ = _run(capsys, "--format", "json", query)
    records = json.loads(out)
    assert records[0]["list"] == [1, 2] and records[1]["name"] is None and records[1]["x"] is None
    code, out, _ = _run(capsys, "--format", "markdown", query)
    lines = out.splitlines()
    assert lines[0] == "| id | name | list | x | day | note |" and lines[1].startswith("| ---: | --- |")
    assert len(lines) == 4


def test_a_wide_table_is_shown_whole_in_blocks_and_says_so(small_warehouse):
    from warehouse.query import QuerySession

    with QuerySession.warehouse() as session:
        result = session.run("SELECT * FROM core.wide")
        out = io.StringIO()
        formats.write_table(out, result.columns, result.types, result.rows(), width=100)
    text = out.getvalue()
    assert all(name in text for name in WIDE_COLUMNS)
    assert "columns 1-" in text and "of 19:" in text
    assert "wider than the terminal, so shown in" in text and "(1 row, 19 columns;" in text
    assert max(len(line) for line in text.splitlines() if line.startswith(("+", "|"))) <= 100


def test_long_values_wrap_inside_their_cell_and_rows_beyond_the_limit_are_counted(small_warehouse):
    rows = [(i, "word " * 40) for i in range(5)]
    out = io.StringIO()
    formats.write_table(out, ["n", "text"], ["INTEGER", "VARCHAR"], rows, width=None, max_cell=30, max_rows=3)
    text = out.getvalue()
    body = [line for line in text.splitlines() if line.startswith("| ") and "word" in line]
    assert len(body) == 3 * 7  # 200 characters wrap to 7 lines of at most 30, for each of 3 rows
    assert sum(line.count("word") for line in body) == 3 * 40  # every word is there
    assert "(5 rows, 2 columns; first 3 shown (--max-rows 0 shows all" in text


def test_spatial_marts_work_and_geometry_is_wkt(small_warehouse, capsys):
    code, out, _ = _run(capsys, "--format", "json", "SELECT name, geometry, geojson FROM marts.points")
    assert code == 0
    assert json.loads(out) == [
        {"name": "calama", "geometry": "POINT (-68.93 -22.46)", "geojson": json.loads(out)[0]["geojson"]}
    ]
    assert json.loads(json.loads(out)[0]["geojson"])["type"] == "Point"


def test_sql_from_a_file_stdin_and_parameters(small_warehouse, capsys, monkeypatch, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("-- a comment; with a semicolon\nSELECT name FROM core.kinds WHERE id = 1;\n")
    assert _run(capsys, "-f", str(script), "--format", "csv")[1] == "name\nCalama\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 'a;b' AS x; SELECT 2 AS y"))
    code, out, _ = _run(capsys, "-", "--format", "markdown")
    assert code == 0 and "| a;b |" in out and "| 2 |" in out
    code, out, _ = _run(capsys, "--format", "csv", "-p", "2", "SELECT note FROM core.kinds WHERE id = ?::INT")
    assert out == "note\nshort\n"


def test_output_file_follows_its_suffix_and_is_written_whole(small_warehouse, capsys, tmp_path):
    target = tmp_path / "out.json"
    code, out, err = _run(capsys, "--output", str(target), "SELECT * FROM core.wide")
    assert code == 0 and out == "" and f"wrote 1 row(s) as json to {target}" in err
    assert list(json.loads(target.read_text())[0]) == WIDE_COLUMNS
    assert not list(tmp_path.glob(".*partial"))


def test_errors_are_one_line_and_a_failed_query_leaves_no_file(small_warehouse, capsys, tmp_path):
    target = tmp_path / "out.csv"
    code, _, err = _run(capsys, "--output", str(target), "SELECT * FROM core.no_such_table")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no_such_table" in err
    assert not target.exists()
    code, _, err = _run(capsys, "SELEC 1")
    assert code == 1 and "syntax error" in err
    code, _, err = _run(capsys, "--format", "csv", "SELECT 1; SELECT 2")
    assert code == 1 and "second result" in err
    code, _, err = _run(capsys, "CREATE TABLE core.x (a INT)")
    assert code == 1 and "read-only" in err.lower()
