"""The faults of issue 14, one case per bullet of its "Why" (the crash bullet is K5 in cases_processes).

Each case counts what the bad input did to the served data: rows lost or altered must be 0.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from dagster import materialize

from pipelines import cli, status_command, territories
from sources.base import FetchError
from tests.faults import payloads
from tests.faults.harness import (
    INDICATORS,
    OECD,
    SLEEPS,
    FaultSources,
    baseline,
    capture,
    environment,
    expect_refused,
    expect_stale,
    instance,
    live_bytes,
    quarantine,
    require,
    resources,
    run_oecd,
    serve_oecd,
    server,
    shown,
    status,
    table_dump,
    value_changes,
    workspace,
    workspace_variables,
)
from tests.faults.matrix import case
from tests.support.http import Reply
from warehouse import journal

POPULATION = next(i for i in INDICATORS if "population" in i)
GDP = INDICATORS[0]
REPO = Path(__file__).resolve().parents[2]
REFUSED = "refused by the value gates: error names source, keys and values; 0 rows lost or altered"


def _new(body: bytes) -> Reply:
    return Reply(200, body, {"Content-Type": "text/csv", "ETag": '"v2"'})


def _lost_or_altered(ws) -> int:
    """Observations of the baseline that are gone or hold another value now."""
    old = {row[:3]: row[3] for row in baseline().state.tables["core.observations"]}
    new = {row[:3]: row[3] for row in capture(ws.root).tables["core.observations"]}
    return sum(1 for key, value in old.items() if new.get(key) != value)


def _scaled(content: bytes, areas: set[str], factor: float) -> bytes:
    header, rows = payloads.read_table(content)
    area, value = header.index("REF_AREA"), header.index("OBS_VALUE")
    for row in rows:
        if row[area] in areas:
            row[value] = format(float(row[value]) * factor, "f")
    return payloads.write_table(header, rows)


def _refused(indicator: str, body: bytes, cause: str) -> str:
    with workspace() as ws:
        serve_oecd(faults={indicator: _new(body)})
        observed = expect_refused(ws, run_oecd(), cause, body)
        lost = _lost_or_altered(ws)
        require(lost == 0, f"{lost} observations lost or altered")
        return f"{observed}; rows lost or altered: {lost}"


@case(
    "G01",
    "content",
    "OECD regional population x1000 on three regions only (CL02, CL03, CL05)",
    REFUSED,
)
def population_unit_on_three_regions() -> str:
    body = _scaled(live_bytes(POPULATION), {"CL02", "CL03", "CL05"}, 1000)
    return _refused(POPULATION, body, r"order of magnitude|x1000|magnitude")


@case(
    "G02",
    "content",
    "OECD payload with OBS_VALUE blank on every population row",
    "refused (blanked keys); the current population values stay in core.observations; 0 rows lost",
)
def population_blanked() -> str:
    body = payloads.edit_rows(live_bytes(POPULATION), lambda row: True, {"OBS_VALUE": ""})
    return _refused(POPULATION, body, r"blank|remove|missing|empty|NaN|null")


@case(
    "G03",
    "fetch",
    "server sends the headers, then one byte every 0.2 s (request deadline 1.5 s)",
    "cut off at the deadline, stale fallback, what arrived quarantined; bounded time",
)
def dripping_server() -> str:
    body = live_bytes(GDP)
    sources = FaultSources(max_attempts=1, backoff_seconds=0.01, request_deadline=1.5)
    with workspace() as ws:
        serve_oecd(faults={GDP: Reply(200, body, {"Content-Type": "text/csv", "ETag": '"v2"'}, trickle=0.2)})
        started = time.monotonic()
        error = run_oecd(sources, observations=False)
        took = time.monotonic() - started
        observed = expect_stale(ws, error, r"deadline|stalled", body, partial=True)
    require(took < 10, f"the run took {took:.1f}s")
    return f"{observed}; the run took {took:.1f}s"


@case(
    "G04",
    "fetch",
    "HTTP 503 with Retry-After: 3600 on every OECD query",
    "not waited for (beyond the 60 s cap), stale fallback at once, the reason says why",
)
def retry_after_an_hour() -> str:
    page = b"<html><body>maintenance</body></html>"
    reply = Reply(503, page, {"Content-Type": "text/html", "Retry-After": "3600"})
    with workspace() as ws:
        serve_oecd(faults=dict.fromkeys(INDICATORS, reply))
        started = time.monotonic()
        error = run_oecd(FaultSources(max_attempts=4, backoff_seconds=0.01), observations=False)
        took = time.monotonic() - started
        require(not [s for s in SLEEPS if s >= 60], f"waited {SLEEPS}")
        observed = expect_stale(ws, error, r"Retry-After 3600", None)
    require(took < 10, f"the run took {took:.1f}s")
    return f"{observed}; waits asked for: {SLEEPS or 'none'}; the run took {took:.1f}s"


@case(
    "G05",
    "fetch",
    "server accepts and never answers (read timeout 60 s, 4 attempts, source budget 2 s)",
    "the source's time budget ends it: stale fallback in bounded time, reason names the budget",
)
def never_answers() -> str:
    sources = FaultSources(max_attempts=4, backoff_seconds=0.01, read_timeout=60.0, source_budget=2.0)
    with workspace() as ws:
        silent = Reply(200, live_bytes(GDP), {"Content-Type": "text/csv"}, delay=30)
        serve_oecd(faults=dict.fromkeys(INDICATORS, silent))
        started = time.monotonic()
        error = run_oecd(sources, observations=False)
        took = time.monotonic() - started
        observed = expect_stale(ws, error, r"budget", None)
    require(took < 10, f"the run took {took:.1f}s for four silent queries")
    return f"{observed}; four silent queries cost {took:.1f}s in all"


@case(
    "G06",
    "fetch",
    "the same bytes re-served under a new ETag, three runs in a row",
    "unchanged: no new snapshot, no rewritten rows, core.observation_history does not grow",
)
def identical_bytes_new_etags() -> str:
    with workspace() as ws:
        for run in range(3):
            etag = f'"again-{run}"'
            serve_oecd(
                faults={
                    i: Reply(200, live_bytes(i), {"Content-Type": "text/csv", "ETag": etag})
                    for i in INDICATORS
                }
            )
            error = run_oecd()
            require(error is None, f"run {run + 1} failed: {error}")
        before, after = baseline().state.tables, capture(ws.root).tables
        for table in ("core.snapshots", "core.observation_history", "core.observations"):
            require(after[table] == before[table], f"{table} changed: {value_changes(before, after)}")
        row = status(ws.db)
        require(row[0] == "unchanged", f"status {row}")
    history = len(before["core.observation_history"])
    return f"3 runs: status unchanged; snapshots, observations and {history} history rows identical; 0 rows altered"


# --- study files --------------------------------------------------------------------------------

_LOADS = """
import json, resource, sys, time
started = time.monotonic()
import pipelines.definitions as d
from pipelines import lens
keys = sorted(a.key.path[-1] for a in lens.ASSETS)
print(json.dumps({"keys": keys, "s": time.monotonic() - started,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _hostile_studies(folder: Path) -> dict[str, str]:
    good = (REPO / "studies" / "calama-loa-2025.yaml").read_text(encoding="utf-8")
    files = {
        "calama-loa-2025": good,
        "bad-field": good.replace("calama-loa-2025", "bad-field").replace(
            "start: 2025-03-01", "start: 2025-13-01"
        ),
        "laughs": "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=False)
        ),
        "huge": "id: huge\ndescription: '" + "x" * 50_000_000 + "'\n",
        "sites": "id: sites\nfocus:\n  sites:\n" + "  - {lat: -22.4, lon: -68.9}\n" * 1_000_000,
    }
    for stem, text in files.items():
        (folder / f"{stem}.yaml").write_text(text, encoding="utf-8")
    return files


@case(
    "G07",
    "hostile",
    "studies/ holds a bad field, a billion-laughs file, a 50 MB file and a million sites beside a good study",
    "the code location loads (bounded time and memory); each bad file fails only its own lens, naming "
    "file and field; the good study keeps its lens asset",
)
def bad_study_files_fail_alone() -> str:
    with tempfile.TemporaryDirectory() as folder:
        _hostile_studies(Path(folder))
        env = {**os.environ, "CONTEXT_LENS_STUDIES_DIR": folder}
        done = subprocess.run(
            [sys.executable, "-c", _LOADS], capture_output=True, text=True, env=env, timeout=300, cwd=REPO
        )
        require(done.returncode == 0, f"import pipelines.definitions failed: {done.stderr[-500:]}")
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
        expected = [
            "lens_calama_loa_2025",
            *(f"lens_unusable_{s}" for s in ("bad_field", "huge", "laughs", "sites")),
        ]
        require(sorted(loaded["keys"]) == sorted(expected), f"lens assets: {loaded['keys']}")
        require(loaded["rss_mb"] < 1500, f"loading took {loaded['rss_mb']:.0f} MB")
        from pipelines import studies

        with environment(CONTEXT_LENS_STUDIES_DIR=folder):
            found = {p.stem: s for p, s in studies.study_files()}
        messages = {stem: str(found[stem]) for stem in ("bad-field", "laughs", "huge", "sites")}
        require("bad-field.yaml: field 'dates.start'" in messages["bad-field"], messages["bad-field"])
        require("laughs.yaml" in messages["laughs"] and "aliases" in messages["laughs"], messages["laughs"])
        require("huge.yaml: larger than" in messages["huge"], messages["huge"])
        require("sites.yaml: larger than" in messages["sites"], messages["sites"])
    return (
        f"code location loaded in {loaded['s']:.1f}s, peak {loaded['rss_mb']:.0f} MB, with 5 lens assets "
        f"(1 usable); refusals: {'; '.join(shown(m, 90) for m in messages.values())}"
    )


# --- the warehouse lock and status ----------------------------------------------------------------

_HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('held', flush=True); time.sleep(120)"
LOCK_WAIT = 3.0


@case(
    "G08",
    "concurrency",
    f"a reader holds the warehouse lock through a build of two independent writer steps (lock wait {LOCK_WAIT:.0f} s)",
    "the run waits once (the lock wait is per run, not per step), fails naming the lock holder; status "
    "says failed with that reason; the CLI line names source and cause; 0 rows lost or altered",
)
def reader_holds_the_lock() -> str:
    with workspace() as ws:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(ws.db)], stdout=subprocess.PIPE, text=True
        )
        try:
            require(holder.stdout.readline().strip() == "held", "the reader did not open the warehouse")
            with environment(CONTEXT_LENS_LOCK_WAIT=str(LOCK_WAIT), CONTEXT_LENS_OFFLINE="1"):
                started = time.monotonic()
                result = materialize(
                    territories.ASSETS, resources=resources(), instance=instance(), raise_on_error=False
                )
                took = time.monotonic() - started
                rows = {row["source"]: row for row in status_command.status_rows()}
            line = cli._failure_reason(result)
        finally:
            holder.kill()
            holder.wait()
        failed = [e.step_key for e in result.get_step_failure_events()]
        require(len(failed) == 2, f"expected both boundary steps to fail, got {failed}")
        require(took < 2 * LOCK_WAIT, f"the run took {took:.1f}s: it waited per step, not once per run")
        noted = journal.pending(ws.db)
        require(noted, "no failure was recorded (the warehouse was locked, so beside it)")
        for source_id in noted:
            require(rows[source_id]["status"] == "failed", f"status of {source_id}: {rows[source_id]}")
            require(
                "locked" in rows[source_id]["reason"], f"reason of {source_id}: {rows[source_id]['reason']}"
            )
        require("failed for source" in line and "locked" in line, f"CLI line: {line}")
        lost = _lost_or_altered(ws)
        require(lost == 0, f"{lost} observations lost or altered")
    return (
        f"{len(failed)} writer steps failed in {took:.1f}s (lock wait {LOCK_WAIT:.0f}s per run); status failed for "
        f"{sorted(noted)}; CLI: {shown(line, 200)}; rows lost or altered: {lost}"
    )


