"""Issue 13 items 5-7 as fault cases: a source fails alone (the lens still builds and names it),
`--as-of` before any snapshot refuses without touching the present, and configuration mistakes
(a misspelt endpoint override, an impossible date) are errors; file roots add to the repository."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
from pathlib import Path

from pipelines import cli, lens
from pipelines.resources import WarehouseResource
from pipelines.studies import load_study
from sources.endpoints import REPO_ROOT, endpoint
from tests.faults.harness import (
    INDICATORS,
    OECD,
    baseline,
    capture,
    endpoint_variable,
    environment,
    expect_refused,
    live_bytes,
    require,
    run_oecd,
    serve_oecd,
    short,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply

STUDY = "calama-loa-2025"
POPULATION = next(i for i in INDICATORS if i.endswith("population"))


def _without_chile(body: bytes) -> bytes:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    area = rows[0].index("REF_AREA")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [rows[0], *(r for r in rows[1:] if not r[area].startswith(("CL", "CHL")))]
    )
    return out.getvalue().encode("utf-8")


def _digests(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in-process; (exit status, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse refuses its own arguments this way
            code = int(exc.code or 0)
    return code, " ".join(err.getvalue().split())


def _core(state) -> dict:
    return {k: v for k, v in state.data_tables().items() if not k.startswith("lens.")}


@case(
    "B01",
    "content",
    "one OECD indicator file with no Chilean rows, then the lens",
    "refused naming source and indicator; tables intact (0 rows lost); the lens still builds and names the failure",
)
def refused_source_fails_alone() -> str:
    body = _without_chile(live_bytes(POPULATION))
    with workspace() as ws:
        serve_oecd({POPULATION: Reply(200, body, {"Content-Type": "text/csv", "ETag": '"no-chile"'})})
        observed = expect_refused(ws, run_oecd(), f"no Chilean rows.*{POPULATION}", body)
        lens_names_the_failure(ws, POPULATION)
    return f"{observed}; lens written, its gaps name {OECD} as failed"


def lens_names_the_failure(ws, *words: str) -> None:
    """After OECD was refused: the lens builds, changes no source table, and names the failure."""
    lens.build_lens(WarehouseResource(), load_study(STUDY))
    require(_core(capture(ws.root)) == _core(baseline().state), "the lens run changed a source table")
    report = (ws.output / "lens" / STUDY / "lens.md").read_text(encoding="utf-8")
    require(
        all(word in report for word in (OECD, "the newest refresh failed", *words)),
        "the lens does not name the failed source",
    )


@case(
    "B02",
    "hostile",
    "build --as-of a date before every snapshot",
    "exit 2 with a clear message; no asset runs; warehouse and output/ byte-identical (0 rows lost)",
)
def as_of_before_every_snapshot() -> str:
    with workspace() as ws:
        lens.build_lens(WarehouseResource(), load_study(STUDY))
        before, files = capture(ws.root), _digests(ws.output)
        with environment(CONTEXT_LENS_AS_OF=None):
            code, message = _cli("build", "--study", STUDY, "--as-of", "2000-01-01")
        require(code == 2, f"exit status {code}, not 2: {message}")
        require("no snapshot was retrieved by 2000-01-01" in message, f"unclear refusal: {message}")
        tables_intact(before, capture(ws.root), keep_status=True)
        require(_digests(ws.output) == files, "output/ changed")
    return f"exit 2: {short(message, 110)}; tables and {len(files)} output files byte-identical"


@case(
    "B03",
    "hostile",
    "an endpoint override with a misspelt endpoint name, and one with an unknown source",
    "build refuses (exit 2) before anything runs, with the valid names and the nearest; tables intact",
)
def misspelt_override() -> str:
    messages = []
    for variable, nearest in (
        (endpoint_variable(POPULATION).replace("POPULATION", "POPULATON"), POPULATION),
        (endpoint_variable(POPULATION).replace("REGIONAL", "REGINAL"), OECD),
    ):
        with workspace() as ws, environment(**{variable: "http://127.0.0.1:9/x.csv"}):
            before = capture(ws.root)
            code, message = _cli("build", "--study", STUDY, "--offline")
            require(code == 2, f"exit status {code}, not 2: {message}")
            require(variable in message and f"nearest: '{nearest}'" in message, f"unclear: {message}")
            tables_intact(before, capture(ws.root), keep_status=True)
            messages.append(message)
    return f"both refused, e.g. {short(messages[0].split('): ', 1)[-1], 110)}"


@case(
    "B04",
    "hostile",
    "CONTEXT_LENS_FILE_ROOTS set to a mirror folder",
    "the mirror is allowed and so is the repository (its curated files); other folders are not",
)
def file_roots_add() -> str:
    curated = sorted((REPO_ROOT / "sources" / "curated").rglob("*.csv"))[0]
    with environment(CONTEXT_LENS_FILE_ROOTS="/tmp"):
        require(endpoint("t", "x", {"x": curated.as_uri()}) == curated.as_uri(), "repository refused")
        require(endpoint("t", "x", {"x": "file:///tmp/mirror.csv"}), "added root refused")
        try:
            endpoint("t", "x", {"x": "file:///etc/hostname"})
        except ValueError:
            pass
        else:
            raise AssertionError("a file outside every root was accepted")
    return f"repository ({curated.relative_to(REPO_ROOT)}) and /tmp allowed; /etc refused"


@case(
    "B05",
    "hostile",
    "build --as-of 2024-13-45",
    "exit 2 with what is wrong and the expected format, not Python's message",
)
def impossible_date() -> str:
    code, message = _cli("build", "--as-of", "2024-13-45")
    require(code == 2, f"exit status {code}")
    require("month must be in 1..12" in message and "YYYY-MM-DD" in message, f"unclear: {message}")
    require("isoformat" not in message, f"Python's message leaked: {message}")
    return short(message.split("error: ", 1)[-1], 120)
