"""Write the SAMPLE macro-basin annual file in the real `data_macrobasin_platform_yr.csv` layout.

Every number here is invented (stdlib `random`, fixed seed, so a rerun rewrites the file byte
for byte): they are not CAMELS-CL, CR2MET or mHM figures and must never be cited. The gauge
codes are real macro-basin outlets so the layout is exercised; the names carry `[SAMPLE]`.
A few `NA` stand where the real file has years without observations.

    .venv/bin/python sources/samples/streamflow/make_sample_macrobasins.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "camelscl_macrobasins_yr_SAMPLE.csv"
SEED = 20260212
YEARS = range(1960, 2022)
HEADER = (
    "gauge_id,gauge_name,area_km2,date,pr_mm_yr,et_mm_yr,tmin_C_yr,tmax_C_yr,tavg_C_yr,pet_mm_yr,"
    "qobs_m3s_yr,qobs_mm_yr,qsim_m3s_yr,qsim_mm_yr,sim_short_name,sim_pr_name,sim_pet_name,"
    "sim_txn_name,sim_lai_name"
).split(",")
EXPERIMENT = ["hist_cr2met_lai_ltm_sat", "cr2met", "cr2met_hsm", "cr2met", "AVHRR_VGT_LTM"]
# (BNA code as the file writes it, name, invented area km2, invented mean flow m3/s, years without qobs)
GAUGES = [
    ("3453001", "Rio Copiapo En Angostura [SAMPLE]", 18000.0, 1.5, {1960, 1961, 2015, 2018, 2019}),
    ("4335001", "Rio Elqui En La Serena [SAMPLE]", 9500.0, 8.0, {1973}),
    ("5748001", "Rio Maipo En Cabimbao [SAMPLE]", 15000.0, 90.0, set()),
]
SECONDS_PER_YEAR = 365.25 * 86400


def _row(rng: random.Random, code: str, name: str, area: float, mean: float, gap: bool, year: int) -> list:
    flow = round(mean * (1 - 0.006 * (year - 1960)) * rng.lognormvariate(0, 0.35), 6)
    simulated = round(flow * rng.uniform(0.8, 1.2), 6)
    to_mm = SECONDS_PER_YEAR / (area * 1000.0)
    tmin, tmax = round(rng.uniform(3, 7), 6), round(rng.uniform(15, 20), 6)
    return [
        int(code),
        name,
        area,
        f"{year}-01-01",
        round(rng.uniform(40, 600), 6),
        round(rng.uniform(30, 300), 6),
        tmin,
        tmax,
        round((tmin + tmax) / 2, 6),
        round(rng.uniform(1200, 2200), 6),
        "NA" if gap else flow,
        "NA" if gap else round(flow * to_mm, 6),
        simulated,
        round(simulated * to_mm, 6),
        *EXPERIMENT,
    ]


def _cell(value) -> str:
    """As the real file writes it: names quoted; numbers, dates and NA bare."""
    if isinstance(value, str) and value != "NA" and not value[:4].isdigit():
        return '"' + value.replace('"', '""') + '"'
    return str(value)


def main() -> None:
    rng = random.Random(SEED)
    lines = [",".join(f'"{name}"' for name in HEADER)]
    for code, name, area, mean, gaps in GAUGES:
        lines += [
            ",".join(map(_cell, _row(rng, code, name, area, mean, year in gaps, year))) for year in YEARS
        ]
    OUTPUT.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
