"""Value gates in SQL: a table's incoming rows against its current rows, key by key.

A table declares what its numbers are (`TableGates`): the columns that identify one value
(`keys`), the numeric columns (`values`), the column whose value picks a tolerance
(`group`, e.g. the indicator), and totals or shares over its rows (`Aggregate`) for tables
that hold counts, whose single cells are too small to judge one by one. `compare` pairs
every current key with the incoming row of the same key and counts, per group, the keys
removed or blanked, the values that changed sign, by an order of magnitude, or beyond the
group's tolerance, with examples. The thresholds come from the caller (`pipelines.gates`
reads them from ops.yaml); this module only measures.

`ops.publications` records what was last published into each table (or a source's rows of
a partitioned table): its input snapshots, their mode, its row count and a fingerprint of
its content. The gates compare only real data with real data, and only when the inputs
changed; the fingerprint lets an identical publication leave the table untouched, and lets a
test prove that every table's content is what the gated path last wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from warehouse.db import delete_key, quote_ident, run_script, table_name

PUBLICATIONS_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
-- Every gated write: what each table (or one source's partition of it) holds now, so the
-- value gates compare the next write with it.
CREATE TABLE IF NOT EXISTS ops.publications (
    table_name    VARCHAR NOT NULL,    -- the table written, 'schema.table'
    partition_id  VARCHAR NOT NULL,    -- the source whose rows these are, '' for a whole table
    source_id     VARCHAR NOT NULL,    -- source (or family) that wrote it
    snapshot_ids  VARCHAR[] NOT NULL,  -- the payloads the content was computed from
    mode          VARCHAR NOT NULL,    -- live | curated | sample (the weakest input)
    row_count     BIGINT NOT NULL,     -- rows written
    fingerprint   VARCHAR NOT NULL,    -- columns, types and an order-free hash of the rows
    published_at  TIMESTAMP NOT NULL,  -- when it was written (UTC)
    PRIMARY KEY (table_name, partition_id)
)
"""


@dataclass(frozen=True)
class Aggregate:
    """A total, or a share, over a table's rows, judged like a value per key of `by`.

    `by` maps output names to SQL expressions over the table's columns, `value` is summed over
    the rows matching `where`; with `share_of`, the value is the share of that sum over the
    rows also matching `share_of` (compared in points, not ratios). `group` (an expression)
    picks the tolerance. All SQL here is written by us, never read from a payload.
    """

    name: str
    by: dict[str, str]
    value: str
    where: str = "TRUE"
    share_of: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class TableGates:
    """The value declaration of one table; see the module docstring."""

    keys: tuple[str, ...]
    values: tuple[str, ...] = ()
    group: str | None = None
    partition: str | None = None
    aggregates: tuple[Aggregate, ...] = ()
    snapshot_columns: tuple[str, ...] = ("snapshot_id",)
    flag: str = "flag"  # a row flagged with one of the rule's `unjudged_flags` is judged only for removal
    refill: bool = False  # keep the table's own DDL (constraints): delete its rows and insert, not replace


@dataclass(frozen=True)
class Rules:
    """Thresholds for one group, as `pipelines.rules.ValueRule` gives them (None: test off).

    `tolerance` bounds the ratio between new and old value both ways (0.5: from x0.67 to
    x1.5), so a halving counts as much as a doubling; a value that becomes or leaves zero
    moves beyond any tolerance.
    """

    tolerance: float | None
    magnitude: float | None
    sign: bool
    share_tolerance: float | None


@dataclass
class GroupFindings:
    """What `compare` counted in one group of one measure."""

    measure: str
    group: str | None
    keys: int
    removed: int = 0
    sign_flips: int = 0
    magnitude: int = 0
    jumps: int = 0  # beyond the tolerance, but neither a sign change nor an order of magnitude
    examples: dict[str, list[dict]] = field(default_factory=dict)
    share: bool = False


@dataclass(frozen=True)
class Publication:
    table: str
    partition: str
    source_id: str
    snapshot_ids: tuple[str, ...]
    mode: str
    row_count: int
    fingerprint: str


def ensure(conn: duckdb.DuckDBPyConnection) -> None:
    run_script(conn, PUBLICATIONS_DDL)


