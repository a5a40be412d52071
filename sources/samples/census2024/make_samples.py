"""Write the SAMPLE 2024 Census payloads: INVENTED microdata, its dictionary, and the published tables
computed from it, each in the real layout.

Run from the repository root: `python -m sources.samples.census2024.make_samples`. Deterministic
(fixed seed, fixed zip and workbook times): rerunning reproduces the files byte for byte.

- `viviendas_censo2024_SAMPLE.zip`, `personas_censo2024_SAMPLE.zip`: one `;`-separated CSV member
  each (`viviendas_censo2024.csv`, `personas_censo2024.csv`) with every column of the real files,
  in their order, `NA` for "no aplica", for the 14 comunas of the offline territory sample;
- `diccionario_variables_censo2024_SAMPLE.csv`: the dictionary layout (CRLF records, bare LF inside
  quoted cells, NBSP, trailing empty column, `"1,234"` counts, empty Valor for water codes 3 and 4,
  `\\nB` branch codes) with counts that match the sample microdata;
- `V1/V4/H1/D1/P2_SAMPLE.xlsx`: the published workbooks' layout (Nota sheet, title row 3, header
  row 4, País row, north-to-south rows, footnote, `*` for P2 cells of 50 people or fewer),
  computed from the sample microdata, so tables and microdata reconcile.
Every number is invented; nothing here is an INE figure.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from sources.samples.census2024 import tables
from sources.samples.xlsx import workbook_bytes

HERE = Path(__file__).resolve().parent
SEED = 20261202
ZIP_TIME = (2025, 1, 1, 0, 0, 0)
SAMPLE_NOTE = "SAMPLE data written by context-lens: invented records, not INE microdata.\n"

# (comuna, name, province, province name, dwellings, rural share, mining share of the employed)
COMUNAS = [
    (1405, "Pica", 14, "Tamarugal", 160, 0.45, 0.20),
    (2101, "Antofagasta", 21, "Antofagasta", 900, 0.01, 0.12),
    (2102, "Mejillones", 21, "Antofagasta", 120, 0.05, 0.18),
    (2103, "Sierra Gorda", 21, "Antofagasta", 60, 0.40, 0.45),
    (2104, "Taltal", 21, "Antofagasta", 110, 0.10, 0.25),
    (2201, "Calama", 22, "El Loa", 650, 0.03, 0.30),
    (2202, "Ollagüe", 22, "El Loa", 40, 0.90, 0.30),
    (2203, "San Pedro de Atacama", 22, "El Loa", 130, 0.55, 0.15),
    (2301, "Tocopilla", 23, "Tocopilla", 140, 0.03, 0.15),
    (2302, "María Elena", 23, "Tocopilla", 60, 0.10, 0.35),
    (3101, "Copiapó", 31, "Copiapó", 400, 0.04, 0.14),
    (5101, "Valparaíso", 51, "Valparaíso", 500, 0.01, 0.01),
    (8101, "Concepción", 81, "Concepción", 450, 0.01, 0.01),
    (13101, "Santiago", 131, "Santiago", 700, 0.00, 0.01),
]
REGION_NAMES = {
    1: "Tarapacá",
    2: "Antofagasta",
    3: "Atacama",
    5: "Valparaíso",
    8: "Biobío",
    13: "Metropolitana de Santiago",
}
DWELLING_COLUMNS = (
    "id_vivienda region provincia comuna comuna_bajo_umbral area tipo_operativo cant_hog cant_per p2_tipo_vivienda "
    "p3a_estado_ocupacion p3b_estado_ocupacion p4a_mat_paredes p4b_mat_techo p4c_mat_piso p5_num_dormitorios "
    "p6_fuente_agua p7_distrib_agua p8_serv_hig p9_fuente_elect p10_basura p11a_num_personas p11b_comparte_gasto "
    "p11c_num_hogar indice_hacinamiento"
).split()
PERSON_COLUMNS = (
    "id_vivienda id_hogar id_persona region provincia comuna comuna_bajo_umbral area tipo_operativo sexo edad "
    "edad_quinquenal parentesco p23_est_civil p24_lug_resid5 p24_lug_resid5_esp p25_lug_nacimiento "
    "p25_lug_nacimiento_rec p25_lug_nacimiento_esp p26_llegada_periodo p27_nacionalidad p27_nacionalidad_esp "
    "p27_nacionalidad_rec p28_autoid_pueblo p28_pueblo_pert p29_afrodescendencia_rec p29_afrodescendencia "
    "p30_lengua_indigena p30_lengua_indigena_rec p31_religion p31_religion_rec p32a_dificultad_ver "
    "p32b_dificultad_oir p32c_dificultad_mover p32d_dificultad_cogni p32e_dificultad_cuidado "
    "p32f_dificultad_comunic discapacidad p33_edu_asiste asistencia_parv asistencia_basica asistencia_media "
    "asistencia_superior p37_alfabet escolaridad cine11 sit_fuerza_trabajo p40_cise_rec depend_econ_deficit_hab "
    "cod_ciuo cod_caenes p44_lug_trab p44_lug_trab_esp p45_medio_transporte p46a_tot_hijs_nac p46b_hijas_nac "
    "p46c_hijos_nac p47a_tot_hijs_sobrev p47b_hijas_sobrev p47c_hijos_sobrev p48_anio_nac_uh p48_mes_nac_uh "
    "div_genero"
).split()
# Water source by area (urban, rural): 1 red pública (incl. rural APR systems), 2 pozo, 3 camión, 4 río, -99.
WATER = {
    1: ([1, 2, 3, 4, -99], [0.965, 0.008, 0.02, 0.005, 0.002]),
    2: ([1, 2, 3, 4, -99], [0.58, 0.14, 0.18, 0.09, 0.01]),
}
BRANCHES = [c for c in "ACDEFGHIJKLMNOPQRSTU"]
PEOPLES = {2201: 0.30, 2203: 0.45, 2202: 0.60, 1405: 0.35}  # invented shares that self-identify
PUEBLO_WEIGHTS = {1: 0.2, 2: 0.2, 4: 0.4, 5: 0.15, 7: 0.05}  # Mapuche, Aymara, Lickanantay, Quechua, Diaguita


def _dwelling(rng, code: int, province: int, area: int, index: int) -> dict:
    occupied = rng.random() < 0.87
    present = occupied and rng.random() < 0.95
    row = dict.fromkeys(DWELLING_COLUMNS, "NA")
    codes, weights = WATER[area]
    row.update(
        id_vivienda=index,
        region=code // 1000,
        provincia=province,
        comuna=code,
        comuna_bajo_umbral=0,
        area=area,
        tipo_operativo=2,
        p2_tipo_vivienda=int(rng.choice([1, 3, 7], p=[0.8, 0.17, 0.03])),
        p3a_estado_ocupacion=1 if occupied else 2,
        p3b_estado_ocupacion=1 if present else (2 if occupied else 8),
        cant_hog=1 if present else 0,
        cant_per=int(rng.integers(1, 6)) if present else 0,
    )
    if present:
        row.update(
            p6_fuente_agua=int(rng.choice(codes, p=weights)),
            p7_distrib_agua=int(
                rng.choice(
                    [1, 2, 3, -99], p=[0.93, 0.04, 0.025, 0.005] if area == 1 else [0.7, 0.18, 0.11, 0.01]
                )
            ),
            p8_serv_hig=int(
                rng.choice(
                    [1, 2, 3, 4, 9, -99],
                    p=[0.88, 0.03, 0.05, 0.03, 0.009, 0.001]
                    if area == 1
                    else [0.35, 0.05, 0.35, 0.2, 0.04, 0.01],
                )
            ),
            p9_fuente_elect=int(
                rng.choice(
                    [1, 2, 3, 6, -99],
                    p=[0.985, 0.004, 0.006, 0.004, 0.001] if area == 1 else [0.85, 0.04, 0.07, 0.035, 0.005],
                )
            ),
            p10_basura=int(
                rng.choice(
                    [1, 2, 3, 5, -99],
                    p=[0.985, 0.005, 0.004, 0.005, 0.001] if area == 1 else [0.7, 0.2, 0.05, 0.045, 0.005],
                )
            ),
        )
    return row  # fmt: skip


def _persons(rng, dwelling: dict, mining: float, start: int) -> list[dict]:
    rows = []
    indigenous = PEOPLES.get(dwelling["comuna"], 0.08)
    for k in range(int(dwelling["cant_per"])):
        sex = int(rng.integers(1, 3))
        age = int(min(rng.exponential(30) + rng.integers(0, 10), 85))
        row = dict.fromkeys(PERSON_COLUMNS, "NA")
        row.update(
            {
                key: dwelling[key]
                for key in (
                    "id_vivienda",
                    "region",
                    "provincia",
                    "comuna",
                    "comuna_bajo_umbral",
                    "area",
                    "tipo_operativo",
                )
            }
        )
        row.update(
            id_hogar=1,
            id_persona=start + k,
            sexo=sex,
            edad=age,
            edad_quinquenal=min(age // 5 + 1, 18),
            parentesco=1 if k == 0 else 5,
        )
        autoid = int(rng.choice([1, 2, -99], p=[indigenous, 0.99 - indigenous, 0.01]))
        row["p28_autoid_pueblo"] = autoid
        if autoid == 1:
            row["p28_pueblo_pert"] = int(rng.choice(list(PUEBLO_WEIGHTS), p=list(PUEBLO_WEIGHTS.values())))
        if age >= 15:
            status = int(rng.choice([1, 2, 3, -99], p=[0.58, 0.055, 0.355, 0.01]))
            row["sit_fuerza_trabajo"] = status
            if status == 1:
                share = mining * (0.45 if sex == 2 else 1.35)
                other = (1 - share) * 0.94
                branch = rng.choice(
                    ["B", *BRANCHES, "999", "-99"],
                    p=[
                        share,
                        *[other / len(BRANCHES)] * len(BRANCHES),
                        (1 - share) * 0.05,
                        (1 - share) * 0.01,
                    ],
                )
                row["cod_caenes"] = str(branch)
        rows.append(row)
    return rows  # fmt: skip


def microdata(rng) -> tuple[list[dict], list[dict]]:
    dwellings, persons = [], []
    for code, _, province, _, count, rural, mining in COMUNAS:
        for _ in range(count):
            area = 2 if rng.random() < rural else 1
            dwelling = _dwelling(rng, code, province, area, len(dwellings) + 1)
            dwellings.append(dwelling)
            persons += _persons(rng, dwelling, mining, len(persons) + 1)
    return dwellings, persons


def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[c] for c in columns] for row in rows)
    return buffer.getvalue().encode("ascii")


def zip_bytes(member: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in ((member, content), ("LEEME_SAMPLE.txt", SAMPLE_NOTE.encode())):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, data)
    return out.getvalue()


# --- the dictionary ----------------------------------------------------------------------------

LABELS = {
    "area": {1: "Urbano", 2: "Rural"},
    "p6_fuente_agua": {1: "Red pública", 2: "Pozo o noria", 3: "Camión aljibe", 4: "Río, vertiente, estero, canal, lago, agua lluvia, etc.", -99: "No respuesta"},
    "sexo": {1: "Hombre", 2: "Mujer"},
    "sit_fuerza_trabajo": {1: "Ocupado", 2: "Desocupado", 3: "Fuera de la fuerza de trabajo", -99: "No respuesta"},
    "cod_caenes": {"B": "Explotación de minas y canteras", **{c: f"Rama {c} (SAMPLE label)" for c in BRANCHES}, "999": "Respuesta no codificable", "-99": "No respuesta"},
}  # fmt: skip
RANGES = {"area": "1:2", "p6_fuente_agua": "1:4; \n-99 (no respuesta); \nNA (no aplica)", "sexo": "1:2"}
RANGES |= {
    "sit_fuerza_trabajo": "1:3;\n-99 (no respuesta);\nNA (no aplica)",
    "cod_caenes": "A:U, 999; -99 (no respuesta);\nNA (no aplica)",
}


DICTIONARY_HEADER = ["Entidad", "Nombre variable", "Descripción de la variable", "Valor"]
DICTIONARY_HEADER += ["Etiqueta de categoría", "Rango", "Universo", "Conteo", ""]
TERRITORY_VARIABLES = (
    ("region", "Región", "1:16"),
    ("provincia", "Provincia", "11:163"),
    ("comuna", "Comuna", "1101:16305"),
)
DICTIONARY_VARIABLES = {
    "Vivienda": ("area", "p6_fuente_agua"),
    "Persona": ("area", "sexo", "sit_fuerza_trabajo", "cod_caenes"),
}


def _shown_code(variable: str, code) -> str:
    """The code as INE's dictionary writes it: water codes 3 and 4 left empty, branch codes after a newline."""
    if variable == "p6_fuente_agua" and code in (3, 4):
        return ""
    if variable == "cod_caenes" and code not in ("A", "-99"):
        return f"\n{code}"
    return str(code)


