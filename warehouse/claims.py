"""The study's claims checked against the lens: `lens.<study>_claims`, one row per check.

Every check gets a verdict and the rule that gave it:

- consistent / inconsistent: the rule (RULES) applied to the value the lens holds for the
  check's indicator, territory and period, with a badge no weaker than curated;
- sample_only: the value exists, but it (or the value compared with) comes from SAMPLE data, so
  the rule's result (`rule_result`, kept) must not be cited;
- not_measurable: no source in the warehouse for it (`reason` no_indicator, no_source or
  no_open_data, with what would measure it), or no value for that territory and period
  (no_data, no_comparison) or no interval where the rule needs one (no_interval).

Values come from the lens indicator rows, so an as-of lens checks claims as of that date.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from warehouse.badges import badge, weakest
from warehouse.lens import period_years
from warehouse.lens_tables import comment_lens_table
from warehouse.registry import presentations
from warehouse.store import replace_table

if TYPE_CHECKING:
    from pipelines.claims import Check, Claim

VERDICTS = ("consistent", "inconsistent", "sample_only", "not_measurable")
REASONS = ("no_open_data", "no_indicator", "no_source", "no_data", "no_comparison", "no_interval")
RULES = {
    "approx": "consistent when |value - stated| <= tolerance",
    "above": "consistent when value > stated (significant: the interval's lower bound > stated)",
    "below": "consistent when value < stated (significant: the interval's upper bound < stated)",
    "range": "consistent when low <= value <= high",
}

CLAIM_COLUMNS = {
    "claim_id": "claim id in the study file",
    "claim_order": "position of the claim in the study file",
    "check_order": "position of the check within its claim",
    "claim_text": "the claim as the field study words it",
    "cited": "where the study makes the claim",
    "note": "what the check measures, when it is a proxy or a part of the claim",
    "indicator_id": "indicator checked (core.indicators), empty when no indicator measures it yet",
    "label": "indicator label",
    "unit": "unit of value, stated_value, low, high and tolerance",
    "territory_id": "territory the claim refers to",
    "territory_name": "its name",
    "period_stated": "period the claim names (empty: the latest one by the study's last year)",
    "relation": "approx, above, below or range",
    "stated_value": "the value the claim states (approx, above, below)",
    "stated_low": "start of a stated range",
    "stated_high": "end of a stated range",
    "than_territory_id": "territory compared with (above/below another territory)",
    "than_territory_name": "its name",
    "tolerance": "the tolerance of approx, in the unit",
    "significant": "above/below must hold for the whole interval",
    "period": "period of the value used",
    "value": "the lens value",
    "lower": "lower bound of its interval",
    "upper": "upper bound of its interval",
    "than_value": "value of the territory compared with, same period",
    "than_lower": "its lower bound",
    "than_upper": "its upper bound",
    "source_id": "source of the value",
    "source_title": "its title",
    "snapshot_id": "snapshot of the value",
    "than_snapshot_id": "snapshot of the value compared with",
    "badge": "weakest badge of the values used: live, stale, curated, curated-unverified, sample",
    "rule": "the rule, with the stated figures",
    "rule_result": "consistent or inconsistent as the rule reads the values (also for sample data)",
    "verdict": "consistent, inconsistent, sample_only or not_measurable",
    "reason": "why not measurable: no_open_data, no_indicator, no_source, no_data, no_comparison, no_interval",
    "measured_by": "what measures it, or would",
}
FLOAT_COLUMNS = [c for c in CLAIM_COLUMNS if c.startswith(("stated_", "than_v", "than_l", "than_u"))] + [
    "tolerance",
    "value",
    "lower",
    "upper",
]


@dataclass(frozen=True)
class ClaimContext:
    """What the checks are judged against: the lens rows and what the warehouse knows."""

    values: pd.DataFrame  # lens indicator rows
    indicators: dict[str, dict] = field(default_factory=dict)  # core.indicators: id -> label, unit, source_id
    sources: dict[str, str] = field(default_factory=dict)  # core.sources: id -> title
    last_year: int = 9999

    @property
    def names(self) -> dict[str, str]:
        return dict(zip(self.values["territory_id"], self.values["territory_name"], strict=True))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def tolerance_of(check: Check) -> float | None:
    if check.tolerance is not None:
        return check.tolerance
    if check.tolerance_pct is not None and check.value is not None:
        return abs(check.value) * check.tolerance_pct / 100
    return None


def _figure(value: float) -> str:
    return f"{value:,.10g}"


def rule_text(check: Check, than_name: str = "") -> str:
    """The rule in words, with the stated figures (English; the report words it per language)."""
    if check.relation == "approx":
        return f"consistent when the value is within {_figure(tolerance_of(check))} of {_figure(check.value)}"
    if check.relation == "range":
        return f"consistent when the value is between {_figure(check.low)} and {_figure(check.high)}"
    side = "above" if check.relation == "above" else "below"
    target = f"{than_name or check.than}'s value for the same period" if check.than else _figure(check.value)
    whole = "the whole 95% interval" if check.significant else "the value"
    return f"consistent when {whole} is {side} {target}"


def _holds(check: Check, row: dict, other: dict | None) -> bool | None:
    """The rule on the values; None when it needs an interval that is not there."""
    value = row["value"]
    if check.relation == "approx":
        return abs(value - check.value) <= tolerance_of(check) + 1e-12
    if check.relation == "range":
        return check.low <= value <= check.high
    above = check.relation == "above"
    if check.significant:
        own = row["lower"] if above else row["upper"]
        ref = check.value if other is None else (other["upper"] if above else other["lower"])
        if _missing(own) or _missing(ref):
            return None
    else:
        own, ref = value, check.value if other is None else other["value"]
    return own > ref if above else own < ref


def _candidates(rows: pd.DataFrame, last_year: int) -> pd.DataFrame:
    """Rows whose period starts by the study's last year (no projections), latest end first."""
    spans = [period_years(p) or (0, 0) for p in rows["period"]]
    ranked = rows.assign(_start=[a for a, _ in spans], _end=[b for _, b in spans])
    usable = ranked[ranked["_start"] <= last_year]
    usable = usable if len(usable) else ranked
    return usable.sort_values(["_end", "period"], ascending=False)