def exists(conn: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def relation_sql(qualified: str, partition: str | None = None) -> str:
    """`SELECT * FROM schema.table`, restricted to one source's rows when partitioned (`$partition`)."""
    schema, table = qualified.split(".", 1)
    where = f" WHERE {quote_ident(partition)} = $partition" if partition else ""
    return f"SELECT * FROM {table_name(schema, table)}{where}"  # noqa: S608 (quoted identifiers)


def fingerprint(conn: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> tuple[int, str]:
    """(rows, fingerprint) of a relation: its columns and types, and an order-free hash of its rows."""
    columns = conn.execute(f"DESCRIBE {sql}", params or {}).fetchall()  # noqa: S608 (our SQL)
    rows, digest = conn.execute(
        f"SELECT count(*), coalesce(sum(hash(r)), 0)::VARCHAR FROM ({sql}) r",  # noqa: S608 (our SQL)
        params or {},
    ).fetchone()
    shape = ";".join(f"{name}:{kind}" for name, kind, *_ in columns)
    return rows, hashlib.sha256(f"{shape}|{rows}|{digest}".encode()).hexdigest()[:32]


def previous(conn: duckdb.DuckDBPyConnection, qualified: str, partition: str) -> Publication | None:
    ensure(conn)
    row = conn.execute(
        "SELECT table_name, partition_id, source_id, snapshot_ids, mode, row_count, fingerprint "
        "FROM ops.publications WHERE table_name = ? AND partition_id = ?",
        [qualified, partition],
    ).fetchone()
    if row is None:
        return None
    return Publication(row[0], row[1], row[2], tuple(row[3]), row[4], row[5], row[6])


def record(conn: duckdb.DuckDBPyConnection, publication: Publication) -> None:
    ensure(conn)
    delete_key(conn, "ops.publications", table_name=publication.table, partition_id=publication.partition)
    conn.execute(
        "INSERT INTO ops.publications VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [
            publication.table,
            publication.partition,
            publication.source_id,
            list(publication.snapshot_ids),
            publication.mode,
            publication.row_count,
            publication.fingerprint,
        ],
    )


def snapshot_modes(conn: duckdb.DuckDBPyConnection, snapshot_ids: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT snapshot_id, mode FROM core.snapshots WHERE snapshot_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(snapshot_ids)],
    ).fetchall()
    return dict(rows)


def snapshot_ids_of(
    conn: duckdb.DuckDBPyConnection, sql: str, columns: Sequence[str], params=None
) -> list[str]:
    """The distinct snapshot ids a relation's rows cite, in the given columns that it has."""
    present = {name for name, *_ in conn.execute(f"DESCRIBE {sql}", params or {}).fetchall()}  # noqa: S608
    found: set[str] = set()
    for column in (c for c in columns if c in present):
        rows = conn.execute(
            f"SELECT DISTINCT {quote_ident(column)} FROM ({sql}) r WHERE {quote_ident(column)} IS NOT NULL",  # noqa: S608
            params or {},
        ).fetchall()
        found |= {str(r[0]) for r in rows}
    return sorted(found)


def replace_from(conn: duckdb.DuckDBPyConnection, qualified: str, temp: str, refill: bool = False) -> None:
    """Make `schema.table` hold the rows of a staged relation (a temp table or registered frame).

    `refill` keeps a table declared with its own DDL: its rows are deleted and the new ones
    inserted by column name, so constraints and types stay.
    """
    schema, table = qualified.split(".", 1)
    target = table_name(schema, table)
    if refill and exists(conn, qualified):
        conn.execute(f"DELETE FROM {target}")  # noqa: S608 (quoted identifiers)
        conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {quote_ident(temp)}")  # noqa: S608
    else:
        conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {quote_ident(temp)}")  # noqa: S608


# --- measures: the (key..., group, value) relations that get compared ---------------------------


@dataclass(frozen=True)
class Measure:
    """One comparable quantity: SQL giving `k0..kn, grp, v` from a relation named `src`."""

    name: str
    key_names: tuple[str, ...]
    select: str
    share: bool = False


