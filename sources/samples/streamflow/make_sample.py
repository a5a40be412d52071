"""Write the SAMPLE daily streamflow payloads in the real CAMELS-CL and CR2 layouts.

The flows are invented (see README.md here): a seasonal cycle, a slow decline and
autocorrelated noise per gauge, with gaps. They are not DGA, CR2 or CAMELS-CL figures.
Deterministic: stdlib `random` with a fixed seed, so a rerun rewrites the files byte for byte.

    python sources/samples/streamflow/make_sample.py
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20260127
START, END = date(1976, 1, 1), date(2020, 12, 31)
CR2_END = date(2017, 7, 31)  # the 2018 CR2 release ends about here


@dataclass(frozen=True)
class Gauge:
    code: str  # as CAMELS-CL writes it: BNA code without the leading zero
    name: str
    mean: float  # m3/s around 1976
    decline: float  # relative decline per year
    amplitude: float  # relative seasonal amplitude
    peak_day: int  # day of year of the seasonal peak
    first_day: date = START


GAUGES = [
    Gauge("2104002", "Rio Loa En Salida Embalse Conchi", 0.9, 0.012, 0.25, 45),
    Gauge("2120001", "Rio Loa En Desembocadura", 0.6, 0.015, 0.15, 60, date(1989, 10, 5)),
    Gauge("2105001", "Rio Salado A. J. Curti", 0.25, 0.005, 0.2, 40),
    Gauge("3421001", "Rio Manflas En Vertedero", 1.4, 0.010, 0.6, 350),
    Gauge("4314002", "Rio Claro En Rivadavia", 3.5, 0.008, 0.5, 355),
    Gauge("5701002", "Rio Maipo En Las Melosas", 70.0, 0.007, 0.7, 15),
]
CR2_GAUGES = GAUGES


def simulate(gauge: Gauge, rng: random.Random) -> dict[date, float | None]:
    """One invented daily series; None marks a missing day."""
    series: dict[date, float | None] = {}
    noise, gap_left = 0.0, 0
    day = START
    while day <= END:
        noise = 0.9 * noise + 0.1 * rng.gauss(0.0, 1.0)
        if gap_left == 0 and rng.random() < 0.002:
            gap_left = rng.randint(1, 60)
        years = (day - START).days / 365.25
        season = 1 + gauge.amplitude * math.cos(
            2 * math.pi * (day.timetuple().tm_yday - gauge.peak_day) / 365.25
        )
        value = gauge.mean * (1 - gauge.decline) ** years * season * math.exp(noise)
        missing = day < gauge.first_day or gap_left > 0
        series[day] = None if missing else round(value, 3)
        gap_left = max(0, gap_left - 1)
        day += timedelta(days=1)
    return series


def _days(end: date):
    day = START
    while day <= end:
        yield day
        day += timedelta(days=1)


def write_camels(flows: dict[str, dict[date, float | None]]) -> Path:
    """`q_m3s_day.csv` layout of CAMELS-CL v202201: date,year,month,day,<gauge ids>; NA missing."""
    path = HERE / "camelscl_q_m3s_day_SAMPLE.csv"
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(",".join(["date", "year", "month", "day", *(g.code for g in GAUGES)]) + "\n")
        for day in _days(END):
            cells = [flows[g.code][day] for g in GAUGES]
            text = ["NA" if v is None else f"{v:.3f}" for v in cells]
            out.write(f"{day.isoformat()},{day.year},{day.month},{day.day}," + ",".join(text) + "\n")
    return path


def write_cr2(flows: dict[str, dict[date, float | None]]) -> Path:
    """`cr2_qflxDaily_2018.csv` layout: codigo_estacion header, 14 metadata rows, then days; -9999 missing."""
    path = HERE / "cr2_qflxDaily_2018_SAMPLE.csv"
    # Station metadata: the Loa rows are invented; the peer gauges' coordinates are their
    # published positions (CAMELS-CL/Caravan attributes), so they land in their basins.
    meta = {
        "institucion": ["DGA"] * len(CR2_GAUGES),
        "fuente": ["SAMPLE context-lens"] * len(CR2_GAUGES),
        "nombre": [f'"{g.name} [SAMPLE ""invented""]"' for g in CR2_GAUGES],
        "altura": ["2950", "0", "3080", "1410", "820", "1530"],
        "latitud": ["-22.03", "-21.42", "-22.28", "-28.1489", "-29.9824", "-33.8482"],
        "longitud": ["-68.62", "-70.05", "-68.24", "-69.9909", "-70.5554", "-70.1990"],
        "codigo_cuenca": ["21", "21", "21", "34", "43", "57"],
        "nombre_cuenca": ["Rio Loa"] * 3 + ["Rio Copiapo", "Rio Elqui", "Rio Maipo"],
        "codigo_sub_cuenca": ["210", "212", "210", "340", "431", "570"],
        "nombre_sub_cuenca": ["Sample Sub-Basin A", "Sample Sub-Basin B", "Sample Sub-Basin A"]
        + ["Sample Sub-Basin C", "Sample Sub-Basin D", "Sample Sub-Basin E"],
        "inicio_observaciones": [g.first_day.isoformat() for g in CR2_GAUGES],
        "fin_observaciones": [CR2_END.isoformat()] * len(CR2_GAUGES),
        "cantidad_observaciones": [
            str(sum(1 for d in _days(CR2_END) if flows[g.code][d] is not None)) for g in CR2_GAUGES
        ],
        "inicio_automatica": ["-", "-", "2015-01-02", "-", "-", "-"],
    }
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(",".join(["codigo_estacion", *(g.code for g in CR2_GAUGES)]) + "\n")
        for label, values in meta.items():
            out.write(",".join([label, *values]) + "\n")
        for day in _days(CR2_END):
            cells = [flows[g.code][day] for g in CR2_GAUGES]
            out.write(
                day.isoformat() + "," + ",".join("-9999" if v is None else f"{v:.3f}" for v in cells) + "\n"
            )
    return path


def main() -> None:
    rng = random.Random(SEED)
    flows = {g.code: simulate(g, rng) for g in GAUGES}
    for path in (write_camels(flows), write_cr2(flows)):
        print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
