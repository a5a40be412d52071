"""Benchmark: our long-form loader of CAMELS-CL `q_m3s_day.csv` against DuckDB's own read_csv.

Generates a synthetic file in the real v202201 layout (`date,year,month,day,<516 gauge ids>`,
`NA` for missing, ~40,000 days; invented values), streamed to a temp dir so it never sits in
memory, then times in fresh child processes, alternating:

- baseline: `CREATE TABLE wide AS SELECT * FROM read_csv(file, nullstr = 'NA')` (DuckDB's own
  sniffer and types, told only the missing marker; wide table). The sniffer samples the first
  rows, so gauges whose record starts late come out VARCHAR;
- typed: the same wide read with every gauge column declared DOUBLE (`types = {...}`), the
  cost of just parsing the numbers, for a stricter comparison;
- ours: `sources.camels_cl.load_camels_daily_sql` run by `warehouse.long_rows.load` (read + unpivot to long rows + null filter).

Each child opens its own file-backed DuckDB database in the temp dir (as the warehouse is a
file). Wall time is measured around the child; peak RSS is the child's own `ru_maxrss` from
`os.wait4`. Targets: ours within 1.5x the baseline, peak RSS under 2 GB; the
ratio to the typed read is printed too.

    .venv/bin/python bench/bench_streamflow_load.py                 # full size
    .venv/bin/python bench/bench_streamflow_load.py --days 2000 --gauges 50 --runs 2   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
TARGET_RSS_MB = 2048
MODES = ("baseline", "typed", "ours")


def gauge_ids(count: int) -> list[str]:
    """Distinct 7- and 8-digit BNA-style ids, written without the leading zero as CAMELS-CL does."""
    return [str(1001001 + i * 21_011) for i in range(count)]


def generate(path: Path, days: int, gauges: int, seed: int = 7, chunk_rows: int = 2000) -> int:
    """Stream-write the synthetic file chunk by chunk; return the number of NA cells."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = gauge_ids(gauges)
    # Like the real archive: each gauge starts somewhere in the record, plus scattered gaps.
    record_start = rng.integers(0, int(days * 0.7), size=gauges)
    scale = rng.lognormal(0.0, 1.5, size=gauges)
    first = date(1913, 2, 15)
    na_cells = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(",".join(["date", "year", "month", "day", *ids]) + "\n")
        for start in range(0, days, chunk_rows):
            rows = min(chunk_rows, days - start)
            day_index = np.arange(start, start + rows)
            values = rng.gamma(2.0, 1.0, size=(rows, gauges)) * scale
            missing = (day_index[:, None] < record_start[None, :]) | (rng.random((rows, gauges)) < 0.05)
            values[missing] = np.nan
            na_cells += int(missing.sum())
            stamps = [first + timedelta(days=int(i)) for i in day_index]
            frame = pd.DataFrame(values, columns=ids)
            frame.insert(0, "day", [d.day for d in stamps])
            frame.insert(0, "month", [d.month for d in stamps])
            frame.insert(0, "year", [d.year for d in stamps])
            frame.insert(0, "date", [d.isoformat() for d in stamps])
            frame.to_csv(
                out, header=False, index=False, na_rep="NA", float_format="%.3f", lineterminator="\n"
            )
    return na_cells


def child(mode: str, csv_path: Path, db_path: Path) -> None:
    """Run one load in this (fresh) process and print its own timing as JSON."""
    sys.path.insert(0, str(REPO_ROOT))
    import duckdb

    conn = duckdb.connect(str(db_path))
    started = time.perf_counter()
    if mode == "baseline":
        sql = "CREATE TABLE wide AS SELECT * FROM read_csv(?, nullstr = 'NA')"
        rows = conn.execute(sql, [str(csv_path)]).fetchone()[0]
    elif mode == "typed":
        with csv_path.open(encoding="utf-8") as handle:
            ids = handle.readline().rstrip("\n").split(",")[4:]
        declared = "{" + ", ".join(f"'{gauge}': 'DOUBLE'" for gauge in ids) + "}"
        sql = f"CREATE TABLE wide AS SELECT * FROM read_csv(?, nullstr = 'NA', types = {declared})"  # noqa: S608
        rows = conn.execute(sql, [str(csv_path)]).fetchone()[0]
    else:
        from sources.camels_cl import SOURCE, load_camels_daily_sql
        from warehouse import long_rows

        rows = long_rows.load(conn, load_camels_daily_sql(csv_path), "flows", SOURCE.id)
    loaded = time.perf_counter() - started
    conn.execute("CHECKPOINT")
    checkpointed = time.perf_counter() - started
    detail = {}
    if mode != "ours":
        types = conn.execute(
            "SELECT data_type, count(*) FROM duckdb_columns() WHERE table_name = 'wide' GROUP BY 1"
        )
        detail = dict(types.fetchall())
    conn.close()
    print(json.dumps({"rows": rows, "load_s": loaded, "total_s": checkpointed, "detail": detail}))


