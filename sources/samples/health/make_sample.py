"""Write the SAMPLE health snapshot: invented deaths and population in the real wire formats.

Run from the repository root: `python -m sources.samples.health.make_sample`. It is
deterministic (fixed seed, fixed zip timestamps): rerunning reproduces the files byte for
byte. Every number written here is INVENTED; see README.md next to this script.

Files:
- DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.zip: one `;`-separated latin-1 CSV with the
  newer DEIS header (AÑO;FECHA_DEF;SEXO_NOMBRE;...), one row per (invented) death, for the
  9 Antofagasta comunas and two comunas standing in for the rest of the country;
- ine_proyecciones_comunas_SAMPLE_2002-2035.csv: the INE comunas projection layout
  (`Region,...,Sexo (1=Hombre 2=Mujer),Edad,Poblacion 2002..Poblacion 2035`) for the
  same 11 comunas;
- ine_proyecciones_pais_SAMPLE_1992-2050.csv: the INE national single-age projection layout
  (cp1252, `;`, a title row per block: both sexes, HOMBRES, MUJERES; `EDAD;1992;...;2050`,
  "." as thousands separator, ages 0..99 and `100+`, a TOTAL row, trailing empty fields).
  Its "country" is the SAMPLE country: the sum of the same 11 comunas (years 1992-2050, the
  comunas' open 80+ group spread over 80..100+), so it is consistent with the comuna file.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from sources.deis_deaths import NEW_HEADER_COLUMNS

HERE = Path(__file__).resolve().parent
DEATHS_ZIP = "DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.zip"
DEATHS_CSV = "DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.csv"
POPULATION_CSV = "ine_proyecciones_comunas_SAMPLE_2002-2035.csv"
NATIONAL_CSV = "ine_proyecciones_pais_SAMPLE_1992-2050.csv"
NATIONAL_YEARS = range(1992, 2051)
NATIONAL_TOP_AGE = 100
NATIONAL_BLOCKS = (
    ("POBLACIÓN TOTAL (AMBOS SEXOS)", (1, 2)),
    ("HOMBRES", (1,)),
    ("MUJERES", (2,)),
)
NATIONAL_WIDTH = 120  # the real file pads every row with empty fields to a fixed width
SEED = 20261127
DEATH_YEARS = range(2016, 2021)
POPULATION_YEARS = range(2002, 2036)
ZIP_TIME = (2026, 11, 27, 0, 0, 0)

# (code, name, region, region name in INE file, region name in DEIS file, province, province name,
#  invented 2017 population, yearly growth, age-structure scale in years, mortality factor)
COMUNAS = [
    (2101, "Antofagasta", 2, "Antofagasta", "De Antofagasta", 21, "Antofagasta", 402_000, 0.016, 38, 1.05),
    (2102, "Mejillones", 2, "Antofagasta", "De Antofagasta", 21, "Antofagasta", 13_900, 0.020, 36, 1.05),
    (2103, "Sierra Gorda", 2, "Antofagasta", "De Antofagasta", 21, "Antofagasta", 10_400, 0.010, 32, 1.05),
    (2104, "Taltal", 2, "Antofagasta", "De Antofagasta", 21, "Antofagasta", 13_300, 0.008, 40, 1.10),
    (2201, "Calama", 2, "Antofagasta", "De Antofagasta", 22, "El Loa", 181_000, 0.017, 36, 1.08),
    (2202, "Ollagüe", 2, "Antofagasta", "De Antofagasta", 22, "El Loa", 320, 0.000, 45, 1.10),
    (2203, "San Pedro de Atacama", 2, "Antofagasta", "De Antofagasta", 22, "El Loa", 10_900, 0.025, 37, 1.00),
    (2301, "Tocopilla", 2, "Antofagasta", "De Antofagasta", 23, "Tocopilla", 25_200, 0.004, 42, 1.20),
    (2302, "María Elena", 2, "Antofagasta", "De Antofagasta", 23, "Tocopilla", 6_500, -0.005, 36, 1.10),
    (5101, "Valparaíso", 5, "Valparaíso", "De Valparaíso", 51, "Valparaíso", 160_000, 0.004, 55, 1.00),
    (8101, "Concepción", 8, "Biobío", "Del Bíobío", 81, "Concepción", 110_000, 0.006, 52, 1.00),
]
ANTOFAGASTA_REGION = 2

# Causes: DIAG1, DIAG2 or "", CAPITULO, GLOSA_CAPITULO, GRUPO, GLOSA_GRUPO, GLOSA_CATEGORIA, GLOSA_SUBCATEGORIA.
# The DIAG2 of injury deaths carries the external cause, as in the real file.
CAUSES = {
    "lung": ("C349", "C00-D48", "Tumores [neoplasias]", "C30-C39", "Órganos respiratorios", "Tumor maligno de los bronquios y del pulmón", "Bronquio o pulmón, parte no especificada"),
    "bladder": ("C679", "C00-D48", "Tumores [neoplasias]", "C64-C68", "Vías urinarias", "Tumor maligno de la vejiga urinaria", "Vejiga urinaria, parte no especificada"),
    "stomach": ("C169", "C00-D48", "Tumores [neoplasias]", "C15-C26", "Órganos digestivos", "Tumor maligno del estómago", "Estómago, parte no especificada"),
    "colon": ("C189", "C00-D48", "Tumores [neoplasias]", "C15-C26", "Órganos digestivos", "Tumor maligno del colon", "Colon, parte no especificada"),
    "prostate": ("C61X", "C00-D48", "Tumores [neoplasias]", "C60-C63", "Órganos genitales masculinos", "Tumor maligno de la próstata", "Tumor maligno de la próstata"),
    "breast": ("C509", "C00-D48", "Tumores [neoplasias]", "C50-C50", "Mama", "Tumor maligno de la mama", "Mama, parte no especificada"),
    "ami": ("I219", "I00-I99", "Enfermedades del sistema circulatorio", "I20-I25", "Enfermedades isquémicas del corazón", "Infarto agudo del miocardio", "Infarto agudo del miocardio, sin otra especificación"),
    "stroke": ("I64X", "I00-I99", "Enfermedades del sistema circulatorio", "I60-I69", "Enfermedades cerebrovasculares", "Accidente vascular encefálico agudo", "Accidente vascular encefálico agudo"),
    "hypertension": ("I10X", "I00-I99", "Enfermedades del sistema circulatorio", "I10-I15", "Enfermedades hipertensivas", "Hipertensión esencial (primaria)", "Hipertensión esencial (primaria)"),
    "pneumonia": ("J189", "J00-J99", "Enfermedades del sistema respiratorio", "J09-J18", "Influenza y neumonía", "Neumonía, organismo no especificado", "Neumonía, no especificada"),
    "copd": ("J449", "J00-J99", "Enfermedades del sistema respiratorio", "J40-J47", "Enfermedades crónicas de las vías respiratorias inferiores", "Otras enfermedades pulmonares obstructivas crónicas", "EPOC, no especificada"),
    "silicosis": ("J628", "J00-J99", "Enfermedades del sistema respiratorio", "J60-J70", "Enfermedades del pulmón debidas a agentes externos", "Neumoconiosis debida a polvo de sílice", "Neumoconiosis debida a otros polvos que contienen sílice"),
    "diabetes": ("E119", "E00-E90", "Enfermedades endocrinas, nutricionales y metabólicas", "E10-E14", "Diabetes mellitus", "Diabetes mellitus no insulinodependiente", "Sin mención de complicación"),
    "cirrhosis": ("K746", "K00-K93", "Enfermedades del sistema digestivo", "K70-K77", "Enfermedades del hígado", "Fibrosis y cirrosis del hígado", "Otras cirrosis del hígado y las no especificadas"),
    "ckd": ("N189", "N00-N99", "Enfermedades del sistema genitourinario", "N17-N19", "Insuficiencia renal", "Enfermedad renal crónica", "Enfermedad renal crónica, no especificada"),
    "alzheimer": ("G309", "G00-G99", "Enfermedades del sistema nervioso", "G30-G32", "Otras enfermedades degenerativas", "Enfermedad de Alzheimer", "Enfermedad de Alzheimer, no especificada"),
    "preterm": ("P073", "P00-P96", "Ciertas afecciones originadas en el período perinatal", "P05-P08", "Trastornos relacionados con la duración de la gestación", "Trastornos relacionados con gestación corta", "Otros recién nacidos pretérmino"),
    "covid": ("U071", "U00-U99", "Códigos para propósitos especiales", "U00-U49", "Asignación provisoria de nuevas afecciones", "COVID-19", "COVID-19, virus identificado"),
    "injury_head": ("S069", "S00-T98", "Traumatismos, envenenamientos y algunas otras consecuencias de causa externa", "S00-S09", "Traumatismos de la cabeza", "Traumatismo intracraneal", "Traumatismo intracraneal, no especificado"),
    "injury_asphyxia": ("T71X", "S00-T98", "Traumatismos, envenenamientos y algunas otras consecuencias de causa externa", "T66-T78", "Otros efectos de causas externas", "Asfixia", "Asfixia"),
}  # fmt: skip
EXTERNAL = {
    "traffic": ("V892", "V01-Y98", "Causas externas de morbilidad y de mortalidad", "V01-V99", "Accidentes de transporte", "Persona lesionada en accidente de tránsito", "Accidente de tránsito, vehículo de motor no especificado"),
    "fall": ("W19X", "V01-Y98", "Causas externas de morbilidad y de mortalidad", "W00-X59", "Otras causas externas de traumatismos accidentales", "Caída no especificada", "Caída no especificada"),
    "suicide": ("X70X", "V01-Y98", "Causas externas de morbilidad y de mortalidad", "X60-X84", "Lesiones autoinfligidas intencionalmente", "Lesión autoinfligida por ahorcamiento", "Lesión autoinfligida por ahorcamiento"),
    "assault": ("X959", "V01-Y98", "Causas externas de morbilidad y de mortalidad", "X85-Y09", "Agresiones", "Agresión con disparo de otras armas de fuego", "Lugar no especificado"),
}  # fmt: skip
PLACES = ("Hospital o Clínica", "Casa habitación", "Otro")


def age_structure(scale: float) -> np.ndarray:
    """Share of the population at ages 0..80 (80 = 80 and over); larger scale = older."""
    ages = np.arange(81, dtype=float)
    shares = np.exp(-ages / scale) * (1 + 0.3 * np.exp(-((ages - 30) ** 2) / 200))
    shares[80] = shares[80] * scale / 6  # the open 80+ group
    return shares / shares.sum()


def population_table(years: range = POPULATION_YEARS) -> dict[tuple[int, int, int, int], int]:
    """{(comuna, sex, age, year): population}, invented but smooth."""
    table = {}
    for code, *_rest, pop2017, growth, scale, _factor in COMUNAS:
        shares = age_structure(scale)
        for sex, sex_share in ((1, 0.505), (2, 0.495)):
            for year in years:
                total = pop2017 * (1 + growth) ** (year - 2017) * sex_share
                for age in range(81):
                    table[(code, sex, age, year)] = int(round(total * shares[age]))
    return table


def death_rate(age: int, sex: int) -> float:
    """Yearly all-cause death probability at `age` (80 stands for the 80+ group)."""
    if age == 0:
        rate = 0.007
    elif age < 15:
        rate = 0.00025
    else:
        rate = 0.00004 * np.exp(0.088 * (85 if age == 80 else age))
    return min(rate, 0.2) * (1.35 if sex == 1 else 1.0)


def cause_weights(age: int, sex: int, year: int, region: int, code: int) -> dict[str, float]:
    """Invented cause mix by age; the mining comunas get more lung cancer and silicosis."""
    if age == 0:
        return {"preterm": 0.6, "pneumonia": 0.2, "injury_asphyxia": 0.2}
    mining = code in (2201, 2301, 2302, 2103)
    weights = {
        "lung": 0.022 * (1.8 if region == ANTOFAGASTA_REGION else 1.0),
        "bladder": 0.01 * (2.5 if region == ANTOFAGASTA_REGION else 1.0),
        "stomach": 0.04,
        "colon": 0.04,
        "prostate": 0.05 if sex == 1 else 0.0,
        "breast": 0.0 if sex == 1 else 0.04,
        "ami": 0.10,
        "stroke": 0.09,
        "hypertension": 0.05,
        "pneumonia": 0.06,
        "copd": 0.04,
        "silicosis": 0.004 if mining and sex == 1 else 0.0,
        "diabetes": 0.05,
        "cirrhosis": 0.04,
        "ckd": 0.03,
        "alzheimer": 0.05 if age >= 65 else 0.0,
        "injury_head": 0.08 if age < 45 else 0.02,
        "injury_asphyxia": 0.05 if age < 45 else 0.005,
        "covid": 0.10 if year == 2020 and age >= 40 else 0.0,
    }
    return {cause: w for cause, w in weights.items() if w > 0}


def death_rows(population: dict, rng: np.random.Generator) -> list[list[str]]:
    rows = []
    for code, name, region, _ine_region, deis_region, *_rest, factor in COMUNAS:
        for year in DEATH_YEARS:
            for sex in (1, 2):
                for age in range(81):
                    n = rng.poisson(population[(code, sex, age, year)] * death_rate(age, sex) * factor)
                    if n == 0:
                        continue
                    weights = cause_weights(age, sex, year, region, code)
                    causes = list(weights)
                    p = np.array([weights[c] for c in causes])
                    for cause in rng.choice(causes, size=n, p=p / p.sum()):
                        rows.append(death_row(rng, year, sex, age, code, name, deis_region, str(cause)))
    return rows


def death_row(rng, year: int, sex: int, age: int, code: int, name: str, region: str, cause: str) -> list[str]:
    day = int(rng.integers(0, 365))
    date = np.datetime64(f"{year}-01-01") + np.timedelta64(day, "D")
    sex_name = "Hombre" if sex == 1 else "Mujer"
    if rng.random() < 0.001:
        sex_name = "Indeterminado"
    if age == 0:
        unit, amount = (
            ("2", str(int(rng.integers(1, 12))))
            if rng.random() < 0.6
            else ("3", str(int(rng.integers(0, 29))))
        )
    elif age == 80:
        unit, amount = "1", str(80 + int(rng.exponential(7)))
    else:
        unit, amount = "1", str(age)
    if rng.random() < 0.001:
        unit = ""  # EDAD_TIPO left empty: age unknown
    comuna_code, comuna_name, region_name = str(code), name, region  # the real file drops the leading zero
    if rng.random() < 0.003:
        comuna_code, comuna_name, region_name = "99999", "Ignorada", "Ignorada"
    diag2: tuple[str, ...] = ()
    if cause == "injury_head":
        diag2 = EXTERNAL[str(rng.choice(["traffic", "fall", "assault"]))]
    elif cause == "injury_asphyxia" and age > 0:
        diag2 = EXTERNAL["suicide"]
    first = [str(year), str(date), sex_name, unit, amount, comuna_code, comuna_name, region_name]
    place = PLACES[int(rng.integers(0, len(PLACES)))]
    return first + code_columns(CAUSES[cause]) + code_columns(diag2) + [place]


def code_columns(cause: tuple[str, ...]) -> list[str]:
    """DIAGn, CAPITULO, GLOSA_CAPITULO, CODIGO_GRUPO, GLOSA_GRUPO, CODIGO_CATEGORIA, GLOSA_CATEGORIA,
    CODIGO_SUBCATEGORIA, GLOSA_SUBCATEGORIA for one code (all empty when there is none)."""
    if not cause:
        return [""] * 9
    code, chapter, chapter_glosa, group, group_glosa, category_glosa, sub_glosa = cause
    return [code, chapter, chapter_glosa, group, group_glosa, code[:3], category_glosa, code, sub_glosa]


def write_deaths_zip(rows: list[list[str]], target: Path) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(NEW_HEADER_COLUMNS)
    writer.writerows(rows)
    info = zipfile.ZipInfo(DEATHS_CSV, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(target, "w") as bundle:
        bundle.writestr(info, buffer.getvalue().encode("latin-1"), compresslevel=9)


def write_population_csv(population: dict, target: Path) -> None:
    header = ["Region", "Nombre Region", "Provincia", "Nombre Provincia", "Comuna", "Nombre Comuna"]
    header += ["Sexo (1=Hombre 2=Mujer)", "Edad"] + [f"Poblacion {y}" for y in POPULATION_YEARS]
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for code, name, region, ine_region, _deis, province, province_name, *_rest in COMUNAS:
            for sex in (1, 2):
                for age in range(81):
                    counts = [population[(code, sex, age, y)] for y in POPULATION_YEARS]
                    writer.writerow(
                        [region, ine_region, province, province_name, code, name, sex, age, *counts]
                    )


def spread_open_group(count: int) -> list[int]:
    """An 80+ count spread over ages 80..100+ (invented decay), adding up to `count` exactly."""
    shares = np.exp(-np.arange(NATIONAL_TOP_AGE - 79, dtype=float) / 4.5)
    parts = np.floor(count * shares / shares.sum()).astype(int)
    parts[0] += count - int(parts.sum())
    return [int(p) for p in parts]


def national_table() -> dict[tuple[int, int, int], int]:
    """{(sex, age, year): population} of the SAMPLE country: the 11 comunas summed, 80+ spread."""
    comunas = population_table(NATIONAL_YEARS)
    table: dict[tuple[int, int, int], int] = {}
    for sex in (1, 2):
        for year in NATIONAL_YEARS:
            by_age = [sum(comunas[(code, sex, age, year)] for code, *_ in COMUNAS) for age in range(81)]
            for age, count in enumerate(by_age[:80] + spread_open_group(by_age[80])):
                table[(sex, age, year)] = count
    return table


def thousands(count: int) -> str:
    """INE's way of writing 299036: '299.036'."""
    return f"{count:,}".replace(",", ".")


