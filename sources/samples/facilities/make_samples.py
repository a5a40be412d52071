"""Write the SAMPLE DEIS establishments workbook and the SAMPLE INDH conflicts payload (INVENTED data).

Run from the repository root: `python -m sources.samples.facilities.make_samples`. Deterministic
(fixed workbook times, no randomness): rerunning reproduces the files byte for byte.

Establishments: the real sheet names in the real order, the `Versión` row, the real header (with
its trailing and doubled spaces), zero-padded text comuna codes mixed with integers, `Pendiente`
coordinates, `terciario` in lower case, space-padded service names in the beds sheet, a formula in
the private-beds sheet, and one establishment whose coordinates lie in another comuna than the
one it states (the location check must report it). Every name says SAMPLE.
Conflicts: the INDH API payload shape (a JSON array, the misspelled keys `estadoConflico` and
`confictoAmbitoDerechos`, `region` null in some records with the region only in `regiones`, a
polygon given as a `lat, lon,lat, lon` string, HTML in the summary).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sources.samples.xlsx import workbook_bytes

HERE = Path(__file__).resolve().parent
WORKBOOK = "Establecimientos_ChileDEIS_MINSAL(SAMPLE).xlsx"
CONFLICTS = "indh_conflictos_SAMPLE.json"
HEADER = [
    "Código Antiguo", "Código Nuevo ", "Código  Madre", "Código Nuevo Madre", "Código Región", "Región",
    "SEREMI / Servicio de Salud", "Perteneciente", "Tipo Establecimiento", "Tipo Estrategia", "Certificación",
    "Dependencia", "Nivel de Atención", "Nombre Oficial", "Alias", "Código Comuna", "Nombre Comuna", "Vía",
    "Número", "Dirección", "Teléfono", "Fecha de Vigencia ", "Fecha Reapertura",
    "Código Servicio de Salud/ Región", "Clasificación SAPU", "Fecha Cambio", "Observación",
    "LONGITUD [Grados decimales]", "LATITUD      [Grados decimales]",
]  # fmt: skip
REGIONS = {
    1: "Región De Tarapacá", 2: "Región De Antofagasta", 3: "Región De Atacama", 5: "Región De Valparaíso",
    8: "Región Del Biobío", 13: "Región Metropolitana de Santiago",
}  # fmt: skip
HOSPITAL_HIGH, HOSPITAL_LOW = "Hospital (Alta Complejidad)", "Hospital (Baja Complejidad)"
CESFAM, POSTA, CLINIC = "Centro de Salud Familiar (CESFAM)", "Posta de Salud Rural (PSR)", "Clínica"
# (code, comuna as written, comuna name, type, dependency, level, lon, lat); invented places.
ESTABLISHMENTS = [
    (102100, "01405", "Pica", POSTA, "Municipal", "Primario", -69.33, -20.49),
    (103100, "02101", "Antofagasta", HOSPITAL_HIGH, "Servicio de Salud", "Terciario", -70.39, -23.62),
    (103201, "02101", "Antofagasta", CESFAM, "Municipal", "Primario", -70.40, -23.60),
    (103202, "02101", "Antofagasta", CESFAM, "Municipal", "Primario", -70.38, -23.58),
    (103203, "02101", "Antofagasta", CLINIC, "Privado", "No Aplica", -70.41, -23.65),
    (103204, "02101", "Antofagasta", "Centro de Salud", "Privado", "Secundario", "Pendiente", "Pendiente"),
    (103300, "02102", "Mejillones", HOSPITAL_LOW, "Servicio de Salud", "Secundario", -70.45, -23.10),
    (103301, "02103", "Sierra Gorda", POSTA, "Municipal", "Primario", -69.30, -22.90),
    (103302, "02104", "Taltal", HOSPITAL_LOW, "Servicio de Salud", "Secundario", -70.48, -25.40),
    (103101, "02201", "Calama", HOSPITAL_HIGH, "Servicio de Salud", "terciario", -68.93, -22.46),
    (103401, "02201", "Calama", CESFAM, "Municipal", "Primario", -68.92, -22.45),
    (103402, "02201", "Calama", CESFAM, "Municipal", "Primario", -68.91, -22.47),
    (103403, "02201", "Calama", CLINIC, "Privado", "No Aplica", -68.90, -22.44),
    (103404, "02201", "Calama", POSTA, "Municipal", "Primario", -68.60, -22.30),
    (103501, "02202", "Ollagüe", POSTA, "Municipal", "Primario", -68.26, -21.22),
    (103601, "02203", "San Pedro de Atacama", CESFAM, "Municipal", "Primario", -68.20, -22.91),
    # stated in San Pedro de Atacama, placed in Calama: the location check must report it
    (103602, "02203", "San Pedro de Atacama", POSTA, "Municipal", "Primario", -68.70, -22.50),
    (103701, "02301", "Tocopilla", HOSPITAL_LOW, "Servicio de Salud", "Secundario", -70.20, -22.09),
    (103801, "02302", "María Elena", CESFAM, "Municipal", "Primario", -69.66, -22.35),
    (104100, "03101", "Copiapó", HOSPITAL_HIGH, "Servicio de Salud", "Terciario", -70.33, -27.37),
    (106100, "05101", "Valparaíso", HOSPITAL_HIGH, "Servicio de Salud", "Terciario", -71.62, -32.96),
    (106201, "05101", "Valparaíso", CESFAM, "Municipal", "Primario", -71.60, -32.95),
    (118100, "08101", "Concepción", HOSPITAL_HIGH, "Servicio de Salud", "Terciario", -73.04, -36.82),
    (113100, 13101, "Santiago", HOSPITAL_HIGH, "Servicio de Salud", "Terciario", -70.65, -33.45),
    (113201, 13101, "Santiago", CESFAM, "Municipal", "Primario", -70.66, -33.44),
]
SERVICES = {
    "01": "Servicio de Salud Iquique", "02": "Servicio de Salud Antofagasta", "03": "Servicio de Salud Atacama",
    "05": "Servicio de Salud Valparaíso San Antonio", "08": "Servicio de Salud Concepción",
    "13": "Servicio de Salud Metropolitano Central",
}  # fmt: skip
# Public beds: (establishment code, complexity type, {area: beds}); invented counts.
BEDS = [
    (103100, "Establecimiento Alta Complejidad", {401: 60, 404: 120, 405: 18, 416: 40}),
    (103300, "Establecimiento Baja Complejidad", {403: 12, 407: 3}),
    (103302, "Establecimiento Baja Complejidad", {403: 16}),
    (103101, "Establecimiento Alta Complejidad", {401: 40, 404: 80, 405: 10, 416: 30}),
    (103701, "Establecimiento Baja Complejidad", {403: 25, 416: 5}),
    (104100, "Establecimiento Alta Complejidad", {401: 50, 404: 110, 405: 12}),
    (106100, "Establecimiento Alta Complejidad", {401: 90, 404: 160, 405: 20}),
    (118100, "Establecimiento Alta Complejidad", {401: 120, 404: 300, 405: 30}),
    (113100, "Establecimiento Alta Complejidad", {401: 150, 404: 280, 405: 40}),
]
AREAS = {
    401: "Área Médica Adulto Cuidados Básicos", 403: "Área Médico Quirúrgico Cuidados Básicos",
    404: "Área Médico Quirúrgico Cuidados Medios", 405: "Área Cuidados Intensivos Adultos",
    407: "Área Médica Pediátrica Cuidados Básicos", 416: "Área Obstetricia",
}  # fmt: skip


def _name(code: int, comuna: str, kind: str) -> str:
    return f"{kind} SAMPLE {code} ({comuna})"


def establishment_rows() -> list[list]:
    rows: list[list] = [["Versión 20250101 (SAMPLE, context-lens: invented establishments)"], HEADER]
    for code, comuna, comuna_name, kind, dependency, level, lon, lat in ESTABLISHMENTS:
        region = int(str(comuna)[:-3])
        rows.append(
            [
                f"{region:02d}-{code % 1000:03d}", code, "No Aplica", "No Aplica", region, REGIONS[region],
                SERVICES[f"{region:02d}"], "No Perteneciente" if dependency == "Privado" else "Perteneciente",
                kind, "No Aplica", "No Aplica", dependency, level, _name(code, comuna_name, kind.split(" (")[0]),
                "No Aplica", comuna, comuna_name, "Calle", "S/N", "Calle SAMPLE", "Pendiente ",
                datetime(2009, 1, 1), "No Aplica", region, "No Aplica", "No Aplica", "Sin observación ", lon, lat,
            ]
        )  # fmt: skip
    return rows


def public_bed_rows() -> list[list]:
    by_code = {e[0]: e for e in ESTABLISHMENTS}
    body = []
    for code, complexity, areas in BEDS:
        _, comuna, comuna_name, kind, *_ = by_code[code]
        service = SERVICES[str(comuna).zfill(5)[:2]].removeprefix("Servicio de Salud ").ljust(50)
        name = _name(code, comuna_name, kind.split(" (")[0])
        body.append([service, code, complexity, name, 100, "Total", sum(areas.values())])
        body += [[service, None, None, name, area, AREAS[area], beds] for area, beds in areas.items()]
    total = sum(sum(areas.values()) for _, _, areas in BEDS)
    return [
        ["DOTACIÓN DE CAMAS HOSPITALARIAS DE ESTABLECIMEINTOS PERTENECIENTES AL SNSS (Públicos) SAMPLE"],
        ["Fuente: SAMPLE (context-lens), not DEIS, DIGERA"],
        ["Nombre Servicio de Salud", "Código Establecimiento", "Tipo de Establecimiento", "Nombre Establecimiento", "cod", "Área funcional", "Total"],
        ["Total", None, None, None, None, None, total],
        *body,
    ]  # fmt: skip


def private_bed_rows() -> list[list]:
    return [
        ["DATO REFERENCIAL DE DOTACIÓN DE CAMAS HOSPITALARIAS (Privados) SAMPLE"],
        ["Fuente: SAMPLE (context-lens)"],
        [
            "Nombre SEREMI",
            "Código establecimiento",
            "Nombre establecimiento",
            "Código área",
            "Area",
            "Total 2019",
        ],
        ["Total", None, None, None, None, "=SUM(F6:F7)"],
        [" Antofagasta", 103203, "Clínica SAMPLE 103203 (Antofagasta) ", None, None, "=SUM(F6:F7)"],
        [None, None, None, 404, "Área Médico-Quirúrgico Cuidados Medios", 30],
        [None, None, None, 405, "Área Cuidados Intensivos Adultos", 6],
    ]


def workbook() -> bytes:
    return workbook_bytes(
        [
            ("Establecimientos Vigentes", establishment_rows()),
            ("Parámetros", [HEADER, ["SAMPLE: field dictionary omitted"]]),
            ("Establecimientos Cerrados", [HEADER]),
            ("Dotación de Camas Públicas", public_bed_rows()),
            ("Dotación de Camas Privadas", private_bed_rows()),
        ]
    )


# (id, title, year, locality, indigenous, region id or None, regiones, point or polygon, sector, status)
REGION_NAMES = {2: ("Antofagasta", "II"), 3: ("Atacama", "III"), 13: ("Metropolitana de Santiago", "XIII")}
SECTORS = {"Minería": 9, "Energía": 3, "Saneamiento ambiental": 7}
STATUSES = {"Activo": 1, "Latente": 3, "Archivado": 4, "Cerrado": 2}
CONFLICT_ROWS = [
    (9001, "Conflicto SAMPLE por agua en Calama", 2012, "Calama", True, 2, (-68.93, -22.45), "Minería", "Activo"),
    (9002, "Conflicto SAMPLE termoeléctrica Mejillones", 2008, "Mejillones", False, 2, (-70.44, -23.09), "Energía", "Activo"),
    (9003, "Conflicto SAMPLE salar", 2009, "Salar, San Pedro de Atacama", True, None, "-23.30, -68.20,-23.30, -68.10,-23.40, -68.10,-23.40, -68.20", "Minería", "Latente"),
    (9004, "Conflicto SAMPLE vertedero Antofagasta", 2015, "Antofagasta", False, 2, (-70.38, -23.55), "Saneamiento ambiental", "Cerrado"),
    (9005, "Conflicto SAMPLE relave Copiapó", 2011, "Copiapó", False, 3, (-70.30, -27.40), "Minería", "Archivado"),
    (9006, "Conflicto SAMPLE Santiago", 2016, "Santiago centro", False, 13, (-70.66, -33.45), "Energía", "Activo"),
]  # fmt: skip


def _region(region_id: int) -> dict:
    name, roman = REGION_NAMES[region_id]
    return {"id": region_id, "nombreRegion": name, "romano": roman}


def conflict(row: tuple) -> dict:
    cid, title, year, locality, indigenous, region, place, sector, status = row
    polygon = isinstance(place, str)
    region_of = region if region is not None else 2
    return {
        "id": cid,
        "tituloConflicto": title,
        "anyo": year,
        "anoIndicadorMulti": 5555,
        "localidadConflicto": locality,
        "esTerritorioIndigena": indigenous,
        "resumenConflicto": f"<p>SAMPLE: conflicto inventado por context-lens en {locality}, no registrado por el INDH.</p>",
        "fechaCreacion": "2019-01-01T04:00:00Z",
        "fechaModificacion": "2019-01-01T04:00:00Z",
        "fechaPublicacion": "2019-01-01T04:00:00Z",
        "estadoPublicacion": "PUBLICADO",
        "marcaMapa": {
            "id": cid + 10000,
            "latitud": None if polygon else place[1],
            "longitud": None if polygon else place[0],
            "poligono": place if polygon else "",
            "esPoligono": polygon,
        },
        "region": None if region is None else _region(region),
        "regiones": [_region(region_of)],
        "sectorProductivo": {"id": SECTORS[sector], "nombreSector": sector},
        "estadoConflico": {"id": STATUSES[status], "glosa": status},
        "causas": [],
        "actoresConflictos": [],
        "confictoAmbitoDerechos": [],
        "nivelPobreza": None,
        "nivelDHC": None,
    }


def conflicts() -> bytes:
    text = json.dumps([conflict(row) for row in CONFLICT_ROWS], ensure_ascii=False, indent=2)
    return text.encode("utf-8")  # no final newline, like the real payload


def main(target: Path = HERE) -> list[Path]:
    written = [Path(target) / WORKBOOK, Path(target) / CONFLICTS]
    written[0].write_bytes(workbook())
    written[1].write_bytes(conflicts())
    return written


if __name__ == "__main__":
    for path in main():
        print(f"wrote {path}")
