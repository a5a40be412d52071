"""Write the SAMPLE multidimensional-poverty workbook: INVENTED estimates in the MDSF SAE layout.

Run from the repository root: `python -m sources.samples.poverty.make_sample`. Deterministic
(fixed seed, fixed workbook times): rerunning reproduces the file byte for byte.

One sheet `Estimaciones`: title row (which says SAMPLE), blank row, the real header (with its
trailing newlines), one row per comuna of the offline territory sample (codes without the leading
zero, rates and limits as fractions, non-integer poor-person counts), a blank row and footnotes.
The real `Tipo de estimación SAE` column holds formulas into an external workbook; here it holds
the values those formulas cache, since openpyxl cannot write a cached formula result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sources.samples.xlsx import workbook_bytes

HERE = Path(__file__).resolve().parent
SEED = 20261203
HEADER = [
    "Código",
    "Región",
    "Nombre comuna",
    "Número de personas según proyecciones de población (*)",
    "Número de personas en situación de pobreza multidimensional (**)",
    "Porcentaje de personas en situación de pobreza multidimensional 2022",
    "Límite inferior\n",
    "Límite superior",
    "Presencia de la comuna en la muestra Casen",
    "Tipo de estimación SAE \n(***)",
]
# (code, region, comuna, invented population, invented rate)
COMUNAS = [
    (1405, "Tarapacá", "Pica", 10_400, 0.24),
    (2101, "Antofagasta", "Antofagasta", 431_000, 0.17),
    (2102, "Antofagasta", "Mejillones", 15_100, 0.19),
    (2103, "Antofagasta", "Sierra Gorda", 1_750, 0.17),
    (2104, "Antofagasta", "Taltal", 13_700, 0.21),
    (2201, "Antofagasta", "Calama", 191_000, 0.165),
    (2202, "Antofagasta", "Ollagüe", 280, 0.16),
    (2203, "Antofagasta", "San Pedro De Atacama", 10_700, 0.23),
    (2301, "Antofagasta", "Tocopilla", 28_000, 0.20),
    (2302, "Antofagasta", "María Elena", 6_500, 0.15),
    (3101, "Atacama", "Copiapó", 171_000, 0.18),
    (5101, "Valparaíso", "Valparaíso", 301_000, 0.17),
    (8101, "Biobío", "Concepción", 236_000, 0.12),
    (13101, "Metropolitana de Santiago", "Santiago", 503_000, 0.13),
]
FOOTNOTES = [
    "SAMPLE: invented estimates written by context-lens in the layout of the MDSF workbook; not official figures.",
    "(*) Proyecciones de población comunal en viviendas particulares (SAMPLE).",
    "(**) Proyección de población por la estimación de pobreza multidimensional comunal (SAMPLE).",
    "(***) Comunas sin presencia en Casen o que no cumplen los criterios de inclusión: estimación sintética (SAMPLE).",
]


def rows(rng) -> list[list]:
    body = [
        [
            "Estimaciones de Índice de Pobreza Multidimensional por comuna. SAMPLE (context-lens), not MDSF estimates 2022"
        ],
        [],
        HEADER,
    ]
    for code, region, name, population, rate in COMUNAS:
        value = float(rate + rng.normal(0, 0.004))
        half = float(0.02 + 0.5 / np.sqrt(population) + rng.random() * 0.01)
        synthetic = population < 7_000
        body.append(
            [code, region, name, population, population * value, value, value - half, value + half]
            + [
                "No" if population < 500 else "Sí",
                "Sintética" if synthetic else "Directa y Sintética (Fay-Herriot)",
            ]
        )
    return body + [[]] + [[note] for note in FOOTNOTES]


def main(target: Path = HERE) -> list[Path]:
    path = Path(target) / "estimaciones_indice_pobreza_multidimensional_comunas_2022_SAMPLE.xlsx"
    path.write_bytes(workbook_bytes([("Estimaciones", rows(np.random.default_rng(SEED)))]))
    return [path]


if __name__ == "__main__":
    for written in main():
        print(f"wrote {written}")
