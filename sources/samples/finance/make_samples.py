"""Write the SAMPLE finance payloads of this folder, deterministically (`python make_samples.py`).

Every number written here is INVENTED (plausible in size, not real). The layouts are the real
wire formats: SINIM's long extract and its AJAX JSON answers, mindicador's per-year series,
and the assumed Presupuesto Abierto grouped answer (see sources/presupuesto_abierto.py).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
CHILE = ZoneInfo("America/Santiago")
SEED = 21591  # Ley 21.591

COMUNAS = [  # code, SINIM name, SINIM id_municipio (INVENTED: SINIM's internal ids are not in our notes)
    ("02101", "ANTOFAGASTA", "190"),
    ("02102", "MEJILLONES", "191"),
    ("02103", "SIERRA GORDA", "192"),
    ("02104", "TALTAL", "193"),
    ("02201", "CALAMA", "194"),
    ("02202", "OLLAGÜE", "195"),
    ("02203", "SAN PEDRO DE ATACAMA", "196"),
    ("02301", "TOCOPILLA", "197"),
    ("02302", "MARÍA ELENA", "198"),
]
SIZE = {
    "02101": 60.0,
    "02102": 8.0,
    "02103": 6.0,
    "02104": 5.0,
    "02201": 35.0,
    "02202": 1.5,
    "02203": 4.0,
    "02301": 7.0,
    "02302": 2.5,
}  # rough relative budget scale
AREA = "01.  ADMINISTRACION Y FINANZAS MUNICIPALES"  # double space, as SINIM writes it
VARIABLES = [  # id_dato, label, subarea, unit, description
    ("879", "Ingresos Propios Permanentes (IPP)", "A. INGRESOS MUNICIPALES (M$)", "M$", "SAMPLE description"),
    ("880", "Ingresos por Fondo Común Municipal", "A. INGRESOS MUNICIPALES (M$)", "M$", "SAMPLE description"),
    (
        "1110",
        "Ingresos Municipales (Ingreso Total Percibido)",
        "A. INGRESOS MUNICIPALES (M$)",
        "M$",
        "SAMPLE description",
    ),
    ("3754", "Patentes Mineras Ley Nº19.143.", "A. INGRESOS MUNICIPALES (M$)", "M$", "SAMPLE description"),
    (
        "1272",
        "Dependencia del Fondo Común Municipal sobre los Ingresos Propios",
        "B. INGRESOS MUNICIPALES (%)",
        " %",
        "SAMPLE description",
    ),
]
YEARS = range(2019, 2024)
BLANKS = {("02202", "3754", 2020), ("02302", "1272", 2021)}  # cells left empty, as the real extract has


def sinim_values(rng: random.Random) -> dict[tuple[str, str, int], str]:
    values = {}
    for code, _, _ in COMUNAS:
        for year in YEARS:
            growth = 1.06 ** (year - 2019)
            ipp = round(SIZE[code] * 1_000_000 * growth * rng.uniform(0.9, 1.1))
            fcm = round(SIZE[code] * 300_000 * growth * rng.uniform(0.8, 1.2) + 900_000)
            total = round((ipp + fcm) * rng.uniform(1.3, 1.6))
            mining = round(SIZE[code] * 40_000 * growth * rng.uniform(0.7, 1.3))
            dependence = round(100 * fcm / (ipp + fcm), 2)
            for variable, number in (("879", ipp), ("880", fcm), ("1110", total), ("3754", mining)):
                values[(code, variable, year)] = f"{float(number)}"
            values[(code, "1272", year)] = f"{dependence}"
    for key in BLANKS:
        values[key] = ""
    return values


def write_sinim(rng: random.Random) -> None:
    values = sinim_values(rng)
    write_sinim_extract(values)
    write_sinim_answers(values)


def write_sinim_extract(values: dict[tuple[str, str, int], str]) -> None:
    """SINIM's long extract: one row per variable, year and comuna."""
    with open(
        HERE / "sinim_finanzas_region02_2019-2023_SAMPLE.csv", "w", newline="", encoding="utf-8"
    ) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            [
                "municipio",
                "cut_comuna",
                "año_id",
                "año",
                "variable_id",
                "variable",
                "variable_desc",
                "area",
                "subarea",
                "unidad",
                "valor",
            ]
        )
        for variable, label, subarea, unit, description in VARIABLES:
            for year in YEARS:
                for code, name, _ in COMUNAS:
                    writer.writerow(
                        [
                            name,
                            code,
                            year - 1999,
                            year,
                            variable,
                            label,
                            description,
                            AREA,
                            subarea,
                            unit.strip(),
                            values[(code, variable, year)],
                        ]
                    )


