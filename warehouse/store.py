"""Writes into the warehouse contract. Each function runs inside the caller's transaction.

Tables are replaced whole (`replace_table`) or by partition (`replace_observations`
deletes one source's rows, then inserts), so repeating a write gives the same tables and a
failed run, rolled back, leaves the previous good ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

import duckdb
import pandas as pd

from sources.base import SourceInfo
from sources.rawstore import Sidecar
from warehouse.db import table_name

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
    conn.execute(
        "INSERT OR REPLACE INTO core.sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            f"INSERT OR IGNORE INTO core.snapshots ({', '.join(columns)}) "  # noqa: S608 (constant column names)
            f"VALUES ({', '.join('?' for _ in columns)})",
            [row[c] for c in columns],
        )


def record_status(
    conn: duckdb.DuckDBPyConnection,
    source_id: str,
    status: str,
    mode: str | None,
    snapshot_id: str | None,
    error: str | None,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO core.source_status VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?)",
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
        conn.execute(
            f"INSERT OR REPLACE INTO core.indicators ({', '.join(columns)}) "  # noqa: S608 (constant column names)
            f"VALUES ({', '.join('?' for _ in columns)})",
            [indicator.get(c) for c in columns],
        )


def replace_observations(conn: duckdb.DuckDBPyConnection, source_id: str, frame: pd.DataFrame) -> int:
    """Make `frame` the source's current observations, and add them to the history."""
    missing = [c for c in OBSERVATION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"observations for {source_id} lack columns {missing}")
    if (frame["source_id"] != source_id).any():
        raise ValueError(f"observations passed for {source_id} carry another source_id")
    incoming = frame[OBSERVATION_COLUMNS]
    conn.register("_incoming_observations", incoming)
    try:
        conn.execute("DELETE FROM core.observations WHERE source_id = ?", [source_id])
        conn.execute(
            "INSERT INTO core.observations SELECT * FROM _incoming_observations "
            "ORDER BY indicator_id, territory_id, period"
        )
        conn.execute(
            """
            INSERT OR IGNORE INTO core.observation_history
            SELECT o.*, s.retrieved_at
            FROM _incoming_observations o JOIN core.snapshots s USING (snapshot_id)
            """
        )
    finally:
        conn.unregister("_incoming_observations")
    return len(incoming)
