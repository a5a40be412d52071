"""The operational rules of `ops.yaml` and the freshness they define, without Dagster.

`pipelines.ops` turns these rules into Dagster checks, sensors and publication gates; the
`status` command reads them directly, so it starts without importing Dagster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import yaml

CONFIG_PATH = Path(__file__).resolve().parents[1] / "ops.yaml"
CHECKS = ("freshness", "drift", "volume")

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


DEFAULT_RULES = {
    "freshness": {"severity": "warn", "grace": 0.25},
    "drift": {"severity": "error"},
    "volume": {"severity": "error", "tolerance": 0.5},
}
RULE_FIELDS = {"freshness": {"severity", "grace"}, "drift": {"severity"}, "volume": {"severity", "tolerance"}}


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


def _checked_rules(path: Path, where: str, block) -> dict:
    if not isinstance(block, dict):
        raise OpsConfigError(f"{path.name}: '{where}' must be a mapping of check -> settings")
    rules = {}
    for check, settings in block.items():
        if check not in CHECKS:
            raise OpsConfigError(f"{path.name}: '{where}.{check}': unknown check (use {', '.join(CHECKS)})")
        if not isinstance(settings, dict):
            raise OpsConfigError(f"{path.name}: '{where}.{check}' must be a mapping")
        unknown = set(settings) - RULE_FIELDS[check]
        if unknown:
            raise OpsConfigError(f"{path.name}: '{where}.{check}': unknown setting(s) {sorted(unknown)}")
        if "severity" in settings and settings["severity"] not in ("error", "warn"):
            raise OpsConfigError(f"{path.name}: '{where}.{check}.severity' must be 'error' or 'warn'")
        for number in ("grace", "tolerance"):
            value = settings.get(number)
            if number in settings and (not isinstance(value, int | float) or value < 0):
                raise OpsConfigError(f"{path.name}: '{where}.{check}.{number}' must be a number >= 0")
        rules[check] = dict(settings)
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