def measures(gates: TableGates, columns: set[str]) -> list[Measure]:
    """The measures of a declaration; value columns the table lacks are an error."""
    missing = [c for c in (*gates.keys, *gates.values) if c not in columns]
    if missing:
        raise KeyError(f"declared column(s) {missing} are not in the table (columns: {sorted(columns)})")
    keys = ", ".join(f"{quote_ident(k)} AS k{i}" for i, k in enumerate(gates.keys))
    group = f"CAST({quote_ident(gates.group)} AS VARCHAR)" if gates.group else "NULL::VARCHAR"
    flag = f"CAST({quote_ident(gates.flag)} AS VARCHAR)" if gates.flag in columns else "NULL::VARCHAR"
    found = [
        Measure(
            value,
            gates.keys,
            f"SELECT {keys}, {group} AS grp, TRY_CAST({quote_ident(value)} AS DOUBLE) AS v, {flag} AS f FROM src",  # noqa: S608
        )
        for value in gates.values
    ]
    for aggregate in gates.aggregates:
        by = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(aggregate.by.values()))
        agg_group = f"CAST(any_value({aggregate.group}) AS VARCHAR)" if aggregate.group else "NULL::VARCHAR"
        total = f"sum({aggregate.value})"
        value = (
            f"CAST(coalesce(sum({aggregate.value}) FILTER ({aggregate.share_of}), 0) AS DOUBLE) "
            f"/ nullif({total}, 0)"
            if aggregate.share_of
            else f"CAST({total} AS DOUBLE)"
        )
        found.append(
            Measure(
                aggregate.name,
                tuple(aggregate.by),
                f"SELECT {by}, {agg_group} AS grp, {value} AS v, NULL::VARCHAR AS f "  # noqa: S608
                f"FROM src WHERE {aggregate.where} GROUP BY ALL",
                share=bool(aggregate.share_of),
            )
        )
    return found


COMPARE_SQL = """
WITH old AS (SELECT * FROM ({old_measure})), new AS (SELECT * FROM ({new_measure})),
pairs AS (
    SELECT {key_text} AS key, coalesce(n.grp, o.grp) AS grp, o.v AS previous, n.v AS observed,
           coalesce(o.f, '') IN (SELECT unnest($unjudged_flags::VARCHAR[]))
               OR coalesce(n.f, '') IN (SELECT unnest($unjudged_flags::VARCHAR[])) AS unjudged
    FROM old o LEFT JOIN new n ON {join}
    WHERE o.v IS NOT NULL
),
judged AS (
    SELECT p.*, r.share,
           observed IS NULL AS removed,
           observed IS NOT NULL AND NOT unjudged AND r.sign AND NOT r.share
               AND sign(previous) * sign(observed) < 0 AS sign_flip,
           observed IS NOT NULL AND NOT unjudged AND NOT r.share AND r.magnitude IS NOT NULL
               AND previous <> 0 AND observed <> 0
               AND greatest(abs(observed / previous), abs(previous / observed)) >= r.magnitude AS magnitude_change,
           observed IS NOT NULL AND NOT unjudged AND CASE
               WHEN r.share THEN r.share_tolerance IS NOT NULL AND abs(observed - previous) > r.share_tolerance
               WHEN r.tolerance IS NULL THEN FALSE
               WHEN previous = 0 OR observed = 0 THEN previous <> observed
               ELSE greatest(abs(observed / previous), abs(previous / observed)) - 1 > r.tolerance END AS moved
    FROM pairs p JOIN _gate_rules r ON r.grp IS NOT DISTINCT FROM p.grp
),
classified AS (SELECT *, moved AND NOT magnitude_change AND NOT sign_flip AS jump FROM judged)
SELECT grp, count(*) AS keys,
       count(*) FILTER (removed), count(*) FILTER (sign_flip),
       count(*) FILTER (magnitude_change), count(*) FILTER (jump),
       (list({{'key': key, 'previous': previous, 'observed': observed}} ORDER BY key) FILTER (removed))[1:3],
       (list({{'key': key, 'previous': previous, 'observed': observed}} ORDER BY key) FILTER (sign_flip))[1:3],
       (list({{'key': key, 'previous': previous, 'observed': observed}}
             ORDER BY abs(observed - previous) / nullif(abs(previous), 0) DESC NULLS FIRST, key)
             FILTER (magnitude_change))[1:3],
       (list({{'key': key, 'previous': previous, 'observed': observed}}
             ORDER BY abs(observed - previous) / nullif(abs(previous), 0) DESC NULLS FIRST, key)
             FILTER (jump))[1:3]
FROM classified GROUP BY grp ORDER BY grp NULLS FIRST
"""


