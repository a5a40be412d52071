"""The value gates of the shared publish path: declared tables judged before anything is written.

A family declares, once per table, what its numbers are (`declare(table, TableGates(...))`:
keys, value columns, the grouping that picks a tolerance, aggregates for count tables).
`pipelines.ingest.write_tables`, the one way a source's tables reach the warehouse, stages
every incoming table, judges each declared one against the last accepted publication of the
same table (`warehouse.gates.compare`, thresholds from ops.yaml `values:`), and refuses the
whole publication when a blocking rule fails: nothing is written, the message names the
source, the snapshots, the keys and the previous and observed values. core.observations is
declared here for every source, so any family that publishes observations is judged.

Gates compare real data with real data only: a publication whose inputs or whose previous
content are SAMPLE data is not judged, and neither is a republication of the very snapshots
accepted last time (a code change, not an upstream one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from pipelines.rules import OpsConfig, ValueRule, load_config
from sources.base import ValidationError
from warehouse import gates as sql
from warehouse import store
from warehouse.db import quote_ident
from warehouse.gates import Aggregate, TableGates

log = logging.getLogger(__name__)

__all__ = [
    "Aggregate",
    "GateRefusal",
    "Staged",
    "TableGates",
    "declaration",
    "declare",
    "judge",
    "stage",
    "write",
]

_DECLARATIONS: dict[str, TableGates] = {}


class GateRefusal(ValidationError):
    """A publication refused by a value gate; the message has the keys and both values."""

    stage = "value gate"


def declare(table: str, gates: TableGates) -> TableGates:
    """Register the value declaration of `schema.table` (one per table; a second must be equal)."""
    if _DECLARATIONS.get(table, gates) != gates:
        raise ValueError(f"{table} is declared twice, differently")
    _DECLARATIONS[table] = gates
    return gates


def declaration(table: str) -> TableGates | None:
    return _DECLARATIONS.get(table)


OBSERVATIONS = declare(
    "core.observations",
    TableGates(
        keys=("indicator_id", "territory_id", "period"),
        values=("value",),
        group="indicator_id",
        partition="source_id",
    ),
)


@dataclass
class Staged:
    """One incoming table, visible to SQL as `relation`, with what it was computed from."""

    table: str
    source_id: str
    content: pd.DataFrame | str
    relation: str
    snapshot_ids: tuple[str, ...]
    mode: str
    gates: TableGates | None
    temp_name: str

    @property
    def partition(self) -> str:
        return self.source_id if self.gates and self.gates.partition else ""

    @property
    def params(self) -> dict:
        return {"partition": self.source_id} if self.partition else {}


def _temp_name(table: str) -> str:
    return "_incoming_" + table.replace(".", "_")


def stage(
    conn: duckdb.DuckDBPyConnection,
    source_id: str,
    table: str,
    content: pd.DataFrame | str,
    snapshot_ids: Sequence[str] | None,
    mode: str | None,
) -> Staged:
    """Make the incoming rows queryable (a registered frame, or a temp table from our SQL)."""
    temp = _temp_name(table)
    gates = declaration(table)
    if isinstance(content, pd.DataFrame):
        shown = content[[c for c in content.columns if c != "inputs"]]  # lineage lists stay in pandas
        conn.register(temp, shown)
    else:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {content}")  # noqa: S608 (our SQL)
    relation = f"SELECT * FROM {temp}"  # noqa: S608 (a name we made)
    columns = gates.snapshot_columns if gates else ("snapshot_id",)
    ids = tuple(sorted(snapshot_ids or sql.snapshot_ids_of(conn, relation, columns)))
    if mode is None:
        modes = set(sql.snapshot_modes(conn, ids).values())
        mode = "sample" if "sample" in modes else ("curated" if "curated" in modes else "live")
        mode = mode if modes else "unknown"  # no snapshot to say what it is: recorded, never judged
    return Staged(table, source_id, content, relation, ids, mode, gates, temp)


def release(conn: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    if isinstance(staged.content, pd.DataFrame):
        conn.unregister(staged.temp_name)
    else:
        conn.execute(f"DROP TABLE IF EXISTS {staged.temp_name}")


# --- judging -------------------------------------------------------------------------------------


def _rules(config: OpsConfig, source_id: str):
    cache: dict[str | None, sql.Rules] = {}

    def rules_for(group: str | None) -> sql.Rules:
        if group not in cache:
            rule = config.value_rule(source_id, group)
            cache[group] = sql.Rules(rule.tolerance, rule.magnitude, rule.sign, rule.share_tolerance)
        return cache[group]

    return rules_for


def _number(value) -> str:
    return "blank" if value is None else f"{value:,.6g}"


def _examples(items: list[dict]) -> str:
    return "; ".join(f"{e['key']}: {_number(e['previous'])} -> {_number(e['observed'])}" for e in items)


def describe_findings(found: sql.GroupFindings, rule: ValueRule) -> list[str]:
    """The findings of one group that break its rule, each naming keys and both values."""
    where = found.measure + (f" of {found.group}" if found.group is not None else "")
    lines = []
    if found.keys and found.removed / found.keys > rule.max_removed_share:
        lines.append(
            f"{where}: would remove or blank {found.removed} of {found.keys} current keys "
            f"({found.removed / found.keys:.0%}, more than {rule.max_removed_share:.0%}), e.g. "
            + _examples(found.examples["removed"])
        )
    if found.sign_flips:
        lines.append(
            f"{where}: {found.sign_flips} value(s) change sign, e.g. {_examples(found.examples['sign'])}"
        )
    if found.magnitude:
        lines.append(
            f"{where}: {found.magnitude} value(s) change by an order of magnitude or more (x{rule.magnitude:g}), "
            f"e.g. {_examples(found.examples['magnitude'])}"
        )
    if found.jumps:
        limit = (
            f"{rule.share_tolerance:g} (share)"
            if found.share
            else f"x{1 + (rule.tolerance or 0):g} either way"
        )
        lines.append(
            f"{where}: {found.jumps} value(s) move by more than {limit}, e.g. {_examples(found.examples['jump'])}"
        )
    return lines


def _judged(conn: duckdb.DuckDBPyConnection, staged: Staged) -> sql.Publication | None:
    """The previous publication to judge against, or None when this one is not judged."""
    if staged.gates is None or staged.mode not in ("live", "curated"):
        return None
    if not sql.exists(conn, staged.table):
        return None
    previous = sql.previous(conn, staged.table, staged.partition)
    if previous is None:
        old = sql.relation_sql(staged.table, staged.gates.partition)
        ids = sql.snapshot_ids_of(conn, old, staged.gates.snapshot_columns, staged.params)
        modes = set(sql.snapshot_modes(conn, ids).values())
        if not ids or "sample" in modes:
            return None
        previous = sql.Publication(
            staged.table, staged.partition, staged.source_id, tuple(ids), "live", -1, ""
        )
    if previous.mode == "sample" or set(previous.snapshot_ids) == set(staged.snapshot_ids):
        return None
    return previous


def judge(
    conn: duckdb.DuckDBPyConnection, source_id: str, staged: Sequence[Staged], config: OpsConfig | None = None
) -> list[str]:
    """Refuse (GateRefusal) when any declared table breaks a blocking value rule; return the warnings."""
    config = config or load_config()
    rules_for = _rules(config, source_id)
    blocking, warnings = [], []
    for item in staged:
        previous = _judged(conn, item)
        if previous is None:
            continue
        old = sql.relation_sql(item.table, item.gates.partition)
        columns = {name for name, *_ in conn.execute(f"DESCRIBE {item.relation}").fetchall()}  # noqa: S608
        refused = []
        for measure in sql.measures(item.gates, columns):
            unjudged = config.value_rule(source_id).unjudged_flags
            for found in sql.compare(conn, measure, old, item.relation, rules_for, item.params, unjudged):
                rule = config.value_rule(source_id, found.group)
                (refused if rule.blocks else warnings).extend(describe_findings(found, rule))
        if refused:
            snapshots = ", ".join(previous.snapshot_ids)
            blocking.append(
                f"{item.table} against its last accepted values (snapshots {snapshots}): "
                + "; ".join(refused)
            )
    if blocking:
        newest = max((s for item in staged for s in item.snapshot_ids), default=None)
        raise GateRefusal(source_id, " | ".join(blocking), newest)
    for warning in warnings:
        log.warning("%s: value gate (severity warn, published anyway): %s", source_id, warning)
    return warnings


# --- writing -------------------------------------------------------------------------------------


def write(conn: duckdb.DuckDBPyConnection, staged: Staged) -> int:
    """Write one judged table (skipping a whole table identical to what is there) and record it."""
    schema, name = staged.table.split(".", 1)
    old = sql.relation_sql(staged.table, staged.gates.partition if staged.gates else None)
    rows, digest = (0, "") if staged.partition else sql.fingerprint(conn, staged.relation)
    unchanged = (
        not staged.partition
        and sql.exists(conn, staged.table)
        and sql.fingerprint(conn, old) == (rows, digest)
    )
    if unchanged:
        log.info("%s: %s unchanged (%d rows), not rewritten", staged.source_id, staged.table, rows)
    elif staged.partition:
        frame = (
            staged.content if isinstance(staged.content, pd.DataFrame) else conn.execute(staged.relation).df()
        )
        if staged.table != "core.observations":
            raise ValueError(f"{staged.table}: only core.observations is written by partition")
        store.replace_observations(conn, staged.source_id, frame)
    elif isinstance(staged.content, pd.DataFrame) and not (staged.gates and staged.gates.refill):
        store.replace_table(conn, schema, name, staged.content)
    else:
        sql.replace_from(
            conn, staged.table, staged.temp_name, refill=bool(staged.gates and staged.gates.refill)
        )
    # What the table holds now (types as its DDL made them), as `unpublished` will check it.
    relation = _fingerprinted(conn, staged, old) if staged.partition else old
    rows, digest = sql.fingerprint(conn, relation, staged.params)
    sql.record(
        conn,
        sql.Publication(
            staged.table, staged.partition, staged.source_id, staged.snapshot_ids, staged.mode, rows, digest
        ),
    )
    return rows


def _fingerprinted(conn: duckdb.DuckDBPyConnection, staged: Staged, relation: str) -> str:
    """A partition is fingerprinted over its table's columns, as `warehouse.gates.unpublished` checks it."""
    columns = ", ".join(quote_ident(c) for c in sql.partitioned_columns(conn, staged.table))
    return f"SELECT {columns} FROM ({relation}) r"  # noqa: S608 (quoted names)


# Tables that record attempts or bookkeeping, or study outputs, rather than a source's data: they are
# written beside the gated tables, never instead of them (`warehouse.gates.unpublished` skips them).
UNGATED = {
    "core.sources": "citation rows, recorded with every attempt",
    "core.snapshots": "provenance of accepted payloads",
    "core.source_status": "the outcome of the newest attempt",
    "core.indicators": "the indicator registry (warehouse/indicators/*.yaml)",
    "core.raw_schemas": "the drift record of accepted raw tables",
    "core.observation_history": "every value ever published, appended with core.observations",
    "core.observation_inputs": "the lineage of core.observations, written with it",
    "core.observation_input_history": "the lineage of core.observation_history, appended with it",
    "core.lineages": "the lineage of core.observations, written with it",
    "ops.*": "the bookkeeping of publications",
    "lens.*": "study outputs computed from the warehouse, not a source's data",
}


def unpublished(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables holding source data that the gated path did not write as they are now."""
    partitioned = {table: g.partition for table, g in _DECLARATIONS.items() if g.partition}
    return sql.unpublished(conn, list(UNGATED), partitioned)
