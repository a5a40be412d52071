"""A field study's quantitative claims, as the study words them, and how each one is checked.

A study file lists them under `claims:`. Each claim keeps the study's own words and one or
more checks: the indicator, territory and period it refers to, and the relation the study
states (about a value, above or below a value or another territory, inside a range) with
its tolerance. A check without an indicator names what would measure it; a check that no
open data can measure says so (`open_data: false`). `warehouse.claims` computes verdicts.

A claim with one check may write the check's keys beside its text:

    claims:
      - text: "over 100 informal settlements (campamentos) in the region"
        indicator: settlements_count
        territory: "region:02"
        relation: above
        value: 100
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

RELATIONS = ("approx", "above", "below", "range")
INDICATOR_ID = re.compile(r"^[a-z][a-z0-9_]{0,80}$")
TERRITORY_ID = re.compile(r"^[a-z_0-9]+:[A-Za-z0-9_]{1,12}$")
CLAIM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_CLAIMS = 200
MAX_TEXT = 2000
CHECK_FIELDS = {
    "indicator",
    "territory",
    "period",
    "relation",
    "value",
    "low",
    "high",
    "than",
    "tolerance",
    "tolerance_pct",
    "significant",
    "measured_by",
    "measured_by_es",
    "open_data",
    "note",
    "note_es",
}
CLAIM_FIELDS = {"id", "text", "text_es", "cited", "checks"}


class ClaimConfigError(ValueError):
    """A claim that cannot be checked as written; the message names the file and the field."""


@dataclass(frozen=True)
class Check:
    """One measurable statement of a claim, and the rule that judges it."""

    field: str  # where it was configured, e.g. "claims[3].checks[1]", for messages
    indicator: str | None = None
    territory: str | None = None
    period: str | None = None  # None: the latest period that starts by the study's last year
    relation: str | None = None
    value: float | None = None
    low: float | None = None
    high: float | None = None
    than: str | None = None  # above/below another territory, same period
    tolerance: float | None = None  # absolute, in the indicator's unit
    tolerance_pct: float | None = None  # relative to the stated value
    significant: bool = False  # above/below: the value's interval must clear the reference
    measured_by: str = ""
    measured_by_es: str = ""
    open_data: bool = True  # False: no open source can measure it
    note: str = ""
    note_es: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    checks: tuple[Check, ...]
    text_es: str = ""
    cited: str = ""
    order: int = 0


def _fail(path: Path, name: str, problem: str) -> ClaimConfigError:
    return ClaimConfigError(f"{path.name}: field '{name}': {problem}")


def _text(path: Path, name: str, value, required: bool = False) -> str:
    if value is None:
        if required:
            raise _fail(path, name, "required text is missing")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(path, name, "expected non-empty text")
    if len(value) > MAX_TEXT:
        raise _fail(path, name, f"longer than {MAX_TEXT} characters")
    return " ".join(value.split())


def _number(path: Path, name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(
            path, name, f"expected a number, got {value!r} (write 121857304000, not '121.857.304.000')"
        )
    return float(value)


def _pattern(path: Path, name: str, value, pattern: re.Pattern, hint: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise _fail(path, name, f"invalid {hint} {value!r}")
    return value


def _flag(path: Path, name: str, value, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(path, name, "expected true or false")
    return value


def _relation_fields(path: Path, name: str, check: Check) -> None:
    """The stated value(s) a relation needs, and nothing it would ignore."""
    relation = check.relation
    if relation not in RELATIONS:
        raise _fail(path, f"{name}.relation", f"expected one of {', '.join(RELATIONS)}, got {relation!r}")
    given = {k for k in ("value", "low", "high", "than") if getattr(check, k) is not None}
    needed = {"approx": {"value"}, "range": {"low", "high"}}.get(relation)
    if needed is None:  # above / below: a value or another territory, not both
        needed = {"than"} if check.than is not None else {"value"}
    if given != needed:
        raise _fail(
            path, name, f"relation {relation} takes {' and '.join(sorted(needed))}, got {sorted(given)}"
        )
    if relation == "range" and check.low > check.high:
        raise _fail(path, f"{name}.high", "the range ends below its start")
    tolerances = [t for t in (check.tolerance, check.tolerance_pct) if t is not None]
    if relation == "approx" and len(tolerances) != 1:
        raise _fail(path, name, "relation approx needs one of tolerance (in the unit) or tolerance_pct")
    if relation != "approx" and tolerances:
        raise _fail(path, name, f"a tolerance applies to approx only, not {relation}")
    if any(t < 0 for t in tolerances):
        raise _fail(path, name, "a tolerance cannot be negative")
    if check.significant and relation not in ("above", "below"):
        raise _fail(path, f"{name}.significant", "applies to above and below only")


def parse_check(path: Path, name: str, raw: dict) -> Check:
    unknown = sorted(str(k) for k in raw if k not in CHECK_FIELDS)
    if unknown:
        raise _fail(
            path, f"{name}.{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(CHECK_FIELDS))})"
        )
    period = raw.get("period")
    check = Check(
        field=name,
        indicator=_pattern(path, f"{name}.indicator", raw.get("indicator"), INDICATOR_ID, "indicator id"),
        territory=_pattern(path, f"{name}.territory", raw.get("territory"), TERRITORY_ID, "territory id"),
        period=None if period is None else str(period),
        relation=raw.get("relation"),
        value=_number(path, f"{name}.value", raw.get("value")),
        low=_number(path, f"{name}.low", raw.get("low")),
        high=_number(path, f"{name}.high", raw.get("high")),
        than=_pattern(path, f"{name}.than", raw.get("than"), TERRITORY_ID, "territory id"),
        tolerance=_number(path, f"{name}.tolerance", raw.get("tolerance")),
        tolerance_pct=_number(path, f"{name}.tolerance_pct", raw.get("tolerance_pct")),
        significant=_flag(path, f"{name}.significant", raw.get("significant"), False),
        measured_by=_text(path, f"{name}.measured_by", raw.get("measured_by")),
        measured_by_es=_text(path, f"{name}.measured_by_es", raw.get("measured_by_es")),
        open_data=_flag(path, f"{name}.open_data", raw.get("open_data"), True),
        note=_text(path, f"{name}.note", raw.get("note")),
        note_es=_text(path, f"{name}.note_es", raw.get("note_es")),
    )
    if check.indicator is None:
        if not check.measured_by:
            raise _fail(
                path, name, "a check without an indicator must say what would measure it (measured_by)"
            )
        if check.relation is not None:
            raise _fail(path, f"{name}.relation", "needs an indicator to be checked against")
        return check
    if check.territory is None:
        raise _fail(path, f"{name}.territory", "a check with an indicator needs its territory")
    if not check.open_data:
        raise _fail(
            path, f"{name}.open_data", "a check measured by an indicator is measurable from open data"
        )
    _relation_fields(path, name, check)
    return check


def _claim(path: Path, index: int, raw) -> Claim:
    name = f"claims[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, name, "expected a mapping with text and the check's fields")
    unknown = sorted(str(k) for k in raw if k not in CLAIM_FIELDS | CHECK_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(CLAIM_FIELDS | CHECK_FIELDS))
        raise _fail(path, f"{name}.{unknown[0]}", f"unknown field (allowed: {allowed})")
    inline = {k: v for k, v in raw.items() if k in CHECK_FIELDS}
    if "checks" in raw:
        if inline:
            raise _fail(
                path, name, f"give the check fields inside checks, not beside them ({sorted(inline)})"
            )
        if not isinstance(raw["checks"], list) or not raw["checks"]:
            raise _fail(path, f"{name}.checks", "expected a non-empty list of checks")
        checks = tuple(
            parse_check(
                path, f"{name}.checks[{i}]", c if isinstance(c, dict) else _not_mapping(path, name, i)
            )
            for i, c in enumerate(raw["checks"])
        )
    else:
        checks = (parse_check(path, name, inline),)
    claim_id = _pattern(path, f"{name}.id", raw.get("id"), CLAIM_ID, "claim id (a-z, 0-9, '-')")
    return Claim(
        id=claim_id or f"claim-{index + 1}",
        text=_text(path, f"{name}.text", raw.get("text"), required=True),
        text_es=_text(path, f"{name}.text_es", raw.get("text_es")),
        cited=_text(path, f"{name}.cited", raw.get("cited")),
        checks=checks,
        order=index,
    )


def _not_mapping(path: Path, name: str, index: int):
    raise _fail(path, f"{name}.checks[{index}]", "expected a mapping")


def parse_claims(path: Path, values) -> tuple[Claim, ...]:
    """The `claims:` list of a study file, every problem named by its field."""
    if values is None:
        return ()
    if not isinstance(values, list):
        raise _fail(path, "claims", "expected a list of claims")
    if len(values) > MAX_CLAIMS:
        raise _fail(path, "claims", f"more than {MAX_CLAIMS} claims")
    claims = tuple(_claim(path, index, raw) for index, raw in enumerate(values))
    ids = [c.id for c in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise _fail(path, "claims", f"repeated claim id(s) {repeated}")
    return claims
