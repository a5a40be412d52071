"""Benchmark: the whole pipeline at national scale, served live from a local server.

    .venv/bin/python bench/bench_national_build.py             # Chile: 346 comunas, 16 regional lenses
    .venv/bin/python bench/bench_national_build.py --quick     # 20 gauges, 1 region (a minute or so)

1. Generates every payload the pipeline reads, in each source's real wire format, at national
   size (bench/national_payloads.py says which are full size and which are served from the
   samples), into a cache directory reused across runs (`--cache`, default a folder in the
   system temp dir).
2. Writes one study file per region (16; `--quick`: region 02 only) to a temp studies dir
   (CONTEXT_LENS_STUDIES_DIR), so the walks that follow the studies' scope (SINIM) cover Chile.
3. Serves the payloads from a local HTTP server at the sources' real URL paths, through the
   endpoint overrides (CONTEXT_LENS_ENDPOINT__*), with ETags and 304s as a static server does.
4. Times, each in a fresh process, `--runs` times over a fresh warehouse:
   a. build: `context-lens build --study <first region>` (every source, one lens);
   b. refresh, nothing changed: the same command again;
   c. refresh, one source changed: OECD serves a file with one value changed, the same command;
   d. lenses: every region's lens asset materialized in one run.
5. Prints the medians and the peak RSS of the child processes (`ru_maxrss` from `os.wait4`),
   checks the targets of issue 20, and writes everything as JSON under bench/results/.

Targets: full build <= 5 min on 2 cores and peak RSS < 1.5 GB; 16 lenses <= 60 s; a
nothing-changed refresh <= 5% of the full build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import national_payloads as np_  # noqa: E402
from tests.support.http import ScriptedServer  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
CLI = str(Path(sys.executable).with_name("context-lens"))
PHASES = ("build", "refresh_unchanged", "refresh_one_changed", "lenses")
TARGETS = {"build_s": 300.0, "build_rss_mb": 1536.0, "lenses_s": 60.0, "unchanged_share": 0.05}
QUICK_REGIONS = ("02",)

# Every usable lens asset in one run, through the CLI's own runner (failures reported the same way).
LENSES_CODE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from dagster import AssetSelection
from pipelines import cli, lens
keys = [a.key for a in lens.usable(lens.ASSETS)]
cli._check_configuration()
cli._materialize(AssetSelection.assets(*keys))
print(json.dumps({"lens_assets": len(keys)}))
"""


def write_studies(directory: Path, region_codes: list[str]) -> list[str]:
    """One study file per region: the region and all its comunas in focus, compared with Chile."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    names = np_.regions()
    comunas = np_.division()
    ids = []
    for code in region_codes:
        study_id = f"region-{code}"
        document = {
            "id": study_id,
            "title": f"Context lens: región {names[code][0]} (national benchmark, invented data)",
            "dates": {"start": "2025-01-01", "end": "2025-12-31"},
            "focus": {
                "regions": [code],
                "comunas": [c.code for c in comunas if c.region == code],
                "basins": [],
                "sites": [],
            },  # fmt: skip
            "comparison": {"territories": ["country:CL", "oecd:OECD"], "peer_basins": []},
            "periods": {
                "economy": [2015, 2022],
                "flow_reference": [1976, 1995],
                "flow_recent": [2001, 2020],
                "mortality": [2016, 2020],
            },  # fmt: skip
            "as_of": None,
        }
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
        (directory / f"{study_id}.yaml").write_text(text, encoding="utf-8")
        ids.append(study_id)
    return ids


def run_child(command: list[str], env: dict[str, str], log: Path) -> dict:
    """One phase in a fresh process: wall time, the child's peak RSS, exit code; output to `log`."""
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "exit_code": os.waitstatus_to_exitcode(status),
        "log": log.name,  # the run directory is removed afterwards; a failed phase keeps its tail
    }


