"""Running a source's long-rows SELECT in DuckDB: into the caller's table, or into a frame.

Sources build the SQL text (a `read_csv` over a file they have checked, say) and never touch
DuckDB; this module runs it and turns DuckDB's data errors (a bad cell, a ragged row, an
`error()` raised by the SELECT itself) into the source's `ParseError`.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from sources.base import ParseError

# DuckDB's errors that mean the file's content is wrong, not the warehouse.
DATA_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str | tuple[str, ...]) -> str:
    """`"flows"` for `"flows"`, `"staging"."flows"` for `("staging", "flows")`."""
    parts = (table,) if isinstance(table, str) else tuple(table)
    if not parts or not all(parts):
        raise ValueError(f"not a table name: {table!r}")
    return ".".join(quote_identifier(part) for part in parts)


def _first_lines(message: str, count: int = 3) -> str:
    return " | ".join(message.strip().splitlines()[:count])


def load(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    table: str | tuple[str, ...],
    source: str,
    *,
    replace: bool = True,
    snapshot: str | None = None,
) -> int:
    """Run a long-rows SELECT into the caller's table (created or appended); return rows written.

    Bad cells, ragged rows and negative flows surface as `ParseError`; other DuckDB errors
    (a missing target table, say) are the caller's and propagate unchanged.
    """
    target = quote_table(table)
    statement = f"CREATE OR REPLACE TABLE {target} AS {sql}" if replace else f"INSERT INTO {target} {sql}"
    try:
        return int(conn.execute(statement).fetchone()[0])
    except DATA_ERRORS as exc:
        raise ParseError(source, _first_lines(str(exc)), snapshot) from exc


def frame(sql: str, source: str, snapshot: str | None = None) -> pd.DataFrame:
    """Run a SELECT in a throw-away in-memory DuckDB and return it as a DataFrame.

    For small files (samples, tests); full-size files belong in `load`.
    """
    with duckdb.connect() as conn:
        try:
            return conn.execute(sql).df()
        except DATA_ERRORS as exc:
            raise ParseError(source, _first_lines(str(exc)), snapshot) from exc
