"""The operational rules of `ops.yaml` and the freshness they define, without Dagster.

- `freshness`, `drift`, `volume`, `values`: checks with a severity (`error` blocks, `warn`
  reports). Drift and volume judge raw tables (`check_raw_tables`, here); values judge the
  values of declared tables against the last accepted ones (`pipelines.gates`); freshness
  (`freshness_report`, here) blocks the export.
- `fetch`: per-source overrides of the fetch layer's deadlines and budgets
  (`sources.fetch.FetchLimits`).

`pipelines.ops` turns these rules into Dagster checks and sensors; the `status` command
reads them directly, so it starts without importing Dagster. The file is read with
`yaml.safe_load` and checked field by field; every problem names the file and the field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import yaml

from sources.base import ValidationError
from warehouse import db

if TYPE_CHECKING:
    import pandas as pd  # annotations only: `status` reads the rules without importing pandas

log = logging.getLogger(__name__)

CONFIG_PATH = Path(__file__).resolve().parents[1] / "ops.yaml"
CHECKS = ("freshness", "drift", "volume", "values")
SECTIONS = (*CHECKS, "fetch")

# --- configuration ---------------------------------------------------------------------------


class OpsConfigError(ValueError):
    """An ops.yaml that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Rule:
    """How one check is applied to one source."""

    check: str
    severity: str = "warn"
    grace: float = 0.25  # freshness: stale when older than cadence x (1 + grace)
    tolerance: float = 0.5  # volume: largest allowed relative change of a raw table's row count

    @property
    def blocks(self) -> bool:
        return self.severity == "error"

    @property
    def dagster_severity(self):
        from dagster import AssetCheckSeverity  # only the Dagster checks ask; `status` stays Dagster-free

        return AssetCheckSeverity.ERROR if self.blocks else AssetCheckSeverity.WARN


@dataclass(frozen=True)
class ValueRule:
    """How the value gates judge one group (an indicator, a series) of one source's values.

    A new value is compared with the last accepted value of the same key: a ratio of
    `magnitude` or more (or its inverse) is an order-of-magnitude change (a unit slip); a
    change of sign is refused when `sign`; a ratio beyond 1 + `tolerance` either way (0.5:
    below x0.67 or above x1.5) is a jump.
    A publication that removes or blanks more than `max_removed_share` of a group's current
    keys is refused. Shares (aggregate gates) move by at most `share_tolerance` points.
    `None` turns a test off.
    """

    severity: str = "error"
    tolerance: float | None = 0.5
    magnitude: float | None = 10.0
    sign: bool = True
    max_removed_share: float = 0.2
    share_tolerance: float | None = 0.05
    unjudged_flags: tuple[str, ...] = ()  # flags of values resting on few events: judged for removal only

    @property
    def blocks(self) -> bool:
        return self.severity == "error"


DEFAULT_RULES = {
    "freshness": {"severity": "warn", "grace": 0.25},
    "drift": {"severity": "error"},
    "volume": {"severity": "error", "tolerance": 0.5},
}
RULE_FIELDS = {
    "freshness": {"severity", "grace"},
    "drift": {"severity"},
    "volume": {"severity", "tolerance"},
    "values": {f.name for f in fields(ValueRule)} | {"groups"},
    "fetch": {
        "connect_timeout",
        "read_timeout",
        "request_deadline",
        "source_budget",
        "max_attempts",
        "max_retry_after",
        "min_rate",
        "stall_window",
    },
}
_OPTIONAL_NUMBERS = {"tolerance", "magnitude", "share_tolerance"}  # in `values`, null turns the test off


@dataclass(frozen=True)
class OpsConfig:
    defaults: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)

    def rule(self, source_id: str, check: str) -> Rule:
        merged = {
            **DEFAULT_RULES[check],
            **self.defaults.get(check, {}),
            **self.sources.get(source_id, {}).get(check, {}),
        }
        return Rule(check, **merged)

    def value_rule(self, source_id: str, group: str | None = None) -> ValueRule:
        """The value rule of one group of a source: defaults, then the source's, then the group's."""
        layers = [self.defaults.get("values", {}), self.sources.get(source_id, {}).get("values", {})]
        merged: dict = {}
        for layer in layers:
            merged |= {k: v for k, v in layer.items() if k != "groups"}
        for layer in layers:
            merged |= layer.get("groups", {}).get(str(group), {}) if group is not None else {}
        if "unjudged_flags" in merged:
            merged["unjudged_flags"] = tuple(merged["unjudged_flags"])
        return ValueRule(**merged)


