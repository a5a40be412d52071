"""Benchmark: the 2024 Census microdata aggregation, ours against a plain DuckDB read_csv + GROUP BY.

    .venv/bin/python bench/bench_census_microdata.py                       # full size: 18.48 M persons, 7.66 M dwellings
    .venv/bin/python bench/bench_census_microdata.py --persons 2000000 --dwellings 800000   # quick run

1. Writes `personas_censo2024.csv` and `viviendas_censo2024.csv` in the real layout (every column
   of INE's files, in their order, `;`, `NA` for "no aplica"; the person file is about 2.3 GB at
   full size, like INE's) with DuckDB's COPY from deterministic hashes, and zips each as INE ships
   it (`personas_censo2024.zip`). Values are synthetic; only shape, codes and size matter here.
2. Runs, alternately and each in a fresh subprocess, `--repeats` times per file:
   - baseline: the member streamed out of the zip to a temporary file, then DuckDB's own
     `SELECT comuna, area, sexo, count(*) FROM read_csv(<file>) GROUP BY ALL` (auto-detected);
   - ours: `sources.census2024_microdata.aggregate_archive` on a `warehouse.db.scan` connection
     (the archive checked and the member extracted under the caps, only the used columns typed,
     grouped by comuna x area x sex x every code), then the dictionary and territory checks.
3. Prints the median time and peak RSS of each, and the ratio ours / baseline.
   Targets: ratio <= 1.5, peak RSS < 1.5 GB.
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
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sources.samples.census2024.make_samples import DWELLING_COLUMNS, PERSON_COLUMNS  # noqa: E402

# Synthetic column expressions over i (the row number); anything not listed is a small code or NA.
_COMUNA = "((h1 % 16) + 1) * 1000 + ((h1 // 16) % 5 + 1) * 100 + ((h1 // 80) % 5 + 1)"
PERSON_VALUES = {
    "id_vivienda": "i // 2 + 1",
    "id_hogar": "1",
    "id_persona": "i + 1",
    "region": f"({_COMUNA}) // 1000",
    "provincia": f"({_COMUNA}) // 100",
    "comuna": _COMUNA,
    "area": "CASE WHEN h2 % 100 < 13 THEN 2 ELSE 1 END",
    "tipo_operativo": "2",
    "sexo": "h2 % 2 + 1",
    "edad": "h3 % 86",
    "edad_quinquenal": "(h3 % 86) // 5 + 1",
    "sit_fuerza_trabajo": "CASE WHEN h3 % 86 < 15 THEN 'NA' ELSE ['1','1','1','2','3','3','-99'][h4 % 7 + 1] END",
    "cod_caenes": "CASE WHEN h3 % 86 >= 15 AND h4 % 7 < 3 THEN ['A','B','C','F','G','H','P','Q','999','-99'][h5 % 10 + 1] ELSE 'NA' END",
    "p28_autoid_pueblo": "['1','2','2','2','2','2','2','2','2','-99'][h5 % 10 + 1]",
}
DWELLING_VALUES = {
    "id_vivienda": "i + 1",
    "region": f"({_COMUNA}) // 1000",
    "provincia": f"({_COMUNA}) // 100",
    "comuna": _COMUNA,
    "area": "CASE WHEN h2 % 100 < 17 THEN 2 ELSE 1 END",
    "tipo_operativo": "2",
    "p3b_estado_ocupacion": "CASE WHEN h3 % 100 < 84 THEN 1 ELSE 8 END",
    "p6_fuente_agua": "CASE WHEN h3 % 100 < 84 THEN ['1','1','1','1','1','1','2','3','4','-99'][h4 % 10 + 1] ELSE 'NA' END",
}
DICTIONARY = {
    "Vivienda": {"area": ["1", "2"], "p6_fuente_agua": ["1", "2", "3", "4", "-99", "NA"]},
    "Persona": {
        "area": ["1", "2"],
        "sexo": ["1", "2"],
        "sit_fuerza_trabajo": ["1", "2", "3", "-99", "NA"],
        "cod_caenes": [*"ABCDEFGHIJKLMNOPQRSTU", "999", "-99", "NA"],
    },
}

BASELINE_CODE = """
import duckdb, json, shutil, sys, tempfile, time, zipfile
from pathlib import Path
archive, member, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    target = Path(tmp) / member
    with zipfile.ZipFile(archive) as zf, zf.open(member) as source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    extracted = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    rows = con.execute("SELECT comuna, area, sexo, count(*) AS n FROM read_csv($p) GROUP BY ALL" if "personas" in member
                       else "SELECT comuna, area, count(*) AS n FROM read_csv($p) GROUP BY ALL", {"p": str(target)}).fetchall()
    records = sum(r[-1] for r in rows)
print(json.dumps({"seconds": time.perf_counter() - start, "scan": time.perf_counter() - extracted, "records": records, "groups": len(rows)}))
"""

OURS_CODE = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from sources import census2024_microdata as microdata
from warehouse import db
archive, entity_name, threads, _, dictionary = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
entity = microdata.PERSONS if entity_name == "personas" else microdata.DWELLINGS
start = time.perf_counter()
codes = microdata.parse_dictionary(Path(dictionary).read_bytes())
with tempfile.TemporaryDirectory() as tmp, db.scan(threads=threads, temp_directory=tmp) as con:
    cube = microdata.aggregate_archive(con, Path(archive), entity, work_dir=Path(tmp))
microdata.check_codes(cube, codes, entity)
microdata.check_territory_codes(cube, entity)
mismatches = microdata.count_mismatches(cube, codes, entity)
print(json.dumps({"seconds": time.perf_counter() - start, "records": int(cube["records"].sum()), "groups": len(cube)}))
"""


