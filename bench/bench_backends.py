"""Benchmark: the embedded file against DuckLake (PostgreSQL catalog), writes and reads.

    .venv/bin/python bench/bench_backends.py                 # both backends, ~15 min on 2 cores
    .venv/bin/python bench/bench_backends.py --reads 10      # fewer reads per measurement

For each backend, in a fresh folder (and a fresh PostgreSQL schema for the lake), offline
(SAMPLE data):
1. a full build (`context-lens build --offline`, a subprocess): wall time and peak RSS;
2. the query latency of `marts.basin_comparison` and `marts.territory_profile`, median of
   `--reads`, each read a new reader connection as a tool opens it (embedded: the published
   copy; DuckLake: the lake attached read-only), on a quiet warehouse;
3. the same while a second full build writes (reads start once it runs, and every read
   must succeed), and that build's wall time.
Then, on DuckLake only, the two studies built one after the other and at the same time
(what parallel writers buy). Ratios are against the embedded backend's quiet figures of
the same run. PostgreSQL from DAGSTER_PG_* (as `.ci/run` starts it).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from warehouse import db, lake  # noqa: E402

QUERIES = {
    "basin_comparison": "SELECT count(*), sum(hash(b::VARCHAR)) FROM marts.basin_comparison b",
    "territory_profile": "SELECT count(*), sum(hash(t::VARCHAR)) FROM marts.territory_profile t",
}
STUDIES = ("antofagasta-2025", "calama-loa-2025")
CLI = [sys.executable, "-m", "pipelines.cli"]


def _pg() -> dict[str, str]:
    defaults = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USERNAME": "context_lens",
        "DAGSTER_PG_PASSWORD": "context_lens",
        "DAGSTER_PG_DB": "context_lens_dagster",
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


def _libpq() -> str:
    """The catalog database as a libpq string, without its password (that goes in PGPASSWORD)."""
    pg = _pg()
    return (
        f"dbname={pg['DAGSTER_PG_DB']} host={pg['DAGSTER_PG_HOST']} "
        f"port={pg['DAGSTER_PG_PORT']} user={pg['DAGSTER_PG_USERNAME']}"
    )


def _psql(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(_libpq(), password=_pg()["DAGSTER_PG_PASSWORD"])
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()


def environment(folder: Path, schema: str | None) -> dict[str, str]:
    """The settings of one backend: its own files, and for the lake its own catalog schema."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME" and not k.startswith("CONTEXT_LENS_")}
    env.update(
        CONTEXT_LENS_DB=str(folder / "context.duckdb"),
        CONTEXT_LENS_RAW_DIR=str(folder / "raw"),
        CONTEXT_LENS_OUTPUT=str(folder / "output"),
        CONTEXT_LENS_OFFLINE="1",
        CONTEXT_LENS_EXTENSION_CACHE=str(folder.parent / "extensions"),
    )
    if schema:
        env[lake.SETTING] = f"ducklake:postgres:{_libpq()}"
        env["PGPASSWORD"] = _pg()["DAGSTER_PG_PASSWORD"]
        env[lake.DATA_SETTING] = str(folder / "lake")
        env[lake.SCHEMA_SETTING] = schema
    return env


def start_build(
    env: dict[str, str], study: str | None = None, output: Path | None = None
) -> subprocess.Popen:
    args = [*CLI, "build", "--offline"] + (["--study", study] if study else [])
    child_env = env | ({"CONTEXT_LENS_OUTPUT": str(output)} if output else {})
    return subprocess.Popen(
        args, env=child_env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen, started: float) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of a build; its RSS from wait4 (Linux, KiB)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode


def build(env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    return finish(start_build(env), started)


def read_latencies(env: dict[str, str], reads: int) -> dict[str, float]:
    """Median seconds of a read (connect + query) of each mart, over `reads` reads."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        found = {}
        for name, sql in QUERIES.items():
            times = []
            for _ in range(reads):
                started = time.perf_counter()
                with db.published_reader() as conn:
                    conn.execute(sql).fetchone()
                times.append(time.perf_counter() - started)
            found[name] = statistics.median(times)
        return found
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure(label: str, folder: Path, schema: str | None, reads: int) -> dict:
    env = environment(folder, schema)
    wall, rss, code = build(env)
    quiet = read_latencies(env, reads)
    started = time.perf_counter()
    writer = start_build(env)
    time.sleep(5)  # the second build is past its start-up and writing
    busy = read_latencies(env, reads)
    busy_wall, _, busy_code = finish(writer, started)
    print(
        f"{label:9s} full build {wall:7.1f} s (exit {code}, peak RSS {rss:5.0f} MB); "
        f"second build under reads {busy_wall:7.1f} s (exit {busy_code})"
    )
    return {"env": env, "build": wall, "quiet": quiet, "busy": busy}


def parallel_studies(folder: Path, schema: str) -> None:
    """DuckLake: the two studies one after the other, then both at once, on one lake."""
    env = environment(folder, schema)
    build(env)  # the lake holds the warehouse before the comparison (first build creates it)
    sequential = 0.0
    for study in STUDIES:
        started = time.perf_counter()
        sequential += finish(start_build(env, study, folder / f"seq-{study}"), started)[0]
    started = time.perf_counter()
    running = [start_build(env, study, folder / f"par-{study}") for study in STUDIES]
    results = [finish(process, started) for process in running]
    concurrent = max(r[0] for r in results)
    codes = [r[2] for r in results]
    print(
        f"DuckLake two studies: one after the other {sequential:.1f} s, at the same time {concurrent:.1f} s "
        f"(exits {codes}); parallel/sequential {concurrent / sequential:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20, help="reads per median (default 20)")
    parser.add_argument("--skip-parallel", action="store_true", help="skip the two-studies comparison")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    schemas = [f"bench_lake_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for schema in schemas:
        _psql(f"CREATE SCHEMA {schema}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
            root = Path(tmp)
            embedded = measure("embedded", root / "embedded", None, args.reads)
            on_lake = measure("DuckLake", root / "lake", schemas[0], args.reads)
            base = embedded["quiet"]
            for label, result in (("embedded", embedded), ("DuckLake", on_lake)):
                for name in QUERIES:
                    quiet, busy = result["quiet"][name], result["busy"][name]
                    print(
                        f"{label:9s} {name:18s} median read {quiet * 1000:7.1f} ms quiet, "
                        f"{busy * 1000:7.1f} ms during a build (x{busy / quiet:.2f}); "
                        f"vs embedded quiet x{quiet / base[name]:.2f}"
                    )
            print(f"full build DuckLake/embedded: {on_lake['build'] / embedded['build']:.2f}", flush=True)
            if not args.skip_parallel:
                parallel_studies(root / "lake-parallel", schemas[1])
    finally:
        for schema in schemas:
            _psql(f"DROP SCHEMA {schema} CASCADE")
    print(
        f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        flush=True,
    )


if __name__ == "__main__":
    main()