def measure(mode: str, csv_path: Path, workdir: Path, run: int) -> dict:
    db_path = workdir / f"{mode}_{run}.duckdb"
    command = [sys.executable, __file__, "--child", mode, "--file", str(csv_path), "--db", str(db_path)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{mode} child failed ({process.returncode}):\n{stderr.decode()}")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result.update(mode=mode, wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024)
    for leftover in workdir.glob(f"{mode}_{run}.duckdb*"):
        leftover.unlink()
    return result


def report(results: dict[str, list[dict]], expected_rows: int) -> None:
    """Medians per mode, the row count against the generated cells, and the verdict on the targets."""
    for mode in ("baseline", "typed"):
        print(f"{mode} column types: {results[mode][0]['detail']}")
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {
            "wall": statistics.median(r["wall_s"] for r in runs),
            "load": statistics.median(r["load_s"] for r in runs),
            "rss": max(r["peak_rss_mb"] for r in runs),
        }
        print(
            f"{mode:8s} median wall {summary[mode]['wall']:6.2f}s  median load {summary[mode]['load']:6.2f}s  "
            f"max peak RSS {summary[mode]['rss']:7.1f} MB"
        )
    ours_rows = results["ours"][0]["rows"]
    print(
        f"long rows written: {ours_rows:,} (expected {expected_rows:,}: {'ok' if ours_rows == expected_rows else 'MISMATCH'})"
    )
    ratio = summary["ours"]["wall"] / summary["baseline"]["wall"]
    load_ratio = summary["ours"]["load"] / summary["baseline"]["load"]
    print(
        f"ratio ours/baseline: wall {ratio:.2f}x, load {load_ratio:.2f}x (target <= {TARGET_RATIO}x); "
        f"ours peak RSS {summary['ours']['rss']:.0f} MB (target < {TARGET_RSS_MB} MB) -> "
        f"{'PASS' if ratio <= TARGET_RATIO and summary['ours']['rss'] < TARGET_RSS_MB else 'FAIL'}"
    )
    print(
        f"ratio ours/typed:    wall {summary['ours']['wall'] / summary['typed']['wall']:.2f}x, "
        f"load {summary['ours']['load'] / summary['typed']['load']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=40_000)
    parser.add_argument("--gauges", type=int, default=516)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.db)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench_streamflow_"))
    try:
        csv_path = workdir / "q_m3s_day.csv"
        started = time.perf_counter()
        na_cells = generate(csv_path, args.days, args.gauges)
        size_mb = csv_path.stat().st_size / 1024**2
        cells = args.days * args.gauges
        print(
            f"generated {csv_path.name}: {args.days:,} days x {args.gauges} gauges, {size_mb:,.1f} MB, "
            f"{na_cells:,} NA of {cells:,} cells ({na_cells / cells:.0%}) in {time.perf_counter() - started:.1f}s"
        )
        results: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for run in range(args.runs):
            for mode in MODES:
                result = measure(mode, csv_path, workdir, run)
                results[mode].append(result)
                print(
                    f"  run {run + 1} {mode:8s} wall {result['wall_s']:6.2f}s  load {result['load_s']:6.2f}s  "
                    f"peak RSS {result['peak_rss_mb']:7.1f} MB  rows {result['rows']:,}"
                )
        report(results, cells - na_cells)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
