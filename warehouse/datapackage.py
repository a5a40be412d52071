"""The one writer of Frictionless data packages: the export and every lens's `data/` folder.

A table (a warehouse relation, or a frame registered on the connection) is written by
DuckDB to Parquet or CSV and described as a `tabular-data-resource` whose Table Schema
comes from the relation's DuckDB types, so the declared types are the data's types:

- integers are `integer` (nullable ones too), floats and decimals `number`, dates `date`,
  timestamps `datetime`, text `string`;
- lists are `array` and structs and maps `object`. Parquet keeps them as JSON text (so
  any Frictionless reader can check them) and the export records which columns those are
  (`json_columns`), so `context-lens sql --export` reads them back as DuckDB lists;
- geometry is WKB in Parquet (GeoParquet), `any` with a description; WKT in CSV.

Every resource carries `rows` and its sha256 `hash`; text formats also carry `bytes`.
Frictionless reads Parquet through pyarrow without its byte counter, so a declared
`bytes` on a Parquet resource can never be confirmed ("actual is None"): the Parquet
byte counts are in the export's manifest instead. It also sees a Parquet integer column
with NULLs as floats with NaN, so Parquet resources declare `nan` a missing value.
The package descriptor is built and checked with the frictionless library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
INTEGER_TYPES += ("UINTEGER", "UBIGINT", "UHUGEINT")
NUMBER_TYPES = ("FLOAT", "DOUBLE", "DECIMAL", "REAL")
UNORDERABLE = ("GEOMETRY", "BLOB", "STRUCT", "MAP", "UNION", "JSON")
MEDIATYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
PARQUET_MISSING = ["", "nan"]
GEOMETRY_NOTE = {"parquet": "geometry as WKB (GeoParquet), EPSG:4326", "csv": "geometry as WKT, EPSG:4326"}


def _base(duckdb_type: str) -> str:
    return duckdb_type.upper().split("(")[0].strip()


def is_nested(duckdb_type: str) -> bool:
    text = duckdb_type.upper()
    return text.endswith("]") or text.startswith(("STRUCT", "MAP", "UNION", "JSON"))


def frictionless_type(duckdb_type: str) -> str:
    """The Table Schema type of a DuckDB column type."""
    text, base = duckdb_type.upper(), _base(duckdb_type)
    if text.endswith("]"):
        return "array"
    if is_nested(text):
        return "object"
    if base in INTEGER_TYPES:
        return "integer"
    if base in NUMBER_TYPES:
        return "number"
    if base == "BOOLEAN":
        return "boolean"
    if base == "DATE":
        return "date"
    if base.startswith("TIMESTAMP"):
        return "datetime"
    if base == "TIME":
        return "time"
    if base in ("VARCHAR", "CHAR", "TEXT", "STRING", "UUID", "ENUM"):
        return "string"
    return "any"


def quoted(name: str) -> str:
    """Any column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """A SQL string literal, for the statements that take no parameters (COPY, CREATE VIEW)."""
    return "'" + text.replace("'", "''") + "'"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TableFile:
    """One written table file and what describes it."""

    name: str
    path: str
    format: str
    rows: int
    bytes: int
    sha256: str
    fields: list[dict]
    json_columns: dict[str, str] = field(default_factory=dict)
    properties: dict = field(default_factory=dict)

    def resource(self) -> dict:
        """The file as a Frictionless tabular-data-resource descriptor."""
        schema: dict = {"fields": self.fields}
        descriptor = {
            "name": self.name,
            "path": self.path,
            "profile": "tabular-data-resource",
            "format": self.format,
            "mediatype": MEDIATYPES[self.format],
            "hash": f"sha256:{self.sha256}",
            "rows": self.rows,
        }
        if self.format == "csv":
            descriptor |= {
                "bytes": self.bytes,
                "encoding": "utf-8",
                "dialect": {"delimiter": ",", "header": True},
            }
        else:
            schema["missingValues"] = PARQUET_MISSING
        return descriptor | {"schema": schema} | self.properties


def _column_sql(name: str, duckdb_type: str, file_format: str) -> str:
    column = quoted(name)
    if is_nested(duckdb_type):
        return f"CAST(to_json({column}) AS VARCHAR) AS {column}"
    if _base(duckdb_type) == "GEOMETRY" and file_format == "csv":
        return f"ST_AsText({column}) AS {column}"
    return column


def _field(name: str, duckdb_type: str, file_format: str, description: str | None) -> dict:
    spec = {"name": name, "type": frictionless_type(duckdb_type), "duckdbType": duckdb_type}
    if _base(duckdb_type) == "GEOMETRY":
        description = description or GEOMETRY_NOTE[file_format]
    if spec["type"] == "datetime":
        spec["format"] = "any"  # DuckDB writes '2026-12-01 21:46:11.123', ISO 8601 with a space
    if is_nested(duckdb_type):
        note = f"JSON text of a DuckDB {duckdb_type}" if file_format == "parquet" else None
        description = "; ".join(d for d in (description, note) if d) or None
    if description:
        spec["description"] = description
    return spec


def write_table(
    conn: duckdb.DuckDBPyConnection,
    relation: str,
    folder: Path,
    relative: str,
    *,
    name: str,
    descriptions: dict[str, str] | None = None,
    sort: bool = False,
    properties: dict | None = None,
) -> TableFile:
    """Write `relation` (a quoted table name or a registered view) to folder/relative.

    The format follows the suffix (.parquet or .csv). With `sort`, rows are ordered by every
    orderable column, so the same table always gives the same bytes.
    """
    file_format = Path(relative).suffix.lstrip(".")
    if file_format not in MEDIATYPES:
        raise ValueError(f"{relative}: only .parquet and .csv are written")
    columns = [(row[0], row[1]) for row in conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]  # noqa: S608 (quoted by the caller)
    select = ", ".join(_column_sql(c, t, file_format) for c, t in columns) or "*"
    order = [str(i + 1) for i, (_, t) in enumerate(columns) if not t.upper().startswith(UNORDERABLE)]
    order_by = f" ORDER BY {', '.join(order)}" if sort and order else ""
    path = Path(folder) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    options = "FORMAT parquet" if file_format == "parquet" else "FORMAT csv, HEADER true"
    conn.execute(
        f"COPY (SELECT {select} FROM {relation}{order_by}) TO {sql_string(str(path))} ({options})"  # noqa: S608 (quoted identifiers, our own path)
    )
    rows = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]  # noqa: S608
    described = descriptions or {}
    return TableFile(
        name=name,
        path=relative,
        format=file_format,
        rows=rows,
        bytes=path.stat().st_size,
        sha256=sha256_of(path),
        fields=[_field(c, t, file_format, described.get(c)) for c, t in columns],
        json_columns={c: t for c, t in columns if is_nested(t)} if file_format == "parquet" else {},
        properties=dict(properties or {}),
    )


def write_package(folder: Path, descriptor: dict, tables: list[TableFile]) -> dict:
    """Check the package with frictionless and write folder/datapackage.json; return the descriptor.

    Every resource is tabular, so the package is a tabular-data-package. frictionless
    refuses a descriptor that breaks the Data Package and Table Schema profiles.
    """
    from frictionless import Package

    package = {"profile": "tabular-data-package", **descriptor, "resources": [t.resource() for t in tables]}
    checked = Package.from_descriptor(package, basepath=str(folder))
    checked.to_json(str(Path(folder) / "datapackage.json"))
    return checked.to_descriptor()
