"""A warehouse that explains itself: COMMENT ON every table, view and column, from its one declaration.

Declarations come from where each table is declared, never from a second catalogue:
- `warehouse/sql/schema.sql` and `warehouse/sql/views/*.sql`: the `--` lines right above a
  `CREATE` describe the table or view; a `--` at the end of a column line (a table's column,
  or a view's `... AS name,`) describes the column, and so does a `--   name: description`
  line after a `-- columns:` line in the block above the `CREATE`;
- the description dicts of the code that writes a table (`{column: 'type: description'}` or
  `{column: 'description'}`), passed in by that code (lens tables, Dagster column schemas).
A view column without its own description takes the one of the same-named column of the
tables it reads (a view passes `territory_id` through; it does not redefine it). Comments are
applied after the writes of a build, since `CREATE OR REPLACE` drops them. On DuckLake, which
cannot comment a view's columns, views carry their own comment and their columns none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import duckdb

from warehouse import lake
from warehouse.db import SQL_DIR, quote_ident, table_name

PROJECT_SCHEMAS = ("raw", "staging", "core", "marts", "lens", "ops")
_CREATE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW|MACRO)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\.(\w+)", re.I
)
_COLUMN = re.compile(r"^\s+(\w+)\s+[A-Z][^-]*--\s*(.+)$")
_VIEW_COLUMN = re.compile(r"\bAS\s+(\w+),?\s*--\s*(.+)$", re.I)  # '... AS name,  -- what it is
SPATIAL_NOTE = "Needs the spatial extension (LOAD spatial; `context-lens sql` loads it)."


@dataclass
class Declaration:
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict)


def sql_declarations(texts: Iterable[str] = ()) -> dict[str, Declaration]:
    """{'schema.table': Declaration} from the comments beside the DDL in warehouse/sql (and in
    the DDL texts given: tables whose DDL lives beside the code that owns them)."""
    files = [SQL_DIR / "schema.sql", *sorted((SQL_DIR / "views").glob("*.sql"))]
    found: dict[str, Declaration] = {}
    for text in [*(p.read_text(encoding="utf-8") for p in files), *texts]:
        above: list[str] = []
        current: Declaration | None = None
        table = False
        for line in text.splitlines():
            created = _CREATE.match(line)
            if created:
                listed = [i for i, t in enumerate(above) if t.lower() == "columns:"]
                text = " ".join(above[: listed[0]] if listed else above).strip()
                current = found.setdefault(f"{created.group(2)}.{created.group(3)}", Declaration())
                current.description = current.description or text
                for item in above[listed[0] + 1 :] if listed else []:
                    name, _, description = item.partition(":")
                    if description.strip():
                        current.columns.setdefault(name.strip(), description.strip())
                table = created.group(1).upper() == "TABLE"
                above = []
                continue
            stripped = line.strip()
            if stripped.startswith("--") and not line.startswith((" ", "\t")):
                above.append(stripped.lstrip("-").strip())
                continue
            above = []
            column = _COLUMN.match(line) if table else _VIEW_COLUMN.search(line)
            if column and current is not None:
                current.columns.setdefault(column.group(1), column.group(2).strip())
    return found


def described(columns: Mapping[str, str]) -> dict[str, str]:
    """{column: description} from a description dict whose values may read 'type: description'."""
    out = {}
    for name, text in columns.items():
        kind, _, rest = text.partition(":")
        out[name] = rest.strip() if rest and " " not in kind.strip() else text.strip()
    return out


def apply_comments(conn: duckdb.DuckDBPyConnection, declarations: Mapping[str, Declaration]) -> None:
    """COMMENT ON each declared table or view of the project's schemas, and on its columns."""
    relations = conn.execute(
        "SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE schema_name IN (SELECT unnest(?)) "
        "UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() "
        "WHERE NOT internal AND schema_name IN (SELECT unnest(?))",
        [list(PROJECT_SCHEMAS), list(PROJECT_SCHEMAS)],
    ).fetchall()
    # A view's passed-through column: the description of the core column of that name (the
    # contract's tables first, in the order they are declared).
    by_name: dict[str, str] = {}
    for name, declaration in declarations.items():
        if name.startswith("core."):
            for column, text in declaration.columns.items():
                by_name.setdefault(column, text)
    needs_spatial = _spatial_views(conn)
    view_columns = not lake.is_lake(conn)  # DuckLake comments on views, not on a view's columns
    for schema, table, kind in relations:
        declaration = declarations.get(f"{schema}.{table}")
        if declaration is None:
            continue
        qualified = table_name(schema, table)
        text = declaration.description
        if kind == "VIEW" and f"{schema}.{table}" in needs_spatial and SPATIAL_NOTE not in text:
            text = f"{text} {SPATIAL_NOTE}".strip()
        if text:
            conn.execute(f"COMMENT ON {kind} {qualified} IS {_literal(text)}")  # noqa: S608 (quoted names)
        columns = conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        for (column,) in columns if kind == "TABLE" or view_columns else ():
            text = declaration.columns.get(column) or (by_name.get(column) if kind == "VIEW" else None)
            if text:
                conn.execute(f"COMMENT ON COLUMN {qualified}.{quote_ident(column)} IS {_literal(text)}")  # noqa: S608


