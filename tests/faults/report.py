"""Run the reliability matrix and print it: `python -m tests.faults.report [--group G] [CASE ...]`.

Each case prints its id, group, title, result and time, then what was expected and what
was observed; a known defect also prints the fix it needs. The cases are the very ones
`pytest tests/faults` runs (`tests.faults.matrix`). The last line is exactly
`N passed, N failed`; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from contextlib import contextmanager

from tests.faults.matrix import GROUPS, Case, all_cases

WIDTH = 110


@contextmanager
def _quiet_stderr():
    """The runs log every fallback and retry on stderr; keep the matrix readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _field(label: str, text: str) -> str:
    return textwrap.fill(
        " ".join(str(text).split()),
        width=WIDTH,
        initial_indent=f"    {label:<9} ",
        subsequent_indent=" " * 14,
    )


def run_case(case: Case) -> tuple[bool, str, float]:
    started = time.monotonic()
    try:
        with _quiet_stderr():
            observed = case.run()
        passed = True
    except Exception as exc:  # noqa: BLE001 (a case that breaks is a failed case, with its message)
        observed, passed = f"{type(exc).__name__}: {exc}", False
    return passed, observed, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case ids to run (default: all)")
    parser.add_argument("--group", choices=GROUPS, help="run one group only")
    options = parser.parse_args(argv)
    cases = [
        c for c in all_cases(options.group) if not options.cases or c.id in {x.upper() for x in options.cases}
    ]
    print(f"context-lens reliability matrix: {len(cases)} cases")
    print("=" * WIDTH)
    passed = failed = 0
    for case in cases:
        ok, observed, seconds = run_case(case)
        passed, failed = passed + ok, failed + (not ok)
        verdict = "PASS" if ok else ("FAIL (known defect)" if case.known_defect else "FAIL")
        print(f"{case.id:<4} {case.group:<12} {case.title}")
        print(f"    {'result':<9} {verdict}  ({seconds:.1f} s)")
        print(_field("expected", case.expected))
        print(_field("observed", observed))
        if case.known_defect and not ok:
            print(_field("fix", case.known_defect))
        print("-" * WIDTH, flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
