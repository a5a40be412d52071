"""Write the SAMPLE SINCA payloads: INVENTED air-quality values in the wire formats SINCA serves.

Run from the repository root: `python -m sources.samples.air.make_samples`. Deterministic
(fixed seed, no clock): rerunning reproduces the files byte for byte.

- `sinca_listadomapa2k19_SAMPLE.json`: the station-list JSON shape (`nombre, key, latitud,
  longitud, comuna, red, region, regionindex, calificacion, empresa, realtime[]`) for the
  stations of `sources.sinca.SERIES`; names and operators as SINCA lists them, coordinates
  rounded to 3 decimals (about 100 m), every `nombre` ends in ` (SAMPLE)`.
- `<RII_nnn_PARAM>_SAMPLE.csv`: one CGI daily export per declared series, 2023-01-01 ..
  2024-12-31: latin-1, `;`, LF, trailing `;`, decimal comma (integers without one), YYMMDD,
  HORA 0000, validated / preliminary / unvalidated columns. Validated up to 2024-09-30,
  preliminary after; about 3% empty days; RII/253 PM10 is unvalidated after day 200 of 2023
  (so its 2023 mean is withheld by the 75% rule). The values are invented, never SINCA measurements.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from sources.sinca import EXPORT_HEADER, SERIES, series_name

HERE = Path(__file__).resolve().parent
SEED = 20261202
START, END = date(2023, 1, 1), date(2024, 12, 31)
VALIDATED_UNTIL = date(2024, 9, 30)
# Invented typical daily levels by parameter (µg/m3 or µg/m3N), and a per-station factor.
LEVEL = {"PM10": 55.0, "PM25": 17.0, "ARSE": 0.02}
FACTOR = {"RII/217": 1.2, "RII/233": 1.0, "RII/235": 0.9, "RII/253": 0.7, "RII/237": 0.8, "RII/251": 0.9}
STATIONS = [
    # key, nombre, comuna, red, calificacion, empresa, latitud, longitud (rounded)
    ("217", "Hospital del Cobre", "Calama", "", "Privada", "Codelco Distrito Norte", -22.454, -68.910),
    ("233", "Club Deportivo 23 de Marzo", "Calama", "Ciudad Calama", "Privada", "Codelco Distrito Norte", -22.460, -68.938),
    ("235", "Colegio Pedro Vergara Keller", "Calama", "Ciudad Calama", "Privada", "Codelco Distrito Norte", -22.443, -68.933),
    ("253", "Nueva ChiuChiu", "Calama", "Ciudad Calama", "Privada", "Codelco Distrito Norte", -22.343, -68.649),
    ("237", "Antofagasta", "Antofagasta", "Red MMA", "Pública", "Ministerio del Medio Ambiente", -23.614, -70.383),
    ("251", "Super Site", "Tocopilla", "Ciudad Tocopilla", "Privada", "ENGIE Energia Chile S.A.", -22.086, -70.188),
]  # fmt: skip


def stations_json() -> bytes:
    items = [
        {
            "nombre": f"{name} (SAMPLE)",
            "key": f"RII/{key}",
            "latitud": lat,
            "longitud": lon,
            "comuna": comuna,
            "red": red,
            "region": "II",
            "regionindex": 3,
            "calificacion": access,
            "empresa": operator,
            "realtime": [],
        }
        for key, name, comuna, red, access, operator, lat, lon in STATIONS
    ]
    return json.dumps(items, ensure_ascii=False).encode("utf-8")


def number(value: float) -> str:
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def export(station: str, parameter: str, rng: np.random.Generator) -> bytes:
    lines = [";".join(EXPORT_HEADER) + ";"]
    day = START
    base = LEVEL[parameter] * FACTOR[station]
    while day <= END:
        value = base * float(rng.lognormal(0.0, 0.35))
        cells = ["", "", ""]
        sparse = (
            station == "RII/253"
            and parameter == "PM10"
            and day.year == 2023
            and day.timetuple().tm_yday > 200
        )
        if rng.random() < 0.03:
            pass  # an empty day
        elif sparse:
            cells[2] = number(value)  # not validated
        elif day <= VALIDATED_UNTIL:
            cells[0] = number(round(value) if parameter == "PM10" and rng.random() < 0.2 else value)
        else:
            cells[1] = number(value)
        lines.append(f"{day:%y%m%d};0000;" + ";".join(cells) + ";")
        day += timedelta(days=1)
    return ("\n".join(lines) + "\n").encode("latin-1")


def main() -> None:
    rng = np.random.default_rng(SEED)
    (HERE / "sinca_listadomapa2k19_SAMPLE.json").write_bytes(stations_json())
    for station, parameter in SERIES:
        (HERE / f"{series_name(station, parameter)}_SAMPLE.csv").write_bytes(export(station, parameter, rng))


if __name__ == "__main__":
    main()