def _spatial_views(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute(
        "SELECT schema_name || '.' || view_name, sql FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    return {name for name, sql in rows if re.search(r"\bST_\w+\(", sql or "", re.I)}


def _literal(text: str) -> str:
    """A SQL string literal (COMMENT ON takes no parameters)."""
    return "'" + " ".join(text.split()).replace("'", "''") + "'"


def uncommented(conn: duckdb.DuckDBPyConnection, schemas: Iterable[str] = PROJECT_SCHEMAS) -> list[str]:
    """Every table, view and column of `schemas` without a comment, as 'schema.table[.column]'."""
    chosen = list(schemas)
    rows = conn.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE comment IS NULL AND schema_name IN (SELECT unnest(?)) "
        "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() "
        "WHERE NOT internal AND comment IS NULL AND schema_name IN (SELECT unnest(?)) "
        "UNION ALL SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
        "WHERE comment IS NULL AND schema_name IN (SELECT unnest(?)) ORDER BY 1",
        [chosen, chosen, chosen],
    ).fetchall()
    return [r[0] for r in rows]


def raw_declarations(
    conn: duckdb.DuckDBPyConnection, declared: Mapping[str, Declaration]
) -> dict[str, Declaration]:
    """The raw tables, declared by the raw-schema contract (core.raw_schemas): each holds one
    source's payload as parsed. A column the staging table of the same name describes takes
    that description; the others are the publisher's fields, named as parsed."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'core' AND table_name = 'raw_schemas'"
    ).fetchone()[0]
    if not exists:  # no raw table published yet
        return {}
    rows = conn.execute(
        "SELECT DISTINCT r.table_name, r.source_id, s.publisher, s.title FROM core.raw_schemas r "
        "LEFT JOIN core.sources s USING (source_id) ORDER BY 1, 2"
    ).fetchall()
    found: dict[str, Declaration] = {}
    for table, source_id, publisher, title in rows:
        if table in found:
            continue
        staging = declared.get(table.replace("raw.", "staging.", 1), Declaration())
        by = f"{publisher}: {title}" if publisher else source_id
        columns = conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name || '.' || table_name = ?", [table]
        ).fetchall()
        found[table] = Declaration(
            f"Raw layer: the payload of source {source_id} ({by}) as parsed, before typing and value "
            "gates; its columns are checked against the raw-schema contract (core.raw_schemas).",
            {
                name: f"{staging.columns[name]} (as parsed, before validation)"
                if name in staging.columns
                else f"field {name!r} of the {source_id} payload, as parsed"
                for (name,) in columns
            },
        )
    return found


_TYPED_COLUMN = re.compile(r"^\s+(\w+)\s+([A-Z][A-Z0-9_]*(?:\[\])?)\b")


def typed_columns(qualified: str) -> dict[str, str]:
    """{column: 'TYPE: description'} of a table declared in warehouse/sql/schema.sql, as the column
    dicts of the code are written: one declaration serves the DDL, the COMMENTs and Dagster's schema."""
    description = sql_declarations().get(qualified)
    if description is None:
        raise KeyError(f"{qualified} is not declared in {SQL_DIR / 'schema.sql'}")
    types: dict[str, str] = {}
    inside = False
    for line in (SQL_DIR / "schema.sql").read_text(encoding="utf-8").splitlines():
        created = _CREATE.match(line)
        if created:
            inside = f"{created.group(2)}.{created.group(3)}" == qualified
            continue
        column = _TYPED_COLUMN.match(line) if inside else None
        if column and column.group(1).upper() not in {"PRIMARY", "UNIQUE", "CHECK"}:
            types[column.group(1)] = column.group(2)
    return {name: f"{kind}: {description.columns.get(name, '')}".rstrip(": ") for name, kind in types.items()}
