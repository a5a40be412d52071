"""Benchmark: loading a full-size DEIS deaths file, our loader against DuckDB's plain read_csv.

    .venv/bin/python bench/bench_deaths_load.py                # ~3.5 million rows (~0.9 GB)
    .venv/bin/python bench/bench_deaths_load.py --rows 200000  # quick run

1. Writes a synthetic deaths CSV in the real layout (newer 27-column header, `;`,
   latin-1, about 270 bytes a row like the real 869 MB / 3.18 M-row file) to a temp dir,
   streaming it in chunks. Values are random; only the shape and size matter here.
2. Runs, alternately and each in a fresh subprocess, `--repeats` times:
   - baseline: `CREATE TABLE t AS SELECT * FROM read_csv(<file>, delim=';', header=true,
     encoding='latin-1')`, DuckDB's own reader materialising the file;
   - ours: `sources.deis_deaths.aggregate_deaths_csv` (layout detection, read, mapping to
     the common schema, cause groups, aggregation to year x comuna x sex x age x cause).
3. Prints the median query time and peak RSS of each, and the ratio ours / baseline.
   Targets: ratio <= 1.5, peak RSS < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sources.deis_deaths import NEW_HEADER_COLUMNS  # noqa: E402

SEED = 7
CHUNK_ROWS = 100_000
PREFIXES = 200_000
CAUSE_BLOCKS = 4_000

BASELINE_CODE = """
import duckdb, json, sys, time
con = duckdb.connect()
con.execute(f"SET threads = {int(sys.argv[2])}")
con.execute("SET enable_progress_bar = false")
start = time.perf_counter()
con.execute("CREATE TABLE t AS SELECT * FROM read_csv($p, delim=';', header=true, encoding='latin-1')", {"p": sys.argv[1]})
rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))
"""

OURS_CODE = """
import duckdb, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from sources.deis_deaths import aggregate_deaths_csv
con = duckdb.connect()
con.execute(f"SET threads = {int(sys.argv[2])}")
con.execute("SET enable_progress_bar = false")
start = time.perf_counter()
frame = aggregate_deaths_csv(con, Path(sys.argv[1]))
deaths = int(frame.loc[frame["cause_group"] == "all_causes", "deaths"].sum())
print(json.dumps({"seconds": time.perf_counter() - start, "rows": deaths, "groups": len(frame)}))
"""


def _comunas(rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """346 comuna-like codes written without the leading zero, as DEIS does."""
    comunas = []
    for region in range(1, 17):
        for k in range(22):
            code = region * 1000 + 100 * (1 + k // 8) + 1 + k % 8
            comunas.append((str(code), f"Comuna {code} Ñ", f"De la Región número {region}"))
    return comunas[:346]


def _cause_blocks(rng: np.random.Generator) -> tuple[list[bytes], list[bytes]]:
    """DIAG1..GLOSA_SUBCATEGORIA_DIAG2 + LUGAR, for ICD-10 and ICD-9 years."""
    glosa = "Glosa de la categoría diagnóstica (CIE), con tildes"
    icd10, icd9 = [], []
    letters = "ABCDEFGIJKNRSTUX"
    for _ in range(CAUSE_BLOCKS):
        letter = letters[rng.integers(len(letters))]
        code = f"{letter}{rng.integers(100):02d}{rng.integers(10)}"
        diag2 = f"X{rng.integers(60, 85)}X" if letter in "ST" else ""
        icd10.append(_block(code, diag2, glosa))
        icd9.append(_block(f"{rng.integers(1, 1000):03d}{rng.integers(10)}", "", glosa))
    return icd10, icd9


def _block(code: str, diag2: str, glosa: str) -> bytes:
    first = [code, "X00-X99", glosa[:30], "X00-X09", glosa[:30], code[:3], glosa[:35], code, glosa]
    second = [diag2, "V01-Y98", glosa[:40], "X60-X84", glosa[:30], diag2[:3], glosa[:30], diag2, glosa[:30]]
    if not diag2:
        second = [""] * 9
    return (";" + ";".join(first + second + ["Hospital o Clínica"]) + "\r\n").encode("latin-1")


def write_deaths_file(path: Path, rows: int, comunas: list[tuple[str, str, str]] | None = None) -> int:
    """Stream `rows` synthetic deaths to `path`; returns the size in bytes.

    `comunas` are (code as DEIS writes it, name, region name); by default 346 comuna-like codes."""
    rng = np.random.default_rng(SEED)
    comunas = comunas or _comunas(rng)
    icd10, icd9 = _cause_blocks(rng)
    prefixes = []
    for _ in range(PREFIXES):
        year = int(rng.integers(1990, 2024))
        code, name, region = comunas[rng.integers(len(comunas))]
        unit = "1" if rng.random() > 0.02 else str(rng.integers(2, 4))
        age = str(int(min(rng.exponential(25) + rng.integers(0, 50), 110)))
        sex = ("Hombre", "Mujer")[rng.integers(2)]
        date = f"{year}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        prefixes.append(
            (year, ";".join([str(year), date, sex, unit, age, code, name, region]).encode("latin-1"))
        )
    with path.open("wb") as out:
        out.write((";".join(NEW_HEADER_COLUMNS) + "\r\n").encode("latin-1"))
        written = 0
        while written < rows:
            n = min(CHUNK_ROWS, rows - written)
            picks = rng.integers(0, PREFIXES, size=n)
            causes = rng.integers(0, CAUSE_BLOCKS, size=n)
            parts = []
            for p, c in zip(picks.tolist(), causes.tolist(), strict=True):
                year, prefix = prefixes[p]
                parts.append(prefix)
                parts.append(icd10[c] if year >= 1997 else icd9[c])
            out.write(b"".join(parts))
            written += n
    return path.stat().st_size


def run_child(code: str, args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON plus wall time and peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, cwd=REPO_ROOT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"benchmark child failed with exit code {process.returncode}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=3_500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_deaths_"))
    path = work / "DEFUNCIONES_FUENTE_DEIS_BENCH.csv"
    start = time.perf_counter()
    size = write_deaths_file(path, options.rows)
    print(f"wrote {options.rows:,} rows, {size / 1e6:,.0f} MB in {time.perf_counter() - start:.1f} s: {path}")

    results: dict[str, list[dict]] = {"baseline": [], "ours": []}
    try:
        for i in range(options.repeats):
            for name, code, extra in (
                ("baseline", BASELINE_CODE, []),
                ("ours", OURS_CODE, [str(REPO_ROOT)]),
            ):
                result = run_child(code, [str(path), str(options.threads), *extra])
                results[name].append(result)
                print(
                    f"  run {i + 1} {name:8s} query {result['seconds']:6.2f} s  process {result['wall']:6.2f} s  "
                    f"peak RSS {result['peak_rss_mb']:7.0f} MB  rows {result['rows']:,}"
                )
    finally:
        if not options.keep:
            path.unlink(missing_ok=True)
            work.rmdir()

    assert results["ours"][0]["rows"] == options.rows, "the loader lost or invented deaths"
    median = {name: statistics.median(r["seconds"] for r in runs) for name, runs in results.items()}
    median_wall = {name: statistics.median(r["wall"] for r in runs) for name, runs in results.items()}
    peak = {name: max(r["peak_rss_mb"] for r in runs) for name, runs in results.items()}
    print(
        f"threads {options.threads}, repeats {options.repeats}, rows {options.rows:,}, file {size / 1e6:,.0f} MB"
    )
    for name in ("baseline", "ours"):
        print(
            f"{name:8s} median query {median[name]:6.2f} s  median process {median_wall[name]:6.2f} s  "
            f"peak RSS {peak[name]:7.0f} MB"
        )
    ratio = median["ours"] / median["baseline"]
    print(f"ratio ours/baseline (median query time): {ratio:.2f}  (target <= 1.5)")
    print(
        f"ratio ours/baseline (median process time, incl. imports): {median_wall['ours'] / median_wall['baseline']:.2f}"
    )
    print(f"ours peak RSS {peak['ours']:.0f} MB  (target < 2048 MB)")


if __name__ == "__main__":
    main()
