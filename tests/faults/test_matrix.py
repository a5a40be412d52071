"""The reliability matrix as pytest cases: the same table `python -m tests.faults.report` prints."""

import pytest

from tests.faults.matrix import GROUPS, all_cases


def _params(group: str) -> list:
    return [
        pytest.param(
            case,
            id=f"{case.id}-{case.title[:40]}",
            marks=[pytest.mark.xfail(strict=True, reason=case.known_defect)] if case.known_defect else [],
        )
        for case in all_cases(group)
    ]


@pytest.mark.parametrize("case", [p for group in GROUPS for p in _params(group)])
def test_case(case):
    observed = case.run()
    assert observed, f"{case.id} returned no observation"
