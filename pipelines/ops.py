"""Operations for every family: upstream-change sensors, and freshness, schema-drift and volume rules.

Family-agnostic on purpose (it sets no `FAMILY`): families come from `pipelines.families`,
and a family's sources are the source modules its pipeline module uses, so a new family
gets a sensor and checks without editing this file.

- Sensors: one per family. Each tick probes the family's sources cheaply
  (`sources.upstream`: conditional GET / HEAD, the OECD content constraint, the DEIS newest
  weekly file name) and asks for a run of just that family's assets only when something
  changed. A second sensor rebuilds the lenses and the export after such a run succeeds.
- Rules (`ops.yaml`, read by `pipelines.rules`): freshness against each source's cadence,
  schema drift and volume of raw tables, and the value gates of declared tables, each with
  severity `error` (blocks publication) or `warn`. Drift, volume and values are enforced in
  the shared write path (`pipelines.ingest.write_tables`) before anything is written, so a
  blocked refresh keeps serving the previous good tables; freshness blocks the export
  (`pipelines.export`). The rules' names are re-exported here for older callers.
"""

import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    multi_asset_check,
    run_status_sensor,
    sensor,
)

from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.rules import (  # noqa: F401 (the rules and freshness live apart so `status` needs no Dagster)
    CHECKS,
    CONFIG_PATH,
    DEFAULT_RULES,
    RULE_FIELDS,
    Drift,
    Freshness,
    OpsConfig,
    OpsConfigError,
    RecordedSchema,
    Rule,
    _has_raw_schemas,
    accepted_schemas,
    blocking_staleness,
    check_raw_tables,
    compare_columns,
    frame_columns,
    freshness_report,
    judge_raw_table,
    load_config,
    type_family,
    volume_change,
)
from sources import upstream
from sources.base import SourceInfo
from sources.endpoints import EndpointError, endpoints
from sources.rawstore import RawStore
from warehouse import db

log = logging.getLogger(__name__)

REFRESH_TAG = "context_lens/refresh_family"

# --- families and their sources --------------------------------------------------------------


@dataclass(frozen=True)
class FamilySource:
    """A source used by a family, with the source module whose ENDPOINTS describe it."""

    info: SourceInfo
    module: ModuleType | None

    def endpoints(self) -> dict[str, str]:
        """The resolved endpoints (overrides applied); none when the module serves several sources."""
        defaults = getattr(self.module, "ENDPOINTS", None)
        if not defaults:
            return {}
        try:
            return endpoints(self.info.id, defaults)
        except EndpointError as exc:
            log.warning("%s: endpoints not usable for probing: %s", self.info.id, exc)
            return {}


def _module_sources(module: ModuleType) -> list[SourceInfo]:
    found = [getattr(module, "SOURCE", None), *getattr(module, "SOURCES", ())]
    return list({s.id: s for s in found if isinstance(s, SourceInfo)}.values())


def _owner(info: SourceInfo) -> ModuleType | None:
    for name, module in list(sys.modules.items()):
        if name.startswith("sources.") and module is not None and info in _module_sources(module):
            return module
    return None


def family_sources(module: ModuleType) -> list[FamilySource]:
    """The sources a family's pipeline module uses: the source modules (or SourceInfos) it names."""
    found: dict[str, FamilySource] = {}

    def add(info: SourceInfo, owner: ModuleType | None) -> None:
        if info.id not in found:
            served = _module_sources(owner) if owner else []
            found[info.id] = FamilySource(info, owner if len(served) == 1 else None)

    for value in vars(module).values():
        if isinstance(value, ModuleType) and value.__name__.startswith("sources."):
            for info in _module_sources(value):
                add(info, value)
        elif isinstance(value, SourceInfo):
            add(value, _owner(value))
        elif type(value) in (list, tuple) and value and all(isinstance(v, SourceInfo) for v in value):
            for info in value:
                add(info, _owner(info))
    return sorted(found.values(), key=lambda s: s.info.id)


def family_asset_keys(module: ModuleType) -> list[AssetKey]:
    return [key for asset in getattr(module, "ASSETS", []) for key in asset.keys]


# --- upstream-change sensors -----------------------------------------------------------------


