"""A warehouse that explains itself: every table, view and column of the project's schemas
carries a COMMENT after the sample build, taken from its one declaration."""

from __future__ import annotations

from warehouse import comments, db

PROJECT = list(comments.PROJECT_SCHEMAS)


def test_every_table_view_and_column_has_a_comment(sample_build_env):
    with db.reader() as conn:
        missing = comments.uncommented(conn)
        counts = [
            conn.execute(
                f"SELECT count(*) FROM {function}() WHERE comment IS NULL AND schema_name IN (SELECT unnest(?))"  # noqa: S608
                + (" AND NOT internal" if function == "duckdb_views" else ""),
                [PROJECT],
            ).fetchone()[0]
            for function in ("duckdb_columns", "duckdb_tables", "duckdb_views")
        ]
        relations = conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name IN (SELECT unnest(?))", [PROJECT]
        ).fetchone()[0]
    assert missing == [], (
        f"{len(missing)} without a COMMENT (declare them where the table is declared): {missing}"
    )
    assert counts == [0, 0, 0]
    assert relations > 50  # the check ran over the whole warehouse, not an empty one


def test_comments_come_from_the_declarations(sample_build_env):
    with db.reader() as conn:
        column = dict(
            conn.execute(
                "SELECT schema_name || '.' || table_name || '.' || column_name, comment FROM duckdb_columns() "
                "WHERE schema_name IN ('core', 'lens', 'raw', 'marts')"
            ).fetchall()
        )
        relation = dict(
            conn.execute(
                "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() UNION ALL "
                "SELECT schema_name || '.' || view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
    # schema.sql, beside the DDL
    assert relation["core.observations"] == "The current value of every indicator, territory and period."
    assert column["core.observations.snapshot_id"] == "snapshot the value was computed from (core.snapshots)"
    # an asset's column schema (the dict that also feeds Dagster): pipelines/water_tables.py GAUGE_COLUMNS
    assert column["core.gauges.altitude_m"] == "gauge altitude, m"
    # a lens table: warehouse/lens_tables.py INDICATOR_COLUMNS, on the study's own table
    assert column["lens.antofagasta_2025_indicators.ratio"] == "value / comparison_value"
    # a raw column takes the staging description of the same field
    assert column["raw.sinim_finance.comuna_code"] == "5-digit CUT (as parsed, before validation)"
    # a view's passed-through column takes the core column's; its computed ones are declared above it
    assert column["marts.territory_profile.snapshot_id"] == column["core.snapshots.snapshot_id"]
    assert column["marts.settlement_map.geojson"] == "the polygon as GeoJSON text, EPSG:4326"
    # views that need spatial say so; the others do not
    assert relation["marts.settlement_map"].endswith(comments.SPATIAL_NOTE)
    assert comments.SPATIAL_NOTE not in relation["marts.territory_profile"]


def test_sql_declarations_read_the_comments_beside_the_ddl():
    found = comments.sql_declarations(
        [
            "-- What t is.\n-- columns:\n--   b: computed b\nCREATE OR REPLACE VIEW marts.t AS\n"
            "SELECT a,\n       1 AS c,  -- the constant one\n       2 AS b\nFROM x;\n"
            "\n-- A table.\nCREATE TABLE IF NOT EXISTS core.u (\n    k  VARCHAR NOT NULL,  -- the key\n"
            "    v  DOUBLE\n);\n"
        ]
    )
    assert found["marts.t"].description == "What t is."
    assert found["marts.t"].columns == {"b": "computed b", "c": "the constant one"}
    assert found["core.u"].description == "A table."
    assert found["core.u"].columns == {"k": "the key"}