def write_national_csv(national: dict, target: Path) -> None:
    def padded(cells: list[str]) -> str:
        return ";".join(cells + [""] * (NATIONAL_WIDTH - len(cells)))

    lines = []
    for title, sexes in NATIONAL_BLOCKS:
        lines += [padded([title]), padded(["EDAD", *map(str, NATIONAL_YEARS)])]
        totals = [0] * len(NATIONAL_YEARS)
        for age in range(NATIONAL_TOP_AGE + 1):
            counts = [sum(national[(sex, age, year)] for sex in sexes) for year in NATIONAL_YEARS]
            totals = [t + c for t, c in zip(totals, counts, strict=True)]
            label = f"{age}+" if age == NATIONAL_TOP_AGE else str(age)
            lines.append(padded([label, *map(thousands, counts)]))
        lines += [padded(["TOTAL", *map(thousands, totals)]), padded([])]
    target.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))


def main(out_dir: Path = HERE) -> list[Path]:
    rng = np.random.default_rng(SEED)
    population = population_table()
    deaths_zip, population_csv = out_dir / DEATHS_ZIP, out_dir / POPULATION_CSV
    write_deaths_zip(death_rows(population, rng), deaths_zip)
    write_population_csv(population, population_csv)
    national_csv = out_dir / NATIONAL_CSV
    write_national_csv(national_table(), national_csv)
    return [deaths_zip, population_csv, national_csv]


if __name__ == "__main__":
    for path in main():
        print(path, path.stat().st_size)