@dataclass
class Decision:
    """What one sensor tick concluded."""

    changes: list[str]
    summary: str
    cursor: dict
    run_key: str | None = None

    @property
    def run(self) -> bool:
        return bool(self.changes)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def evaluate_family(
    family: str,
    sources: Iterable[FamilySource],
    store: RawStore,
    cursor: dict,
    prober: upstream.Prober | None = None,
    now: datetime | None = None,
) -> Decision:
    """Probe every request of a family's sources once and decide whether to refresh the family.

    Every target is probed even after a change is found, so the cursor learns all current
    validators and the next tick does not mistake an already-refreshed change for a new one.
    A source whose requests have no cheap version marker is refreshed when its cadence has
    passed since its newest accepted payload or since the last run this sensor asked for.
    """
    prober = prober or upstream.Prober()
    now = now or datetime.now(UTC)
    seen = dict(cursor.get("validators", {}))
    requested = dict(cursor.get("requested", {}))
    changes, notes = [], []
    for source in sources:
        info = source.info
        sidecars = upstream.latest_sidecars(store, info.id)
        targets = upstream.plan_targets(info.id, store, source.endpoints(), sidecars)
        verdicts, changed = [], []
        for target in targets:
            probe = prober.probe(target)
            verdict = upstream.judge(probe, seen.get(target.key))
            verdicts.append(verdict)
            if probe.validator is not None:
                seen[target.key] = probe.validator
            if verdict == "error":
                notes.append(f"{info.id} {target.name}: probe failed ({probe.error})")
            elif verdict == "changed":
                changed.append(
                    f"{info.id} {target.name}: changed upstream ({probe.detail or probe.validator})"
                )
        if not changed and (not targets or "unknown" in verdicts):
            accepted = [_parse_time(s.retrieved_at) for s in sidecars if s.mode != "sample"]
            last = max([t for t in [*accepted, _parse_time(requested.get(info.id))] if t], default=None)
            if last is None or now - last >= info.cadence:
                changed.append(f"{info.id}: no cheap version marker upstream; due by its cadence")
        if changed:
            requested[info.id] = now.isoformat()
            changes.extend(changed)
        counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
        notes.append(
            f"{info.id}: " + (", ".join(f"{n} {v}" for v, n in counts.items()) or "nothing to probe")
        )
    new_cursor = {"validators": seen, "requested": requested}
    if not changes:
        failed = any("probe failed" in note for note in notes)
        headline = "no change detected (some probes failed)" if failed else "nothing changed upstream"
        return Decision([], f"{family}: {headline}. " + "; ".join(notes), new_cursor)
    digest = hashlib.sha256("\n".join(changes).encode()).hexdigest()[:12]
    # One run per change per day: a failed refresh is asked for again the next day, not every tick.
    return Decision(changes, "; ".join(changes), new_cursor, f"{family}-{digest}-{now.date().isoformat()}")


def _probe_interval(sources: list[FamilySource]) -> int:
    """Probe about eight times per cadence of the family's fastest source, between hourly and daily."""
    cadence = min(s.info.cadence for s in sources)
    return int(min(max(cadence.total_seconds() / 8, 3600), 86400))


def family_sensor(module: ModuleType):
    """The upstream-change sensor of one family, or None for a family without sources."""
    family = module.FAMILY
    used = family_sources(module)
    keys = family_asset_keys(module)
    if not used or not keys:
        return None

    @sensor(
        name=f"{family}_upstream_changes",
        asset_selection=keys,
        minimum_interval_seconds=_probe_interval(used),
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Probes the {family} sources ({', '.join(s.info.id for s in used)}) with one "
        "small request each and refreshes the family only when one of them changed.",
    )
    def _upstream_changes(context: SensorEvaluationContext, sources: SourcesResource):
        if sources.offline or os.environ.get("CONTEXT_LENS_OFFLINE", "").lower() in ("1", "true"):
            return SkipReason("offline: upstream probes are skipped")
        store = RawStore(sources.raw_dir or db.raw_dir())
        decision = evaluate_family(family, used, store, json.loads(context.cursor or "{}"))
        context.update_cursor(json.dumps(decision.cursor, sort_keys=True))
        if not decision.run:
            return SkipReason(decision.summary)
        context.log.info(decision.summary)
        return RunRequest(
            run_key=decision.run_key,
            asset_selection=keys,
            tags={REFRESH_TAG: family, "context_lens/reason": decision.summary[:200]},
        )

    return _upstream_changes


# --- publication after a refresh, and the checks on the export ------------------------------


def publish_job():
    return define_asset_job(
        "publish",
        selection=AssetSelection.groups("lens", "publication"),
        executor_def=in_process_executor,
        description="Rebuild every lens and replace the export in output/export/.",
    )


def publish_after_refresh_sensor(job, export_key: AssetKey, family_keys: set[AssetKey]):
    """After a successful run that refreshed family assets but not the export, publish."""

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="publish_after_refresh",
        request_job=job,
        default_status=DefaultSensorStatus.STOPPED,
        description="When a family refresh succeeds, rebuild the lenses and the export.",
    )
    def _publish_after_refresh(context: RunStatusSensorContext):
        run = context.dagster_run
        if run.job_name == job.name:
            return SkipReason("the run was itself a publication")
        records = context.instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records
        materialized = {r.event_log_entry.dagster_event.asset_key for r in records}
        if export_key in materialized:
            return SkipReason(f"run {run.run_id} already published the export")
        if not materialized & family_keys:
            return SkipReason(f"run {run.run_id} refreshed no family asset")
        return RunRequest(run_key=f"publish-after-{run.run_id}")

    return _publish_after_refresh