def compare(
    conn: duckdb.DuckDBPyConnection,
    measure: Measure,
    old_sql: str,
    new_sql: str,
    rules_for,
    params: dict | None = None,
    unjudged_flags: Sequence[str] = (),
) -> list[GroupFindings]:
    """Count, per group, what the incoming rows would do to the current values of `measure`.

    `old_sql`/`new_sql` select the current and incoming rows; `rules_for(group)` gives the
    group's `Rules`. Keys only in the new rows are additions and never judged.
    """
    old_measure = measure.select.replace("FROM src", f"FROM ({old_sql}) src")
    new_measure = measure.select.replace("FROM src", f"FROM ({new_sql}) src")
    groups = [
        r[0]
        for r in conn.execute(f"SELECT DISTINCT grp FROM ({old_measure})", params or {}).fetchall()  # noqa: S608
    ]
    rules = pd.DataFrame(
        [
            {
                "grp": group,
                "tolerance": rules_for(group).tolerance,
                "magnitude": rules_for(group).magnitude,
                "sign": rules_for(group).sign,
                "share": measure.share,
                "share_tolerance": rules_for(group).share_tolerance,
            }
            for group in groups
        ],
        columns=["grp", "tolerance", "magnitude", "sign", "share", "share_tolerance"],
    ).astype({"grp": "object", "tolerance": "float64", "magnitude": "float64", "share_tolerance": "float64"})
    count = len(measure.key_names)
    key_text = " || ' ' || ".join(f"coalesce(CAST(o.k{i} AS VARCHAR), '∅')" for i in range(count))
    join = " AND ".join(f"o.k{i} IS NOT DISTINCT FROM n.k{i}" for i in range(count))
    sql = COMPARE_SQL.format(old_measure=old_measure, new_measure=new_measure, key_text=key_text, join=join)
    conn.register("_gate_rules", rules)
    try:
        rows = conn.execute(sql, {**(params or {}), "unjudged_flags": list(unjudged_flags)}).fetchall()
    finally:
        conn.unregister("_gate_rules")
    found = []
    for group, keys, removed, flips, magnitude, jumps, *examples in rows:
        found.append(
            GroupFindings(
                measure.name,
                group,
                keys,
                removed,
                flips,
                magnitude,
                jumps,
                dict(zip(("removed", "sign", "magnitude", "jump"), (e or [] for e in examples), strict=True)),
                measure.share,
            )
        )
    return found


def unpublished(
    conn: duckdb.DuckDBPyConnection, exempt: Sequence[str], partitioned: dict[str, str]
) -> list[str]:
    """Tables whose content is not what the gated path last published (written some other way).

    `exempt` lists tables (or `schema.*`) that record attempts rather than hold a source's
    data; `partitioned` maps a table to its partition column (core.observations: source_id),
    whose partitions are checked one by one. An empty table never published (declared by
    DDL, nothing written yet) is fine.
    """
    ensure(conn)
    tables = conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' ORDER BY 1"
    ).fetchall()
    recorded = {
        (t, p): f
        for t, p, f in conn.execute(
            "SELECT table_name, partition_id, fingerprint FROM ops.publications"
        ).fetchall()
    }
    found = []
    for (qualified,) in tables:
        if qualified in exempt or f"{qualified.split('.')[0]}.*" in exempt:
            continue
        column = partitioned.get(qualified)
        if column is None:
            checks = [(qualified, "", relation_sql(qualified), {})]
        else:
            present = conn.execute(
                f"SELECT DISTINCT CAST({quote_ident(column)} AS VARCHAR) FROM ({relation_sql(qualified)})"  # noqa: S608
            ).fetchall()
            parts = {p for (p,) in present} | {p for t, p in recorded if t == qualified}
            columns = ", ".join(quote_ident(c) for c in partitioned_columns(conn, qualified))
            relation = f"SELECT {columns} FROM ({relation_sql(qualified, column)}) r"  # noqa: S608
            checks = [(qualified, part, relation, {"partition": part}) for part in sorted(parts)]
        for table, part, relation, params in checks:
            rows, digest = fingerprint(conn, relation, params)
            shown = f"{table} rows of {part}" if part else table
            if (table, part) not in recorded:
                if rows:
                    found.append(f"{shown} (never published)")
            elif recorded[(table, part)] != digest:
                found.append(f"{shown} (changed)")
    return found


def partitioned_columns(conn: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    schema, table = qualified.split(".", 1)
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return [r[0] for r in rows]