def _pick(values: pd.DataFrame, check: Check, last_year: int) -> tuple[dict | None, dict | None]:
    """(the value row, the compared territory's row) for the check's period or the latest shared one."""
    key = values["indicator_id"] == check.indicator
    own = values[key & (values["territory_id"] == check.territory) & values["value"].notna()]
    other = (
        values[key & (values["territory_id"] == check.than) & values["value"].notna()] if check.than else None
    )
    if check.period is not None:
        own = own[own["period"] == check.period]
    if other is not None:
        own = own[own["period"].isin(other["period"])]
    if own.empty:
        return None, None
    row = _candidates(own, last_year).iloc[0].to_dict()
    if other is None:
        return row, None
    return row, other[other["period"] == row["period"]].iloc[0].to_dict()


def _base(claim: Claim, check_order: int, check: Check, context: ClaimContext) -> dict:
    names = context.names
    registered = context.indicators.get(check.indicator or "", {})
    source = registered.get("source_id") or getattr(
        presentations().get(check.indicator or ""), "source_id", ""
    )
    return {
        "claim_id": claim.id,
        "claim_order": claim.order,
        "check_order": check_order,
        "claim_text": claim.text,
        "cited": claim.cited,
        "note": check.note,
        "indicator_id": check.indicator or "",
        "label": registered.get("label"),
        "unit": registered.get("unit"),
        "territory_id": check.territory or "",
        "territory_name": names.get(check.territory or "", check.territory or ""),
        "period_stated": check.period or "",
        "relation": check.relation or "",
        "stated_value": check.value,
        "stated_low": check.low,
        "stated_high": check.high,
        "than_territory_id": check.than or "",
        "than_territory_name": names.get(check.than or "", check.than or ""),
        "tolerance": tolerance_of(check),
        "significant": check.significant,
        "measured_by": check.measured_by or context.sources.get(source, source),
        "rule": rule_text(check, names.get(check.than or "", "")) if check.relation else "",
    }


