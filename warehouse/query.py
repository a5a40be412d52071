"""Read-only queries for `context-lens sql`: the published warehouse copy, or the published export.

The CLI gets plain column names, DuckDB type names and Python rows; only this package
opens DuckDB. The warehouse is opened read-only. The spatial extension is loaded the first
time a statement needs it (`marts.locate`, `marts.settlement_map`, `ST_*` functions), so
every mart works and `SELECT 1` does not pay the quarter of a second that loading it
costs. Geometry comes back as WKT text.

In export mode an in-memory database gets one view per published Parquet file
(`core.observations`, `lens.<study>_indicators`, `marts.basin_comparison`, ...), read from
the export's manifest, so the same queries run against what other tools read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse import db

BATCH_ROWS = 2048
SPATIAL_HINT = "spatial extension"  # DuckDB's catalog error names the extension that has the function


class QueryError(Exception):
    """A statement DuckDB refused (syntax, unknown table, ...): the message is DuckDB's."""


@dataclass
class Result:
    """One statement's result: its columns, their DuckDB types, and the rows in batches."""

    columns: list[str]
    types: list[str]
    relation: duckdb.DuckDBPyRelation

    def rows(self) -> Iterator[tuple]:
        while batch := self.relation.fetchmany(BATCH_ROWS):
            yield from batch


def _quoted(name: str) -> str:
    """Any column name of a result as an identifier (results may have names like count_star())."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """A SQL string literal, for CREATE VIEW (which takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


class QuerySession:
    """A read-only connection that runs statements and loads spatial when one needs it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, where: str, spatial: bool = False):
        self.conn = conn
        self.where = where
        self.spatial = spatial

    @classmethod
    def warehouse(cls) -> QuerySession:
        target = db.reader_target()  # the published copy (never blocked by a build), or the DuckLake
        where = f"warehouse {target or db.describe()} (read-only)"
        return cls(db.connect(target, read_only=True, spatial=False), where)

    @classmethod
    def export(cls, folder: Path) -> QuerySession:
        """An in-memory database with a view per table of the export at `folder`."""
        folder = Path(folder).resolve()
        manifest = folder / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(f"no export at {folder}: run `context-lens build` first")
        conn = duckdb.connect()
        tables = json.loads(manifest.read_text(encoding="utf-8"))["tables"]
        for name, table in sorted(tables.items()):
            schema, relation = name.split(".", 1)
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {db.quote_ident(schema)}")
            restored = [
                f"CAST(CAST({_quoted(column)} AS JSON) AS {kind}) AS {_quoted(column)}"
                for column, kind in sorted(table.get("json_columns", {}).items())
            ]
            select = f"* REPLACE ({', '.join(restored)})" if restored else "*"
            path = _literal(str(folder / table["path"]))
            conn.execute(
                f"CREATE VIEW {db.table_name(schema, relation)} AS SELECT {select} FROM read_parquet({path})"  # noqa: S608 (quoted names, our own paths)
            )
        return cls(conn, f"export {folder}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, sql: str, params: list | None = None) -> Result | None:
        """Run one statement; a result for statements that return rows, None for the others."""
        try:
            return self._run(sql, params)
        except duckdb.CatalogException as exc:
            if self.spatial or SPATIAL_HINT not in str(exc):
                raise QueryError(str(exc)) from exc
            db.load_spatial(self.conn)
            self.spatial = True
            return self.run(sql, params)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

    def _run(self, sql: str, params: list | None) -> Result | None:
        relation = self.conn.sql(sql, params=params or None)
        if relation is None:
            return None
        types = [str(t) for t in relation.types]
        if "GEOMETRY" in types:
            relation = relation.project(
                ", ".join(
                    f"ST_AsText({_quoted(c)}) AS {_quoted(c)}" if t == "GEOMETRY" else _quoted(c)
                    for c, t in zip(relation.columns, types, strict=True)
                )
            )
        return Result(list(relation.columns), types, relation)


def split_statements(text: str) -> list[str]:
    """The statements of a script, split by DuckDB's own parser (semicolons in strings and comments stay)."""
    try:
        return [s.query.strip() for s in duckdb.extract_statements(text) if s.query.strip()]
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