@case(
    "G09",
    "fetch",
    "a 304 Not Modified for a request with nothing cached, and no sample to fall back to",
    "named as such ('304 ... no cached payload'); status failed with that reason; 0 rows lost or altered",
)
def not_modified_with_nothing_cached() -> str:
    from pipelines import ingest
    from pipelines.resources import WarehouseResource
    from sources import oecd
    from sources.base import FetchRequest

    with workspace() as ws:
        url = os.environ[f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{GDP.upper()}"] + "?never-fetched=1"
        serve_oecd(faults={GDP: Reply(304)})
        try:
            ingest.acquire_all(
                FaultSources(max_attempts=1),
                oecd.SOURCE,
                [(FetchRequest(name="never-fetched", url=url, expect="csv"), None)],
                warehouse=WarehouseResource(),
            )
        except FetchError as exc:
            error = exc
        else:
            raise AssertionError("a 304 with nothing cached was accepted")
        require(re.search(r"304.*no cached payload", str(error)), f"the error: {error}")
        row = status(ws.db)
        require(row[0] == "failed" and "304" in row[3], f"status {row}")
        lost = _lost_or_altered(ws)
        require(lost == 0, f"{lost} observations lost or altered")
    return f"{shown(error)}; status failed with that reason; rows lost or altered: {lost}"


# --- deaths: an aggregated table judged by its aggregates -----------------------------------------

DEATHS_SOURCE = "deis_deaths"


def _deaths_csv() -> tuple[str, list[bytes]]:
    from pipelines import health

    with zipfile.ZipFile(health.DEATHS_SAMPLE) as archive:
        (name,) = archive.namelist()
        return name, archive.read(name).split(b"\r\n")


def _deaths_zip(lines: list[bytes]) -> bytes:
    name, _ = _deaths_csv()
    return payloads.zip_members({name: b"\r\n".join(lines)})


def _serve_deaths(body: bytes) -> dict[str, str]:
    server().script("/deis/official.zip", Reply(200, body, {"Content-Type": "application/zip"}))
    server().script("/deis/datos/", Reply(404, b"not found", {"Content-Type": "text/plain"}))
    return {
        "CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OFFICIAL_ZIP": server().url("/deis/official.zip"),
        "CONTEXT_LENS_ENDPOINT__DEIS_DEATHS__OPEN_DATA_PAGE": server().url("/deis/datos/"),
    }


def _run_deaths(root: Path, body: bytes):
    from pipelines import health

    with environment(**workspace_variables(root), **_serve_deaths(body)):
        return materialize(
            [health.health_deaths], resources=resources(), instance=instance(), raise_on_error=False
        )


@functools.cache
def deaths_baseline() -> tuple[Path, list[tuple]]:
    """Places from their SAMPLE, then one live DEIS file (the SAMPLE's rows, served as live)."""
    root = Path(tempfile.mkdtemp(prefix="faults-deaths-"))
    atexit.register(shutil.rmtree, root, True)
    with environment(**{**workspace_variables(root), "CONTEXT_LENS_OFFLINE": "1"}):
        require(materialize(territories.ASSETS, resources=resources(), instance=instance()).success, "places")
    _, lines = _deaths_csv()
    result = _run_deaths(root, _deaths_zip(lines))
    require(result.success, f"the live deaths baseline failed: {cli._failure_reason(result)}")
    return root, table_dump(root / "context.duckdb")["core.deaths"]


def _deaths_refused(lines: list[bytes], cause: str) -> str:
    base, deaths = deaths_baseline()
    root = Path(tempfile.mkdtemp(prefix="faults-deaths-case-"))
    try:
        shutil.copytree(base, root, dirs_exist_ok=True)
        body = _deaths_zip(lines)
        result = _run_deaths(root, body)
        line = cli._failure_reason(result)
        require(not result.success, "accepted and published")
        require(DEATHS_SOURCE in line and re.search(cause, line, re.I), f"the error: {line}")
        after = table_dump(root / "context.duckdb")["core.deaths"]
        lost = len(set(deaths) ^ set(after))
        require(lost == 0, f"core.deaths changed: {lost} rows lost, added or altered")
        row = status(root / "context.duckdb", DEATHS_SOURCE)
        require(row[0] == "failed", f"status {row}")
        kept = [body_ for _, body_ in quarantine(root / "raw", DEATHS_SOURCE) if body_ == body]
        require(kept, "the refused payload is not in quarantine")
        return (
            f"refused: {shown(line, 260)}; status failed; payload quarantined; rows lost or altered: {lost}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@case(
    "G10",
    "content",
    "DEIS deaths file whose COD_COMUNA and COMUNA header labels are swapped",
    "refused: a comuna that is not a code is an error (never recoded to 99999); core.deaths intact",
)
def deaths_swapped_headers() -> str:
    _, lines = _deaths_csv()
    header = lines[0].replace(b"COD_COMUNA;COMUNA", b"COMUNA;COD_COMUNA")
    require(header != lines[0], "the header has no COD_COMUNA;COMUNA to swap")
    return _deaths_refused([header, *lines[1:]], r"comuna|code")


@case(
    "G11",
    "content",
    "DEIS deaths file with every row twice",
    "refused by the aggregate gates (deaths per year and region doubled); core.deaths intact",
)
def deaths_doubled() -> str:
    _, lines = _deaths_csv()
    rows = [line for line in lines[1:] if line]
    return _deaths_refused([lines[0], *rows, *rows, b""], r"deaths per year and region.*move by more than")


@case(
    "G12",
    "content",
    "DEIS deaths file with half of its rows (every other one)",
    "refused by the aggregate gates (deaths per year and region halved); core.deaths intact",
)
def deaths_halved() -> str:
    _, lines = _deaths_csv()
    rows = [line for line in lines[1:] if line]
    return _deaths_refused([lines[0], *rows[::2], b""], r"deaths per year and region.*move by more than")


@case(
    "G13",
    "content",
    "the disk fills up: every warehouse COMMIT fails with ENOSPC while a new OECD payload is published",
    "the run fails naming source, snapshot and cause; status says failed with the reason (noted beside the "
    "warehouse, which cannot be written); the payload is not promoted; 0 rows lost or altered",
)
def commit_fails_disk_full() -> str:
    new = {
        i: Reply(200, live_bytes(i, 1.05), {"Content-Type": "text/csv", "ETag": '"v2"'}) for i in INDICATORS
    }
    with workspace() as ws:
        serve_oecd(faults=new)
        with environment(CONTEXT_LENS_FAIL_AT="transaction:commit"):
            error = run_oecd()
        require(error is not None, "the run succeeded although no commit could be written")
        message = str(error)
        require(
            "oecd_regional" in message and "snapshot" in message and "No space left" in message,
            f"the error: {message}",
        )
        rows = {row["source"]: row for row in status_command.status_rows()}
        require(rows[OECD]["status"] == "failed", f"status: {rows[OECD]}")
        require("No space left" in rows[OECD]["reason"], f"reason: {rows[OECD]['reason']}")
        stored = status(ws.db)
        after = capture(ws.root)
        require(
            not [
                p
                for p in after.files
                if p.startswith("latest/") and after.files[p] != baseline().state.files.get(p)
            ],
            "a payload was promoted to latest/",
        )
        lost = _lost_or_altered(ws)
        require(lost == 0, f"{lost} observations lost or altered")
        # Space again: the next run records the truth in the warehouse and clears the note.
        error = run_oecd()
        require(error is None, f"the run after the disk was freed failed: {error}")
        require(not journal.pending(ws.db), "the failure note outlived the next good run")
    return (
        f"{shown(message, 200)}; stored status stayed {stored[0]!r} (the warehouse could not take it), "
        f"`status` says failed: {shown(rows[OECD]['reason'], 120)}; rows lost or altered: {lost}; the next run "
        "with space published and cleared the note"
    )