def _checked_settings(path: Path, where: str, settings, allowed: set[str]) -> dict:
    if not isinstance(settings, dict):
        raise OpsConfigError(f"{path.name}: '{where}' must be a mapping")
    unknown = set(settings) - allowed
    if unknown:
        raise OpsConfigError(f"{path.name}: '{where}': unknown setting(s) {sorted(unknown)}")
    if "severity" in settings and settings["severity"] not in ("error", "warn"):
        raise OpsConfigError(f"{path.name}: '{where}.severity' must be 'error' or 'warn'")
    for name, value in settings.items():
        if name in ("severity", "groups"):
            continue
        if name == "unjudged_flags":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OpsConfigError(f"{path.name}: '{where}.unjudged_flags' must be a list of flag names")
            continue
        if name == "sign":
            if not isinstance(value, bool):
                raise OpsConfigError(f"{path.name}: '{where}.sign' must be true or false")
        elif value is None and name in _OPTIONAL_NUMBERS and where.rsplit(".", 1)[-1] != "fetch":
            continue
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise OpsConfigError(f"{path.name}: '{where}.{name}' must be a number >= 0")
    return dict(settings)


def _checked_rules(path: Path, where: str, block) -> dict:
    if not isinstance(block, dict):
        raise OpsConfigError(f"{path.name}: '{where}' must be a mapping of check -> settings")
    rules = {}
    for check, settings in block.items():
        if check not in SECTIONS:
            raise OpsConfigError(f"{path.name}: '{where}.{check}': unknown check (use {', '.join(SECTIONS)})")
        rules[check] = _checked_settings(path, f"{where}.{check}", settings, RULE_FIELDS[check])
        if check == "values":
            groups = rules[check].get("groups") or {}
            if not isinstance(groups, dict):
                raise OpsConfigError(
                    f"{path.name}: '{where}.values.groups' must be a mapping of group -> settings"
                )
            allowed = RULE_FIELDS["values"] - {"groups", "severity", "unjudged_flags"}
            rules[check]["groups"] = {
                str(group): _checked_settings(path, f"{where}.values.groups.{group}", settings, allowed)
                for group, settings in groups.items()
            }
    return rules


def load_config(path: Path | str | None = None) -> OpsConfig:
    """ops.yaml (or `CONTEXT_LENS_OPS_CONFIG`), checked field by field; defaults when absent."""
    path = Path(path or os.environ.get("CONTEXT_LENS_OPS_CONFIG") or CONFIG_PATH)
    if not path.exists():
        if os.environ.get("CONTEXT_LENS_OPS_CONFIG"):
            raise OpsConfigError(f"CONTEXT_LENS_OPS_CONFIG names {path}, which does not exist")
        return OpsConfig()
    with open(path, encoding="utf-8") as handle:
        try:
            document = yaml.safe_load(handle) or {}
        except yaml.YAMLError as exc:
            raise OpsConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or set(document) - {"defaults", "sources"}:
        raise OpsConfigError(f"{path.name}: expected top-level keys 'defaults' and 'sources' only")
    defaults = _checked_rules(path, "defaults", document.get("defaults") or {})
    sources = document.get("sources") or {}
    if not isinstance(sources, dict):
        raise OpsConfigError(f"{path.name}: 'sources' must be a mapping of source id -> checks")
    return OpsConfig(
        defaults, {str(sid): _checked_rules(path, f"sources.{sid}", block) for sid, block in sources.items()}
    )


# --- raw table schemas: record, compare, gate ------------------------------------------------

RAW_SCHEMAS_DDL = """
-- The raw-schema contract: the columns and types of every raw table each time it is published,
-- so a payload whose columns change is refused before it is served.
CREATE TABLE IF NOT EXISTS core.raw_schemas (
    source_id     VARCHAR NOT NULL,     -- source whose payload the raw table holds
    table_name    VARCHAR NOT NULL,     -- the raw table, 'raw.<table>'
    snapshot_id   VARCHAR NOT NULL,     -- the publication's newest payload (= source_status.last_snapshot_id)
    snapshot_ids  VARCHAR[] NOT NULL,   -- every payload the table was built from
    mode          VARCHAR NOT NULL,     -- mode of those payloads: live | curated | sample
    columns       VARCHAR NOT NULL,     -- JSON [[name, DuckDB type, has values], ...] in table order
    row_count     BIGINT NOT NULL,      -- rows of the raw table
    recorded_at   TIMESTAMP NOT NULL,   -- when this schema was recorded (UTC)
    PRIMARY KEY (table_name, snapshot_id)
)
"""

_NUMBER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
}