def _schema_history(conn: duckdb.DuckDBPyConnection, source_id: str) -> dict[str, list[RecordedSchema]]:
    """The two newest accepted real-data schemas of each of a source's raw tables."""
    if not _has_raw_schemas(conn):
        return {}
    tables = conn.execute(
        "SELECT DISTINCT table_name FROM core.raw_schemas WHERE source_id = ? ORDER BY 1", [source_id]
    ).fetchall()
    return {name: accepted_schemas(conn, name, sample=False, limit=2) for (name,) in tables}


def _refused(freshness: Freshness | None, marker: str) -> bool:
    return bool(freshness and freshness.status == "failed" and freshness.error and marker in freshness.error)


def source_check_results(conn: duckdb.DuckDBPyConnection, source_id: str, config: OpsConfig, asset_key):
    """The freshness, drift, volume and value-gate check results of one source, as the warehouse shows them."""
    report = {f.source_id: f for f in freshness_report(conn, config)}
    fresh = report.get(source_id)
    rule = config.rule(source_id, "freshness")
    state = fresh.state if fresh else "never"
    yield AssetCheckResult(
        asset_key=asset_key,
        check_name=f"freshness_{source_id}",
        passed=state == "fresh",
        # SAMPLE or never-built data is always a warning: it cannot be fixed by waiting.
        severity=rule.dagster_severity if state == "stale" else AssetCheckSeverity.WARN,
        metadata={
            "state": state,
            "age_days": round(fresh.age_days, 2) if fresh and fresh.age_days is not None else -1,
            "cadence_days": fresh.cadence_days if fresh else -1,
            "description": fresh.describe() if fresh else "never refreshed",
        },
    )
    history = _schema_history(conn, source_id)
    drift_findings, volume_findings = [], []
    for entries in history.values():
        if len(entries) == 2:
            for found_rule, finding in judge_raw_table(
                config, source_id, entries[1], entries[0].columns, entries[0].row_count
            ):
                (drift_findings if found_rule.check == "drift" else volume_findings).append(finding)
    for check, findings, marker in (
        ("drift", drift_findings, "schema drift"),
        ("volume", volume_findings, "row count of"),
    ):
        refused = _refused(fresh, marker)
        reasons = ([f"refresh refused: {fresh.error}"] if refused else []) + [
            f"accepted: {f}" for f in findings
        ]
        yield AssetCheckResult(
            asset_key=asset_key,
            check_name=f"{check}_{source_id}",
            passed=not reasons,
            severity=config.rule(source_id, check).dagster_severity if refused else AssetCheckSeverity.WARN,
            metadata={"findings": reasons, "raw_tables": sorted(history)},
        )
    refused = _refused(fresh, "value gate failed")
    yield AssetCheckResult(
        asset_key=asset_key,
        check_name=f"values_{source_id}",
        passed=not refused,
        severity=AssetCheckSeverity.ERROR
        if refused and config.value_rule(source_id).blocks
        else AssetCheckSeverity.WARN,
        metadata={"findings": [f"refresh refused: {fresh.error}"] if refused else []},
    )


def source_quality_checks(export_key: AssetKey, source_ids: Sequence[str]):
    """One freshness, drift and volume check per source, evaluated when the export is built."""
    if not source_ids:
        return None
    specs = [
        AssetCheckSpec(f"{check}_{source_id}", asset=export_key, description=f"{check} of {source_id}")
        for source_id in source_ids
        for check in CHECKS
    ]

    @multi_asset_check(
        specs=specs,
        name="source_quality",
        pool="duckdb_writer",
        description="Freshness against cadence, and schema drift and volume of raw tables, per source "
        "(rules and severities in ops.yaml).",
    )
    def _source_quality(warehouse: WarehouseResource):
        config = load_config()
        with warehouse.reader() as conn:
            for source_id in source_ids:
                yield from source_check_results(conn, source_id, config, export_key)

    return _source_quality


@dataclass(frozen=True)
class OpsDefinitions:
    sensors: list
    checks: list
    jobs: list


def definitions(families: Sequence[ModuleType], export_key: AssetKey) -> OpsDefinitions:
    """Everything this module contributes to the code location, for the given families."""
    sensors = [s for s in (family_sensor(m) for m in families) if s is not None]
    family_keys = {key for m in families for key in family_asset_keys(m)}
    job = publish_job()
    sensors.append(publish_after_refresh_sensor(job, export_key, family_keys))
    source_ids = sorted({s.info.id for m in families for s in family_sources(m)})
    checks = [c for c in [source_quality_checks(export_key, source_ids)] if c is not None]
    return OpsDefinitions(sensors=sensors, checks=checks, jobs=[job])


__all__ = [
    "CHECKS",
    "CONFIG_PATH",
    "DEFAULT_RULES",
    "RULE_FIELDS",
    "Freshness",
    "OpsConfig",
    "OpsConfigError",
    "blocking_staleness",
    "Rule",
    "check_raw_tables",
    "definitions",
    "evaluate_family",
    "family_sources",
    "freshness_report",
    "load_config",
]