def write_sinim_answers(values: dict[tuple[str, str, int], str]) -> None:
    """The AJAX answers of SINIM's web service: variables, municipalities, one value, one not received, an error."""
    catalogue: dict[str, list[dict]] = {}
    for variable, label, subarea, unit, _ in VARIABLES:
        catalogue.setdefault(subarea, []).append(
            {
                "id_area": "1",
                "nombre_area": AREA,
                "id_subarea": subarea[0],
                "nombre_subarea": subarea,
                "unidad_medida_simbolo": unit,
                "unidad_medida_nombre": "SAMPLE",
                "fuente_nombre": "SAMPLE",
                "id_dato": variable,
                "mtro_datos_nombre": label,
            }
        )
    dump(HERE / "sinim_obtener_datos_filtros_SAMPLE.json", catalogue)
    dump(
        HERE / "sinim_obtener_municipios_SAMPLE.json",
        {
            "textos": [
                {"id_municipio": mid, "municipio": name, "idLegal": code} for code, name, mid in COMUNAS
            ]
        },
    )
    # One obtener_valores answer in the service's text format (thousands dot), and one not received.
    dump(
        HERE / "sinim_obtener_valores_SAMPLE_3754_2019_02201.json",
        {
            "textos": [
                {
                    "valor": chilean(float(values[("02201", "3754", 2019)])),
                    "col": "1",
                    "classtype": "par",
                    "municipio": "CALAMA",
                }
            ]
        },
    )
    dump(
        HERE / "sinim_obtener_valores_SAMPLE_not_received.json",
        {"textos": [{"valor": "No Recepcionado", "col": "1", "classtype": "par", "municipio": "OLLAGÜE"}]},
    )
    (HERE / "sinim_obtener_valores_SAMPLE_error.html").write_text(
        "<html><head><title>Error</title></head><body>Error inesperado</body></html>\n", encoding="utf-8"
    )


def chilean(number: float) -> str:
    """1532715.0 -> '1.532.715'; 42.31 -> '42,31' (how SINIM's web service writes numbers)."""
    whole, _, decimals = f"{number:.2f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    return grouped if decimals == "00" else f"{grouped},{decimals}"


def utc_stamp(day: date) -> str:
    """mindicador's stamp for a Chilean date: local midnight, written in UTC."""
    local = datetime(day.year, day.month, day.day, tzinfo=CHILE)
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z")


UF_JAN1 = {
    2019: 27_565.0,
    2020: 28_310.0,
    2021: 29_070.0,
    2022: 30_991.0,
    2023: 35_122.0,
    2024: 36_790.0,
    2025: 38_420.0,
}
DOLLAR_LEVEL = {2019: 703.0, 2020: 792.0, 2021: 759.0, 2022: 873.0, 2023: 840.0, 2024: 944.0}


def write_mindicador(rng: random.Random) -> None:
    for year in range(2019, 2025):
        start, end = UF_JAN1[year], UF_JAN1[year + 1]
        days = [date(year, 1, 1), date(year, 4, 1), date(year, 7, 1), date(year, 10, 1), date(year, 12, 31)]
        span = (date(year + 1, 1, 1) - date(year, 1, 1)).days
        uf = [(d, round(start + (end - start) * (d - date(year, 1, 1)).days / span, 2)) for d in days]
        dump(HERE / f"mindicador_uf_{year}_SAMPLE.json", series("uf", "Unidad de fomento (UF)", uf))
        weekdays = [first_weekday(date(year, month, 2)) for month in (1, 4, 7, 10)]
        dollar = [(d, round(DOLLAR_LEVEL[year] * rng.uniform(0.95, 1.05), 2)) for d in weekdays]
        dump(HERE / f"mindicador_dolar_{year}_SAMPLE.json", series("dolar", "Dólar observado", dollar))


def first_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def series(code: str, name: str, points: list[tuple[date, float]]) -> dict:
    return {
        "version": "1.7.0",
        "autor": "mindicador.cl",
        "codigo": code,
        "nombre": name,
        "unidad_medida": "Pesos",
        "serie": [
            {"fecha": utc_stamp(d), "valor": v} for d, v in sorted(points, reverse=True)
        ],  # newest first
    }


def write_presupuesto(rng: random.Random) -> None:
    rows = [
        ("31", "02", "001", "Gobierno Regional de Antofagasta - Funcionamiento (SAMPLE)"),
        ("31", "02", "002", "Gobierno Regional de Antofagasta - Inversión Regional (SAMPLE)"),
        ("05", "05", "001", "Subsecretaría de Desarrollo Regional - Transferencias (SAMPLE)"),
    ]
    dump(
        HERE / "presupuesto_abierto_pagos_region02_2024_SAMPLE.json",
        [
            {
                "partida": p,
                "capitulo": c,
                "area": a,
                "nombre_area": label,
                "count": rng.randint(200, 3000),
                "sum": rng.randint(5_000_000_000, 90_000_000_000),
            }
            for p, c, a, label in rows
        ],
    )


def dump(path: Path, document: object) -> None:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    rng = random.Random(SEED)
    write_sinim(rng)
    write_mindicador(rng)
    write_presupuesto(rng)


if __name__ == "__main__":
    main()