def type_family(duckdb_type: str) -> str:
    """Types that a refresh may legitimately move between count as one family.

    pandas turns an integer column with one missing value into floats, and a timestamp
    may gain a time zone; neither is drift. Text becoming a number, or the reverse, is.
    """
    text = duckdb_type.upper()
    if text.endswith("]") or text.startswith(("STRUCT", "MAP", "UNION")):
        return text
    base = text.split("(")[0].strip()
    if base in _NUMBER_TYPES:
        return "number"
    if base.startswith("TIMESTAMP") or base == "DATE":
        return "temporal"
    if base in ("VARCHAR", "CHAR", "TEXT", "STRING"):
        return "text"
    return base.lower()


def frame_columns(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> list[list]:
    """[[name, DuckDB type, has values], ...] as `store.replace_table` would create them."""
    conn.register("_raw_schema_probe", frame)
    try:
        described = conn.execute("DESCRIBE SELECT * FROM _raw_schema_probe").fetchall()
    finally:
        conn.unregister("_raw_schema_probe")
    return [[name, kind, bool(frame[name].notna().any())] for name, kind, *_ in described]


@dataclass(frozen=True)
class Drift:
    missing: list[str]
    new: list[str]
    retyped: list[tuple[str, str, str]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.new or self.retyped)

    def __str__(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing column(s) {', '.join(self.missing)}")
        if self.new:
            parts.append(f"new column(s) {', '.join(self.new)}")
        if self.retyped:
            parts.append("retyped " + ", ".join(f"{n} {old} -> {new}" for n, old, new in self.retyped))
        return "; ".join(parts)


def compare_columns(previous: list[list], current: list[list]) -> Drift:
    """Columns gone, added, or moved to another type family (all-null columns have no type)."""
    before = {name: (kind, has) for name, kind, has in previous}
    after = {name: (kind, has) for name, kind, has in current}
    retyped = [
        (name, before[name][0], kind)
        for name, (kind, has) in after.items()
        if name in before and has and before[name][1] and type_family(kind) != type_family(before[name][0])
    ]
    return Drift(
        missing=[n for n in before if n not in after],
        new=[n for n in after if n not in before],
        retyped=retyped,
    )


def volume_change(previous_rows: int, rows: int) -> float | None:
    """Relative change of a row count; None when there is nothing to compare against."""
    if previous_rows <= 0:
        return None
    return (rows - previous_rows) / previous_rows


@dataclass(frozen=True)
class RecordedSchema:
    source_id: str
    table_name: str
    snapshot_id: str
    snapshot_ids: list[str]
    mode: str
    columns: list[list]
    row_count: int
    recorded_at: datetime


def _recorded(row) -> RecordedSchema:
    values = dict(zip([f.name for f in fields(RecordedSchema)], row, strict=True))
    values["columns"] = json.loads(values["columns"])
    values["snapshot_ids"] = list(values["snapshot_ids"])
    return RecordedSchema(**values)


def _has_raw_schemas(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'core' AND table_name = 'raw_schemas'"
        ).fetchone()[0]
    )


def accepted_schemas(
    conn: duckdb.DuckDBPyConnection, table: str, sample: bool, limit: int = 1
) -> list[RecordedSchema]:
    """The newest accepted schemas of a raw table among real (or among SAMPLE) publications."""
    if not _has_raw_schemas(conn):
        return []
    rows = conn.execute(
        """
        SELECT source_id, table_name, snapshot_id, snapshot_ids, mode, columns, row_count, recorded_at
        FROM core.raw_schemas WHERE table_name = ? AND (mode = 'sample') = ?
        ORDER BY recorded_at DESC, snapshot_id DESC LIMIT ?
        """,
        [table, sample, limit],
    ).fetchall()
    return [_recorded(row) for row in rows]


def judge_raw_table(
    config: OpsConfig, source_id: str, previous: RecordedSchema, columns: list[list], rows: int
) -> list[tuple[Rule, str]]:
    """(rule, finding) for every drift or volume rule the new table breaks against `previous`."""
    findings = []
    drift = compare_columns(previous.columns, columns)
    if drift:
        findings.append(
            (
                config.rule(source_id, "drift"),
                f"schema drift in {previous.table_name} against snapshot {previous.snapshot_id}: {drift}",
            )
        )
    rule = config.rule(source_id, "volume")
    change = volume_change(previous.row_count, rows)
    if change is not None and abs(change) > rule.tolerance:
        findings.append(
            (
                rule,
                f"row count of {previous.table_name} moved from {previous.row_count} to {rows} "
                f"({change:+.0%}) against snapshot {previous.snapshot_id}, beyond the tolerance of "
                f"{rule.tolerance:.0%}",
            )
        )
    return findings


def check_raw_tables(
    conn: duckdb.DuckDBPyConnection,
    source_id: str,
    mode: str,
    snapshot_ids: Sequence[str],
    tables: dict[tuple[str, str], pd.DataFrame],
    config: OpsConfig | None = None,
) -> list[str]:
    """Judge a publication's raw tables against the last accepted ones, then record them.

    Runs inside the publishing transaction. Raises `ValidationError` when a blocking rule
    fails (the caller refuses the payloads; the transaction rolls back, so the previous good
    tables stay). Returns the non-blocking findings. SAMPLE publications, and publications
    of the very payloads accepted last time (a code change, not an upstream one), are
    recorded but never judged.
    """
    db.run_script(conn, RAW_SCHEMAS_DDL)
    config = config or load_config()
    blocking, warnings, judged = [], [], []
    for (schema, table), frame in tables.items():
        if schema != "raw":
            continue
        name = f"raw.{table}"
        columns = frame_columns(conn, frame)
        judged.append((name, columns, len(frame)))
        previous = accepted_schemas(conn, name, sample=mode == "sample")
        if not previous or mode == "sample" or set(previous[0].snapshot_ids) == set(snapshot_ids):
            continue
        for rule, finding in judge_raw_table(config, source_id, previous[0], columns, len(frame)):
            (blocking if rule.blocks else warnings).append(finding)
    if blocking:
        raise ValidationError(source_id, "; ".join(blocking))
    for name, columns, rows in judged:
        db.delete_key(conn, "core.raw_schemas", table_name=name, snapshot_id=snapshot_ids[-1])
        conn.execute(
            "INSERT INTO core.raw_schemas VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [source_id, name, snapshot_ids[-1], list(snapshot_ids), mode, json.dumps(columns), rows],
        )
    for warning in warnings:
        log.warning("%s: %s (severity warn: published anyway)", source_id, warning)
    return warnings


# --- freshness -------------------------------------------------------------------------------

FRESHNESS_SQL = """
SELECT src.source_id, src.family, src.cadence_days, st.status, st.mode, st.last_snapshot_id, st.error,
       greatest(
           (SELECT max(sn.retrieved_at) FROM core.snapshots sn
            WHERE sn.source_id = src.source_id AND sn.mode = st.mode),
           CASE WHEN st.status IN ('live', 'unchanged') THEN st.checked_at END
       ) AS fresh_as_of,
       now()::TIMESTAMP AS checked_now
FROM core.sources src LEFT JOIN core.source_status st USING (source_id)
ORDER BY src.source_id
"""


@dataclass(frozen=True)
class Freshness:
    source_id: str
    family: str
    cadence_days: float
    status: str | None
    mode: str | None
    last_snapshot_id: str | None
    error: str | None
    fresh_as_of: datetime | None
    age_days: float | None
    state: str  # never | sample | fresh | stale

    def describe(self) -> str:
        if self.state == "never":
            return "never refreshed"
        if self.state == "sample":
            return "SAMPLE data (not real)"
        return f"{self.state} ({self.age_days:.1f} d old, cadence {self.cadence_days:g} d)"


def freshness_report(conn: duckdb.DuckDBPyConnection, config: OpsConfig | None = None) -> list[Freshness]:
    """Per source: how old the newest confirmation of its data is, against its cadence.

    The data are as fresh as the newest accepted payload, or as the newest refresh that
    found upstream unchanged (a 304 confirms the data we hold are still current).
    """
    config = config or load_config()
    report = []
    for row in conn.execute(FRESHNESS_SQL).fetchall():
        source_id, family, cadence, status, mode, snapshot, error, fresh_as_of, now = row
        age = (now - fresh_as_of).total_seconds() / 86400 if fresh_as_of else None
        grace = config.rule(source_id, "freshness").grace
        if status is None or fresh_as_of is None:
            state = "never"
        elif mode == "sample":
            state = "sample"
        else:
            state = "fresh" if age <= cadence * (1 + grace) else "stale"
        report.append(
            Freshness(source_id, family, cadence, status, mode, snapshot, error, fresh_as_of, age, state)
        )
    return report


def blocking_staleness(conn: duckdb.DuckDBPyConnection, config: OpsConfig | None = None) -> list[str]:
    """Stale real data whose freshness rule has severity error: reasons not to publish."""
    config = config or load_config()
    return [
        f"{f.source_id}: {f.describe()}"
        for f in freshness_report(conn, config)
        if f.state == "stale" and config.rule(f.source_id, "freshness").blocks
    ]