def child_env(base_url: str, run_dir: Path, studies_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXT_LENS_")}
    env.pop("DAGSTER_HOME", None)
    env |= np_.endpoint_overrides(base_url)
    env |= {
        "CONTEXT_LENS_DB": str(run_dir / "context.duckdb"),
        "CONTEXT_LENS_RAW_DIR": str(run_dir / "raw"),
        "CONTEXT_LENS_OUTPUT": str(run_dir / "output"),
        "CONTEXT_LENS_STUDIES_DIR": str(studies_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return env


def one_repetition(payloads, env: dict, run_dir: Path, study_ids: list[str], echo) -> dict:
    """The four phases over a fresh warehouse, in order; the changed source is restored after."""
    build = [CLI, "build", "--study", study_ids[0]]
    results = {}
    for phase in PHASES:
        if phase == "refresh_one_changed":
            np_.change_one_source(payloads)
        command = [sys.executable, "-c", LENSES_CODE, str(REPO_ROOT)] if phase == "lenses" else build
        try:
            results[phase] = run_child(command, env, run_dir / f"{phase}.log")
        finally:
            np_.restore_source(payloads)
        echo(f"    {phase:20s} wall {results[phase]['wall_s']:8.1f} s  peak RSS "
             f"{results[phase]['peak_rss_mb']:7.0f} MB  exit {results[phase]['exit_code']}")  # fmt: skip
    status = run_child([CLI, "status", "--json"], env, run_dir / "status.json")
    if status["exit_code"] == 0:  # which sources the warehouse holds live, and which fell back
        rows = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
        results["source_modes"] = {row["source"]: row["mode"] for row in rows}
    lens_root = run_dir / "output" / "lens"
    results["lenses"]["lens_folders"] = (
        sorted(p.name for p in lens_root.iterdir()) if lens_root.is_dir() else []
    )
    results["warehouse_mb"] = round((run_dir / "context.duckdb").stat().st_size / 1024**2, 1)
    return results


def machine() -> dict:
    """What the figures were taken on, and how busy it was when they started."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import dagster
    import duckdb

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "duckdb": duckdb.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for phase in PHASES:
        walls = [r[phase]["wall_s"] for r in runs]
        summary[phase] = {
            "median_wall_s": round(statistics.median(walls), 3),
            "walls_s": walls,
            "peak_rss_mb": max(r[phase]["peak_rss_mb"] for r in runs),
            "all_succeeded": all(r[phase]["exit_code"] == 0 for r in runs),
        }
    build = summary["build"]["median_wall_s"]
    summary["unchanged_share_of_build"] = round(summary["refresh_unchanged"]["median_wall_s"] / build, 3)
    summary["one_changed_share_of_build"] = round(summary["refresh_one_changed"]["median_wall_s"] / build, 3)
    return summary


def verdicts(summary: dict) -> dict[str, bool]:
    return {
        "build_within_5_min": summary["build"]["median_wall_s"] <= TARGETS["build_s"],
        "build_rss_under_1_5_gb": summary["build"]["peak_rss_mb"] < TARGETS["build_rss_mb"],
        "lenses_within_60_s": summary["lenses"]["median_wall_s"] <= TARGETS["lenses_s"],
        "unchanged_within_5_pct": summary["unchanged_share_of_build"] <= TARGETS["unchanged_share"],
    }


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 gauges, small files, one region")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "context_lens_bench_national"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON is written")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    return parser.parse_args(argv)


def time_runs(payloads, work: Path, study_ids: list[str], runs: int) -> tuple[list[dict], int]:
    """`runs` repetitions against the payloads served locally: (each run's phases, requests served).
    A failed phase keeps the last lines of its log."""
    results = []
    with ScriptedServer() as server:
        for path in payloads.routes:
            server.script(path, lambda handler, path=path: payloads.routes[path](handler))
        for run in range(runs):
            print(f"  run {run + 1} of {runs}")
            run_dir = work / f"run{run + 1}"
            run_dir.mkdir()
            env = child_env(server.base_url, run_dir, work / "studies")
            results.append(one_repetition(payloads, env, run_dir, study_ids, print))
            failed = [p for p in PHASES if results[-1][p]["exit_code"] != 0]
            for phase in failed:
                tail = (run_dir / results[-1][phase]["log"]).read_text(errors="replace").splitlines()[-15:]
                print(f"  {phase} failed; last lines of its log:\n    " + "\n    ".join(tail))
                results[-1][phase]["log_tail"] = tail
            shutil.rmtree(run_dir / "raw", ignore_errors=True)
        return results, len(server.requests)


def print_summary(summary: dict, passed: dict[str, bool]) -> None:
    for phase in PHASES:
        s = summary[phase]
        print(f"{phase:20s} median {s['median_wall_s']:8.1f} s  peak RSS {s['peak_rss_mb']:7.0f} MB  "
              f"{'ok' if s['all_succeeded'] else 'FAILED'}  (runs: {s['walls_s']})")  # fmt: skip
    print(f"nothing-changed refresh / build: {summary['unchanged_share_of_build']:.1%} (target <= 5%); "
          f"one changed / build: {summary['one_changed_share_of_build']:.1%}")  # fmt: skip
    for name, verdict in passed.items():
        print(f"  {name:26s} {'PASS' if verdict else 'FAIL'}")


def write_results(document: dict, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    target = results_dir / f"national_build_{document['mode']}_{stamp}.json"
    target.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {target}")
    return target


def main(argv: list[str] | None = None) -> Path:
    options = parse_options(argv)
    if hasattr(sys.stdout, "reconfigure"):  # each phase's figures show as it ends, even in a file
        sys.stdout.reconfigure(line_buffering=True)
    scale = np_.QUICK if options.quick else np_.Scale()
    region_codes = list(QUICK_REGIONS) if options.quick else sorted(np_.regions())
    started = time.perf_counter()
    print(f"payloads ({'quick' if options.quick else 'national'} scale) in {options.cache}")
    payloads = np_.build(options.cache, scale)
    generated_s = time.perf_counter() - started
    for source_id, entry in sorted(payloads.served.items()):
        print(
            f"  {source_id:28s} {entry['scale']:6s} {entry['bytes'] / 1024**2:9.1f} MB  {entry['routes']} route(s)"
        )
    work = Path(tempfile.mkdtemp(prefix="bench_national_"))
    try:
        study_ids = write_studies(work / "studies", region_codes)
        runs, requests = time_runs(payloads, work, study_ids, options.runs)
        summary = summarise(runs)
        document = {
            "benchmark": "bench/bench_national_build.py",
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if options.quick else "national",
            "note": options.note,
            "machine": machine(),
            "scale": {
                "comunas": len(np_.division()),
                "regions": len(region_codes),
                "studies": study_ids,
                "gauges": scale.gauges,
                "days": scale.days,
                "deaths_rows": scale.deaths,
                "settlements_2024": scale.settlements_2024,
                "settlements_2022": scale.settlements_2022,
            },  # fmt: skip
            "payloads": payloads.served,
            "generation_s": round(generated_s, 1),
            "requests_served": requests,
            "runs": runs,
            "summary": summary,
            "targets": TARGETS,
            "verdicts": verdicts(summary),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_summary(summary, document["verdicts"])
    return write_results(document, options.results)


if __name__ == "__main__":
    main()
