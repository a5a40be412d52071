"""The lens lists the focus territories' socio-environmental conflicts (issue 18): title, year, status, link."""

from __future__ import annotations

import duckdb
import pandas as pd

from pipelines.body import conflicts_view
from pipelines.writer import Writer
from warehouse.lens import CONFLICT_COLUMNS, focus_conflicts

ROWS = [  # written by us: (title, year, status, comuna, basin, region, mode)
    ("Agua en Calama", 2012, "active", "02201", "021", "02", "sample"),
    ("Salar", 2009, "latent", "02203", "025", "02", "sample"),
    ("Lejos, en Biobío", 2015, "closed", "08101", None, "08", "sample"),
    ("Sin comuna, en la cuenca del Loa", None, "archived", None, "021", None, "sample"),
]


def _warehouse() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA marts")
    conn.execute(
        "CREATE TABLE marts.socioenvironmental_conflicts (title VARCHAR, start_year BIGINT, status VARCHAR, "
        "sector VARCHAR, indigenous_territory BOOLEAN, url VARCHAR, comuna_name VARCHAR, "
        "located_comuna_code VARCHAR, located_basin_code VARCHAR, placed_region_code VARCHAR, mode VARCHAR, "
        "source_id VARCHAR)"
    )
    for i, (title, year, status, comuna, basin, region, mode) in enumerate(ROWS):
        conn.execute(
            "INSERT INTO marts.socioenvironmental_conflicts VALUES (?, ?, ?, 'Minería', ?, ?, ?, ?, ?, ?, ?, 'indh')",
            [title, year, status, i == 0, f"https://example.invalid/c/{i}", comuna and f"C{comuna}", comuna,
             basin, region, mode],
        )  # fmt: skip
    return conn


def test_conflicts_of_the_focus_comunas_and_basins_newest_first():
    conn = _warehouse()
    found = focus_conflicts(conn, ["comuna:02201", "basin:021"])
    assert list(found["title"]) == ["Agua en Calama", "Sin comuna, en la cuenca del Loa"]
    region = focus_conflicts(conn, ["region:02"])
    assert list(region["title"]) == ["Agua en Calama", "Salar"]  # by the region the point lies in
    assert tuple(found.columns) == CONFLICT_COLUMNS
    assert focus_conflicts(duckdb.connect(), ["region:02"]) is None  # the family has not run


def test_the_list_reads_title_year_status_and_links_in_both_languages():
    frame = focus_conflicts(_warehouse(), ["region:02", "basin:021"])
    english = conflicts_view(Writer("en", {"region:02": "Antofagasta (region)"}, {"indh": "INDH map"}), frame)
    title, year, status, _, where, indigenous, mode = english["rows"][0]
    assert title == {"text": "Agua en Calama", "href": "https://example.invalid/c/0"}
    assert (year, status, where, indigenous) == ("2012", "active", "C02201", "yes")
    assert mode["badge"] == "sample" and english["sample"] == "all" and english["source"] == "INDH map"
    assert english["rows"][-1][1] == ""  # no start year: said as nothing, never 'nan'
    spanish = conflicts_view(Writer("es", {}, {}), frame)
    assert [row[2] for row in spanish["rows"]] == ["activo", "latente", "archivado"]
    assert isinstance(frame, pd.DataFrame)


def test_the_pdf_lists_them_under_governance(sample_env):
    from pipelines import reading
    from pipelines.lens import study_scope
    from warehouse import db

    with db.reader() as conn:
        scope = study_scope(conn, sample_env.study)
    front = reading.context(sample_env.study, sample_env.built.lens, scope, "en")
    listed = conflicts_view(Writer("en", {}, {}), focus_conflicts(_warehouse(), ["region:02"]))
    page = reading.print_html(front | {"focus_conflicts": listed})
    governance = page.split('id="governance"', 1)[1].split("</section>", 1)[0]
    assert "Socio-environmental conflicts in the focus territories" in governance
    assert '<a href="https://example.invalid/c/0">Agua en Calama</a>' in governance
    assert "Socio-environmental conflicts in the focus" not in reading.print_html(front)  # no mart: no list
