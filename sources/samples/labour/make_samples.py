"""Write the SAMPLE ENE payloads: INVENTED labour figures in the SDMX-CSV layout INE serves.

Run from the repository root: `python -m sources.samples.labour.make_samples`. Deterministic
(fixed seed, no clock): rerunning reproduces the files byte for byte.

One file per dataflow of `sources.ine_ene.DATAFLOWS`, named `<DATAFLOW>_SAMPLE.csv`, with
the header INE's `format=csv` answer has (DATAFLOW,FREQ,INDICADOR,AREA_REF,...,UNIDAD,MULT),
bare region numbers, `_T` for the country, `F`/`M`/`AS`, rolling quarters 2024-01 .. 2025-03
written as `YYYY-MM-01/P3M`, some OBS_STATUS flags, and a NOTAS cell on every row, which says
SAMPLE. The numbers are invented stand-ins, never INE estimates.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from sources.ine_ene import DATAFLOWS

HERE = Path(__file__).resolve().parent
SEED = 20261201
STARTS = [f"{year}-{month:02d}" for year in (2024, 2025) for month in range(1, 13)][:15]
NOTE = '<a href="https://www.ine.gob.cl/" target="_blank">SAMPLE data written by context-lens, not INE estimates</a>'
SOURCE_NOTE = "Encuesta Nacional de Empleo (ENE) - SAMPLE"
REGIONS = [
    str(n) for n in (15, 1, 2, 3, 4, 5, 13, 6, 7, 16, 8, 9, 14, 10, 11, 12)
]  # north to south, as INE lists
# Invented regional levels: unemployment rate (%), participation rate (%), employed in mining (persons).
UNEMPLOYMENT = {"2": 8.4, "13": 8.9, "_T": 8.6}
PARTICIPATION = {"2": 62.0, "13": 63.5, "_T": 61.5}
MINING = {"2": 72_000, "3": 31_000, "4": 21_000, "1": 16_000, "13": 38_000}
MINING_WOMEN_SHARE = {"2": 0.17, "_T": 0.145}
PROVINCES = {"21": 8.9, "22": 9.8, "23": 8.1}  # the three provinces of Antofagasta; El Loa is 22
CONURBATIONS = {"1": 7.9, "2": 9.1}  # invented codes: the real conurbation codelist is not known


def _header(dimensions: list[str]) -> list[str]:
    return ["DATAFLOW", *dimensions, "TIME_PERIOD", "OBS_VALUE", "OBS_STATUS", "NOTAS_INDICADOR"] + [
        "DECIMALS",
        "NOTAS",
        "FUENTE",
        "UNIDAD",
        "MULT",
    ]


def _seasonal(index: int) -> float:
    return float(np.sin(index / 12 * 2 * np.pi))


def _rate_rows(flow, rng, levels: dict[str, float], areas: list[str], with_sex: bool) -> list[list[str]]:
    rows = []
    for area in areas:
        base = levels.get(area, 7.5 + rng.random() * 3 if flow.measure == "unemployment_rate" else 60.0)
        for index, start in enumerate(STARTS):
            level = base + 0.4 * _seasonal(index) + rng.normal(0, 0.15)
            sexes = {"AS": level, "M": level - 0.8, "F": level + 1.1} if with_sex else {"AS": level}
            if flow.measure == "participation_rate":
                sexes = {"AS": level, "M": level + 11.0, "F": level - 10.5} if with_sex else {"AS": level}
            for sex, value in sexes.items():
                status = "Y" if area in ("11", "12") and sex == "F" and index % 4 == 0 else ""
                dims = [area, sex] if with_sex else [area]
                rows.append(
                    [
                        flow.structure,
                        "M",
                        flow.indicator or _code(flow),
                        *dims,
                        f"{start}-01/P3M",
                        repr(value),
                    ]
                    + [status, "", "1", NOTE, SOURCE_NOTE, flow.unit or "RT", "0"]
                )
    return rows


def _code(flow) -> str:
    return {"unemployment_rate": "TDES", "participation_rate": "TP", "employed": "OCU"}[flow.measure]


def _mining_rows(flow, rng) -> list[list[str]]:
    """Employed persons (thousands, MULT 3) in B (mining) and C (manufacturing); regions sum to _T."""
    rows = []
    for index, start in enumerate(STARTS):
        totals = {"B": [0.0, 0.0], "C": [0.0, 0.0]}
        for area in REGIONS:
            for branch, scale in (("B", MINING.get(area, 4_000)), ("C", 55_000)):
                persons = scale * (1 + 0.02 * _seasonal(index)) * (1 + rng.normal(0, 0.01))
                share = MINING_WOMEN_SHARE.get(area, 0.13) if branch == "B" else 0.35
                women = persons * (share + rng.normal(0, 0.004))
                totals[branch][0] += women
                totals[branch][1] += persons - women
                rows += _count_rows(flow, area, branch, start, women, persons - women, index)
        for branch, (women, men) in totals.items():
            rows += _count_rows(flow, "_T", branch, start, women, men, index)
    return rows


def _count_rows(flow, area, branch, start, women, men, index) -> list[list[str]]:
    out = []
    for sex, persons in (("AS", women + men), ("F", women), ("M", men)):
        status = "Y" if area in ("11", "12") and sex == "F" and index % 3 == 0 else ""
        out.append(
            [flow.structure, "M", "OCU", area, branch, sex, f"{start}-01/P3M", repr(round(persons / 1000, 6))]
            + [status, "", "1", NOTE, SOURCE_NOTE, "PER", "3"]
        )
    return out


def payload(flow, rng) -> bytes:
    if flow.measure == "employed":
        rows = _mining_rows(flow, rng)
    elif flow.area == "region":
        levels = UNEMPLOYMENT if flow.measure == "unemployment_rate" else PARTICIPATION
        rows = _rate_rows(flow, rng, levels, [*REGIONS, "_T"], with_sex=True)
    else:
        levels = PROVINCES if flow.area == "province" else CONURBATIONS
        rows = _rate_rows(flow, rng, levels, list(levels), with_sex=False)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_header(list(flow.dimensions)))
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def main(target: Path = HERE) -> list[Path]:
    rng = np.random.default_rng(SEED)
    written = []
    for flow in DATAFLOWS:
        path = Path(target) / f"{flow.id}_SAMPLE.csv"
        path.write_bytes(payload(flow, rng))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(f"wrote {path}")