def _code_rows(entity: str, variable: str, records: list[dict]) -> list[list[str]]:
    counts = Counter(str(r[variable]) for r in records)
    rows = []
    for code, label in list(LABELS[variable].items()) + [("NA", "No aplica")]:
        if variable in ("area", "sexo") and code == "NA":
            continue
        count = f"{counts.get(str(code), 0):,}"
        rows.append([entity, variable, f"{variable} (SAMPLE)\xa0", _shown_code(variable, code), label])
        rows[-1] += [RANGES[variable], "SAMPLE", count, ""]
    return rows


def dictionary_bytes(dwellings: list[dict], persons: list[dict]) -> bytes:
    rows = [DICTIONARY_HEADER]
    for entity, records in (("Vivienda", dwellings), ("Persona", persons)):
        total = f"{len(records):,}"
        for variable, description, code_range in TERRITORY_VARIABLES:
            rows.append([entity, variable, description, code_range, "Ver diccionario códigos territoriales"])
            rows[-1] += [code_range, "Todos los registros", total, ""]
        for variable in DICTIONARY_VARIABLES[entity]:
            rows += _code_rows(entity, variable, records)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def main(target: Path = HERE) -> list[Path]:
    rng = np.random.default_rng(SEED)
    dwellings, persons = microdata(rng)
    files = {
        "viviendas_censo2024_SAMPLE.zip": zip_bytes(
            "viviendas_censo2024.csv", csv_bytes(dwellings, DWELLING_COLUMNS)
        ),
        "personas_censo2024_SAMPLE.zip": zip_bytes(
            "personas_censo2024.csv", csv_bytes(persons, PERSON_COLUMNS)
        ),
        "diccionario_variables_censo2024_SAMPLE.csv": dictionary_bytes(dwellings, persons),
    }
    for name, sheets in tables.workbooks(COMUNAS, REGION_NAMES, dwellings, persons, rng).items():
        files[f"{name}_SAMPLE.xlsx"] = workbook_bytes(sheets)
    written = []
    for name, content in files.items():
        path = Path(target) / name
        path.write_bytes(content)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(f"wrote {path}")
