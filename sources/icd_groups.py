"""ICD-9/ICD-10 cause groups for death counts, read from a versioned reference file.

The grouping lives in `sources/reference/icd_cause_groups.yaml` (its header explains the
matching rules, the ICD-9/ICD-10 switch year, the DIAG2 rule for injury deaths and which
groups partition deaths). This module loads and checks it, classifies codes in Python, and
writes the same classification as SQL so a multi-hundred-MB deaths file can be grouped
in one streaming DuckDB scan. Both forms are built from the same parsed ranges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

REFERENCE_PATH = Path(__file__).resolve().parent / "reference" / "icd_cause_groups.yaml"

Revision = Literal["icd9", "icd10"]
REVISIONS: tuple[Revision, ...] = ("icd9", "icd10")
UNMAPPED = "unmapped"

_CODE_PATTERN = re.compile(r"^[A-Z0-9]{2,5}$")
_GROUP_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_NON_CODE_CHARS = re.compile(r"[^A-Za-z0-9]")


class CauseGroupsError(ValueError):
    """The reference file is malformed: a bad code, overlapping chapters, a missing field."""


def normalize_code(raw: object) -> str:
    """'C34.9' -> 'C349', ' u07.1 ' -> 'U071', None/'' -> ''. Matches `sql_normalize_code`."""
    if raw is None:
        return ""
    return _NON_CODE_CHARS.sub("", str(raw)).upper()


def sql_normalize_code(column_sql: str) -> str:
    """The SQL twin of `normalize_code` for a VARCHAR expression."""
    return f"upper(regexp_replace(coalesce({column_sql}, ''), '[^A-Za-z0-9]', '', 'g'))"


@dataclass(frozen=True)
class CodeRange:
    """An inclusive range of ICD codes compared on prefixes (see the reference file)."""

    low: str
    high: str

    def contains(self, code: str) -> bool:
        return code[: len(self.low)] >= self.low and code[: len(self.high)] <= self.high

    def sql(self, code_sql: str) -> str:
        # low/high passed _CODE_PATTERN on load, so quoting them cannot break the SQL.
        return (
            f"(left({code_sql}, {len(self.low)}) >= '{self.low}' "
            f"AND left({code_sql}, {len(self.high)}) <= '{self.high}')"
        )

    def _bounds(self) -> tuple[str, str]:
        return self.low.ljust(8, "\x00"), self.high.ljust(8, "\x7f")

    def overlaps(self, other: CodeRange) -> bool:
        a_low, a_high = self._bounds()
        b_low, b_high = other._bounds()
        return a_low <= b_high and b_low <= a_high


def _any_contains(ranges: Iterable[CodeRange], code: str) -> bool:
    return any(r.contains(code) for r in ranges)


def _any_sql(ranges: Iterable[CodeRange], code_sql: str) -> str:
    parts = [r.sql(code_sql) for r in ranges]
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


@dataclass(frozen=True)
class CauseGroup:
    id: str
    kind: Literal["total", "chapter", "specific"]
    label: str
    ranges: Mapping[str, tuple[CodeRange, ...]]

    def contains(self, revision: str, code: str) -> bool:
        if self.kind == "total":
            return True
        return _any_contains(self.ranges.get(revision, ()), code)


@dataclass(frozen=True)
class CauseGroups:
    """The loaded reference: groups, the ICD-10 switch year and the DIAG2 rule."""

    version: str
    icd10_from_year: int
    groups: tuple[CauseGroup, ...]
    redirect: Mapping[str, tuple[tuple[CodeRange, ...], tuple[CodeRange, ...]]]
    source_path: str

    @property
    def total(self) -> CauseGroup:
        return next(g for g in self.groups if g.kind == "total")

    @property
    def chapters(self) -> tuple[CauseGroup, ...]:
        return tuple(g for g in self.groups if g.kind == "chapter")

    @property
    def specifics(self) -> tuple[CauseGroup, ...]:
        return tuple(g for g in self.groups if g.kind == "specific")

    @property
    def partition_ids(self) -> tuple[str, ...]:
        """Groups whose counts add up to all causes: the chapters plus `unmapped`."""
        return tuple(g.id for g in self.chapters) + (UNMAPPED,)

    def revision_for_year(self, year: int) -> Revision:
        return "icd10" if year >= self.icd10_from_year else "icd9"

    # --- Python classification ---------------------------------------------------------

    def underlying_code(self, revision: str, diag1: object, diag2: object = None) -> str:
        """DIAG2 when DIAG1 is a nature-of-injury code and DIAG2 an external cause, else DIAG1."""
        code1, code2 = normalize_code(diag1), normalize_code(diag2)
        rule = self.redirect.get(revision)
        if rule and code1 and code2 and _any_contains(rule[0], code1) and _any_contains(rule[1], code2):
            return code2
        return code1

    def chapter_of(self, revision: str, code: str) -> str:
        if code:
            for group in self.chapters:
                if group.contains(revision, code):
                    return group.id
        return UNMAPPED

    def groups_of(self, revision: str, diag1: object, diag2: object = None) -> list[str]:
        """Every group one death counts in: all causes, one chapter (or unmapped), the specifics."""
        code = self.underlying_code(revision, diag1, diag2)
        found = [self.total.id, self.chapter_of(revision, code)]
        if code:
            found += [g.id for g in self.specifics if g.contains(revision, code)]
        return found

    # --- SQL classification (same ranges, for streaming scans) -------------------------

    def sql_revision(self, year_sql: str) -> str:
        return f"(CASE WHEN {year_sql} >= {int(self.icd10_from_year)} THEN 'icd10' ELSE 'icd9' END)"

    def sql_underlying_code(self, revision_sql: str, diag1_sql: str, diag2_sql: str) -> str:
        """SQL of `underlying_code`; diag1/diag2 must already be normalised codes."""
        branches = []
        for revision, (diag1_in, diag2_in) in self.redirect.items():
            branches.append(
                f"WHEN {revision_sql} = '{revision}' AND {_any_sql(diag1_in, diag1_sql)} "
                f"AND {_any_sql(diag2_in, diag2_sql)} THEN {diag2_sql}"
            )
        if not branches:
            return diag1_sql
        return "(CASE " + " ".join(branches) + f" ELSE {diag1_sql} END)"

    def sql_chapter(self, revision_sql: str, code_sql: str) -> str:
        branches = [f"WHEN {code_sql} = '' THEN '{UNMAPPED}'"]
        for group in self.chapters:
            for revision, ranges in group.ranges.items():
                if ranges:
                    branches.append(
                        f"WHEN {revision_sql} = '{revision}' AND {_any_sql(ranges, code_sql)} THEN '{group.id}'"
                    )
        return "(CASE " + " ".join(branches) + f" ELSE '{UNMAPPED}' END)"

    def sql_specific_flags(self, revision_sql: str, code_sql: str) -> dict[str, str]:
        """One boolean SQL expression per specific group."""
        flags = {}
        for group in self.specifics:
            parts = [
                f"({revision_sql} = '{revision}' AND {_any_sql(ranges, code_sql)})"
                for revision, ranges in group.ranges.items()
                if ranges
            ]
            flags[group.id] = "(" + " OR ".join(parts) + ")" if parts else "FALSE"
        return flags


# --- loading and checking the reference file ----------------------------------------------


def _parse_ranges(value: object, where: str) -> tuple[CodeRange, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CauseGroupsError(f"{where}: expected a list of [low, high] pairs, got {value!r}")
    ranges = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise CauseGroupsError(f"{where}: {pair!r} is not a [low, high] pair")
        low, high = (normalize_code(p) for p in pair)
        for code in (low, high):
            if not _CODE_PATTERN.match(code):
                raise CauseGroupsError(f"{where}: {code!r} is not an ICD code")
        if low[: len(high)] > high:
            raise CauseGroupsError(f"{where}: range {low}-{high} is empty")
        ranges.append(CodeRange(low, high))
    return tuple(ranges)


def _check_chapters_disjoint(groups: Iterable[CauseGroup]) -> None:
    chapters = [g for g in groups if g.kind == "chapter"]
    for revision in REVISIONS:
        for i, first in enumerate(chapters):
            for second in chapters[i + 1 :]:
                for a in first.ranges.get(revision, ()):
                    for b in second.ranges.get(revision, ()):
                        if a.overlaps(b):
                            raise CauseGroupsError(
                                f"chapter groups {first.id} and {second.id} overlap in {revision} "
                                f"({a.low}-{a.high} and {b.low}-{b.high}); chapters must partition deaths"
                            )


def parse_cause_groups(document: Mapping, source_path: str = "<memory>") -> CauseGroups:
    """Check and build the groups from an already-parsed YAML document."""
    if not isinstance(document, Mapping):
        raise CauseGroupsError("the reference file is not a mapping")
    for key in ("version", "icd10_from_year", "groups"):
        if key not in document:
            raise CauseGroupsError(f"the reference file has no {key!r}")
    groups: list[CauseGroup] = []
    seen: set[str] = set()
    for entry in document["groups"]:
        group_id, kind = entry.get("id"), entry.get("kind")
        if not isinstance(group_id, str) or not _GROUP_ID_PATTERN.match(group_id) or group_id == UNMAPPED:
            raise CauseGroupsError(f"bad group id {group_id!r}")
        if group_id in seen:
            raise CauseGroupsError(f"group {group_id} is defined twice")
        if kind not in ("total", "chapter", "specific"):
            raise CauseGroupsError(f"group {group_id}: kind must be total, chapter or specific, not {kind!r}")
        seen.add(group_id)
        ranges = {rev: _parse_ranges(entry.get(rev), f"group {group_id} {rev}") for rev in REVISIONS}
        if kind != "total" and not any(ranges.values()):
            raise CauseGroupsError(f"group {group_id} has no ICD ranges")
        groups.append(CauseGroup(group_id, kind, str(entry.get("label", group_id)), ranges))
    if sum(g.kind == "total" for g in groups) != 1:
        raise CauseGroupsError("exactly one group must have kind 'total'")
    _check_chapters_disjoint(groups)
    redirect = {}
    for revision, rule in (document.get("underlying_cause") or {}).items():
        if revision not in REVISIONS:
            raise CauseGroupsError(f"underlying_cause: unknown revision {revision!r}")
        redirect[revision] = (
            _parse_ranges(rule.get("diag1_in"), f"underlying_cause {revision} diag1_in"),
            _parse_ranges(rule.get("diag2_in"), f"underlying_cause {revision} diag2_in"),
        )
    return CauseGroups(
        version=str(document["version"]),
        icd10_from_year=int(document["icd10_from_year"]),
        groups=tuple(groups),
        redirect=redirect,
        source_path=source_path,
    )


@cache
def load_cause_groups(path: str | Path = REFERENCE_PATH) -> CauseGroups:
    """Load the reference file (cached per path; the result is immutable)."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    return parse_cause_groups(document, str(path))
