"""Writes into the warehouse contract. Each function runs inside the caller's transaction.

Tables are replaced whole (`replace_table`) or by partition (`replace_observations`
deletes one source's rows, then inserts), so repeating a write gives the same tables and a
failed run, rolled back, leaves the previous good ones. Rows are replaced or kept by their key
explicitly (delete then insert; insert where absent), not by INSERT OR REPLACE / OR IGNORE,
so the same writes run on DuckLake, which has no PRIMARY KEY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

import duckdb
import pandas as pd

from sources.base import SourceInfo, ValidationError
from sources.rawstore import Sidecar
from warehouse.db import delete_key, table_name

OBSERVATION_COLUMNS = [
    "indicator_id",
    "territory_id",
    "period",
    "value",
    "lower",
    "upper",
    "flag",
    "source_id",
    "snapshot_id",
]


def replace_table(conn: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pd.DataFrame) -> int:
    """Replace `schema.table` with the frame's rows (columns and types taken from the frame)."""
    conn.register("_incoming_frame", frame)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {table_name(schema, table)} AS SELECT * FROM _incoming_frame")  # noqa: S608
    finally:
        conn.unregister("_incoming_frame")
    return len(frame)


def record_source(conn: duckdb.DuckDBPyConnection, source: SourceInfo) -> None:
    delete_key(conn, "core.sources", source_id=source.id)
    conn.execute(
        "INSERT INTO core.sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            source.id,
            source.family,
            source.publisher,
            source.title,
            source.landing_url,
            source.licence,
            source.citation,
            source.cadence.total_seconds() / 86400,
        ],
    )


def record_snapshots(conn: duckdb.DuckDBPyConnection, sidecars: Iterable[Sidecar]) -> None:
    columns = [
        "snapshot_id",
        "source_id",
        "name",
        "request_url",
        "method",
        "retrieved_at",
        "sha256",
        "bytes",
        "http_status",
        "etag",
        "last_modified",
        "content_type",
        "mode",
        "licence",
        "note",
    ]
    for sidecar in sidecars:
        row = asdict(sidecar)
        row["source_id"] = row.pop("source")
        conn.execute(
            f"INSERT INTO core.snapshots ({', '.join(columns)}) "  # noqa: S608 (constant column names)
            f"SELECT {', '.join('?' for _ in columns)} "
            "WHERE NOT EXISTS (SELECT 1 FROM core.snapshots WHERE snapshot_id = ?)",
            [*(row[c] for c in columns), row["snapshot_id"]],
        )


def record_status(
    conn: duckdb.DuckDBPyConnection,
    source_id: str,
    status: str,
    mode: str | None,
    snapshot_id: str | None,
    error: str | None,
) -> None:
    delete_key(conn, "core.source_status", source_id=source_id)
    conn.execute(
        "INSERT INTO core.source_status VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?)",
        [source_id, status, mode, snapshot_id, error],
    )


def record_indicators(conn: duckdb.DuckDBPyConnection, indicators: Iterable[dict]) -> None:
    columns = [
        "indicator_id",
        "label",
        "unit",
        "theme",
        "lens_section",
        "definition",
        "method",
        "source_id",
        "claim_level",
        "higher_is",
    ]
    for indicator in indicators:
        delete_key(conn, "core.indicators", indicator_id=indicator.get("indicator_id"))
        conn.execute(
            f"INSERT INTO core.indicators ({', '.join(columns)}) "  # noqa: S608 (constant column names)
            f"VALUES ({', '.join('?' for _ in columns)})",
            [indicator.get(c) for c in columns],
        )


OBSERVATION_KEY = ["indicator_id", "territory_id", "period"]
INPUT_COLUMNS = ["indicator_id", "territory_id", "period", "source_id", "role", "input_snapshot_id"]


def observation_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per observation and input (`INPUT_COLUMNS`, and whether it was declared).

    An `inputs` column lists (role, snapshot_id) pairs, every snapshot the value was computed
    from, with a third item 'unverified' for curated rows not checked against their primary
    document; an observation without it was read from its own snapshot alone (role 'value').
    """
    keys = frame[["indicator_id", "territory_id", "period", "source_id"]]
    declared = (
        frame["inputs"] if "inputs" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    )
    rows = []
    for key, inputs, snapshot in zip(
        keys.itertuples(index=False), declared, frame["snapshot_id"], strict=True
    ):
        listed = isinstance(inputs, list | tuple) and len(inputs) > 0
        for role, input_snapshot, *status in inputs if listed else [("value", snapshot)]:
            rows.append((*key, str(role), str(input_snapshot), status[0] if status else None, listed))
    columns = [*INPUT_COLUMNS, "verification", "declared"]
    return pd.DataFrame(rows, columns=columns).drop_duplicates(ignore_index=True)


def _check_lineage(conn: duckdb.DuckDBPyConnection, source_id: str) -> None:
    """Refuse observations filed under a snapshot that is neither the source's own nor a declared input."""
    leaked = conn.execute(
        """
        SELECT o.indicator_id, o.territory_id, o.period, o.snapshot_id, s.source_id
        FROM _incoming_observations o JOIN core.snapshots s USING (snapshot_id)
        WHERE s.source_id <> ? AND NOT EXISTS (
            SELECT 1 FROM _incoming_inputs i
            WHERE i.declared AND i.indicator_id = o.indicator_id AND i.territory_id = o.territory_id
              AND i.period = o.period AND i.input_snapshot_id = o.snapshot_id)
        ORDER BY ALL LIMIT 5
        """,
        [source_id],
    ).fetchall()
    if leaked:
        shown = "; ".join(f"{i} {t} {p} under {snap} ({owner})" for i, t, p, snap, owner in leaked)
        raise ValidationError(
            source_id,
            f"observations filed under another source's snapshot that is not one of their inputs: {shown}",
        )