def check_row(claim: Claim, order: int, check: Check, context: ClaimContext) -> dict:
    """One row of the claims table: the check, the value it was judged on, and the verdict."""
    row = _base(claim, order, check, context)
    values = context.values
    if check.indicator is None:
        return row | {
            "verdict": "not_measurable",
            "reason": "no_open_data" if not check.open_data else "no_indicator",
        }
    if check.indicator not in context.indicators:
        return row | {"verdict": "not_measurable", "reason": "no_source"}
    found, other = _pick(values, check, context.last_year)
    if found is None:
        mine = values[
            (values["indicator_id"] == check.indicator) & (values["territory_id"] == check.territory)
        ]
        reason = "no_comparison" if check.than and len(mine) else "no_data"
        return row | {"verdict": "not_measurable", "reason": reason}
    row |= {k: found.get(k) for k in ("label", "unit", "period", "value", "lower", "upper", "source_id")}
    row |= {"source_title": found.get("source_title"), "snapshot_id": found.get("snapshot_id")}
    inputs = [found] + ([other] if other else [])
    row["badge"] = weakest(badge(r.get("mode"), r.get("freshness"), r.get("verification")) for r in inputs)
    if other:
        row |= {f"than_{k}": other.get(k) for k in ("value", "lower", "upper", "snapshot_id")}
    holds = _holds(check, found, other)
    if holds is None:
        return row | {"verdict": "not_measurable", "reason": "no_interval"}
    row["rule_result"] = "consistent" if holds else "inconsistent"
    row["verdict"] = "sample_only" if row["badge"] in ("sample", "unknown") else row["rule_result"]
    return row


def claim_rows(claims: Sequence[Claim], context: ClaimContext) -> pd.DataFrame:
    """The claims table of a lens, one row per check, in the study file's order."""
    rows = [
        check_row(claim, order, check, context)
        for claim in claims
        for order, check in enumerate(claim.checks)
    ]
    frame = pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
    for column in CLAIM_COLUMNS:
        if column in FLOAT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif column in ("claim_order", "check_order"):
            frame[column] = frame[column].astype("int64")
        elif column == "significant":
            frame[column] = frame[column].astype(bool)
        else:
            frame[column] = frame[column].astype("string")
    return frame


def _unknown_indicator(claims: Sequence[Claim], known: dict) -> None:
    """A claim naming an indicator nobody registered is a typo, not a 'not measurable' verdict."""
    unknown = sorted(
        (check.field, check.indicator)
        for claim in claims
        for check in claim.checks
        if check.indicator and check.indicator not in known and check.indicator not in presentations()
    )
    if unknown:
        name, indicator = unknown[0]
        raise ValueError(
            f"study claims: field '{name}.indicator': {indicator!r} is neither in the indicator registry "
            "(warehouse/indicators/*.yaml) nor in core.indicators"
        )


def write_claims(
    conn: duckdb.DuckDBPyConnection,
    prefix: str,
    claims: Sequence[Claim],
    indicators: pd.DataFrame,
    last_year: int,
) -> pd.DataFrame:
    """Compute and replace `lens.<prefix>_claims` (inside the caller's transaction)."""
    registered = conn.execute("SELECT indicator_id, label, unit, source_id FROM core.indicators").df()
    sources = dict(conn.execute("SELECT source_id, title FROM core.sources").fetchall())
    context = ClaimContext(
        values=indicators,
        indicators={r.pop("indicator_id"): r for r in registered.to_dict("records")},
        sources=sources,
        last_year=last_year,
    )
    _unknown_indicator(claims, context.indicators)
    frame = claim_rows(claims, context)
    replace_table(conn, "lens", f"{prefix}_claims", frame)
    comment_lens_table(conn, prefix, "claims")
    return frame
