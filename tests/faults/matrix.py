"""The table of reliability cases, shared by the pytest suite and `python -m tests.faults.report`.

Each case runs one fault end to end and raises `CaseFailed` when an expectation does not
hold; otherwise it returns what it observed. A case with `known_defect` documents a defect
that needs a fix outside the shared mechanics: pytest marks it xfail (strict, so the fix
shows up as an unexpected pass) and the report counts it as failed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

GROUPS = ("fetch", "content", "archive", "crash", "concurrency", "hostile")
_MODULES = (
    "cases_fetch",
    "cases_content",
    "cases_archive",
    "cases_processes",
    "cases_hostile",
    "cases_labour",
    "cases_air",
    "cases_facilities",
    "cases_gates",
    "cases_provenance",
    "cases_failalone",
    "cases_unexpected",
)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    title: str
    expected: str
    run: Callable[[], str]
    known_defect: str | None = None


_CASES: list[Case] = []


def case(case_id: str, group: str, title: str, expected: str, known_defect: str | None = None):
    """Register the decorated function as a case of the matrix."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def register(function: Callable[[], str]) -> Callable[[], str]:
        if any(existing.id == case_id for existing in _CASES):
            raise ValueError(f"duplicate case id {case_id}")
        _CASES.append(Case(case_id, group, title, expected, function, known_defect))
        return function

    return register


def all_cases(group: str | None = None) -> list[Case]:
    for module in _MODULES:
        importlib.import_module(f"tests.faults.{module}")
    chosen = [c for c in _CASES if group is None or c.group == group]
    return sorted(chosen, key=lambda c: (GROUPS.index(c.group), c.id))