# The incoming lineage, with the source of each input snapshot.
INSERT_INPUTS_SQL = """
INSERT INTO core.observation_inputs BY NAME
SELECT i.indicator_id, i.territory_id, i.period, i.source_id, i.role, i.input_snapshot_id,
       s.source_id AS input_source_id, i.verification
FROM _incoming_inputs i LEFT JOIN core.snapshots s ON s.snapshot_id = i.input_snapshot_id
ORDER BY ALL
"""
# History keeps every (observation, snapshot) once.
INSERT_HISTORY_SQL = """
INSERT INTO core.observation_history
SELECT o.*, s.retrieved_at
FROM _incoming_observations o JOIN core.snapshots s USING (snapshot_id)
WHERE NOT EXISTS (
    SELECT 1 FROM core.observation_history h
    WHERE h.indicator_id = o.indicator_id AND h.territory_id = o.territory_id
      AND h.period = o.period AND h.snapshot_id = o.snapshot_id)
"""
# And every input of each historical observation once.
INSERT_INPUT_HISTORY_SQL = """
INSERT INTO core.observation_input_history BY NAME
SELECT DISTINCT ON (i.indicator_id, i.territory_id, i.period, o.snapshot_id, i.role,
                    i.input_snapshot_id)
       i.indicator_id, i.territory_id, i.period, o.snapshot_id, i.source_id, i.role,
       i.input_snapshot_id, s.source_id AS input_source_id, i.verification
FROM _incoming_inputs i
JOIN _incoming_observations o USING (indicator_id, territory_id, period)
LEFT JOIN core.snapshots s ON s.snapshot_id = i.input_snapshot_id
WHERE NOT EXISTS (
    SELECT 1 FROM core.observation_input_history h
    WHERE h.indicator_id = i.indicator_id AND h.territory_id = i.territory_id
      AND h.period = i.period AND h.snapshot_id = o.snapshot_id AND h.role = i.role
      AND h.input_snapshot_id = i.input_snapshot_id)
ORDER BY ALL
"""


def _checked_incoming(source_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's observation columns, refused when a column is missing, the source differs or a key repeats."""
    missing = [c for c in OBSERVATION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"observations for {source_id} lack columns {missing}")
    if (frame["source_id"] != source_id).any():
        raise ValueError(f"observations passed for {source_id} carry another source_id")
    incoming = frame[OBSERVATION_COLUMNS]
    repeated = incoming[incoming.duplicated(OBSERVATION_KEY, keep=False)]
    if not repeated.empty:  # the key, checked here: a DuckLake table has no PRIMARY KEY to refuse them
        shown = "; ".join(
            " ".join(map(str, key))
            for key in repeated[OBSERVATION_KEY].drop_duplicates().head(5).itertuples(index=False)
        )
        raise ValidationError(source_id, f"observations repeat a key (indicator, territory, period): {shown}")
    return incoming


def replace_observations(conn: duckdb.DuckDBPyConnection, source_id: str, frame: pd.DataFrame) -> int:
    """Make `frame` the source's current observations and their lineage, and add both to the history."""
    incoming = _checked_incoming(source_id, frame)
    conn.register("_incoming_observations", incoming)
    conn.register("_incoming_inputs", observation_inputs(frame))
    try:
        _check_lineage(conn, source_id)
        conn.execute("DELETE FROM core.observations WHERE source_id = ?", [source_id])
        conn.execute("DELETE FROM core.observation_inputs WHERE source_id = ?", [source_id])
        if incoming.empty:  # nothing to add (an empty frame's columns have no types to cast from)
            return 0
        conn.execute(
            "INSERT INTO core.observations SELECT * FROM _incoming_observations "
            "ORDER BY indicator_id, territory_id, period"
        )
        for statement in (INSERT_INPUTS_SQL, INSERT_HISTORY_SQL, INSERT_INPUT_HISTORY_SQL):
            conn.execute(statement)
    finally:
        conn.unregister("_incoming_observations")
        conn.unregister("_incoming_inputs")
    return len(incoming)
