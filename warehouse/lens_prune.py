"""Lens tables of studies whose file is gone: found by their manifest table, dropped whole.

Every lens build writes `lens.<prefix>_manifest`; the prefixes of those tables are the
studies the warehouse holds lenses for. A table belongs to the longest such prefix it
starts with (so `calama_loa_2025_b_*` never counts as `calama_loa_2025`'s), and the
tables of a prefix no study file has any more are dropped, so the export, which copies the
`lens` schema, loses them too.
"""

from __future__ import annotations

import duckdb

from warehouse.db import table_name

MANIFEST_SUFFIX = "_manifest"


def lens_prefixes(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lens' AND table_name LIKE ? "
        "ORDER BY 1",
        [f"%{MANIFEST_SUFFIX}"],
    ).fetchall()
    return [name[: -len(MANIFEST_SUFFIX)] for (name,) in rows]


def _owner(table: str, prefixes: list[str]) -> str | None:
    owners = [p for p in prefixes if table.startswith(f"{p}_")]
    return max(owners, key=len) if owners else None


def drop_retired_lenses(conn: duckdb.DuckDBPyConnection, current: set[str]) -> dict[str, list[str]]:
    """Drop the lens tables of every prefix not in `current`; prefix -> the tables dropped."""
    prefixes = lens_prefixes(conn)
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lens' ORDER BY 1"
        ).fetchall()
    ]
    dropped: dict[str, list[str]] = {}
    for table in tables:
        owner = _owner(table, prefixes)
        if owner is not None and owner not in current:
            kind = conn.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_schema = 'lens' AND table_name = ?",
                [table],
            ).fetchone()[0]
            conn.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {table_name('lens', table)}")
            dropped.setdefault(owner, []).append(table)
    return dropped