def _select(columns: list[str], values: dict[str, str]) -> str:
    hashes = ", ".join(f"CAST(hash(i, {k}) % 1000000007 AS BIGINT) AS h{k}" for k in range(1, 6))
    cells = ", ".join(f"CAST({values.get(c, 'NULL')} AS VARCHAR) AS {c}" for c in columns)
    return f"SELECT {cells} FROM (SELECT i, {hashes} FROM range(?) t(i))"  # noqa: S608 - constant expressions


def write_file(work: Path, name: str, columns: list[str], values: dict[str, str], rows: int) -> Path:
    """The CSV (via DuckDB COPY, NA for nulls) zipped as INE ships it; the CSV is removed after zipping."""
    import duckdb

    csv_path = work / f"{name}.csv"
    con = duckdb.connect()
    filled = {
        c: values.get(c, "CASE WHEN h5 % 10 = 0 THEN 'NA' ELSE CAST(h4 % 9 + 1 AS VARCHAR) END")
        for c in columns
    }
    con.execute(
        f"COPY ({_select(columns, filled)}) TO '{csv_path}' (DELIMITER ';', HEADER, NULL 'NA')", [rows]
    )
    con.close()
    archive = work / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(csv_path, f"{name}.csv")
    size = csv_path.stat().st_size
    csv_path.unlink()
    print(
        f"wrote {rows:,} rows of {name}: {size / 1e9:.2f} GB CSV, {archive.stat().st_size / 1e6:,.0f} MB zip"
    )
    return archive


def write_dictionary(work: Path) -> Path:
    lines = [
        "Entidad,Nombre variable,Descripción de la variable,Valor,Etiqueta de categoría,Rango,Universo,Conteo,"
    ]
    for entity, variables in DICTIONARY.items():
        lines += [
            f"{entity},{v},{v},{r},territorio,{r},Todos,,"
            for v, r in (("region", "1:16"), ("provincia", "11:165"), ("comuna", "1101:16555"))
        ]
        for variable, codes in variables.items():
            lines += [f"{entity},{variable},{variable},{code},label,rango,universo,," for code in codes]
    path = work / "diccionario_bench.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def run_child(code: str, args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON plus wall time and peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, cwd=REPO_ROOT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark child failed with exit code {os.waitstatus_to_exitcode(status)}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def measure(member: str, archive: Path, dictionary: Path, rows: int, options) -> dict:
    name = member.split("_")[0]
    results: dict[str, list[dict]] = {"baseline": [], "ours": []}
    for i in range(options.repeats):
        for kind, code, args in (
            ("baseline", BASELINE_CODE, [str(archive), f"{member}.csv", str(options.threads)]),
            ("ours", OURS_CODE, [str(archive), name, str(options.threads), str(REPO_ROOT), str(dictionary)]),
        ):
            result = run_child(code, args)
            results[kind].append(result)
            scan = f"  (scan alone {result['scan']:6.2f} s)" if "scan" in result else ""
            print(
                f"  {name} run {i + 1} {kind:8s} {result['seconds']:6.2f} s{scan}  peak RSS "
                f"{result['peak_rss_mb']:6.0f} MB  records {result['records']:,}  groups {result['groups']:,}"
            )
    assert all(r["records"] == rows for runs in results.values() for r in runs), "records lost or invented"
    median = {kind: statistics.median(r["seconds"] for r in runs) for kind, runs in results.items()}
    peak = {kind: max(r["peak_rss_mb"] for r in runs) for kind, runs in results.items()}
    ratio = median["ours"] / median["baseline"]
    print(
        f"{name}: median baseline {median['baseline']:.2f} s, ours {median['ours']:.2f} s, ratio {ratio:.2f} "
        f"(target <= 1.5); peak RSS baseline {peak['baseline']:.0f} MB, ours {peak['ours']:.0f} MB (target < 1536 MB)"
    )
    return {"median": median, "peak": peak, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=18_480_432)
    parser.add_argument("--dwellings", type=int, default=7_664_466)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_census_") as tmp:
        work = Path(tmp)
        dictionary = write_dictionary(work)
        summary = {}
        for name, columns, values, rows in (
            ("viviendas_censo2024", DWELLING_COLUMNS, DWELLING_VALUES, options.dwellings),
            ("personas_censo2024", PERSON_COLUMNS, PERSON_VALUES, options.persons),
        ):
            archive = write_file(work, name, columns, values, rows)
            summary[name] = measure(name, archive, dictionary, rows, options)
            archive.unlink()
    print(f"threads {options.threads}, repeats {options.repeats}")
    for name, result in summary.items():
        print(
            f"{name}: ratio ours/baseline {result['ratio']:.2f}, peak RSS ours {result['peak']['ours']:.0f} MB, "
            f"median ours {result['median']['ours']:.2f} s vs baseline {result['median']['baseline']:.2f} s"
        )


if __name__ == "__main__":
    main()
